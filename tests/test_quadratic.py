"""Tests for the quadratic binary task (Fig. 5a, b)."""

import json
import os
import sys

import numpy as np
import pytest
import torch

from quadratic_binary_task import quadratic as qb

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NB_DIR = os.path.join(REPO_ROOT, "quadratic_binary_task")
NB_PATH = os.path.join(NB_DIR, "quadratic_binary_task.ipynb")


# --------------------------------------------------------------------------- randomness
def test_generator_reproduces_torch_manual_seed():
    """A generator seeded with s draws what torch.manual_seed(s) + the default generator draws,
    and leaves the global generator alone."""
    with torch.random.fork_rng():
        torch.manual_seed(11)
        expected = (torch.randn(2), torch.rand(2), torch.randn(3, 3))
        state = torch.get_rng_state()
        g = qb.as_generator(11)
        got = (torch.randn(2, generator=g), torch.rand(2, generator=g), torch.randn(3, 3, generator=g))
        assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip(expected, got):
        assert torch.equal(a, b)
    assert qb.as_generator(g) is g


# --------------------------------------------------------------------------- matrices
@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_subgroup_orthogonal_is_orthogonal(n):
    R = qb.subgroup_orthogonal(n, 3)
    assert R.shape == (n, n)
    np.testing.assert_allclose(R.T @ R, np.eye(n), atol=1e-5)   # float32, as the notebook
    np.testing.assert_array_equal(R, qb.subgroup_orthogonal(n, qb.as_generator(3)))


def test_subgroup_orthogonal_matches_the_explicit_reflections():
    """The rank-one update is the notebook's product (I - 2 x x^T) diag(1, R), written out
    here with NumPy in float64 from the same draws."""
    import math
    n = 6
    g = torch.Generator().manual_seed(5)
    angle = 2 * math.pi * torch.rand(1, generator=g).item()
    b = 1 if torch.rand(1, generator=g).item() > 0.5 else -1
    R = np.array([[math.cos(angle), math.sin(angle)],
                  [-b * math.sin(angle), b * math.cos(angle)]])
    for k in range(3, n + 1):
        v = torch.randn(k, generator=g).double().numpy()
        v /= np.linalg.norm(v)
        e1 = np.eye(k)[0]
        x = (e1 - v) / np.linalg.norm(e1 - v)
        A = np.eye(k)
        A[1:, 1:] = R
        R = (np.eye(k) - 2 * np.outer(x, x)) @ A
    np.testing.assert_allclose(qb.subgroup_orthogonal(n, 5), R, atol=1e-6)


def test_subgroup_orthogonal_first_entry_is_symmetric_in_distribution():
    # Haar measure: E[R_00] = 0
    g = qb.as_generator(0)
    vals = np.array([qb.subgroup_orthogonal(3, g)[0, 0] for _ in range(4000)])
    assert abs(vals.mean()) < 0.05


@pytest.mark.parametrize("n", [2, 10, 500])
def test_hessian_spd_with_eigenvalues_in_range(n):
    H, eig = qb.positive_definite_hessian(n, n)
    assert H.shape == (n, n)
    np.testing.assert_array_equal(H, H.T)
    assert eig.min() >= 20 - 9.5 and eig.max() <= 20 + 9.5
    ev = np.linalg.eigvalsh(H)
    assert ev.min() > 0
    # H is built in float32, as in the notebook: its spectrum is D's to float32 rounding
    np.testing.assert_allclose(np.sort(ev), np.sort(eig), rtol=1e-4)


def test_hessian_rejects_non_positive_spectrum():
    with pytest.raises(ValueError):
        qb.positive_definite_hessian(3, 0, center=1.0, spread=2.0)


