"""Normalization layers and the per-task normalization-state protocol.

'bn': batch normalization; with ``track_running_stats=False`` evaluation also uses the statistics
of the evaluated batch, so evaluation results depend on the evaluation batch size. To evaluate
many batches in one call, :func:`batch_statistics_groups` makes every such layer normalize each
consecutive group of ``group_size`` samples with that group's own statistics: the same numbers
as separate batches, with larger matrix products.
'in': per-sample normalization over the feature vector, y = (x - mean(x)) / sqrt(var(x) + eps).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class _GroupedStatisticsMixin:
    """Batch norm that can normalize consecutive groups of a batch separately."""

    group_size: int | None = None

    def _grouped_forward(self, x: torch.Tensor) -> torch.Tensor | None:
        g = self.group_size
        if g is None or self.training or self.track_running_stats or x.shape[0] <= g:
            return None
        return self._normalize_groups(x, g)  # a last, smaller group keeps its own statistics

    def _normalize_groups(self, x: torch.Tensor, g: int) -> torch.Tensor:
        # F.batch_norm on each group: the very computation a separate batch would get.
        return torch.cat([F.batch_norm(part, None, None, self.weight, self.bias, True, 0.0, self.eps)
                          for part in torch.split(x, g)])


class BatchNorm1d(_GroupedStatisticsMixin, nn.BatchNorm1d):
    """torch BatchNorm1d plus grouped batch statistics at evaluation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._grouped_forward(x)
        return super().forward(x) if out is None else out


class BatchNorm2d(_GroupedStatisticsMixin, nn.BatchNorm2d):
    """torch BatchNorm2d plus grouped batch statistics at evaluation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._grouped_forward(x)
        return super().forward(x) if out is None else out


class FeatureNorm(nn.Module):
    """'in' norm: each sample's feature vector normalized to zero mean and unit variance."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        var, mean = torch.var_mean(flat, dim=1, keepdim=True, correction=0)
        return ((flat - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)


def init_batchnorm_gamma(model: nn.Module, how: str) -> None:
    """Set every affine BatchNorm's gamma: 'ones' (PyTorch >= 1.2) or 'uniform', U(0, 1) drawn
    from torch's global generator in module order (the reset_parameters of PyTorch < 1.2,
    under which the paper's figures were drawn: :mod:`metaplastic.method.published`)."""
    if how not in ("ones", "uniform"):
        raise ValueError(f"bn_gamma_init must be ones or uniform, got {how!r}")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                if how == "uniform":
                    module.weight.uniform_(0.0, 1.0)
                else:
                    module.weight.fill_(1.0)


def make_norm(kind: str, features: int, affine: bool = True,
              track_running_stats: bool = False) -> nn.Module:
    """'bn' -> BatchNorm1d(features, affine, track_running_stats); 'in' -> FeatureNorm."""
    if kind == "bn":
        return BatchNorm1d(features, affine=affine, track_running_stats=track_running_stats)
    if kind == "in":
        return FeatureNorm()
    raise ValueError(f"unknown norm {kind!r} (bn, in)")


NORM_TYPES = (nn.modules.batchnorm._NormBase, FeatureNorm)


@contextlib.contextmanager
def batch_statistics_groups(model: nn.Module, group_size: int) -> Iterator[None]:
    """Within the block, batch-statistics norms normalize each group of ``group_size`` apart."""
    modules = [m for m in model.modules() if isinstance(m, _GroupedStatisticsMixin)]
    previous = [m.group_size for m in modules]
    for m in modules:
        m.group_size = group_size
    try:
        yield
    finally:
        for m, p in zip(modules, previous):
            m.group_size = p


def norm_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every normalization layer's parameters and buffers (the 'task' state)."""
    state = {}
    for name, module in model.named_modules():
        if isinstance(module, NORM_TYPES):
            for key, value in module.state_dict().items():
                state[f"{name}.{key}"] = value.detach().clone()
    return state


def load_norm_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy a stored normalization state into the model in place."""
    current = dict(model.named_parameters()) | dict(model.named_buffers())
    with torch.no_grad():
        for key, value in state.items():
            current[key].copy_(value)


@contextlib.contextmanager
def using_norm_state(model: nn.Module, state: dict[str, torch.Tensor] | None) -> Iterator[None]:
    """Evaluate with a stored normalization state, then restore the current one."""
    if state is None:
        yield
        return
    saved = norm_state(model)
    load_norm_state(model, state)
    try:
        yield
    finally:
        load_norm_state(model, saved)


def frozen_norm_forward(module: nn.Module, x: torch.Tensor, mean: torch.Tensor,
                        var: torch.Tensor) -> torch.Tensor:
    """Batch norm of ``x`` with given (frozen) statistics instead of the batch's own."""
    return F.batch_norm(x, mean, var, module.weight, module.bias, False, 0.0, module.eps)
