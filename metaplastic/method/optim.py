"""Metaplastic Adam (docs/METHOD.md section 3).

Per parameter, with g = grad + wd * W (coupled L2 decay):
    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   u = m / (sqrt(v) + eps),
    W <- W - lr * sqrt(1 - b2^t) / (1 - b1^t) * f * u,
where, for weights (2 or more dimensions), f = 1 - tanh^2(m_l |W|) wherever sign(W) * m > 0
(the update would shrink |W| toward a sign change) and f = 1 elsewhere
(:func:`metaplastic.method.rule.metaplastic_factor`); 1-d parameters get f = 1 (plain Adam).
m_l = 0 is exactly Adam with coupled weight decay.

This module is the reference implementation: in-place torch operations over chunks of at most
2**18 elements, so temporaries stay small even for 16M-element weights. The fast path
(:class:`metaplastic.fast.optim.FusedMetaplasticAdam`: one compiled kernel for all tensors,
equal to float32 rounding) is a subclass that replaces :meth:`MetaplasticAdam._update`;
:func:`metaplastic.fast.make_optimizer` picks it when the model's fast paths were enabled at
start (:func:`metaplastic.fast.enable`). This module imports nothing from :mod:`metaplastic.fast`.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch
from torch import nn

from metaplastic.method.rule import metaplastic_factor

CHUNK = 1 << 18


def _eager_update(w, grad, m, v, step_size: float, weight_decay: float, meta: float,
                  beta1: float, beta2: float, eps: float, metaplastic: bool) -> None:
    """Same step with in-place operations, chunk by chunk (temporaries of CHUNK elements)."""
    wf, gf, mf, vf = (t.view(-1) for t in (w, grad, m, v))
    for start in range(0, wf.numel(), CHUNK):
        sl = slice(start, start + CHUNK)
        wc, mc, vc = wf[sl], mf[sl], vf[sl]
        g = gf[sl].clone() if weight_decay == 0 else torch.add(gf[sl], wc, alpha=weight_decay)
        mc.mul_(beta1).add_(g, alpha=1.0 - beta1)
        vc.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        update = torch.sqrt(vc).add_(eps)
        torch.div(mc, update, out=update)
        if metaplastic and meta != 0.0:
            update.mul_(metaplastic_factor(wc, mc, meta))
        wc.add_(update, alpha=-step_size)


def closure_loss(closure):
    """torch.optim's closure protocol: the loss the closure re-evaluates (with gradients), or
    None without a closure."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class MetaplasticAdam(torch.optim.Optimizer):
    """Adam whose steps toward a sign change of a weight shrink as 1 - tanh^2(meta * |W|).

    Each parameter group may carry its own ``meta`` (one value per layer).
    """

    implementation = "reference"

    def __init__(self, params: Iterable, lr: float = 0.005, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, meta: float = 0.0):
        if lr <= 0 or not math.isfinite(lr):
            raise ValueError(f"learning rate must be positive, got {lr}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, meta=meta)
        super().__init__(params, defaults)

    def _update(self, batch: list) -> None:
        """Apply one step to ``batch``: (param, grad, exp_avg, exp_avg_sq, (step_size,
        weight_decay, meta, beta1, beta2, eps)) per parameter, meta = 0 for 1-d parameters."""
        for p, grad, m, v, (step_size, wd, meta, beta1, beta2, eps) in batch:
            _eager_update(p, grad.contiguous(), m, v, step_size, wd, meta, beta1, beta2, eps,
                          metaplastic=p.dim() >= 2)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure_loss(closure)
        batch = []
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("MetaplasticAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = state["step"]
                step_size = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                meta = float(group["meta"]) if p.dim() >= 2 else 0.0
                batch.append((p, p.grad, state["exp_avg"], state["exp_avg_sq"],
                              (step_size, group["weight_decay"], meta, beta1, beta2, group["eps"])))
        if batch:
            self._update(batch)
        return loss


def expand_meta(meta: float | Sequence[float], n_layers: int) -> list[float]:
    """One metaplasticity value per weight layer: a single value is repeated."""
    values = [float(meta)] if isinstance(meta, (int, float)) else [float(x) for x in meta]
    if len(values) == 1:
        values = values * n_layers
    if len(values) != n_layers:
        raise ValueError(f"--meta takes 1 value or one per layer ({n_layers}), got {len(values)}")
    return values


class MetaPerLayer:
    """Mixed into a run's config that has ``meta`` (--meta) and ``n_layers`` (its weight layers):
    --meta as one value per weight layer, computed here only."""

    @property
    def meta_per_layer(self) -> list[float]:
        return expand_meta(self.meta, self.n_layers)


def check_meta(meta: Sequence[float], n_layers: int, layers: str = "") -> None:
    """ConfigError unless --meta gives 1 value or one per weight layer (``layers``, when given,
    says which they are)."""
    from metaplastic.errors import ConfigError

    try:
        expand_meta(meta, n_layers)
    except ValueError as exc:
        raise ConfigError(f"{exc} ({layers})" if layers else str(exc)) from None


def metaplastic_param_groups(model: nn.Module, meta: float | Sequence[float]) -> list[dict]:
    """Parameter groups: each weight layer with its own m_l, then all other parameters."""
    from metaplastic.method.models import layer_weight, weight_layers

    layers = weight_layers(model)
    metas = expand_meta(meta, len(layers))
    weights = [layer_weight(layer) for layer in layers]
    weight_ids = {id(w) for w in weights}
    groups = [{"params": [w], "meta": m_l} for w, m_l in zip(weights, metas)]
    others = [p for p in model.parameters() if id(p) not in weight_ids and p.requires_grad]
    if others:
        groups.append({"params": others, "meta": 0.0})
    return groups
