"""Metaplastic Adam (SPEC section 3).

Per parameter, with g = grad + wd * W (coupled L2 decay):
    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,   u = m / (sqrt(v) + eps),
    W <- W - lr * sqrt(1 - b2^t) / (1 - b1^t) * f * u,
where, for weights (2 or more dimensions), f = 1 - tanh^2(m_l |W|) wherever sign(W) * m > 0
(the update would shrink |W| toward a sign change) and f = 1 elsewhere; 1-d parameters get
f = 1 (plain Adam). m_l = 0 is exactly Adam with coupled weight decay.

Two implementations give the same numbers to float32 rounding:
- 'compiled': one torch.compile graph for all parameters, a fused loop per tensor reading
  W, grad, m, v once and writing W, m, v once, and sign(W) into the binarized layer's buffer
  (so the next forward pass needs no separate sign computation). It writes 1 - tanh^2(x) as 4a / (1 + a)^2 with a = exp(-2x) (the same function,
  cheaper to vectorize).
- 'eager': in-place torch operations over chunks of at most 2**18 elements, so temporaries stay
  small even for 16M-element weights.
'auto' uses 'compiled' when torch.compile works on this machine (it needs a C++ compiler on CPU),
else 'eager' with a warning.
"""
from __future__ import annotations

import logging
import math
import warnings
from typing import Iterable, Sequence

import torch
from torch import nn

from metaplastic.layers import binarized_layer_of

CHUNK = 1 << 18
IMPLEMENTATIONS = ("auto", "compiled", "eager")


def metaplastic_factor(w: torch.Tensor, m: torch.Tensor, meta: float) -> torch.Tensor:
    """f = 1 - tanh^2(meta * |W|) where sign(W) * m > 0, else 1 (reference form, any shape)."""
    f = 1.0 - torch.tanh(meta * w.abs()) ** 2
    return torch.where(torch.sign(w) * m > 0, f, torch.ones_like(w))


