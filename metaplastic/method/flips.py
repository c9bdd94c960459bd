"""Flip statistics, recorded per epoch beside the published columns.

For every weight layer l (its hidden weight W_h, or W for a full-precision network):
- ``flips_l<l>``: the fraction of binary weights sign(W_h) whose sign at the end of the epoch
  differs from their sign at its start;
- ``meta_below_<t>_l<l>``: the fraction of weights whose metaplastic factor
  f_meta = 1 - tanh²(m_l |W_h|) is below t, i.e. |W_h| > artanh(sqrt(1 - t)) / m_l
  (thresholds 0.5 and 0.1; always 0 for m_l = 0, where nothing is consolidated).
Cost: one int8 copy of the signs per layer and a few element-wise passes per epoch.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from metaplastic.method.rule import consolidated_magnitude

THRESHOLDS = (0.5, 0.1)


def flip_columns(n_layers: int) -> tuple[str, ...]:
    """The extra columns for a network of ``n_layers`` weight layers, in their order."""
    return tuple(f"flips_l{k}" for k in range(1, n_layers + 1)) + tuple(
        f"meta_below_{t}_l{k}" for t in THRESHOLDS for k in range(1, n_layers + 1))


class FlipStatistics:
    """Call :meth:`start_epoch` before an epoch's training and :meth:`end_epoch` after it."""

    def __init__(self, model: nn.Module, meta_per_layer: Sequence[float]):
        from metaplastic.method.models import layer_weight, weight_layers

        self.weights = [layer_weight(layer) for layer in weight_layers(model)]
        if len(meta_per_layer) != len(self.weights):
            raise ValueError(f"one m per weight layer ({len(self.weights)}), "
                             f"got {len(meta_per_layer)}")
        self.meta = [float(m) for m in meta_per_layer]
        self.columns = flip_columns(len(self.weights))
        self._start: list[torch.Tensor] = []

    @torch.no_grad()
    def start_epoch(self) -> None:
        self._start = [torch.sign(w).to(torch.int8) for w in self.weights]

    @torch.no_grad()
    def end_epoch(self) -> dict[str, float]:
        if len(self._start) != len(self.weights):
            raise RuntimeError("FlipStatistics.end_epoch without start_epoch")
        row: dict[str, float] = {}
        for k, (w, start) in enumerate(zip(self.weights, self._start), start=1):
            changed = torch.ne(torch.sign(w).to(torch.int8), start).sum().item()
            row[f"flips_l{k}"] = changed / w.numel()
        for t in THRESHOLDS:
            for k, (w, m) in enumerate(zip(self.weights, self.meta), start=1):
                bound = consolidated_magnitude(m, t)
                count = 0 if math.isinf(bound) else torch.gt(w.abs(), bound).sum().item()
                row[f"meta_below_{t}_l{k}"] = count / w.numel()
        self._start = []
        return row
