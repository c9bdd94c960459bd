"""The compiled training forward pass of MLPs against the eager modules."""
import copy

import pytest
import torch
import torch.nn.functional as F

from metaplastic.engine import train_epoch
from metaplastic.models import BNN, DNN
from metaplastic.optim import make_optimizer


def loss_and_grads(model, x, y, impl):
    model.training_impl = impl
    model.train()
    model.zero_grad()
    loss = F.cross_entropy(model.training_forward(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("make", [
    lambda: BNN([784, 32, 32, 10], input_levels=255),
    lambda: BNN([784, 32, 32, 10]),
    lambda: BNN([50, 24, 10], norm="in"),
    lambda: BNN([784, 24, 10], norm_affine=False, norm_running_stats=True),
    lambda: DNN([784, 24, 24, 10]),
], ids=["bnn-8bit", "bnn-float-input", "bnn-in-norm", "bnn-running-stats", "dnn"])
def test_compiled_training_forward_equals_eager(make):
    torch.manual_seed(0)
    model = make()
    n_in = model.dims[0]
    x = torch.randint(0, 256, (40, n_in)).float() / 255
    y = torch.randint(0, 10, (40,))
    eager_model = copy.deepcopy(model)
    loss_c, grads_c = loss_and_grads(model, x, y, "compiled")
    loss_e, grads_e = loss_and_grads(eager_model, x, y, "eager")
    assert torch.allclose(loss_c, loss_e, rtol=1e-6, atol=1e-6)
    assert grads_c.keys() == grads_e.keys()
    for name in grads_c:
        assert torch.allclose(grads_c[name], grads_e[name], rtol=1e-4, atol=1e-6), name
    # running statistics are updated by the compiled pass as by the eager one
    for (name, a), (_, b) in zip(model.named_buffers(), eager_model.named_buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name


@pytest.mark.parametrize("optimizer_impl", ["eager", "compiled"])
def test_compiled_training_follows_weight_updates(optimizer_impl):
    """The sign buffers read by the compiled pass are the current ones after every optimizer
    step and after an outside change of the hidden weights."""
    torch.manual_seed(1)
    model = BNN([784, 32, 32, 10], input_levels=255)
    model.training_impl = "compiled"
    x = torch.randint(0, 256, (300, 784)).float() / 255
    y = torch.randint(0, 10, (300,))
    opt = make_optimizer(model, lr=0.05, meta=1.35, implementation=optimizer_impl)
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


def test_training_forward_is_eager_outside_training():
    model = BNN([784, 16, 10])
    model.training_impl = "compiled"
    x = torch.rand(8, 784)
    model.eval()
    assert not model._compiled_training(x)
    model.train()
    with torch.no_grad():
        assert not model._compiled_training(x)
    assert model._compiled_training(x)
    model.training_impl = "eager"
    assert not model._compiled_training(x)
    model.training_impl = "fast"
    with pytest.raises(ValueError, match="training_impl"):
        model._compiled_training(x)
