"""The Benna-Fusi "beaker" optimizer of the published continual-learning script (``--beaker``).

Benna and Fusi (Nat. Neurosci. 19, 1697-1706, 2016) model a synapse as a chain of communicating
vessels: levels u_0 (the visible weight), u_1, ..., u_{n-1}, cross-section areas C_k and tubes
g_k between vessels k and k+1, the last vessel draining into a level held at 0:

    C_k du_k/dt = g_{k-1} (u_{k-1} - u_k) + g_k (u_{k+1} - u_k),        u_n = 0.

The published optimizer (flags --n-bk n, --ratios g_0..g_{n-1}, --areas C_0..C_{n-1}, --fb) steps
this chain once per training step (dt = 1, every vessel from its previous level) and drives u_0
with Adam. Per weight tensor W = u_0, with m_l the layer's --meta:

    W   <- W - s m / (sqrt(v) + eps)                        Adam, coupled decay (plain)
             + (g_0 / C_0) (u_1 - u_0)                      exchange with the first vessel
             + fb (u_{n-1} - u_0)  where (u_{n-1} - u_0) sign(u_{n-1}) > 0     feedback
    u_k <- u_k + (g_{k-1} / C_k) a_k (u_{k-1} - u_k) + (g_k / C_k) (u_{k+1} - u_k),  k = 1..n-1,

with a_k = 1 except for the last vessel (k = n-1), whose inflow is a_k = 1 - tanh^2(m_l u_k)
where (u_{k-1} - u_k) u_k < 0 (the inflow would bring it toward 0): the metaplastic rule moved
to the deepest vessel. Every right-hand side uses the levels before the step (u_0: W before its
Adam step). The vessels start level with W. Parameters of one dimension (BatchNorm) get plain
Adam. s = lr sqrt(1 - b2^t) / (1 - b1^t), as in :mod:`metaplastic.method.optim`.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

from metaplastic.errors import ConfigError
from metaplastic.method.optim import closure_loss
from metaplastic.method.rule import attenuation


def check_chain(n_bk: int, ratios: Sequence[float], areas: Sequence[float]) -> None:
    """The published chain reads ratios[0..n-1] and areas[0..n-1]."""
    if n_bk < 1:
        raise ConfigError(f"--n-bk must be 1 or more, got {n_bk}")
    if len(ratios) < n_bk or len(areas) < n_bk:
        raise ConfigError(f"--n-bk {n_bk} needs {n_bk} --ratios and {n_bk} --areas, got "
                          f"{len(ratios)} and {len(areas)}")
    if any(a <= 0 for a in areas[:n_bk]):
        raise ConfigError("--areas must be positive")


class BeakerAdam(torch.optim.Optimizer):
    """Adam driving the first vessel of a Benna-Fusi chain (see the module docstring); each
    parameter group carries its layer's ``meta``."""

    def __init__(self, params: Iterable, lr: float, n_bk: int = 4,
                 ratios: Sequence[float] = (1e-2, 1e-3, 1e-4, 1e-5),
                 areas: Sequence[float] = (1, 2, 4, 8), feedback: float = 5e-3,
                 meta: float = 0.0, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        check_chain(n_bk, ratios, areas)
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, meta=meta,
                        n_bk=n_bk, ratios=list(ratios), areas=list(areas), feedback=feedback)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure_loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            n, g, c = group["n_bk"], group["ratios"], group["areas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if p.dim() >= 2:   # vessels 1..n-1, level with W
                        state["beakers"] = p.detach().clone().unsqueeze(0).repeat(
                            n - 1, *([1] * p.dim()))
                state["step"] += 1
                t = state["step"]
                grad = p.grad.add(p, alpha=group["weight_decay"]) if group["weight_decay"] \
                    else p.grad
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
                adam = m / (v.sqrt() + group["eps"])
                if p.dim() < 2:
                    p.add_(adam, alpha=-step_size)
                    continue
                u = [p.detach().clone(), *state["beakers"].unbind(0), torch.zeros_like(p)]
                last = u[n - 1]
                p.add_(adam, alpha=-step_size)
                p.add_(u[1] - u[0], alpha=g[0] / c[0])
                drift = last - u[0]
                p.add_(torch.where(drift * torch.sign(last) > 0, group["feedback"] * drift,
                                   torch.zeros_like(p)))
                new = []
                for k in range(1, n):
                    inflow = u[k - 1] - u[k]
                    if k == n - 1:
                        factor = attenuation(float(group["meta"]) * u[k].abs())
                        inflow = torch.where(inflow * u[k] < 0, factor * inflow, inflow)
                    new.append(u[k] + (g[k - 1] / c[k]) * inflow
                               + (g[k] / c[k]) * (u[k + 1] - u[k]))
                if new:
                    state["beakers"].copy_(torch.stack(new))
        return loss
