"""EWC Fisher against a brute-force per-sample loop; random consolidation; penalties; SI."""
import torch
import torch.nn.functional as F

from metaplastic.consolidation import EWC, SynapticIntelligence, empirical_fisher, shuffled_like
from metaplastic.models import BNN, DNN


def _toy_bnn(seed=0):
    torch.manual_seed(seed)
    model = BNN([6, 5, 4, 3], norm="bn")
    with torch.no_grad():
        for norm in model.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
    return model


def _brute_force_fisher(model: BNN, x, y, divisor):
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
    d = len(x) - 1 if divisor == "published" else len(x)
    return [f / d for f in fisher]


def test_fisher_matches_brute_force_per_sample_loop():
    model = _toy_bnn()
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    for divisor in ("published", "exact"):
        fast = empirical_fisher(model, x, y, divisor=divisor, chunk=16)  # several chunks
        slow = _brute_force_fisher(model, x, y, divisor)
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)
    assert all(l.hidden_weight.grad is None for l in model.layers)


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


def test_synaptic_intelligence_importance_and_penalty():
    model = _toy_bnn(4)
    si = SynapticIntelligence(lam=2.0, damping=0.1)
    si.begin_task(model)
    start = [l.hidden_weight.detach().clone() for l in model.layers]
    grads = [torch.randn_like(w) for w in start]
    for l, g in zip(model.layers, grads):
        l.hidden_weight.grad = g
    with torch.no_grad():
        for l, g in zip(model.layers, grads):
            l.hidden_weight.sub_(0.1 * g)
    si.after_step(model)
    si.end_task(model)
    for imp, g, w0 in zip(si.importance, grads, start):
        delta = -0.1 * g
        torch.testing.assert_close(imp, (-g * delta) / (delta ** 2 + 0.1))
        assert torch.all(imp >= 0)
    assert si.penalty(model).item() == 0.0  # at the anchor
    with torch.no_grad():
        model.layers[0].hidden_weight.add_(1.0)
    expected = 2.0 * si.importance[0].sum()
    torch.testing.assert_close(si.penalty(model), expected, rtol=1e-5, atol=1e-6)
