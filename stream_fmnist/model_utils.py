"""Model of stream FMNIST.

BNN 784-h1-...-10 (docs/METHOD.md section 2, 'Stream FMNIST BNN'): BinarizedLinear -> BatchNorm1d
(affine=False, running statistics) -> sign, raw pixels in [0, 1] into the first layer.
Its exact integer evaluation (with --impl fast, or auto where int8 products pay off) is
:class:`metaplastic.fast.evaluator.IntegerEvaluator`.
"""
from __future__ import annotations

from metaplastic.method.models import BNN

IN_SIZE = 784
OUT_SIZE = 10


def build_model(hidden_layers, init: str = "uniform", init_width: float = 0.1) -> BNN:
    """BNN [784, *hidden_layers, 10] with BatchNorm1d(affine=False, track_running_stats=True)."""
    return BNN([IN_SIZE, *hidden_layers, OUT_SIZE], norm="bn", init=init, init_width=init_width,
               norm_affine=False, norm_running_stats=True)
