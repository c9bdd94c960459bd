"""The metaplastic rule, defined once (docs/METHOD.md, "The rule"; the paper's Methods, Eq. 1).

An update u of a hidden weight W that points toward a sign change (sign(W) * u > 0: it shrinks
|W|) is multiplied by

    f_meta(m |W|) = 1 - tanh^2(m |W|),

and every other update by 1. m = 0 gives f = 1 everywhere (no metaplasticity).

f is evaluated as 4a / (1 + a)^2 with a = exp(-2x), the same function in exact arithmetic: it
keeps its relative precision where tanh(x) is within a few float32 steps of 1 (the consolidated
weights, where 1 - tanh^2 cancels), and it vectorizes better in a compiled kernel. The reference
optimizer, the fused one (:mod:`metaplastic.fast.optim`), the Benna-Fusi chain
(:mod:`metaplastic.method.beaker`) and the flip statistics (:mod:`metaplastic.method.flips`, through the
inverse :func:`consolidated_magnitude`) all use these functions.
"""
from __future__ import annotations

import math

import torch


def attenuation(x: torch.Tensor) -> torch.Tensor:
    """f_meta(x) = 1 - tanh^2(x) for x = m |W| >= 0, written 4a / (1 + a)^2 with a = exp(-2x)."""
    a = torch.exp(-2.0 * x)
    return 4.0 * a / ((1.0 + a) * (1.0 + a))


def metaplastic_factor(w: torch.Tensor, update: torch.Tensor, meta) -> torch.Tensor:
    """The factor applied to ``update`` (same shape as ``w``): f_meta(meta |w|) where the
    update would shrink |w| (sign(w) * update > 0), else 1. ``meta`` is a float or a 0-d tensor."""
    return torch.where(torch.sign(w) * update > 0, attenuation(meta * w.abs()), 1.0)


def consolidated_magnitude(meta: float, threshold: float) -> float:
    """The inverse: |W| above which f_meta(meta |W|) < ``threshold`` (in (0, 1)), i.e.
    artanh(sqrt(1 - threshold)) / meta; inf for meta = 0 (nothing is consolidated)."""
    if meta <= 0:
        return math.inf
    return math.atanh(math.sqrt(1.0 - threshold)) / meta
