"""Sign-switch analysis (Fig. 5c-e): how much the training loss rises when binary weights of a
given hidden magnitude change sign.

For one layer, |W_h| / max|W_h| is cut into ``n_bins`` equal bins; in every bin holding at least
``sample`` weights, ``sample`` of them chosen at random have their sign flipped (W_h -> -W_h, so
sign(W_h) flips), the mean per-example training loss is measured, the weights are restored; the
increase over the unperturbed loss, divided by ``sample``, is averaged over ``runs`` draws.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from metaplastic.models import MLP, layer_weight
from metaplastic.norms import batch_statistics_groups

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
        magnitude = (flat.abs() / flat.abs().max()).cpu()
        bins = torch.clamp((magnitude * n_bins).long(), max=n_bins - 1)
        for b in range(n_bins):
            members = torch.nonzero(bins == b).flatten()
            if len(members) < sample:
                continue
            increases = []
            for _ in range(runs):
                chosen = members[torch.randperm(len(members), generator=generator)[:sample]]
                chosen = chosen.to(flat.device)
                flat[chosen] = -flat[chosen]
                increases.append((_mean_loss(model, layer_index, inputs, y, batch_size) - base)
                                 / sample)
                flat[chosen] = -flat[chosen]
            inc = torch.tensor(increases, dtype=torch.float64)
            results.append(BinResult(layer_index + 1, b, float(magnitude[members].mean()),
                                     float(inc.mean()), float(inc.std(correction=0)),
                                     len(members), sample, runs))
            if progress is not None:
                progress(f"sign switch: layer {layer_index + 1} bin {b + 1}/{n_bins} "
                         f"increase {inc.mean():.3e}")
    model.train(was_training)
    return results
