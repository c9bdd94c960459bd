"""EWC Fisher against a brute-force per-sample loop; random consolidation; penalties; SI."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metaplastic.errors import ConfigError
from metaplastic.method.consolidation import (EWC, SynapticIntelligence, empirical_fisher, fisher_divisor,
                                              shuffled_like)
from metaplastic.method.models import BNN, DNN


def _toy_bnn(seed=0):
    torch.manual_seed(seed)
    model = BNN([6, 5, 4, 3], norm="bn")
    with torch.no_grad():
        for norm in model.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
    return model


def _brute_force_fisher(model: BNN, x, y):
    """One sample at a time, by hand: normalization with the statistics of the whole batch
    (frozen), gradients w.r.t. the binary weights as leaves of a manual forward."""
    binary = [torch.sign(l.hidden_weight.detach()) for l in model.layers]
    if model.layers[0].binarize_input:  # in-size 6 != 784: the first layer binarizes its input
        x = torch.sign(x)
    # statistics of the whole batch, layer by layer
    stats, h = [], x
    for i, (w, norm) in enumerate(zip(binary, model.norms)):
        z = h @ w.T
        mean, var = z.mean(0), z.var(0, correction=0)
        stats.append((mean, var))
        h = (z - mean) / torch.sqrt(var + norm.eps) * norm.weight.detach() + norm.bias.detach()
        if i < len(binary) - 1:
            h = torch.sign(h)
    fisher = [torch.zeros_like(w) for w in binary]
    for n in range(len(x)):
        leaves = [w.clone().requires_grad_(True) for w in binary]
        h = x[n:n + 1]
        for i, (w, norm, (mean, var)) in enumerate(zip(leaves, model.norms, stats)):
            z = h @ w.T
            a = (z - mean) / torch.sqrt(var + norm.eps) * norm.weight.detach() + norm.bias.detach()
            if i < len(leaves) - 1:
                # sign forward, gradient only where |a| <= 1
                h = a + (torch.sign(a) - a).detach()
                h = torch.where(a.abs() <= 1, h, h.detach())
            else:
                h = a
        loss = F.cross_entropy(h, y[n:n + 1])
        grads = torch.autograd.grad(loss, leaves)
        for f, g in zip(fisher, grads):
            f += g ** 2
    return [f / len(x) for f in fisher]  # the mean over the samples processed


def _sum_fisher(model, x, y):
    return [f * len(x) for f in _brute_force_fisher(model, x, y)]


def test_fisher_matches_brute_force_per_sample_loop():
    model = _toy_bnn()
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    fast = empirical_fisher(model, x, y, chunk=16)  # several chunks
    slow = _brute_force_fisher(model, x, y)
    for f, s in zip(fast, slow):
        torch.testing.assert_close(f, s, rtol=1e-4, atol=1e-7)
        assert f.abs().sum() > 0
    assert all(l.hidden_weight.grad is None for l in model.layers)


def test_fisher_uses_the_first_samples_and_their_mean():
    """40 samples, 25 requested: the sum over the first 25 divided by 25 (the published loop
    index at exit)."""
    model = _toy_bnn(1)
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    fishers = EWC(lam=1.0, samples=25).consolidate(model, x, y)
    for f, s in zip(fishers, _sum_fisher(model, x[:25], y[:25])):
        torch.testing.assert_close(f, s / 25, rtol=1e-4, atol=1e-7)


def test_fisher_of_a_set_smaller_than_requested_is_divided_by_n_minus_1_as_published():
    """5000 requested, 30 available: the published loop exits at index 29, the sum over the
    30 samples is divided by 29; --ewc-fisher-mean divides by 30."""
    model = _toy_bnn(1)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    published = EWC(lam=1.0, samples=5000).consolidate(model, x, y)
    mean = EWC(lam=1.0, samples=5000, fisher_mean=True).consolidate(model, x, y)
    for p, m, s in zip(published, mean, _sum_fisher(model, x, y)):
        torch.testing.assert_close(p, s / 29, rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(m, s / 30, rtol=1e-4, atol=1e-7)


def test_fisher_divisor_cases():
    assert fisher_divisor(60000, 5000) == 5000
    assert fisher_divisor(5000, 5000) == 5000
    assert fisher_divisor(4999, 5000) == 4998
    assert fisher_divisor(4999, 5000, fisher_mean=True) == 4999
    assert fisher_divisor(1, 5000, fisher_mean=True) == 1
    with pytest.raises(ConfigError, match="at least 2"):
        fisher_divisor(1, 5000)


def test_fisher_of_dnn_has_weight_shapes():
    torch.manual_seed(1)
    model = DNN([6, 5, 3])
    fisher = empirical_fisher(model, torch.randn(20, 6), torch.randint(0, 3, (20,)))
    assert [f.shape for f in fisher] == [(5, 6), (3, 5)]
    assert all(torch.all(f >= 0) for f in fisher)


def test_random_consolidation_is_a_permutation_of_the_fisher():
    fisher = [torch.rand(7, 5), torch.rand(3, 7)]
    shuffled = shuffled_like(fisher, torch.Generator().manual_seed(0))
    for f, s in zip(fisher, shuffled):
        assert s.shape == f.shape
        assert torch.equal(f.flatten().sort().values, s.flatten().sort().values)
        assert not torch.equal(f, s)


def test_ewc_penalty_and_gradient_match_the_definition():
    model = _toy_bnn(2)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    ewc = EWC(lam=7.0, samples=30)
    fishers, anchors = [], []
    for task in range(2):
        fishers.append(ewc.consolidate(model, x, y))
        anchors.append([torch.sign(l.hidden_weight.detach()) for l in model.layers])
        with torch.no_grad():  # move some weights across zero, as learning would
            for l in model.layers:
                l.hidden_weight.mul_(-1 if task == 0 else 1).add_(0.01)
    penalty = ewc.penalty(model)
    penalty.backward()
    leaves = [torch.sign(l.hidden_weight.detach()).requires_grad_(True) for l in model.layers]
    direct = 0.5 * 7.0 * sum((f * (w - a) ** 2).sum() for fs, ans in zip(fishers, anchors)
                             for f, w, a in zip(fs, leaves, ans))
    direct.backward()
    torch.testing.assert_close(penalty, direct, rtol=1e-5, atol=1e-5)
    for l, leaf in zip(model.layers, leaves):  # straight-through: dP/dW_h = dP/dW_b
        torch.testing.assert_close(l.hidden_weight.grad, leaf.grad, rtol=1e-5, atol=1e-6)


def test_random_consolidation_ewc_shuffles():
    model = _toy_bnn(3)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    exact = EWC(1.0, samples=30).consolidate(model, x, y)
    rnd = EWC(1.0, samples=30, random_consolidation=True, seed=0).consolidate(model, x, y)
    for e, r in zip(exact, rnd):
        torch.testing.assert_close(e.flatten().sort().values, r.flatten().sort().values)


@pytest.mark.parametrize("binary_path", [False, True])
def test_synaptic_intelligence_one_task_by_hand(binary_path):
    """SI as published, recomputed in NumPy: path integral over the steps of one task (hidden or
    binary weights), omega from the change of the HIDDEN weights, penalty on the binary weights
    against the sign of the stored hidden weights, and its straight-through gradient."""
    model = _toy_bnn(4)
    x, y = torch.randn(24, 6), torch.randint(0, 3, (24,))
    si = SynapticIntelligence(lam=2.0, damping=0.1, binary_path=binary_path)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    hidden = lambda: [l.hidden_weight.detach().numpy().copy() for l in model.layers]  # noqa: E731
    path = np.sign if binary_path else (lambda a: a)
    start = hidden()
    w = [np.zeros_like(a) for a in start]
    si.begin_task(model)
    for step in range(4):
        before = hidden()
        xb, yb = x[6 * step:6 * step + 6], y[6 * step:6 * step + 6]
        objective = F.cross_entropy(model(xb), yb) + si.penalty(model)
        optimizer.zero_grad()
        objective.backward()
        optimizer.step()
        si.after_step(model)
        grads = [l.hidden_weight.grad.numpy().copy() for l in model.layers]
        for acc, g, new, old in zip(w, grads, hidden(), before):
            acc += -g * (path(new) - path(old))
    assert all(np.abs(a).sum() > 0 for a in w)
    si.end_task(model)
    end = hidden()
    for omega, acc, e, s0 in zip(si.omega, w, end, start):
        np.testing.assert_allclose(omega.numpy(), acc / ((e - s0) ** 2 + 0.1), rtol=1e-5, atol=1e-7)
    assert all(torch.count_nonzero(p) == 0 for p in si.path_integral)  # w reset
    # penalty: lambda * sum omega * (W_b - sign(W_h,end))^2, after flipping some signs
    with torch.no_grad():
        model.layers[0].hidden_weight[:2].mul_(-1)
    expected = sum((2.0 * om.numpy() * (np.sign(now) - np.sign(e)) ** 2).sum()
                   for om, now, e in zip(si.omega, hidden(), end))
    penalty = si.penalty(model)
    assert expected != 0
    np.testing.assert_allclose(penalty.item(), expected, rtol=1e-5)
    model.zero_grad()
    penalty.backward()
    for layer, om, e in zip(model.layers, si.omega, end):  # straight-through: d/dW_h = d/dW_b
        now = np.sign(layer.hidden_weight.detach().numpy())
        np.testing.assert_allclose(layer.hidden_weight.grad.numpy(),
                                   2.0 * 2.0 * om.numpy() * (now - np.sign(e)), rtol=1e-5,
                                   atol=1e-8)


def test_synaptic_intelligence_penalty_of_a_dnn_uses_real_weights():
    torch.manual_seed(5)
    model = DNN([6, 5, 3])
    si = SynapticIntelligence(lam=3.0)
    si.begin_task(model)
    start = [l.weight.detach().clone() for l in model.layers]
    for l in model.layers:
        l.weight.grad = torch.randn_like(l.weight)
    with torch.no_grad():
        for l in model.layers:
            l.weight.sub_(0.1 * l.weight.grad)
    si.after_step(model)
    si.end_task(model)
    end = [l.weight.detach().clone() for l in model.layers]
    with torch.no_grad():
        for l in model.layers:
            l.weight.add_(0.3)
    expected = sum((3.0 * om * (e + 0.3 - e) ** 2).sum() for om, e in zip(si.omega, end))
    torch.testing.assert_close(si.penalty(model), expected, rtol=1e-5, atol=1e-7)
    assert all(not torch.equal(a, b) for a, b in zip(start, end))
