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

Published settings (the defaults of :func:`run_2d` and :func:`run_500d`; every
one of them is also a keyword argument):

- Fig. 5(a), 2-d: ``torch.manual_seed(11)``; H = A diag(5 U(0,1)) A with the
  Householder reflection A = I - 2 u u^T / (u^T u), u ~ N(0, I);
  W* = (1.5, 0.5); W_h(0) = (0.01, 0.02); eta = 0.35; 500 steps.
- Fig. 5(b), 500-d: ``torch.manual_seed(1)``; H = R^T D R with R a random
  orthogonal matrix and eigenvalues 20 + 19 (U(0,1) - 0.5); W* uniform in
  [-4, 4]; W_h(0) ~ N(0, 0.01^2); eta = 0.01; 1000 steps; then the cost
  L(b with b_i flipped) - L(b) of every single binary weight, averaged in 15
  bins of |W_h| / max|W_h| with OPEN intervals k/15 < x < (k+1)/15 (a weight
  exactly on a bin edge, including the largest one, x = 1, is in no bin), the
  bin's x being the mean x of its weights and its std the unbiased (n - 1)
  one.

Randomness.  The random numbers come from torch's CPU generator, as in the
published notebook: a ``torch.Generator`` seeded with ``seed`` yields exactly
the numbers that ``torch.manual_seed(seed)`` followed by draws from the
default generator yields (the global generator is left alone).  Draws and the
construction of H are float32, in the notebook's order and arithmetic; the
training after them is NumPy float64:

- Fig. 5(a) (:func:`householder_hessian`): first the eigenvalues
  5 * torch.rand(2), then u = torch.randn(2, 1).  With seed 11 this gives the
  notebook's printed H = [[2.4047, 0.2158], [0.2158, 0.7733]].
- Fig. 5(b) (:func:`run_500d`): W_h(0) = 0.01 * torch.randn(n, 1), then
  W* = 4 * 2 * (torch.rand(n, 1) - 0.5), then the eigenvalues
  20 + 19 * (torch.rand(n) - 0.5), then R by Shahshahani's subgroup algorithm
  (:func:`subgroup_orthogonal`: an angle and a reflection sign, then one random
  reflection per dimension 3..n).  With seed 1 this gives the notebook's
  printed W* (-3.1398, -2.6375, -2.1653, ...) and H (H_11 = 19.610,
  H_12 = 0.10019, H_33 = 20.299, diagonal mass 0.171171).

Convention: ``binarize`` maps 0 to +1 so that the binary point always lies on
a vertex of the hypercube {-1, +1}^n (torch.sign would give 0 there).  With the
published settings no hidden weight is ever exactly 0, so the two agree.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "FIG5A",
    "FIG5B",
    "as_generator",
    "subgroup_orthogonal",
    "householder",
    "householder_hessian",
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

# The published settings (section 6 of the project's specification).
FIG5A = dict(seed=11, eta=0.35, steps=500, w_star=(1.5, 0.5), w_hidden0=(0.01, 0.02),
             eigen_scale=5.0)
FIG5B = dict(seed=1, n=500, eta=0.01, steps=1000, n_bins=15, center=20.0, spread=19.0,
             w_star_bound=4.0, init_std=0.01)


def as_generator(seed=None) -> torch.Generator:
    """A CPU ``torch.Generator``: ``seed`` itself if it is one, else a new one seeded with
    ``seed`` (an int; None: a non-deterministic seed).

    ``torch.Generator().manual_seed(s)`` produces the same numbers as the default
    generator after ``torch.manual_seed(s)``.
    """
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def householder(u) -> np.ndarray:
    """The Householder reflection A = I - 2 u u^T / (u^T u) (symmetric, orthogonal, A A = I)."""
    u = np.asarray(u, dtype=float)
    return np.eye(u.size) - 2.0 * np.outer(u, u) / float(u @ u)


