"""The compiled training step of MLPs (metaplastic.fast.training) against the eager modules."""
import copy

import pytest
import torch
import torch.nn.functional as F

from metaplastic import fast
from metaplastic.experiments.continual import build_model
from metaplastic.fast import make_optimizer
from metaplastic.method import runtime
from metaplastic.method.engine import train_epoch
from metaplastic.method.models import BNN, DNN


@pytest.fixture(params=["int8", "float32"])
def products(request, monkeypatch):
    """'fast' with int8 products, or 'auto' where int8 products do not pay off (this VM)."""
    if request.param == "int8":
        if not runtime.int8_products_work():
            pytest.skip("no exact int8 products on this CPU")
        return "fast"
    monkeypatch.setitem(runtime._MEASURED, "cpu_int8_products", False)
    return "auto"


def loss_and_grads(model, x, y, compiled: bool):
    model.train()
    model.zero_grad()
    loss = F.cross_entropy(model.training_forward(x) if compiled else model(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("make, levels", [
    (lambda: BNN([784, 32, 32, 10]), 255),
    (lambda: BNN([784, 32, 32, 10]), None),
    (lambda: BNN([50, 24, 10], norm="in"), None),
    (lambda: BNN([784, 24, 10], norm_affine=False, norm_running_stats=True), None),
    (lambda: DNN([784, 24, 24, 10]), None),
    (lambda: build_model("bnn", 784, [32, 32], 10, "bn", "uniform", 0.1, "running", "uniform"),
     255),
], ids=["bnn-8bit", "bnn-float-input", "bnn-in-norm", "bnn-running-stats", "dnn",
        "bnn-published-v1.0.0"])
def test_compiled_training_step_equals_eager(make, levels, products):
    torch.manual_seed(0)
    model = make()
    said = fast.enable(model, "cpu", products, input_levels=levels)
    assert "compiled training step" in said
    n_in = model.dims[0]
    x = torch.randint(0, 256, (40, n_in)).float() / 255
    y = torch.randint(0, 10, (40,))
    eager_model = copy.deepcopy(model)  # same layers (and products), called module by module
    loss_c, grads_c = loss_and_grads(model, x, y, compiled=True)
    loss_e, grads_e = loss_and_grads(eager_model, x, y, compiled=False)
    assert torch.allclose(loss_c, loss_e, rtol=1e-6, atol=1e-6)
    assert grads_c.keys() == grads_e.keys()
    for name in grads_c:
        assert torch.allclose(grads_c[name], grads_e[name], rtol=1e-4, atol=1e-6), name
    # running statistics are updated by the compiled pass as by the eager one
    for (name, a), (_, b) in zip(model.named_buffers(), eager_model.named_buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


@pytest.mark.parametrize("optimizer_impl", ["reference", "auto"])
def test_compiled_training_follows_weight_updates(optimizer_impl, products):
    """The sign buffers read by the compiled pass are the current ones after every optimizer
    step (reference, or the fused one that writes them) and after an outside change of the
    hidden weights."""
    torch.manual_seed(1)
    model = BNN([784, 32, 32, 10])
    fast.enable(model, "cpu", products, input_levels=255)
    x = torch.randint(0, 256, (300, 784)).float() / 255
    y = torch.randint(0, 10, (300,))
    opt = make_optimizer(model, lr=0.05, meta=1.35, implementation=optimizer_impl)
    assert opt.implementation == ("fused" if optimizer_impl == "auto" else "reference")
    generator = torch.Generator().manual_seed(0)

    def check():
        model.train()
        compiled = model.training_forward(x[:100])
        eager = model(x[:100])  # eager modules, same weights
        assert torch.allclose(compiled, eager, atol=1e-5)

    before = model.layers[1].hidden_weight.detach().sign().clone()
    for _ in range(2):
        train_epoch(model, opt, x, y, 100, generator)
        check()
    assert not torch.equal(before, model.layers[1].hidden_weight.detach().sign())  # signs moved
    with torch.no_grad():
        for layer in model.layers:
            layer.hidden_weight.neg_()
    check()


def test_training_forward_is_the_model_outside_training(monkeypatch):
    monkeypatch.setitem(runtime._MEASURED, "cpu_int8_products", False)
    model = BNN([784, 16, 10])
    fast.enable(model, "cpu", "auto")
    x = torch.rand(8, 784)
    calls = []
    monkeypatch.setattr("metaplastic.fast.training._compiled_prepared_forward",
                        lambda: lambda m, xb: calls.append(1) or m(xb))
    model.eval()
    model.training_forward(x)
    model.train()
    with torch.no_grad():
        model.training_forward(x)
    assert calls == []
    model.training_forward(x)
    assert calls == [1]
