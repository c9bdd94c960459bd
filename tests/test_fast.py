"""The fast paths (metaplastic.fast) against the reference, and the one switch that installs
them at start (--impl): int8 products, sign buffers written by the fused optimizer, choices."""
import copy

import pytest
import torch
import torch.nn.functional as F

from metaplastic import fast
from metaplastic.errors import ConfigError
from metaplastic.fast import make_optimizer
from metaplastic.fast.layers import FastBinarizedLinear, install
from metaplastic.fast.products import int8_product
from metaplastic.method import runtime
from metaplastic.method.layers import BinarizedLinear
from metaplastic.method.models import BNN, DNN
from metaplastic.method.optim import MetaplasticAdam

needs_int8 = pytest.mark.skipif(not runtime.int8_products_work(),
                                reason="no exact int8 products (torch._int_mm) on this CPU")


def outputs(model, x, y):
    """(training output, hidden-weight gradients, evaluation output)."""
    model.zero_grad()
    model.train()
    out = model(x)
    F.cross_entropy(out, y).backward()
    grads = [layer.hidden_weight.grad.clone() for layer in model.layers]
    with torch.no_grad():
        model.eval()
        evaluated = model(x)
        model.train()
    return out.detach(), grads, evaluated


@needs_int8
def test_int8_products_for_ternary_inputs_are_bit_identical_to_float32():
    torch.manual_seed(6)
    reference = BNN([784, 64, 64, 10])
    fast_model = copy.deepcopy(reference)
    layers = install(fast_model, int8=True)
    assert [layer.int8_inputs for layer in layers] == [None, "ternary", "ternary"]
    x, y = torch.rand(50, 784), torch.randint(0, 10, (50,))
    (o1, g1, e1), (o2, g2, e2) = outputs(fast_model, x, y), outputs(reference, x, y)
    assert torch.equal(o1, o2) and torch.equal(e1, e2)
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


@needs_int8
def test_int8_product_for_8bit_images_is_the_exact_product_rounded_once():
    torch.manual_seed(7)
    pixels = torch.randint(0, 256, (40, 784))
    pixels[0] = 255  # extremes: every input at 1 or 0
    pixels[1] = 0
    x = pixels.float() / 255
    binary = torch.randint(-1, 2, (32, 784)).float()
    binary_int8 = binary.to(torch.int8)
    row_sums = binary_int8.sum(dim=1, dtype=torch.int32)
    out = int8_product(x, binary_int8, row_sums, 255)
    exact = (pixels.double() @ binary.double().t()) / 255  # integers / 255, in float64
    assert out.dtype == torch.float32
    assert torch.equal(out, exact.float())
    assert torch.allclose(out, F.linear(x, binary), rtol=0, atol=1e-4)


@needs_int8
def test_8bit_first_layer_matches_the_float_forward_and_gradients():
    torch.manual_seed(8)
    x = torch.randint(0, 256, (30, 784)).float() / 255
    y = torch.randint(0, 10, (30,))
    reference = BNN([784, 48, 48, 10])
    fast_model = copy.deepcopy(reference)
    install(fast_model, int8=True, input_levels=255)
    first = fast_model.layers[0]
    assert first.uses_int8() and first.input_levels == 255
    (o1, g1, e1), (o2, g2, e2) = outputs(fast_model, x, y), outputs(reference, x, y)
    # the first product differs from a float32 matmul only by rounding; a sign activation can
    # flip where a normalized value is ~0, so compare the first layer's output directly as well
    assert torch.allclose(o1, o2, atol=1e-4) and torch.allclose(e1, e2, atol=1e-4)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(g1, g2))
    with torch.no_grad():
        assert torch.allclose(first(x), reference.layers[0](x), atol=1e-4)


@needs_int8
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_row_sums_and_sign_buffers_follow_the_weight_after_optimizer_steps(impl):
    torch.manual_seed(9)
    model = BNN([784, 16, 10])
    layers = install(model, int8=True, input_levels=255)
    opt = make_optimizer(model, lr=0.5, meta=0.0, implementation=impl)
    assert opt.implementation == ("fused" if impl == "fast" else "reference")
    if impl == "fast":  # the fused step writes the buffers of the layers it is given
        opt._layer_of = {id(layer.hidden_weight): layer for layer in layers}
    x = torch.randint(0, 256, (20, 784)).float() / 255
    y = torch.randint(0, 10, (20,))
    first = model.layers[0]
    for _ in range(3):  # large steps: many signs change
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        with torch.no_grad():
            exact = (torch.round(x * 255).double()
                     @ torch.sign(first.hidden_weight).double().t()) / 255
            assert torch.equal(first(x), exact.float())
            model(x)  # a forward pass refreshes whatever the step did not write
        for layer in model.layers:
            now = torch.sign(layer.hidden_weight.detach())
            assert torch.equal(layer.binary_weight().detach(), now)
            assert torch.equal(layer._binary_int8, now.to(torch.int8))


def test_install_refuses_levels_that_do_not_fit_int8():
    with pytest.raises(ValueError, match="input_levels"):
        install(BNN([784, 8, 10]), int8=True, input_levels=256)


def test_sign_buffer_follows_outside_changes_and_copies_keep_their_own():
    model = BNN([12, 8, 3])
    install(model)
    layer = model.layers[0]
    assert isinstance(layer, FastBinarizedLinear) and isinstance(layer, BinarizedLinear)
    with torch.no_grad():
        first = layer.binary_weight().clone()
        layer.hidden_weight.neg_()
        assert torch.equal(layer.binary_weight(), -first)
    clone = copy.deepcopy(model)
    with torch.no_grad():
        layer.hidden_weight.neg_()
        assert torch.equal(clone.layers[0].binary_weight(), -first)
        assert torch.equal(layer.binary_weight(), first)
    assert list(model.state_dict()) == list(BNN([12, 8, 3]).state_dict())


