"""Consolidation baselines: EWC, random consolidation and Synaptic Intelligence (SPEC section 5).

Fisher estimator. The diagonal empirical Fisher with respect to the binary weights,
F = (1/d) sum_n (dl_n/dW_b)^2 over the first n = min(``samples``, set size) training samples with
their true labels. As published, d is the loop index at exit of the published script: d = n
(the mean) when the task has at least ``samples`` training samples, d = n - 1 when it has fewer
(``fisher_mean=True``, flag ``--ewc-fisher-mean``: always d = n). For a DNN, whose BatchNorm keeps
running statistics, the Fisher is taken in evaluation mode with those running statistics.
The published script took one sample at a time,
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
                     chunk: int = 1000, divisor: int | None = None) -> list[torch.Tensor]:
    """Diagonal empirical Fisher of each weight layer w.r.t. its (binary) weight:
    F = sum over the samples of (dl_n/dW_b)^2 / divisor (default: the number of samples, the
    mean), one tensor per layer of :func:`weight_layers`.
    """
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
    return [f / (len(x) if divisor is None else divisor) for f in fishers]


def fisher_divisor(available: int, requested: int, fisher_mean: bool = False) -> int:
    """What the Fisher sum is divided by: the published loop index at exit, n = ``requested``
    when the task has that many samples, else ``available`` - 1; ``fisher_mean``: the count."""
    used = min(available, requested)
    if fisher_mean or available >= requested:
        return used
    if used < 2:
        raise ConfigError(f"EWC's Fisher needs at least 2 training samples as published (divided "
                          f"by n - 1 = {used - 1}); the task has {available} "
                          "(--ewc-fisher-mean divides by n)")
    return used - 1


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

    def __init__(self, lam: float, samples: int = 5000, random_consolidation: bool = False,
                 seed: int = 0, fisher_mean: bool = False):
        self.lam, self.samples, self.fisher_mean = lam, samples, fisher_mean
        self.random_consolidation = random_consolidation
        self.generator = torch.Generator().manual_seed(seed)
        self.fisher_sum: list[torch.Tensor] | None = None
        self.fisher_anchor_sum: list[torch.Tensor] | None = None
        self.constant = 0.0

    def consolidate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """End of a task: Fisher on its first ``samples`` training samples, anchor W_b*."""
        divisor = fisher_divisor(len(x), self.samples, self.fisher_mean)
        fishers = empirical_fisher(model, x[: self.samples], y[: self.samples], divisor=divisor)
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
    """Synaptic Intelligence as published (SPEC section 5), with its own plain Adam.

    After every optimizer step: w += -g * (W_now - W_before), with W the hidden weights (or,
    ``binary_path``, sign(W_h)) and g the gradient w.r.t. the binary weights (= that of W_h,
    straight-through). End of a task: omega += w / ((W_h,end - W_h,prev)^2 + damping) with the
    change of the HIDDEN weights over the task; w <- 0; W_h,prev <- W_h,end.
    Penalty: lambda * sum omega * (W_b - sign(W_h,prev))^2 for binarized layers, and
    lambda * sum omega * (W - W_prev)^2 for full-precision ones. Normalization parameters are
    not consolidated.
    """

    def __init__(self, lam: float, damping: float = 0.1, binary_path: bool = False):
        self.lam, self.damping, self.binary_path = lam, damping, binary_path
        self.omega: list[torch.Tensor] | None = None          # importance, summed over tasks
        self.previous: list[torch.Tensor] | None = None       # W_h at the end of the last task
        self.path_integral: list[torch.Tensor] = []           # w, over the current task
        self.before: list[torch.Tensor] = []                  # path weights before the step

    def _path_weights(self, model: nn.Module) -> list[torch.Tensor]:
        hidden = [layer_weight(l).detach() for l in weight_layers(model)]
        return [torch.sign(w) if self.binary_path else w.clone() for w in hidden]

    def begin_task(self, model: nn.Module) -> None:
        """Start of a task (the first one also takes W_h,prev = the initial hidden weights)."""
        if self.previous is None:
            self.previous = [layer_weight(l).detach().clone() for l in weight_layers(model)]
            self.omega = [torch.zeros_like(w) for w in self.previous]
        self.path_integral = [torch.zeros_like(w) for w in self.previous]
        self.before = self._path_weights(model)

    def after_step(self, model: nn.Module) -> None:
        """w += -g * (W_now - W_before), g the gradient this step used (whole objective)."""
        now = self._path_weights(model)
        grads = [layer_weight(l).grad for l in weight_layers(model)]
        for w, g, new, old in zip(self.path_integral, grads, now, self.before):
            w.sub_(g * (new - old))
        self.before = now

    def end_task(self, model: nn.Module) -> None:
        end = [layer_weight(l).detach().clone() for l in weight_layers(model)]
        for omega, w, w_end, w_prev in zip(self.omega, self.path_integral, end, self.previous):
            omega.add_(w / ((w_end - w_prev) ** 2 + self.damping))
            w.zero_()
        self.previous = end

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.omega is None:
            return torch.zeros(())
        total = 0.0
        for layer, omega, w_prev in zip(weight_layers(model), self.omega, self.previous):
            anchor = torch.sign(w_prev) if isinstance(layer, BINARIZED_TYPES) else w_prev
            total = total + (omega * (effective_weight(layer) - anchor) ** 2).sum()
        return self.lam * total

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("omega", "previous", "path_integral", "before")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