def _fused_update(params, grads, exp_avgs, exp_avg_sqs, binaries, binaries_int8, scalars):
    """One metaplastic Adam step on lists of tensors, in place.

    ``scalars`` is a (n_params, 6) tensor of per-parameter step_size, weight_decay, meta,
    beta1, beta2, eps; meta = 0 makes the factor exactly 1 (plain Adam, used for 1-d parameters).
    ``binaries[i]`` / ``binaries_int8[i]``, when not None, receive sign(W) of the updated
    weight (the binarized layer's forward weight, float32 / int8), in the same pass.
    """
    for i, (w, grad, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        step_size, weight_decay, meta, beta1, beta2, eps = scalars[i].unbind()
        g = grad + weight_decay * w
        m_new = beta1 * m + (1.0 - beta1) * g
        v_new = beta2 * v + (1.0 - beta2) * g * g
        a = torch.exp(-2.0 * meta * w.abs())
        factor = torch.where(torch.sign(w) * m_new > 0, 4.0 * a / ((1.0 + a) * (1.0 + a)), 1.0)
        w_new = w - step_size * factor * m_new / (torch.sqrt(v_new) + eps)
        m.copy_(m_new)
        v.copy_(v_new)
        w.copy_(w_new)
        if binaries[i] is not None:
            binaries[i].copy_(torch.sign(w_new))
        if binaries_int8[i] is not None:
            binaries_int8[i].copy_(torch.sign(w_new).to(torch.int8))


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
            shrinking = torch.sign(wc).mul_(mc) > 0
            tanh = torch.mul(wc.abs(), meta).tanh_()
            factor = torch.mul(tanh, tanh).neg_().add_(1.0).masked_fill_(~shrinking, 1.0)
            update.mul_(factor)
        wc.add_(update, alpha=-step_size)


class MetaplasticAdam(torch.optim.Optimizer):
    """Adam whose steps toward a sign change of a weight shrink as 1 - tanh^2(meta * |W|).

    Each parameter group may carry its own ``meta`` (one value per layer).
    """

    def __init__(self, params: Iterable, lr: float = 0.005, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, meta: float = 0.0,
                 implementation: str = "auto"):
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}")
        if lr <= 0 or not math.isfinite(lr):
            raise ValueError(f"learning rate must be positive, got {lr}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, meta=meta)
        super().__init__(params, defaults)
        self.implementation = implementation
        self._kernel = None

    # -- implementation choice -------------------------------------------------------------
    def _fused_kernel(self):
        if self._kernel is None:
            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            self._kernel = torch.compile(_fused_update, dynamic=False)
        return self._kernel

    def _step_compiled(self, batch, layers) -> bool:
        params, grads, ms, vs, scalars = zip(*batch)
        binaries = [None if layer is None else layer.binary_buffer() for layer in layers]
        binaries_int8 = [layer.binary_int8_buffer() if getattr(layer, "uses_int8", None)
                         and layer.uses_int8() else None for layer in layers]
        scalar_table = torch.tensor(scalars, dtype=params[0].dtype, device=params[0].device)
        try:
            self._fused_kernel()(list(params), list(grads), list(ms), list(vs), binaries,
                                 binaries_int8, scalar_table)
            return True
        except Exception as exc:  # compiler missing, unsupported backend, ...
            if self.implementation == "compiled":
                raise
            warnings.warn(f"torch.compile of the optimizer step failed ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200]}); using the eager implementation")
            self.implementation = "eager"
            return False

    # -- the step ----------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
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
        if not batch:
            return loss
        layers = [binarized_layer_of(item[0]) for item in batch]
        compiled = self.implementation != "eager" and self._step_compiled(batch, layers)
        if not compiled:
            for (p, grad, m, v, (step_size, wd, meta, beta1, beta2, eps)), layer in zip(batch,
                                                                                        layers):
                _eager_update(p, grad.contiguous(), m, v, step_size, wd, meta, beta1, beta2, eps,
                              metaplastic=p.dim() >= 2)
                if layer is not None:
                    torch.sign(p, out=layer.binary_buffer())
        for layer in layers:
            if layer is not None:
                layer.mark_binary_current()
                if compiled and getattr(layer, "uses_int8", None) and layer.uses_int8():
                    layer.mark_binary_int8_current()
        return loss


def expand_meta(meta: float | Sequence[float], n_layers: int) -> list[float]:
    """One metaplasticity value per weight layer: a single value is repeated."""
    values = [float(meta)] if isinstance(meta, (int, float)) else [float(x) for x in meta]
    if len(values) == 1:
        values = values * n_layers
    if len(values) != n_layers:
        raise ValueError(f"--meta takes 1 value or one per layer ({n_layers}), got {len(values)}")
    return values


def metaplastic_param_groups(model: nn.Module, meta: float | Sequence[float]) -> list[dict]:
    """Parameter groups: each weight layer with its own m_l, then all other parameters."""
    from metaplastic.models import layer_weight, weight_layers

    layers = weight_layers(model)
    metas = expand_meta(meta, len(layers))
    weights = [layer_weight(layer) for layer in layers]
    weight_ids = {id(w) for w in weights}
    groups = [{"params": [w], "meta": m_l} for w, m_l in zip(weights, metas)]
    others = [p for p in model.parameters() if id(p) not in weight_ids and p.requires_grad]
    if others:
        groups.append({"params": others, "meta": 0.0})
    return groups


def make_optimizer(model: nn.Module, lr: float, meta: float | Sequence[float],
                   weight_decay: float = 0.0, implementation: str = "auto") -> MetaplasticAdam:
    """Metaplastic Adam over the whole model with per-layer m_l."""
    return MetaplasticAdam(metaplastic_param_groups(model, meta), lr=lr,
                           weight_decay=weight_decay, implementation=implementation)
