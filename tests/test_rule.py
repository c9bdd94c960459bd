"""The metaplastic rule is defined once (metaplastic/method/rule.py): its values against float64 NumPy,
its inverse, and every user of it (reference optimizer, fused optimizer, Benna-Fusi chain, flip
statistics) checked against that one function."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from metaplastic.fast.optim import FusedMetaplasticAdam
from metaplastic.method import beaker, rule
from metaplastic.method.beaker import BeakerAdam
from metaplastic.method.flips import FlipStatistics
from metaplastic.method.models import BNN
from metaplastic.method.optim import MetaplasticAdam

PACKAGE = Path(rule.__file__).parent


def test_attenuation_is_one_minus_tanh_squared_to_float32_precision():
    x = np.concatenate([np.linspace(0, 12, 4001), [20.0, 40.0]])
    got = rule.attenuation(torch.tensor(x, dtype=torch.float32)).double().numpy()
    want = 1 / np.cosh(x.astype(np.float32).astype(np.float64)) ** 2      # sech^2, float64
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=0)               # relative: a few ulp
    # where tanh(x) is within float32 steps of 1, 1 - tanh^2 in float32 loses its digits
    t = torch.tanh(torch.tensor(x, dtype=torch.float32))
    cancelled = (1 - t * t).double().numpy()
    far = x > 6
    assert np.max(np.abs(cancelled[far] - want[far]) / want[far]) > 1e-2


def test_factor_applies_only_to_updates_that_shrink_the_weight():
    w = torch.tensor([1.0, 1.0, -1.0, -1.0, 0.0, 2.0])
    update = torch.tensor([0.5, -0.5, -0.5, 0.5, 0.5, 0.0])
    got = rule.metaplastic_factor(w, update, 1.35)
    f = 1 - math.tanh(1.35) ** 2
    torch.testing.assert_close(got, torch.tensor([f, 1.0, f, 1.0, 1.0, 1.0]))
    assert torch.equal(rule.metaplastic_factor(w, update, 0.0), torch.where(
        torch.sign(w) * update > 0, torch.ones(6), torch.ones(6)))        # m = 0: no change


@pytest.mark.parametrize("meta", [0.5, 1.35, 13.0])
@pytest.mark.parametrize("threshold", [0.5, 0.1])
def test_consolidated_magnitude_is_the_inverse(meta, threshold):
    bound = rule.consolidated_magnitude(meta, threshold)
    assert 1 - math.tanh(meta * bound) ** 2 == pytest.approx(threshold)
    x = torch.tensor([meta * bound * 0.999, meta * bound * 1.001], dtype=torch.float64)
    below = rule.attenuation(x) < threshold
    assert below.tolist() == [False, True]
    assert rule.consolidated_magnitude(0.0, threshold) == math.inf


def _one_step(optimizer_class, w0, grad, meta, **extra):
    w = torch.nn.Parameter(w0.clone())
    opt = optimizer_class([{"params": [w], "meta": meta}], lr=0.01, weight_decay=0.0, **extra)
    w.grad = grad.clone()
    opt.step()
    return w.detach()


def _by_hand(w0, grad, meta, factor):
    """Adam's first step (bias-corrected), times ``factor``(w, m, meta), in float32."""
    m = 0.1 * grad
    v = 0.001 * grad * grad
    step = 0.01 * math.sqrt(1 - 0.999) / (1 - 0.9)
    return w0 - step * factor(w0, m, meta) * (m / (torch.sqrt(v) + 1e-8))


@pytest.mark.parametrize("optimizer_class", [MetaplasticAdam, FusedMetaplasticAdam])
def test_both_optimizers_step_with_the_rules_factor(optimizer_class):
    torch.manual_seed(0)
    w0, grad = torch.randn(40, 30) * 2, torch.randn(40, 30)
    got = _one_step(optimizer_class, w0, grad, 1.35)
    torch.testing.assert_close(got, _by_hand(w0, grad, 1.35, rule.metaplastic_factor),
                               rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("optimizer_class", [MetaplasticAdam, FusedMetaplasticAdam])
def test_a_changed_rule_changes_both_optimizers(optimizer_class, monkeypatch):
    """Edit rule.attenuation and both optimizers follow: neither carries its own copy."""
    torch._dynamo.reset()
    monkeypatch.setattr(rule, "attenuation", lambda x: torch.zeros_like(x))   # freeze all
    torch.manual_seed(1)
    w0, grad = torch.randn(20, 10) * 2, torch.randn(20, 10)
    got = _one_step(optimizer_class, w0, grad, 1.0)
    shrinking = torch.sign(w0) * grad > 0
    assert shrinking.sum() > 20
    assert torch.equal(got[shrinking], w0[shrinking])            # frozen where it would shrink
    assert not torch.equal(got[~shrinking], w0[~shrinking])      # plain Adam elsewhere
    torch._dynamo.reset()                                        # no graph with the patch kept


def test_the_benna_fusi_chain_uses_the_rule(monkeypatch):
    """The last vessel's inflow is attenuated by rule.attenuation, evaluated at m |u_last|."""
    torch.manual_seed(2)
    w = torch.nn.Parameter(torch.randn(12, 8))
    opt = BeakerAdam([{"params": [w], "meta": 1.5}], lr=0.01, weight_decay=0.0)
    assert beaker.attenuation is rule.attenuation                  # imported, not rewritten
    calls = []
    monkeypatch.setattr(beaker, "attenuation",
                        lambda x: calls.append(x.clone()) or rule.attenuation(x))
    for _ in range(3):
        w.grad = torch.randn_like(w)
        opt.step()
    assert len(calls) == 3 and all(bool((x >= 0).all()) for x in calls)


def test_flip_statistics_count_what_the_rule_says():
    torch.manual_seed(3)
    model = BNN([30, 40, 5])
    with torch.no_grad():
        for layer in model.layers:
            layer.hidden_weight.mul_(0).add_(torch.randn_like(layer.hidden_weight) * 2)
    stats = FlipStatistics(model, [1.35, 0.7])
    stats.start_epoch()
    row = stats.end_epoch()
    for k, (layer, meta) in enumerate(zip(model.layers, [1.35, 0.7]), start=1):
        w = layer.hidden_weight.detach().double()
        for t in (0.5, 0.1):
            want = (rule.attenuation(meta * w.abs()) < t).double().mean().item()
            assert row[f"meta_below_{t}_l{k}"] == pytest.approx(want, abs=1e-12)
            assert 0 < want < 1


def test_no_other_module_writes_the_rule():
    """1 - tanh^2 (or its exp form) appears in metaplastic/method/rule.py only."""
    patterns = ("torch.tanh(", ".tanh_(", "exp(-2", "atanh(")
    for path in PACKAGE.rglob("*.py"):
        if path.name == "rule.py":
            continue
        text = path.read_text()
        found = [p for p in patterns if p in text]
        assert not found, f"{path.relative_to(PACKAGE.parent)} writes the rule itself: {found}"
