"""Metaplastic Adam against an independent NumPy re-computation (docs/METHOD.md section 3)."""
import numpy as np
import pytest
import torch

from metaplastic.fast import make_optimizer
from metaplastic.fast.optim import FusedMetaplasticAdam
from metaplastic.method.models import BNN
from metaplastic.method.optim import MetaplasticAdam, expand_meta, metaplastic_param_groups

B1, B2, EPS = 0.9, 0.999, 1e-8
IMPLEMENTATIONS = ["reference", "fast"]  # MetaplasticAdam, FusedMetaplasticAdam (compiled)
OPTIMIZER = {"reference": MetaplasticAdam, "fast": FusedMetaplasticAdam}


def numpy_step(w, grad, m, v, t, lr, wd, meta, metaplastic):
    """One step in float64 NumPy, written from docs/METHOD.md section 3, independent of the torch code."""
    g = grad + wd * w
    m = B1 * m + (1 - B1) * g
    v = B2 * v + (1 - B2) * g * g
    step = lr * np.sqrt(1 - B2 ** t) / (1 - B1 ** t)
    u = m / (np.sqrt(v) + EPS)
    if metaplastic:
        shrinking = np.sign(w) * m > 0
        u = np.where(shrinking, u * (1 - np.tanh(meta * np.abs(w)) ** 2), u)
    return w - step * u, m, v