@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_fused_optimizer_writes_only_the_sign_buffers_it_was_given(impl):
    torch.manual_seed(5)
    model = BNN([12, 8, 3])
    install(model)
    opt = make_optimizer(model, lr=0.05, meta=1.0, implementation=impl)
    x, y = torch.randn(16, 12), torch.randint(0, 3, (16,))
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        for layer in model.layers:  # refreshed from the version counter, whoever stepped
            assert torch.equal(layer.binary_weight().detach(), torch.sign(layer.hidden_weight))


# --------------------------------------------------------------------------------------------
# The switch
# --------------------------------------------------------------------------------------------


def test_reference_installs_nothing():
    model = BNN([784, 16, 10])
    said = fast.enable(model, "cpu", "reference")
    assert said.startswith("reference")
    assert type(model.layers[0]) is BinarizedLinear and not hasattr(model, "training_forward")
    assert type(make_optimizer(model, 0.01, 1.0)) is MetaplasticAdam
    assert fast.integer_evaluator(model) is None
    assert runtime.recorded_settings()["implementation"] == said


def test_unknown_choice_is_refused():
    with pytest.raises(ConfigError, match="--impl"):
        fast.enable(BNN([784, 8, 10]), "cpu", "compiled")


def test_fast_is_refused_at_start_without_int8_products(monkeypatch):
    monkeypatch.setitem(runtime._MEASURED, "compile_cpu", None)
    monkeypatch.setitem(runtime._MEASURED, "int8_works", False)
    model = BNN([784, 8, 10])
    with pytest.raises(ConfigError, match="int8 products"):
        fast.enable(model, "cpu", "fast")
    assert type(model.layers[0]) is BinarizedLinear  # nothing half-installed


def test_without_torch_compile_fast_is_refused_and_auto_declines(monkeypatch):
    monkeypatch.setitem(runtime._MEASURED, "compile_cpu", "CppCompileError: no C++ compiler")
    with pytest.raises(ConfigError, match="torch.compile does not work.*no C\\+\\+ compiler"):
        fast.enable(BNN([784, 8, 10]), "cpu", "fast")
    model = BNN([784, 8, 10])
    said = fast.enable(model, "cpu", "auto")
    assert said.startswith("reference (auto: fast paths declined") and "no C++ compiler" in said
    assert type(model.layers[0]) is BinarizedLinear
    assert type(make_optimizer(model, 0.01, 1.0)) is MetaplasticAdam


@pytest.mark.parametrize("pays_off", [True, False])
def test_auto_uses_int8_products_only_where_measured_faster(monkeypatch, pays_off):
    monkeypatch.setitem(runtime._MEASURED, "compile_cpu", None)
    monkeypatch.setitem(runtime._MEASURED, "int8_works", True)
    monkeypatch.setitem(runtime._MEASURED, "cpu_int8_products", pays_off)
    model = BNN([784, 16, 16, 10], norm_affine=False, norm_running_stats=True)
    said = fast.enable(model, "cpu", "auto", input_levels=255)
    assert ("exact int8 products" in said) is pays_off and ("float32 products" in said) is not pays_off
    assert model.fast_paths.int8 is pays_off and model.layers[1].uses_int8() is pays_off
    assert model.fast_paths.compiled_training and callable(model.training_forward)
    opt = make_optimizer(model, 0.01, 1.0)
    assert opt.implementation == "fused"
    assert (fast.integer_evaluator(model) is not None) is pays_off
    fast.enable(model, "cpu", "reference")  # and back: the reference classes again
    assert type(model.layers[1]) is BinarizedLinear and not hasattr(model, "fast_paths")


def test_int8_measurement_is_cached_and_consistent():
    runtime._MEASURED.pop("cpu_int8_products", None)
    first = runtime.int8_products_pay_off()
    assert runtime._MEASURED["cpu_int8_products"] is first
    assert runtime.int8_products_pay_off() is first
    assert runtime.recorded_settings()["cpu_int8_products"] is first
    assert not first or runtime.int8_products_work()


def test_dnn_gets_the_compiled_step_and_the_fused_optimizer(monkeypatch):
    monkeypatch.setitem(runtime._MEASURED, "compile_cpu", None)
    model = DNN([784, 16, 10])
    said = fast.enable(model, "cpu", "auto")
    assert "compiled training step" in said and model.fast_paths.layers == []
    assert make_optimizer(model, 0.01, 1.0).implementation == "fused"


@needs_int8
def test_conv_net_with_fast_layers_equals_the_reference_bit_for_bit():
    """mnist_usps's ConvBNN: sign buffers in the convs, an int8 product in the classifier (its
    input is binarized): outputs, gradients and fused-vs-reference steps as the reference's."""
    from mnist_usps.model_utils import build_model
    from metaplastic.fast.layers import FastBinarizedConv2d

    torch.manual_seed(10)
    reference = build_model([1, 4, 6], [4, 4])
    fast_model = copy.deepcopy(reference)
    layers = install(fast_model, int8=True)
    assert [type(layer) for layer in layers] == [FastBinarizedConv2d, FastBinarizedConv2d,
                                                FastBinarizedLinear]
    assert layers[-1].int8_inputs == "ternary"
    x, y = torch.rand(12, 784), torch.randint(0, 10, (12,))
    for model in (reference, fast_model):
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
    assert torch.equal(reference(x), fast_model(x))
    for a, b in zip(reference.parameters(), fast_model.parameters()):
        assert torch.equal(a.grad, b.grad)
