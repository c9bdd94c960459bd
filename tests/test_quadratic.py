"""Tests for the quadratic binary task (Fig. 5a, b)."""

import json
import os
import sys

import numpy as np
import pytest

from quadratic_binary_task import quadratic as qb

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NB_DIR = os.path.join(REPO_ROOT, "quadratic_binary_task")
NB_PATH = os.path.join(NB_DIR, "quadratic_binary_task.ipynb")


# --------------------------------------------------------------------------- matrices
@pytest.mark.parametrize("n", [2, 7, 50])
def test_random_orthogonal_is_orthogonal(n):
    R = qb.random_orthogonal(n, np.random.default_rng(3))
    assert R.shape == (n, n)
    np.testing.assert_allclose(R.T @ R, np.eye(n), atol=1e-12)
    np.testing.assert_allclose(R @ R.T, np.eye(n), atol=1e-12)


def test_random_orthogonal_seeded_and_sign_corrected():
    a = qb.random_orthogonal(5, np.random.default_rng(11))
    b = qb.random_orthogonal(5, 11)  # int seed accepted too
    np.testing.assert_array_equal(a, b)
    # Haar sign correction: R = Q diag(sign(diag(R_qr))) makes diag of Q^T A positive
    rng = np.random.default_rng(11)
    A = rng.standard_normal((5, 5))
    assert np.all(np.diag(a.T @ A) > 0)


def test_random_orthogonal_first_entry_is_symmetric_in_distribution():
    # Haar measure: E[R_00] = 0 (plain QR without sign correction has a biased diagonal).
    rng = np.random.default_rng(0)
    vals = np.array([qb.random_orthogonal(3, rng)[0, 0] for _ in range(4000)])
    assert abs(vals.mean()) < 0.05


@pytest.mark.parametrize("n", [2, 10, 500])
def test_hessian_spd_with_eigenvalues_in_range(n):
    H, eig = qb.positive_definite_hessian(n, np.random.default_rng(n))
    assert H.shape == (n, n)
    np.testing.assert_array_equal(H, H.T)
    assert eig.min() >= 20 - 9.5 and eig.max() <= 20 + 9.5
    ev = np.linalg.eigvalsh(H)
    assert ev.min() > 0
    assert ev.min() >= 20 - 9.5 - 1e-9 and ev.max() <= 20 + 9.5 + 1e-9
    np.testing.assert_allclose(np.sort(ev), np.sort(eig), rtol=1e-10, atol=1e-9)


def test_hessian_rejects_non_positive_spectrum():
    with pytest.raises(ValueError):
        qb.positive_definite_hessian(3, 0, center=1.0, spread=2.0)


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
    H, _ = qb.positive_definite_hessian(6, rng)
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
    H, _ = qb.positive_definite_hessian(n, rng)
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
def test_bin_by_magnitude_hand_example():
    w = np.array([0.0, 0.05, 0.5, -0.52, 1.0, -0.99])
    v = np.array([1.0, 3.0, 2.0, 4.0, 10.0, 20.0])
    centres, mean, std, count = qb.bin_by_magnitude(w, v, n_bins=15)
    # normalised |w| = (0, .05, .5, .52, 1, .99) -> bins 0, 0, 7, 7, 14 (x=1 in the last bin), 14
    np.testing.assert_allclose(centres, [0.5 / 15, 7.5 / 15, 14.5 / 15])
    np.testing.assert_allclose(mean, [2.0, 3.0, 15.0])
    np.testing.assert_allclose(std, [1.0, 1.0, 5.0])
    np.testing.assert_array_equal(count, [2, 2, 2])
    # invariant to the overall scale of W_h
    c2, m2, s2, k2 = qb.bin_by_magnitude(7.0 * w, v, n_bins=15)
    np.testing.assert_allclose(c2, centres)
    np.testing.assert_allclose(m2, mean)


