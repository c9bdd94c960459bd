"""Quadratic binary task (Laborieux et al. 2021, Fig. 5a, b).

A binarized "network" is reduced to a quadratic loss

    L(W) = 1/2 (W - W*)^T H (W - W*),        H symmetric positive definite,

whose binary weights are b = sign(W_h).  The hidden (real-valued) weights are
trained with the gradient evaluated at the binary point,

    W_h <- W_h - eta * H (sign(W_h) - W*),

so a hidden weight keeps growing in magnitude as long as the loss keeps
"asking" for the same sign.  Fig. 5(b) shows that the cost of flipping a
binary weight grows with the magnitude of its hidden weight, which is the
rationale for metaplasticity (consolidating large hidden weights).

Everything is plain NumPy.  Randomness always comes from a
``np.random.Generator`` (passed in, or built from a ``seed``).

Convention: ``binarize`` maps 0 to +1 so that the binary point always lies
on a vertex of the hypercube {-1, +1}^n.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "as_generator",
    "random_orthogonal",
    "positive_definite_hessian",
    "loss",
    "gradient",
    "binarize",
    "binarized_step",
    "train",
    "flip_costs",
    "flip_costs_direct",
    "bin_by_magnitude",
    "run_500d",
    "run_2d",
]


def as_generator(rng=None) -> np.random.Generator:
    """Return ``rng`` if it is a Generator, else ``np.random.default_rng(rng)`` (int seed or None)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def random_orthogonal(n: int, rng=None) -> np.ndarray:
    """Haar-distributed random orthogonal matrix R (n x n), R^T R = I.

    QR decomposition of a standard Gaussian matrix A = Q R_qr, with the columns of
    Q multiplied by sign(diag(R_qr)) so that the distribution is exactly Haar.
    """
    rng = as_generator(rng)
    a = rng.standard_normal((n, n))
    q, r = np.linalg.qr(a)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    return q * d[np.newaxis, :]


def positive_definite_hessian(n: int, rng=None, center: float = 20.0, spread: float = 19.0):
    """Random SPD matrix H = R^T D R with eigenvalues center + spread * (U(0,1) - 0.5).

    R is Haar orthogonal; with the defaults the eigenvalues lie in [10.5, 29.5].
    ``spread`` must be < 2 * ``center`` for H to be positive definite.
    Returns ``(H, eigenvalues)``; H is exactly symmetrised.
    """
    if spread >= 2 * center:
        raise ValueError("spread must be < 2*center for H to be positive definite")
    rng = as_generator(rng)
    eigenvalues = center + spread * (rng.uniform(0.0, 1.0, size=n) - 0.5)
    r = random_orthogonal(n, rng)
    h = r.T @ (eigenvalues[:, np.newaxis] * r)
    h = 0.5 * (h + h.T)
    return h, eigenvalues


def loss(w, w_star, H) -> float:
    """L(w) = 1/2 (w - w*)^T H (w - w*)."""
    d = np.asarray(w, dtype=float) - np.asarray(w_star, dtype=float)
    return 0.5 * float(d @ (H @ d))


def gradient(w, w_star, H) -> np.ndarray:
    """grad L(w) = H (w - w*)."""
    return H @ (np.asarray(w, dtype=float) - np.asarray(w_star, dtype=float))


def binarize(w_hidden) -> np.ndarray:
    """Binary weights b = sign(W_h) in {-1, +1}, with sign(0) := +1."""
    w_hidden = np.asarray(w_hidden, dtype=float)
    return np.where(w_hidden >= 0, 1.0, -1.0)


def binarized_step(w_hidden, w_star, H, eta: float) -> np.ndarray:
    """One update W_h <- W_h - eta * H (sign(W_h) - W*) (gradient taken at the binary point)."""
    w_hidden = np.asarray(w_hidden, dtype=float)
    return w_hidden - eta * gradient(binarize(w_hidden), w_star, H)


def train(w_hidden0, w_star, H, eta: float, steps: int) -> np.ndarray:
    """Iterate ``binarized_step`` ``steps`` times; returns the trajectory, shape (steps+1, n), row 0 = W_h(0)."""
    w = np.array(w_hidden0, dtype=float)
    traj = np.empty((steps + 1, w.size), dtype=float)
    traj[0] = w
    for t in range(steps):
        w = binarized_step(w, w_star, H, eta)
        traj[t + 1] = w
    return traj


def flip_costs(w_binary, w_star, H) -> np.ndarray:
    """Exact cost of flipping each binary weight: c_i = L(b - 2 b_i e_i) - L(b).

    Closed form: c_i = -2 b_i g_i + 2 b_i^2 H_ii with g = H (b - W*)
    (expand 1/2 (d - 2 b_i e_i)^T H (d - 2 b_i e_i) with d = b - W*).
    """
    b = np.asarray(w_binary, dtype=float)
    g = gradient(b, w_star, H)
    return -2.0 * b * g + 2.0 * b * b * np.diag(H)


