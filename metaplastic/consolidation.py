"""Consolidation baselines: EWC, random consolidation and Synaptic Intelligence (SPEC section 5).

Fisher estimator. The diagonal empirical Fisher with respect to the binary weights,
F = (1/d) sum_n (dl_n/dW_b)^2 over the first ``samples`` training samples with their true labels
(d = n - 1 as in the published script, or n). The published script took one sample at a time,
which batch-statistics BatchNorm refuses on current PyTorch. Here the normalization statistics
(mean and biased variance) of the whole ``samples`` batch are computed once and frozen, so every
sample's loss depends on that sample alone; then for a linear layer y = x W^T the per-sample
gradient is the outer product g_n x_n^T, and sum_n (g_n x_n^T)^2 = (G*G)^T (X*X) exactly, one
matrix product per layer instead of ``samples`` backward passes.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from metaplastic.errors import ConfigError
from metaplastic.layers import BINARIZED_TYPES, BinarizedLinear
from metaplastic.models import effective_weight, layer_weight, weight_layers
from metaplastic.norms import frozen_norm_forward

FISHER_DIVISORS = ("published", "exact")


def _batch_stat_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and not m.track_running_stats]


@contextlib.contextmanager
def frozen_batch_statistics(model: nn.Module, x: torch.Tensor) -> Iterator[None]:
    """Inside the block, batch-statistics norms use the statistics they see on ``x`` (frozen)."""
    norms = _batch_stat_norms(model)
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module, inputs):
        (inp,) = inputs
        dims = [0] + list(range(2, inp.dim()))
        var, mean = torch.var_mean(inp.detach(), dim=dims, correction=0)
        stats[module] = (mean, var)

    handles = [m.register_forward_pre_hook(record) for m in norms]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()

    def replace(module, inputs, output):
        mean, var = stats[module]
        return frozen_norm_forward(module, inputs[0], mean, var)

    handles = [m.register_forward_hook(replace) for m in norms]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def empirical_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     divisor: str = "published", chunk: int = 1000) -> list[torch.Tensor]:
    """Diagonal empirical Fisher of each weight layer w.r.t. its (binary) weight, per sample.

    Returns one tensor per layer of :func:`weight_layers`, shaped like the weight.
    """
    if divisor not in FISHER_DIVISORS:
        raise ValueError(f"divisor must be one of {FISHER_DIVISORS}")
    layers = weight_layers(model)
    for layer in layers:
        if not isinstance(layer, (BinarizedLinear, nn.Linear)):
            raise ConfigError("EWC's Fisher is implemented for linear layers (the MLPs); "
                              f"got {type(layer).__name__}")
    was_training = model.training
    model.eval()
    fishers = [torch.zeros_like(layer_weight(layer)) for layer in layers]
    inputs: dict[int, torch.Tensor] = {}
    out_grads: dict[int, torch.Tensor] = {}

    def keep_input(i):
        def hook(module, args, output):
            inp = args[0]
            if isinstance(module, BINARIZED_TYPES) and module.binarize_input:
                inp = torch.sign(inp)
            inputs[i] = inp.detach()
            output.register_hook(lambda g: out_grads.__setitem__(i, g.detach()))
        return hook

    with frozen_batch_statistics(model, x):
        handles = [layer.register_forward_hook(keep_input(i)) for i, layer in enumerate(layers)]
        try:
            for start in range(0, len(x), chunk):
                xb, yb = x[start:start + chunk], y[start:start + chunk]
                # reduction="sum": each sample's gradient is that of its own loss l_n
                loss = F.cross_entropy(model(xb), yb, reduction="sum")
                model.zero_grad(set_to_none=True)
                loss.backward()
                for i, fisher in enumerate(fishers):
                    fisher += out_grads[i].square().T @ inputs[i].square()
        finally:
            for h in handles:
                h.remove()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    d = len(x) - 1 if divisor == "published" else len(x)
    return [f / d for f in fishers]


def shuffled_like(tensors: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Random consolidation: each tensor's values permuted across its positions."""
    out = []
    for t in tensors:
        perm = torch.randperm(t.numel(), generator=generator).to(t.device)
        out.append(t.reshape(-1)[perm].reshape(t.shape))
    return out