def householder_hessian(n: int = 2, generator=None, eigen_scale: float = 5.0):
    """Fig. 5(a)'s H = A diag(eigen_scale * U(0,1)) A with A = I - 2 u u^T / (u^T u).

    Draw order, as in the notebook: the eigenvalues eigen_scale * torch.rand(n) first, then
    u = torch.randn(n, 1); H = A (D A) in float32.  Returns ``(H, eigenvalues, u)`` as float64
    arrays of those float32 values; H's eigenvalues are ``eigenvalues`` (A is orthogonal and
    its own inverse) and its eigenvectors the columns of A.
    """
    g = as_generator(generator)
    eigenvalues = eigen_scale * torch.rand(n, generator=g)
    u = torch.randn(n, 1, generator=g)
    a = torch.eye(n) - (2 / torch.mm(u.t(), u).item()) * torch.mm(u, u.t())
    h = torch.mm(a, torch.mm(torch.diag(eigenvalues), a))
    return h.double().numpy(), eigenvalues.double().numpy(), u[:, 0].double().numpy()


def subgroup_orthogonal(n: int, generator=None) -> np.ndarray:
    """A Haar-random orthogonal n x n matrix by Shahshahani's subgroup algorithm, float32.

    Start from the 2 x 2 matrix [[c, s], [-b s, b c]] (c, s = cos, sin of the angle
    2 pi U; b = +1 if a second U > 0.5, else -1), then for k = 3..n: v ~ N(0, I_k) normalized,
    x = (e_1 - v) / |e_1 - v|, R <- (I - 2 x x^T) diag(1, R).  The reflection is applied as
    diag(1, R) - 2 x (x^T diag(1, R)): the notebook's product, without forming I - 2 x x^T.
    """
    g = as_generator(generator)
    angle = 2 * math.pi * torch.rand(1, generator=g).item()
    b = 1 if torch.rand(1, generator=g).item() > 0.5 else -1
    c, s = math.cos(angle), math.sin(angle)
    r = torch.tensor([[c, s], [-b * s, b * c]], dtype=torch.float32)
    for k in range(3, n + 1):
        v = torch.randn(k, 1, generator=g)
        v = v / v.pow(2).sum().sqrt()
        e1 = torch.zeros(k, 1)
        e1[0, 0] = 1
        x = (e1 - v) / (e1 - v).pow(2).sum().sqrt()
        a = torch.zeros(k, k)
        a[0, 0] = 1
        a[1:, 1:] = r
        r = a - 2 * torch.mm(x, torch.mm(x.t(), a))
    return r.double().numpy() if n > 2 else r[:n, :n].double().numpy()


def positive_definite_hessian(n: int, generator=None, center: float = 20.0, spread: float = 19.0):
    """Fig. 5(b)'s random SPD matrix H = R^T D R with eigenvalues center + spread * (U(0,1) - 0.5).

    Draw order, as in the notebook: the n uniforms of the eigenvalues first, then R
    (:func:`subgroup_orthogonal`); H = R^T (D R), then (H + H^T) / 2, in float32.  With the
    defaults the eigenvalues lie in [10.5, 29.5]; ``spread`` must be < 2 * ``center`` for H
    to be positive definite.  Returns ``(H, eigenvalues)`` as float64 arrays.
    """
    if spread >= 2 * center:
        raise ValueError("spread must be < 2*center for H to be positive definite")
    g = as_generator(generator)
    eigenvalues = center * torch.ones(n) + spread * (torch.rand(n, generator=g) - 0.5)
    r = torch.from_numpy(subgroup_orthogonal(n, g)).float()
    h = torch.mm(r.t(), torch.mm(torch.diag(eigenvalues), r))
    h = (h + h.t()) / 2
    return h.double().numpy(), eigenvalues.double().numpy()


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
    """Average ``values`` in ``n_bins`` equal bins of x = |W_h| / max|W_h|, as published.

    Bin k holds the weights with k/n_bins < x < (k+1)/n_bins: OPEN intervals, so a weight
    exactly on an edge (x = 0, x = k/n_bins, and the largest weight, x = 1) belongs to no
    bin.  Empty bins are skipped.  Returns ``(x_mean, mean, std, count)`` for the non-empty
    bins: the mean x of the bin's weights, the mean and the unbiased (n - 1) standard
    deviation of their ``values`` (NaN for a bin of one weight), and the number of weights.
    """
    w_hidden = np.asarray(w_hidden, dtype=float).ravel()
    values = np.asarray(values, dtype=float).ravel()
    if w_hidden.shape != values.shape:
        raise ValueError("w_hidden and values must have the same number of elements")
    mag = np.abs(w_hidden)
    m = mag.max() if mag.size else 0.0
    x = mag / m if m > 0 else np.zeros_like(mag)
    x_mean, means, stds, counts = [], [], [], []
    for k in range(n_bins):
        sel = (x > k / n_bins) & (x < (k + 1) / n_bins)
        c = int(sel.sum())
        if c == 0:
            continue
        x_mean.append(x[sel].mean())
        means.append(values[sel].mean())
        stds.append(values[sel].std(ddof=1) if c > 1 else np.nan)
        counts.append(c)
    return (np.array(x_mean), np.array(means), np.array(stds), np.array(counts, dtype=int))