def flip_costs_direct(w_binary, w_star, H) -> np.ndarray:
    """Reference O(n^3) version of ``flip_costs``: flip each coordinate and recompute L."""
    b = np.asarray(w_binary, dtype=float)
    base = loss(b, w_star, H)
    out = np.empty(b.size)
    for i in range(b.size):
        bf = b.copy()
        bf[i] = -bf[i]
        out[i] = loss(bf, w_star, H) - base
    return out


def bin_by_magnitude(w_hidden, values, n_bins: int = 15):
    """Average ``values`` in ``n_bins`` equal bins of x = |W_h| / max|W_h| over [0, 1].

    Bin k covers [k/n_bins, (k+1)/n_bins) (the last bin includes x = 1).  Empty bins are
    skipped.  Returns ``(centres, mean, std, count)`` for the non-empty bins, where
    ``centres`` are the bin centres (k + 1/2)/n_bins and ``std`` is the population std.
    """
    w_hidden = np.asarray(w_hidden, dtype=float).ravel()
    values = np.asarray(values, dtype=float).ravel()
    if w_hidden.shape != values.shape:
        raise ValueError("w_hidden and values must have the same number of elements")
    mag = np.abs(w_hidden)
    m = mag.max() if mag.size else 0.0
    x = mag / m if m > 0 else np.zeros_like(mag)
    idx = np.minimum((x * n_bins).astype(int), n_bins - 1)
    centres, means, stds, counts = [], [], [], []
    for k in range(n_bins):
        sel = idx == k
        c = int(sel.sum())
        if c == 0:
            continue
        centres.append((k + 0.5) / n_bins)
        means.append(values[sel].mean())
        stds.append(values[sel].std())
        counts.append(c)
    return (np.array(centres), np.array(means), np.array(stds), np.array(counts, dtype=int))


def run_500d(seed: int = 0, n: int = 500, eta: float = 0.01, steps: int = 1000, n_bins: int = 15):
    """Fig. 5(b) experiment: H = R^T D R (eigenvalues 20 + 19 (U - 0.5)), W* ~ U[-4, 4]^n,
    W_h(0) ~ N(0, 0.01^2), ``steps`` binarized steps of size ``eta``, then flip cost of every
    binary weight, binned by normalised hidden magnitude.

    Returns a dict with keys: H, eigenvalues, w_star, w_hidden0, trajectory, w_hidden
    (final), w_binary, flip_costs, normalized_magnitude, bin_centres, bin_mean, bin_std,
    bin_count, loss_binary (L(sign(W_h)) along the trajectory, length steps+1).
    """
    rng = np.random.default_rng(seed)
    H, eig = positive_definite_hessian(n, rng, center=20.0, spread=19.0)
    w_star = rng.uniform(-4.0, 4.0, size=n)
    w0 = rng.normal(0.0, 0.01, size=n)
    traj = train(w0, w_star, H, eta, steps)
    w_h = traj[-1]
    b = binarize(w_h)
    costs = flip_costs(b, w_star, H)
    centres, mean, std, count = bin_by_magnitude(w_h, costs, n_bins)
    # L at the binary point along the trajectory (vectorised)
    d = np.where(traj >= 0, 1.0, -1.0) - w_star
    loss_binary = 0.5 * np.einsum("ti,ij,tj->t", d, H, d)
    mag = np.abs(w_h)
    return {
        "H": H,
        "eigenvalues": eig,
        "w_star": w_star,
        "w_hidden0": w0,
        "trajectory": traj,
        "w_hidden": w_h,
        "w_binary": b,
        "flip_costs": costs,
        "normalized_magnitude": mag / mag.max(),
        "bin_centres": centres,
        "bin_mean": mean,
        "bin_std": std,
        "bin_count": count,
        "loss_binary": loss_binary,
    }


def run_2d(seed: int = 0, eta: float = 0.1, steps: int = 30, w_star=(1.6, -0.3),
           center: float = 2.0, spread: float = 3.0, w_hidden0=None):
    """Fig. 5(a) experiment in 2-d: random SPD H (eigenvalues center + spread (U - 0.5)),
    W* given (by default outside the unit square in coordinate 0), W_h(0) ~ N(0, 0.01^2)
    unless given; returns dict with H, eigenvalues, w_star, trajectory (steps+1, 2),
    binary (sign of every trajectory point).
    """
    rng = np.random.default_rng(seed)
    H, eig = positive_definite_hessian(2, rng, center=center, spread=spread)
    w_star = np.asarray(w_star, dtype=float)
    if w_hidden0 is None:
        w_hidden0 = rng.normal(0.0, 0.01, size=2)
    traj = train(w_hidden0, w_star, H, eta, steps)
    return {
        "H": H,
        "eigenvalues": eig,
        "w_star": w_star,
        "trajectory": traj,
        "binary": binarize(traj),
    }