class EWC:
    """Elastic weight consolidation on the binary weights.

    Penalty (lambda / 2) sum_s sum F_s (W_b - W_b,s*)^2, kept as the equivalent
    (lambda / 2) sum (A W_b^2 - 2 B W_b) + const with A = sum_s F_s, B = sum_s F_s W_b,s*,
    so its cost does not grow with the number of tasks.
    """

    def __init__(self, lam: float, samples: int = 5000, divisor: str = "published",
                 random_consolidation: bool = False, seed: int = 0):
        self.lam, self.samples, self.divisor = lam, samples, divisor
        self.random_consolidation = random_consolidation
        self.generator = torch.Generator().manual_seed(seed)
        self.fisher_sum: list[torch.Tensor] | None = None
        self.fisher_anchor_sum: list[torch.Tensor] | None = None
        self.constant = 0.0

    def consolidate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """End of a task: Fisher on its first ``samples`` training samples, anchor W_b*."""
        fishers = empirical_fisher(model, x[: self.samples], y[: self.samples], self.divisor)
        if self.random_consolidation:
            fishers = shuffled_like(fishers, self.generator)
        with torch.no_grad():
            anchors = [effective_weight(layer).detach().clone() for layer in weight_layers(model)]
        if self.fisher_sum is None:
            self.fisher_sum = [torch.zeros_like(f) for f in fishers]
            self.fisher_anchor_sum = [torch.zeros_like(f) for f in fishers]
        for a, b, f, w in zip(self.fisher_sum, self.fisher_anchor_sum, fishers, anchors):
            a += f
            b += f * w
            self.constant += float((f * w * w).sum())
        return fishers

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.fisher_sum is None:
            return torch.zeros(())
        total = 0.0
        for layer, a, b in zip(weight_layers(model), self.fisher_sum, self.fisher_anchor_sum):
            w = effective_weight(layer)
            total = total + (a * w * w).sum() - 2.0 * (b * w).sum()
        return 0.5 * self.lam * (total + self.constant)

    def state_dict(self) -> dict:
        return {"fisher_sum": self.fisher_sum, "fisher_anchor_sum": self.fisher_anchor_sum,
                "constant": self.constant, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.fisher_sum, self.fisher_anchor_sum = state["fisher_sum"], state["fisher_anchor_sum"]
        self.constant = state["constant"]
        self.generator.set_state(state["generator"])


class SynapticIntelligence:
    """Synaptic Intelligence: omega accumulates -grad * dW along the path of each task;
    Omega += omega / (total change^2 + damping); penalty lambda sum Omega (W - W_prev)^2.

    W is the hidden weight, or with ``binary_path`` the binary weight sign(W_h).
    """

    def __init__(self, lam: float, damping: float = 0.1, binary_path: bool = False):
        self.lam, self.damping, self.binary_path = lam, damping, binary_path
        self.importance: list[torch.Tensor] | None = None
        self.anchor: list[torch.Tensor] | None = None
        self.path_integral: list[torch.Tensor] = []
        self.task_start: list[torch.Tensor] = []
        self.last: list[torch.Tensor] = []
        self.grads: list[torch.Tensor] = []

    def _weights(self, model: nn.Module, differentiable: bool = False) -> list[torch.Tensor]:
        layers = weight_layers(model)
        if self.binary_path:
            return [effective_weight(l) if differentiable else torch.sign(layer_weight(l).detach())
                    for l in layers]
        return [layer_weight(l) if differentiable else layer_weight(l).detach().clone()
                for l in layers]

    def begin_task(self, model: nn.Module) -> None:
        self.task_start = self._weights(model)
        self.last = [w.clone() for w in self.task_start]
        self.path_integral = [torch.zeros_like(w) for w in self.task_start]

    def after_step(self, model: nn.Module) -> None:
        """Accumulate -g * (W_new - W_old), g the gradient this optimizer step used.

        g is the gradient of the whole objective (task loss plus penalties), which the
        straight-through estimator also makes the gradient w.r.t. the binary weight.
        """
        grads = [layer_weight(l).grad for l in weight_layers(model)]
        current = self._weights(model)
        for omega, g, new, old in zip(self.path_integral, grads, current, self.last):
            omega -= g * (new - old)
        self.last = current

    def end_task(self, model: nn.Module) -> None:
        end = self._weights(model)
        if self.importance is None:
            self.importance = [torch.zeros_like(w) for w in end]
        for imp, omega, w_end, w_start in zip(self.importance, self.path_integral, end,
                                              self.task_start):
            imp += omega / ((w_end - w_start) ** 2 + self.damping)
        self.anchor = [w.clone() for w in end]

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.importance is None:
            return torch.zeros(())
        total = 0.0
        for imp, anchor, w in zip(self.importance, self.anchor, self._weights(model, True)):
            total = total + (imp * (w - anchor) ** 2).sum()
        return self.lam * total

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in
                ("importance", "anchor", "path_integral", "task_start", "last")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
