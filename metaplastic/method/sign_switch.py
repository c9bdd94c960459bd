"""Sign-switch analysis (Fig. 5c-e): how much the training loss rises when binary weights of a
given hidden magnitude change sign.

For one layer, |W_h| / max|W_h| is cut into ``n_bins`` equal bins, open intervals as published
(k/n max < |W_h| < (k+1)/n max, so weights on a boundary, the largest one included, belong to
no bin); in every bin holding at least ``sample`` weights, ``sample`` of them chosen at random
have their sign flipped (W_h -> -W_h, so sign(W_h) flips), the mean per-example training loss is
measured, the weights are restored. Per bin: x = the mean |W_h| / max of the flipped weights
(over all runs), and the mean and the unbiased (n - 1) standard deviation over ``runs`` draws
of the loss increase divided by ``sample``. The published analysis uses the training data of
the network's FIRST task.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from metaplastic.method.models import MLP, layer_weight
from metaplastic.method.norms import batch_statistics_groups

PUBLISHED_SAMPLES = (1000, 2000, 100)


@dataclass
class BinResult:
    layer: int
    bin: int
    magnitude_mean: float
    loss_increase_mean: float
    loss_increase_std: float
    n_weights: int
    sample: int
    runs: int


@torch.no_grad()
def _layer_inputs(model: MLP, x: torch.Tensor, layer: int, batch_size: int) -> torch.Tensor:
    """The input of ``layer`` for every sample (layers before it are not perturbed)."""
    if layer == 0:
        return x.reshape(x.shape[0], -1)
    captured = []
    handle = model.layers[layer].register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    try:
        with batch_statistics_groups(model, batch_size):
            model(x)
    finally:
        handle.remove()
    return captured[0]


@torch.no_grad()
def _mean_loss(model: MLP, layer: int, inputs: torch.Tensor, y: torch.Tensor,
               batch_size: int) -> float:
    with batch_statistics_groups(model, batch_size):
        out = model.forward_from(layer, inputs)
    return F.cross_entropy(out, y).item()


def open_bin_members(absolute: torch.Tensor, top: torch.Tensor, b: int, n_bins: int) -> torch.Tensor:
    """Indices of the weights with b/n max < |W_h| < (b+1)/n max (an open interval)."""
    low, high = top * b / n_bins, top * (b + 1) / n_bins
    return torch.nonzero((absolute > low) & (absolute < high)).flatten()


@torch.no_grad()
def sign_switch_analysis(model: MLP, x: torch.Tensor, y: torch.Tensor,
                         samples: Sequence[int] = PUBLISHED_SAMPLES, n_bins: int = 15,
                         runs: int = 100, batch_size: int = 100, seed: int = 0,
                         progress: Callable[[str], None] | None = None) -> list[BinResult]:
    """Run the analysis on every layer of ``model`` (one ``sample`` size per layer)."""
    if len(samples) != len(model.layers):
        raise ValueError(f"need one sample size per layer ({len(model.layers)}), got {len(samples)}")
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    results: list[BinResult] = []
    for layer_index, sample in enumerate(samples):
        weight = layer_weight(model.layers[layer_index])
        inputs = _layer_inputs(model, x, layer_index, batch_size)
        base = _mean_loss(model, layer_index, inputs, y, batch_size)
        flat = weight.view(-1)
        absolute = flat.abs().cpu()
        top = absolute.max()
        for b in range(n_bins):
            members = open_bin_members(absolute, top, b, n_bins)
            if len(members) < sample:
                continue
            increases, flipped_magnitudes = [], []
            for _ in range(runs):
                chosen = members[torch.randperm(len(members), generator=generator)[:sample]]
                flipped_magnitudes.append((absolute[chosen] / top).mean())
                chosen = chosen.to(flat.device)
                flat[chosen] = -flat[chosen]
                increases.append((_mean_loss(model, layer_index, inputs, y, batch_size) - base)
                                 / sample)
                flat[chosen] = -flat[chosen]
            inc = torch.tensor(increases, dtype=torch.float64)
            std = float(inc.std(correction=1)) if runs > 1 else float("nan")
            results.append(BinResult(layer_index + 1, b,
                                     float(torch.stack(flipped_magnitudes).double().mean()),
                                     float(inc.mean()), std, len(members), sample, runs))
            if progress is not None:
                progress(f"sign switch: layer {layer_index + 1} bin {b + 1}/{n_bins} "
                         f"increase {inc.mean():.3e}")
    model.train(was_training)
    return results