def test_householder_hessian():
    u = np.array([0.3, -1.2])
    A = qb.householder(u)
    np.testing.assert_allclose(A, A.T)
    np.testing.assert_allclose(A @ A, np.eye(2), atol=1e-15)
    np.testing.assert_allclose(A @ u, -u)                       # reflects u
    H, eig, u11 = qb.householder_hessian(2, 11)
    assert np.all((eig > 0) & (eig < 5))
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(H)), np.sort(eig), rtol=1e-6)
    np.testing.assert_allclose(H @ qb.householder(u11)[:, 0], eig[0] * qb.householder(u11)[:, 0],
                               atol=1e-6)


def test_fig5a_hessian_is_the_notebooks():
    """The published notebook prints H = [[2.4047, 0.2158], [0.2158, 0.7733]] and the
    eigenvalues 0.7452, 2.4328 after torch.manual_seed(11): eigenvalues drawn before u."""
    H, eig, _ = qb.householder_hessian(2, 11)
    np.testing.assert_allclose(H, [[2.4047, 0.2158], [0.2158, 0.7733]], atol=5e-5)
    np.testing.assert_allclose(np.sort(eig), [0.7452, 2.4328], atol=5e-5)
    assert np.array_equal(qb.run_2d()["H"], H)


# --------------------------------------------------------------------------- loss and step
def test_loss_and_gradient_hand_example():
    H = np.array([[2.0, 1.0], [1.0, 3.0]])
    w_star = np.array([0.5, -2.0])
    w = np.array([1.0, -1.0])
    # d = (0.5, 1): L = 1/2 (2*0.25 + 2*1*0.5 + 3*1) = 2.25 ; g = (2, 3.5)
    assert qb.loss(w, w_star, H) == pytest.approx(2.25)
    np.testing.assert_allclose(qb.gradient(w, w_star, H), [2.0, 3.5])
    assert qb.loss(w_star, w_star, H) == 0.0


def test_binarized_step_hand_example():
    H = np.array([[2.0, 1.0], [1.0, 3.0]])
    w_star = np.array([0.5, -2.0])
    w_h = np.array([0.3, -0.1])
    # sign(W_h) = (1, -1); H (b - W*) = H (0.5, 1) = (2, 3.5)
    # W_h - 0.1 * (2, 3.5) = (0.1, -0.45)
    np.testing.assert_allclose(qb.binarized_step(w_h, w_star, H, 0.1), [0.1, -0.45])
    # sign(0) = +1: b = (1, 1), b - W* = (0.5, 3), H (0.5, 3) = (4, 9.5)
    np.testing.assert_allclose(qb.binarized_step(np.zeros(2), w_star, H, 0.1), [-0.4, -0.95])


def test_binarize_maps_to_plus_minus_one():
    b = qb.binarize(np.array([-2.0, -0.0, 0.0, 1e-12, 3.0]))
    np.testing.assert_array_equal(b, [-1.0, 1.0, 1.0, 1.0, 1.0])


