"""The Benna-Fusi beaker optimizer (--beaker) against a NumPy transcription of its equations
(metaplastic/method/beaker.py's docstring), element by element; and its place in a run."""
import numpy as np
import pytest
import torch

from metaplastic.errors import ConfigError
from metaplastic.method.beaker import BeakerAdam, check_chain


def numpy_beaker(w0, grads, lr, n, g, c, fb, meta, wd, b1=0.9, b2=0.999, eps=1e-8):
    """Element by element, float64: Adam on u_0, then the chain with u_n = 0."""
    w = w0.astype(np.float64).ravel().copy()
    u = [w.copy() for _ in range(n)] + [np.zeros_like(w)]     # u_0 .. u_{n-1}, u_n = 0
    m, v = np.zeros_like(w), np.zeros_like(w)
    for t, grad in enumerate(grads, start=1):
        grad = grad.astype(np.float64).ravel() + wd * w
        m = b1 * m + (1 - b1) * grad
        v = b2 * v + (1 - b2) * grad ** 2
        s = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        old = [x.copy() for x in u]
        old[0] = w.copy()
        new_w = w - s * m / (np.sqrt(v) + eps)
        new_w += g[0] / c[0] * (old[1] - old[0])
        for i in range(w.size):
            d = old[n - 1][i] - old[0][i]
            if d * np.sign(old[n - 1][i]) > 0:
                new_w[i] += fb * d
        for k in range(1, n):
            for i in range(w.size):
                inflow = old[k - 1][i] - old[k][i]
                if k == n - 1 and inflow * old[k][i] < 0:
                    inflow *= 1 - np.tanh(meta * old[k][i]) ** 2
                u[k][i] = old[k][i] + g[k - 1] / c[k] * inflow + g[k] / c[k] * (
                    old[k + 1][i] - old[k][i])
        w = new_w
        u[0] = w
    return w, u[1:n]


@pytest.mark.parametrize("n, meta, wd", [(4, 1.3, 0.0), (4, 0.0, 1e-3), (2, 2.0, 0.0),
                                         (1, 1.0, 0.0)])
def test_beaker_adam_follows_its_equations(n, meta, wd):
    rng = np.random.default_rng(n)
    w0 = rng.normal(0, 0.05, (5, 4)).astype(np.float32)
    grads = [rng.normal(0, 1, (5, 4)).astype(np.float32) for _ in range(6)]
    g, c = [0.3, 0.1, 0.05, 0.02], [1.0, 2.0, 4.0, 8.0]   # strong tubes: the chain moves
    weight = torch.nn.Parameter(torch.from_numpy(w0.copy()))
    opt = BeakerAdam([{"params": [weight], "meta": meta}], lr=0.01, n_bk=n, ratios=g, areas=c,
                     feedback=0.05, weight_decay=wd)
    for grad in grads:
        weight.grad = torch.from_numpy(grad.copy())
        opt.step()
    expected_w, expected_u = numpy_beaker(w0, grads, 0.01, n, g, c, 0.05, meta, wd)
    np.testing.assert_allclose(weight.detach().numpy().ravel(), expected_w, rtol=1e-5, atol=1e-7)
    beakers = opt.state[weight]["beakers"]
    assert beakers.shape[0] == n - 1
    for k, level in enumerate(expected_u):
        np.testing.assert_allclose(beakers[k].numpy().ravel(), level, rtol=1e-5, atol=1e-7)
    if n > 1:   # the vessels did move away from W's start
        assert not torch.allclose(beakers[0], torch.from_numpy(w0))


def test_one_dimensional_parameters_get_plain_adam():
    bias = torch.nn.Parameter(torch.zeros(3))
    plain = torch.nn.Parameter(torch.zeros(3))
    opt = BeakerAdam([bias], lr=0.1)
    ref = torch.optim.Adam([plain], lr=0.1, eps=1e-8)
    for grad in (torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.3, 0.1, -1.0])):
        bias.grad, plain.grad = grad.clone(), grad.clone()
        opt.step()
        ref.step()
    torch.testing.assert_close(bias, plain)
    assert "beakers" not in opt.state[bias]


def test_the_chain_needs_its_tubes_and_areas():
    check_chain(4, [1e-2, 1e-3, 1e-4, 1e-5], [1, 2, 4, 8])   # the published defaults
    with pytest.raises(ConfigError, match="needs 4 --ratios and 4 --areas"):
        check_chain(4, [1e-2], [1, 2, 4, 8])
    with pytest.raises(ConfigError):
        check_chain(0, [1e-2], [1])


def test_beaker_flags_reach_one_optimizer_for_the_whole_sequence():
    from continual_learning.main import build_parser
    from metaplastic.experiments.continual import config_from_args, sequence_settings
    from metaplastic.experiments.sequence import new_optimizer
    from metaplastic.method.models import BNN

    args = build_parser().parse_args(["--hidden-layers", "8", "--beaker", "--meta", "1.3",
                                      "--n-bk", "3", "--ratios", "0.1", "0.01", "0.001",
                                      "--areas", "1", "2", "4", "--fb", "0.01",
                                      "--task-sequence", "pMNIST", "pMNIST"])
    config = config_from_args(args)
    assert (config.beaker, config.n_bk, config.ratios, config.areas, config.fb) == (
        True, 3, [0.1, 0.01, 0.001], [1.0, 2.0, 4.0], 0.01)
    settings = sequence_settings(config, progress=False)
    assert not settings.optimizer_per_task          # created once, as published
    opt = new_optimizer(BNN([784, 8, 10]), settings, 1)
    assert isinstance(opt, BeakerAdam)
    assert opt.param_groups[0]["lr"] == 0.005 and opt.param_groups[0]["meta"] == 1.3
    assert opt.param_groups[0]["n_bk"] == 3 and opt.param_groups[0]["feedback"] == 0.01
    with pytest.raises(ConfigError, match="one of --beaker and --si"):
        config_from_args(build_parser().parse_args(["--beaker", "--si"]))


@pytest.mark.slow
def test_a_beaker_run_resumes_to_the_uninterrupted_csv(tmp_path):
    from conftest import DATA_ROOT, needs_data  # noqa: F401  (skips below without MNIST)

    if not (DATA_ROOT / "MNIST").is_dir():
        pytest.skip("MNIST not prepared")
    from continual_learning.main import build_parser, run
    from metaplastic.experiments.continual import config_from_args
    from metaplastic.experiments.runner import SimulatedCrash

    def config(out):
        return config_from_args(build_parser().parse_args([
            "--hidden-layers", "16", "--epochs-per-task", "1", "--task-sequence", "pMNIST",
            "pMNIST", "--beaker", "--meta", "1.3", "--impl", "reference", "--out-dir", str(out),
            "--data-root", str(DATA_ROOT)]))

    run(config(tmp_path / "whole"), progress=False)
    with pytest.raises(SimulatedCrash):
        run(config(tmp_path / "cut"), progress=False, stop_after_epochs=1)
    run(config(tmp_path / "cut"), resume=True, progress=False)
    assert ((tmp_path / "cut" / "metrics.csv").read_text()
            == (tmp_path / "whole" / "metrics.csv").read_text())