def _run_steps(impl, w0, grads, lr, wd, meta):
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
    opt = OPTIMIZER[impl]([{"params": [w], "meta": meta}], lr=lr, weight_decay=wd)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    return w.detach().numpy().astype(np.float64), opt


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_one_step_matches_numpy_both_branches(impl):
    rng = np.random.default_rng(0)
    w0 = rng.uniform(-2, 2, size=(64, 48))
    w0[0, :4] = 0.0  # sign(0) = 0: never 'shrinking'
    grad = rng.normal(size=w0.shape)
    lr, wd, meta = 0.01, 1e-3, 1.35
    got, _ = _run_steps(impl, w0, [grad], lr, wd, meta)
    w32 = w0.astype(np.float32).astype(np.float64)
    g32 = grad.astype(np.float32).astype(np.float64)
    want, m, _ = numpy_step(w32, g32, 0.0, 0.0, 1, lr, wd, meta, metaplastic=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    shrinking = np.sign(w32) * m > 0
    assert shrinking.sum() > 100 and (~shrinking).sum() > 100  # both branches exercised
    # the factor really acts: on the shrinking side the step is smaller than plain Adam's
    plain, _, _ = numpy_step(w32, g32, 0.0, 0.0, 1, lr, wd, 0.0, metaplastic=False)
    moved, plain_moved = np.abs(got - w32)[shrinking], np.abs(plain - w32)[shrinking]
    assert np.all(moved <= plain_moved * (1 + 1e-5) + 1e-7)
    assert np.mean(moved) < 0.8 * np.mean(plain_moved)
    np.testing.assert_allclose(got[~shrinking], plain[~shrinking], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_several_steps_match_numpy(impl):
    rng = np.random.default_rng(1)
    w0 = rng.normal(scale=0.5, size=(30, 20))
    grads = [rng.normal(size=w0.shape) for _ in range(4)]
    lr, wd, meta = 0.005, 1e-7, 2.0
    got, _ = _run_steps(impl, w0, grads, lr, wd, meta)
    w, m, v = w0.astype(np.float32).astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        w, m, v = numpy_step(w, g.astype(np.float32).astype(np.float64), m, v, t, lr, wd, meta, True)
    np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_one_dimensional_parameters_are_plain_adam(impl):
    rng = np.random.default_rng(2)
    b0 = rng.uniform(-1, 1, size=(50,))
    grad = rng.normal(size=b0.shape)
    got, _ = _run_steps(impl, b0, [grad], 0.01, 1e-2, meta=5.0)
    want, _, _ = numpy_step(b0.astype(np.float32).astype(np.float64),
                            grad.astype(np.float32).astype(np.float64), 0, 0, 1, 0.01, 1e-2, 5.0,
                            metaplastic=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_meta_zero_equals_torch_adam(impl):
    torch.manual_seed(0)
    w0 = torch.randn(40, 30)
    grads = [torch.randn(40, 30) for _ in range(5)]
    ours = torch.nn.Parameter(w0.clone())
    ref = torch.nn.Parameter(w0.clone())
    opt = OPTIMIZER[impl]([{"params": [ours], "meta": 0.0}], lr=0.01, weight_decay=1e-4)
    ref_opt = torch.optim.Adam([ref], lr=0.01, weight_decay=1e-4, eps=EPS)
    for g in grads:
        ours.grad, ref.grad = g.clone(), g.clone()
        opt.step()
        ref_opt.step()
    # Only the place of eps differs (added to sqrt(v) before, not after, bias correction);
    # with gradients of order 1 that is far below float32 resolution of the result.
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_per_layer_meta_groups():
    model = BNN([12, 8, 6, 4])
    groups = metaplastic_param_groups(model, [0.5, 1.0, 2.0])
    assert [g["meta"] for g in groups[:3]] == [0.5, 1.0, 2.0]
    assert groups[0]["params"][0] is model.layers[0].hidden_weight
    assert groups[2]["params"][0] is model.layers[2].hidden_weight
    assert all(p.dim() == 1 for p in groups[3]["params"])  # the norms' affine parameters
    with pytest.raises(ValueError):
        expand_meta([1.0, 2.0], 3)
    assert expand_meta([1.35], 3) == [1.35, 1.35, 1.35]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_per_layer_meta_applied_to_the_right_layer(impl):
    torch.manual_seed(3)
    model = BNN([10, 8, 4])
    w_before = [l.hidden_weight.detach().clone().double().numpy() for l in model.layers]
    opt = make_optimizer(model, lr=0.01, meta=[0.0, 3.0], weight_decay=0.0, implementation=impl)
    for layer in model.layers:
        layer.hidden_weight.grad = torch.randn_like(layer.hidden_weight)
    grads = [l.hidden_weight.grad.double().numpy() for l in model.layers]
    opt.step()
    for layer, w0, g, meta in zip(model.layers, w_before, grads, [0.0, 3.0]):
        want, _, _ = numpy_step(w0, g, 0, 0, 1, 0.01, 0.0, meta, metaplastic=True)
        np.testing.assert_allclose(layer.hidden_weight.detach().double().numpy(), want,
                                   rtol=1e-5, atol=1e-7)


def test_fused_and_reference_agree_on_a_large_tensor():
    torch.manual_seed(4)
    w0 = torch.randn(600, 700) * 0.05
    grads = [torch.randn(600, 700) * 1e-3 for _ in range(3)]
    results = []
    for impl in IMPLEMENTATIONS:
        w = torch.nn.Parameter(w0.clone())
        opt = OPTIMIZER[impl]([{"params": [w], "meta": 1.35}], lr=0.005, weight_decay=1e-7)
        for g in grads:
            w.grad = g.clone()
            opt.step()
        results.append(w.detach())
    # float32 rounding only: 5e-7 is 1e-4 of one step (lr 0.005)
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=5e-7)


def test_optimizers_are_torch_optimizers_with_meta_per_group():
    model = BNN([12, 8, 4])
    for impl in IMPLEMENTATIONS:
        opt = make_optimizer(model, 0.01, [0.5, 2.0], implementation=impl)
        assert isinstance(opt, torch.optim.Optimizer) and isinstance(opt, MetaplasticAdam)
        assert [g["meta"] for g in opt.param_groups] == [0.5, 2.0, 0.0]
    # the state of one implementation loads into the other (--resume with another --impl)
    ref = make_optimizer(model, 0.01, 1.0, implementation="reference")
    for layer in model.layers:
        layer.hidden_weight.grad = torch.ones_like(layer.hidden_weight)
    ref.step()
    fused = make_optimizer(model, 0.01, 1.0, implementation="fast")
    fused.load_state_dict(ref.state_dict())
    assert fused.state[model.layers[0].hidden_weight]["step"] == 1