def test_train_trajectory_matches_repeated_steps():
    rng = np.random.default_rng(5)
    H, _ = qb.positive_definite_hessian(6, 5)
    w_star = rng.uniform(-4, 4, 6)
    w0 = rng.normal(0, 0.01, 6)
    traj = qb.train(w0, w_star, H, 0.01, 25)
    assert traj.shape == (26, 6)
    np.testing.assert_array_equal(traj[0], w0)
    w = w0.copy()
    for t in range(25):
        w = qb.binarized_step(w, w_star, H, 0.01)
        np.testing.assert_allclose(traj[t + 1], w, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------- flip cost
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flip_cost_closed_form_matches_direct(seed):
    rng = np.random.default_rng(seed)
    n = 12
    H, _ = qb.positive_definite_hessian(n, seed)
    w_star = rng.uniform(-4, 4, n)
    b = qb.binarize(rng.standard_normal(n))
    fast = qb.flip_costs(b, w_star, H)
    base = qb.loss(b, w_star, H)
    for i in range(n):
        bf = b.copy()
        bf[i] = -bf[i]
        assert fast[i] == pytest.approx(qb.loss(bf, w_star, H) - base, rel=1e-10, abs=1e-9)
    np.testing.assert_allclose(fast, qb.flip_costs_direct(b, w_star, H), rtol=1e-10, atol=1e-9)


def test_flip_cost_hand_example():
    H = np.array([[2.0, 1.0], [1.0, 3.0]])
    w_star = np.array([0.5, -2.0])
    b = np.array([1.0, -1.0])
    # L(b) = 2.25 ; L(-1,-1) = 1/2 (-1.5,1) H (-1.5,1) = 1/2 (4.5-3+3) = 2.25 (cost 0)
    # L(1,1) = 1/2 (0.5,3) H (0.5,3) = 1/2 (0.5+3+27) = 15.25 (cost 13)
    # closed form with g = (2, 3.5): -2*1*2 + 2*2 = 0 ; -2*(-1)*3.5 + 2*3 = 13
    np.testing.assert_allclose(qb.flip_costs(b, w_star, H), [0.0, 13.0], atol=1e-12)


# --------------------------------------------------------------------------- binning
def test_bin_by_magnitude_open_bins_mean_x_unbiased_std():
    """Toy example with max|W_h| = 15, so that x * 15 = |W_h| and k/15 edges are exact."""
    w = np.array([0.0, 0.5, 1.0, 1.2, -1.4, -7.3, 7.6, -7.9, 15.0, -14.5])
    v = np.array([100.0, 1.0, 200.0, 2.0, 4.0, 3.0, 6.0, 9.0, 300.0, 5.0])
    x, mean, std, count = qb.bin_by_magnitude(w, v, n_bins=15)
    # open bins: x = 0, the edge x = 1/15 and the maximum x = 1 fall in no bin (values 100,
    # 200, 300 unused); bins 0 {0.5}, 1 {1.2, 1.4}, 7 {7.3, 7.6, 7.9}, 14 {14.5}
    np.testing.assert_array_equal(count, [1, 2, 3, 1])
    np.testing.assert_allclose(x, np.array([0.5, 1.3, 7.6, 14.5]) / 15, rtol=1e-12)
    np.testing.assert_allclose(mean, [1.0, 3.0, 6.0, 5.0])
    # unbiased: sqrt(sum (v - mean)^2 / (n - 1)); undefined (NaN) for a single weight
    assert np.isnan(std[0]) and np.isnan(std[3])
    np.testing.assert_allclose(std[1:3], [np.sqrt(2.0 / 1), np.sqrt(18.0 / 2)])
    # invariant to the overall scale of W_h
    x2, m2, s2, k2 = qb.bin_by_magnitude(-2.0 * w, v, n_bins=15)
    np.testing.assert_allclose(x2, x)
    np.testing.assert_allclose(m2, mean)
    np.testing.assert_array_equal(k2, count)


def test_bin_by_magnitude_fifteen_bins_when_all_filled():
    centres = (np.arange(15) + 0.5) / 15.0
    w = np.concatenate([centres, centres + 0.01, [1.0]])
    v = np.concatenate([np.arange(15.0), np.arange(15.0) + 2.0, [1000.0]])
    x, mean, std, count = qb.bin_by_magnitude(w, v)
    assert len(x) == 15
    np.testing.assert_array_equal(count, np.full(15, 2))          # the maximum is in no bin
    np.testing.assert_allclose(x, centres + 0.005)
    np.testing.assert_allclose(mean, np.arange(15) + 1.0)
    np.testing.assert_allclose(std, np.full(15, np.sqrt(2.0)))     # values k and k + 2


def test_bin_by_magnitude_skips_empty_bins():
    w = np.array([0.01, 0.02, 0.5, 1.0])
    x, mean, std, count = qb.bin_by_magnitude(w, np.array([1.0, 2.0, 3.0, 4.0]), n_bins=15)
    assert len(x) == 2
    np.testing.assert_array_equal(count, [2, 1])
    np.testing.assert_allclose(mean, [1.5, 3.0])


# --------------------------------------------------------------------------- 2-d run (Fig. 5a)
def _hand_fig5a(steps: int) -> tuple:
    """Fig. 5(a) by hand: torch.manual_seed(11), 5 U(0, 1) then u ~ N(0, I) (the notebook's
    order), H = A (D A) in NumPy float32 like the notebook's torch float32; then the binarized
    steps in float64 from our H (the loop is checked, H separately)."""
    with torch.random.fork_rng():
        torch.manual_seed(11)
        lam = (5 * torch.rand(2)).numpy()
        u = torch.randn(2, 1).numpy()
    A = np.eye(2, dtype=np.float32) - np.float32(2 / (u.T @ u).item()) * (u @ u.T)
    H32 = A @ (np.diag(lam) @ A)
    H = qb.run_2d()["H"]
    w_star = np.array([1.5, 0.5])
    w = np.array([0.01, 0.02])
    traj = [w]
    for _ in range(steps):
        w = w - 0.35 * H @ (np.sign(w) - w_star)
        traj.append(w)
    return H32.astype(np.float64), lam.astype(np.float64), np.array(traj)


def test_fig5a_first_steps_against_a_hand_computation():
    r = qb.run_2d()                                   # the published settings
    H, lam, traj = _hand_fig5a(8)
    assert r["trajectory"].shape == (501, 2)
    np.testing.assert_array_equal(r["w_star"], [1.5, 0.5])
    np.testing.assert_array_equal(r["eigenvalues"], lam)
    np.testing.assert_allclose(r["H"], H, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(r["trajectory"][:9], traj, rtol=1e-6, atol=1e-7)
    # step 1 written out: sign(W_h(0)) = (1, 1), so W_h(1) = W_h(0) - 0.35 H (-0.5, 0.5)
    np.testing.assert_allclose(r["trajectory"][1],
                               np.array([0.01, 0.02]) - 0.35 * H @ np.array([-0.5, 0.5]),
                               rtol=1e-6, atol=1e-7)
    # the numbers (float32 draws of torch 2.x's CPU generator)
    np.testing.assert_allclose(r["trajectory"][1:4], [[0.39305, -0.07755], [0.92719, 0.36619],
                                                      [1.31024, 0.26864]], atol=2e-5)
    np.testing.assert_array_equal(r["binary"], np.where(r["trajectory"] >= 0, 1.0, -1.0))


def test_fig5a_whole_trajectory_and_binary_points():
    r = qb.run_2d()
    _, _, traj = _hand_fig5a(500)
    np.testing.assert_allclose(r["trajectory"], traj, rtol=1e-9, atol=1e-12)
    assert np.abs(r["trajectory"]).min() > 0          # sign(0) never arises
    # W*_0 = 1.5 is outside the unit ball: W_h[0] grows without bound, W_h[1] stays near 0
    assert r["trajectory"][-1, 0] > 100 and np.abs(r["trajectory"][:, 1]).max() < 2
    assert set(map(tuple, r["binary"][1:])) <= {(1.0, 1.0), (1.0, -1.0)}
    assert tuple(r["best_binary"]) == (1.0, 1.0)
    np.testing.assert_allclose(r["loss_binary"][0], qb.loss(r["binary"][0], r["w_star"], r["H"]))
    # other settings stay available
    other = qb.run_2d(seed=3, eta=0.1, steps=30, w_star=(1.6, -0.3), w_hidden0=(0.0, 0.1),
                      eigen_scale=2.0)
    assert other["trajectory"].shape == (31, 2) and np.all(other["eigenvalues"] < 2)


# --------------------------------------------------------------------------- 500-d run (Fig. 5b)
@pytest.fixture(scope="module")
def run500():
    return qb.run_500d()                              # the published settings


def test_run_500d_draws_in_the_notebooks_order(run500):
    """torch.manual_seed(1); W_h(0), W*, the eigenvalues, then the subgroup algorithm's draws."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        w0 = (0.01 * torch.randn(500, 1))[:, 0].double().numpy()
        w_star = (4.0 * 2 * (torch.rand(500, 1) - 0.5))[:, 0].double().numpy()
        state = torch.get_rng_state()
        eig = (20 * torch.ones(500) + 19 * (torch.rand(500) - 0.5)).double().numpy()
    np.testing.assert_array_equal(run500["w_hidden0"], w0)
    np.testing.assert_array_equal(run500["w_star"], w_star)
    np.testing.assert_array_equal(run500["eigenvalues"], eig)
    g = torch.Generator()
    g.set_state(state)
    H, _ = qb.positive_definite_hessian(500, g)      # D, then R, from where W* left off
    np.testing.assert_array_equal(run500["H"], H)


def test_run_500d_prints_the_notebooks_first_values(run500):
    """The values the published notebook prints for Fig. 5(b) (seed 1): the first entries of
    theta_star, a corner of H and its last diagonal entry, and H's diagonal mass."""
    np.testing.assert_allclose(run500["w_star"][:8],
                               [-3.1398, -2.6375, -2.1653, 0.4994, -3.9554, -2.9655, 1.8267,
                                -1.3101], atol=5e-5)
    H = run500["H"]   # the printed corners (5 significant digits); float32 sums of 500 reflections
    np.testing.assert_allclose(H[:3, :3], [[19.610, 0.10019, 0.33320],
                                           [0.10019, 19.610, -0.32071],
                                           [0.33320, -0.32071, 20.299]], rtol=5e-5, atol=5e-5)
    np.testing.assert_allclose(H[:3, -3:], [[0.061345, 0.28224, 0.27408],
                                            [-0.16489, -0.081962, -0.26172],
                                            [0.082332, 0.50444, -0.40055]], rtol=5e-5, atol=5e-5)
    np.testing.assert_allclose(H[-3:, -3:], [[20.343, 0.31601, -0.020938],
                                             [0.31601, 20.085, -0.011488],
                                             [-0.020938, -0.011488, 19.924]], rtol=5e-5, atol=5e-5)
    assert np.abs(np.diag(H)).sum() / np.abs(H).sum() == pytest.approx(0.1711707870070035,
                                                                      rel=1e-6)


def test_run_500d_shapes_and_setup(run500):
    r = run500
    n = 500
    assert r["H"].shape == (n, n)
    assert r["trajectory"].shape == (1001, n)
    assert np.all(np.abs(r["w_star"]) <= 4.0)
    assert np.std(r["w_hidden0"]) < 0.02
    np.testing.assert_array_equal(r["w_binary"], qb.binarize(r["w_hidden"]))
    # with the notebook's draws, bin 14 (13/15 < x < 14/15) holds no weight: 14 points
    assert len(r["bin_x"]) == 14
    assert r["bin_count"].sum() == n - 1                 # the largest weight (x = 1) is in no bin
    assert r["normalized_magnitude"].max() == pytest.approx(1.0)
    x, mean, std, count = qb.bin_by_magnitude(r["w_hidden"], r["flip_costs"])
    np.testing.assert_array_equal(mean, r["bin_mean"])
    edges = np.delete(np.arange(16) / 15, 14)
    assert np.all((x > edges[:-1]) & (x < edges[1:]))
    # training reduces the loss at the binary point
    assert r["loss_binary"][-1] < 0.5 * r["loss_binary"][0]
    assert r["loss_binary"][-1] == pytest.approx(qb.loss(r["w_binary"], r["w_star"], r["H"]))


def test_run_500d_flip_cost_rises_with_hidden_magnitude(run500):
    r = run500
    mean = r["bin_mean"]
    # the figure's claim: the cost of a flip rises with the hidden magnitude, bin after bin
    assert np.all(np.diff(mean) > 0)
    assert mean[-1] > 5 * mean[0]
    assert np.corrcoef(np.abs(r["w_hidden"]), r["flip_costs"])[0, 1] > 0.5


def test_run_500d_is_seeded():
    a = qb.run_500d(seed=1, n=40, steps=50)
    b = qb.run_500d(seed=1, n=40, steps=50)
    np.testing.assert_array_equal(a["trajectory"], b["trajectory"])
    np.testing.assert_array_equal(a["flip_costs"], b["flip_costs"])
    c = qb.run_500d(seed=2, n=40, steps=50, eta=0.02, center=10.0, spread=5.0, w_star_bound=2.0,
                    init_std=0.1, n_bins=5)
    assert len(c["bin_x"]) <= 5 and np.all(np.abs(c["w_star"]) <= 2.0)
    assert np.all((c["eigenvalues"] >= 7.5) & (c["eigenvalues"] <= 12.5))


# --------------------------------------------------------------------------- notebook
def _python3_kernelspec_dir(tmp_path):
    """Kernelspec named python3 that launches *this* interpreter (no user-level install)."""
    kdir = tmp_path / "jupyter" / "kernels" / "python3"
    kdir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (test)",
        "language": "python",
    }
    (kdir / "kernel.json").write_text(json.dumps(spec))
    return str(tmp_path / "jupyter")


@pytest.mark.slow
def test_committed_notebook_holds_its_outputs():
    """The notebook is committed executed, figures embedded, so that it reads on a code-hosting
    page; its outputs stay small."""
    nbformat = pytest.importorskip("nbformat")
    assert os.path.getsize(NB_PATH) < 1_000_000
    nb = nbformat.read(NB_PATH, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any("SAVE_FIGURES = False" in c.source for c in code)   # writes no file by default
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    pngs = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 2                                            # Fig. 5(a) and Fig. 5(b)
    text = "".join(o.get("text", "") for o in outputs)
    assert "final W_h" in text and "bins (mean x, count, mean cost, unbiased std)" in text
    # Fig. 5(a)'s legend names every marker
    fig_a = next(c.source for c in code if "run_2d(" in c.source)
    for label in ("unit inf-norm ball", "hidden weights W_h", "start W_h(0)", "end W_h(500)",
                  "binary points sign(W_h)", "best binary point", "optimum W*"):
        assert f'label="{label}' in fig_a or f'label=f"{label}' in fig_a, label


def _stream_text(nb) -> list:
    return ["".join(o.get("text", "") for o in c.get("outputs", []) if o.get("output_type") == "stream")
            for c in nb.cells if c.cell_type == "code"]


@pytest.mark.slow
@pytest.mark.parametrize("cwd", [NB_DIR, REPO_ROOT], ids=["notebook_dir", "repo_root"])
def test_notebook_executes(tmp_path, monkeypatch, cwd):
    """Runs a copy of the notebook in memory: no error, the committed printed numbers are
    reproduced, and neither the committed file nor its folder changes."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    # JUPYTER_PATH has the highest priority, so python3 resolves to sys.executable.
    old = os.environ.get("JUPYTER_PATH")
    jp = _python3_kernelspec_dir(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", jp + (os.pathsep + old if old else ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")

    with open(NB_PATH, "rb") as f:
        committed_bytes = f.read()
    committed = nbformat.reads(committed_bytes.decode("utf-8"), as_version=4)
    nb = nbformat.reads(committed_bytes.decode("utf-8"), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []

    before = set(os.listdir(NB_DIR))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": cwd}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert _stream_text(nb) == _stream_text(committed), "committed outputs are stale: re-execute"
    assert set(os.listdir(NB_DIR)) - before <= {"__pycache__"}
    with open(NB_PATH, "rb") as f:
        assert f.read() == committed_bytes