def test_bin_by_magnitude_fifteen_bins_when_all_filled():
    w = (np.arange(15) + 0.5) / 15.0
    w = np.concatenate([w, [1.0]])
    v = np.arange(16, dtype=float)
    centres, mean, std, count = qb.bin_by_magnitude(w, v)
    assert len(centres) == 15
    np.testing.assert_allclose(centres, (np.arange(15) + 0.5) / 15)
    assert count.sum() == 16 and count[-1] == 2
    np.testing.assert_allclose(mean[:-1], np.arange(14))
    assert mean[-1] == pytest.approx(14.5)


def test_bin_by_magnitude_skips_empty_bins():
    w = np.array([0.01, 0.02, 1.0])
    centres, mean, std, count = qb.bin_by_magnitude(w, np.array([1.0, 2.0, 3.0]), n_bins=15)
    assert len(centres) == 2
    np.testing.assert_array_equal(count, [2, 1])
    assert np.all(count > 0)


# --------------------------------------------------------------------------- 500-d run (Fig. 5b)
@pytest.fixture(scope="module")
def run500():
    return qb.run_500d(seed=0)


def test_run_500d_shapes_and_setup(run500):
    r = run500
    n = 500
    assert r["H"].shape == (n, n)
    assert r["trajectory"].shape == (1001, n)
    assert np.all(np.abs(r["w_star"]) <= 4.0)
    assert np.std(r["w_hidden0"]) < 0.02
    np.testing.assert_array_equal(r["w_binary"], qb.binarize(r["w_hidden"]))
    assert len(r["bin_centres"]) <= 15
    assert r["bin_count"].sum() == n
    assert r["normalized_magnitude"].max() == pytest.approx(1.0)
    # training reduces the loss at the binary point
    assert r["loss_binary"][-1] < 0.5 * r["loss_binary"][0]
    assert r["loss_binary"][-1] == pytest.approx(qb.loss(r["w_binary"], r["w_star"], r["H"]))


def test_run_500d_flip_cost_rises_with_hidden_magnitude(run500):
    r = run500
    mean, count = r["bin_mean"], r["bin_count"]
    assert len(mean) >= 10
    # the figure's claim: high-magnitude bins cost more to flip than low-magnitude ones
    assert mean[-3:].mean() > mean[:3].mean()
    assert mean[-1] > mean[0]
    # and the trend holds over single weights too
    assert np.corrcoef(np.abs(r["w_hidden"]), r["flip_costs"])[0, 1] > 0.5


def test_run_500d_is_seeded():
    a = qb.run_500d(seed=1, n=40, steps=50)
    b = qb.run_500d(seed=1, n=40, steps=50)
    np.testing.assert_array_equal(a["trajectory"], b["trajectory"])
    np.testing.assert_array_equal(a["flip_costs"], b["flip_costs"])


def test_run_2d_example():
    r = qb.run_2d()
    assert r["trajectory"].shape == (31, 2)
    assert np.abs(r["w_star"]).max() > 1.0  # W* outside the unit ball
    assert np.all(np.linalg.eigvalsh(r["H"]) > 0)
    # coordinate 0 (W*_0 > 1) escapes the unit square
    assert r["trajectory"][-1, 0] > 1.0


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
@pytest.mark.parametrize("cwd", [NB_DIR, REPO_ROOT], ids=["notebook_dir", "repo_root"])
def test_notebook_executes(tmp_path, monkeypatch, cwd):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    # JUPYTER_PATH has the highest priority, so python3 resolves to sys.executable.
    old = os.environ.get("JUPYTER_PATH")
    jp = _python3_kernelspec_dir(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", jp + (os.pathsep + old if old else ""))
    monkeypatch.setenv("MPLBACKEND", "Agg")

    nb = nbformat.read(NB_PATH, as_version=4)
    # the committed notebook is saved with outputs cleared
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), "notebook must be committed with outputs cleared"
    # it must not write figures by default
    assert any("SAVE_FIGURES = False" in c.source for c in nb.cells if c.cell_type == "code")

    before = set(os.listdir(NB_DIR))
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": cwd}}
    )
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert set(os.listdir(NB_DIR)) - before <= {"__pycache__"}