def run_500d(seed: int = FIG5B["seed"], n: int = FIG5B["n"], eta: float = FIG5B["eta"],
             steps: int = FIG5B["steps"], n_bins: int = FIG5B["n_bins"],
             center: float = FIG5B["center"], spread: float = FIG5B["spread"],
             w_star_bound: float = FIG5B["w_star_bound"], init_std: float = FIG5B["init_std"]):
    """Fig. 5(b) experiment (defaults: the published settings, see the module docstring).

    Random draws from a generator seeded with ``seed`` (as ``torch.manual_seed(seed)``), in
    the notebook's order: W_h(0) = init_std * torch.randn(n, 1), W* = w_star_bound * 2 *
    (torch.rand(n, 1) - 0.5), then H (:func:`positive_definite_hessian`).  Then
    ``steps`` binarized steps of size ``eta``, the exact flip cost of every binary weight,
    and its average in ``n_bins`` open bins of |W_h| / max|W_h| (:func:`bin_by_magnitude`).

    Returns a dict with keys: H, eigenvalues, w_star, w_hidden0, trajectory, w_hidden
    (final), w_binary, flip_costs, normalized_magnitude, bin_x (mean normalized magnitude
    of each non-empty bin), bin_mean, bin_std (unbiased), bin_count, loss_binary
    (L(sign(W_h)) along the trajectory, length steps+1).
    """
    g = as_generator(seed)
    w0 = (init_std * torch.randn(n, 1, generator=g))[:, 0].double().numpy()
    w_star = (w_star_bound * 2 * (torch.rand(n, 1, generator=g) - 0.5))[:, 0].double().numpy()
    H, eig = positive_definite_hessian(n, g, center=center, spread=spread)
    traj = train(w0, w_star, H, eta, steps)
    w_h = traj[-1]
    b = binarize(w_h)
    costs = flip_costs(b, w_star, H)
    bin_x, mean, std, count = bin_by_magnitude(w_h, costs, n_bins)
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
        "bin_x": bin_x,
        "bin_mean": mean,
        "bin_std": std,
        "bin_count": count,
        "loss_binary": loss_binary,
    }


def run_2d(seed: int = FIG5A["seed"], eta: float = FIG5A["eta"], steps: int = FIG5A["steps"],
           w_star=FIG5A["w_star"], w_hidden0=FIG5A["w_hidden0"],
           eigen_scale: float = FIG5A["eigen_scale"]):
    """Fig. 5(a) experiment in 2-d (defaults: the published settings, see the module docstring).

    H = A diag(eigen_scale * U(0,1)) A with the Householder reflection A = I - 2 u u^T / (u^T u),
    u ~ N(0, I), drawn in the notebook's order (the eigenvalues, then u) from a generator seeded with
    ``seed`` (as ``torch.manual_seed(seed)``); then ``steps`` binarized steps of size ``eta``
    from ``w_hidden0``.

    Returns a dict with H, eigenvalues, u, w_star, trajectory (steps+1, 2), binary (sign of
    every trajectory point), loss_binary (L(sign(W_h)) along the trajectory) and
    best_binary (the vertex of {-1, 1}^2 with the lowest loss).
    """
    g = as_generator(seed)
    H, eig, u = householder_hessian(2, g, eigen_scale=eigen_scale)
    w_star = np.asarray(w_star, dtype=float)
    traj = train(np.asarray(w_hidden0, dtype=float), w_star, H, eta, steps)
    binary = binarize(traj)
    vertices = np.array([[s0, s1] for s0 in (-1.0, 1.0) for s1 in (-1.0, 1.0)])
    vertex_loss = [loss(v, w_star, H) for v in vertices]
    return {
        "H": H,
        "eigenvalues": eig,
        "u": u,
        "w_star": w_star,
        "trajectory": traj,
        "binary": binary,
        "loss_binary": np.array([loss(b, w_star, H) for b in binary]),
        "best_binary": vertices[int(np.argmin(vertex_loss))],
    }
