"""Metaplastic Adam as one compiled kernel, which also writes the layers' sign buffers.

Same step as :class:`metaplastic.method.optim.MetaplasticAdam` (equal to float32 rounding, tested):
one torch.compile graph for all parameters, a fused loop per tensor reading W, grad, m, v once
and writing W, m, v once, and sign(W) of the updated weight into the buffers of the binarized
layers it was given (``binary_layers``: float32 sign buffer, plus the int8 copy where the layer
multiplies in int8), so the next forward pass needs no separate sign computation. The factor is
:func:`metaplastic.method.rule.metaplastic_factor`, traced into the graph.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

from metaplastic.method.optim import MetaplasticAdam
from metaplastic.method.rule import metaplastic_factor
from metaplastic.method.runtime import compiled


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
        factor = metaplastic_factor(w, m_new, meta)
        w_new = w - step_size * factor * m_new / (torch.sqrt(v_new) + eps)
        m.copy_(m_new)
        v.copy_(v_new)
        w.copy_(w_new)
        if binaries[i] is not None:
            binaries[i].copy_(torch.sign(w_new))
        if binaries_int8[i] is not None:
            binaries_int8[i].copy_(torch.sign(w_new).to(torch.int8))


class FusedMetaplasticAdam(MetaplasticAdam):
    """:class:`MetaplasticAdam` whose update is one compiled kernel; ``binary_layers`` (fast
    binarized layers, :mod:`metaplastic.fast.layers`) get their sign buffers written by it."""

    implementation = "fused"

    def __init__(self, params: Iterable, lr: float = 0.005, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, meta: float = 0.0, binary_layers: Sequence = ()):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, meta=meta)
        self._layer_of = {id(layer.hidden_weight): layer for layer in binary_layers}

    def _layer(self, p: torch.Tensor):
        layer = self._layer_of.get(id(p))
        return layer if layer is not None and layer.hidden_weight is p else None

    def _update(self, batch: list) -> None:
        params, grads, ms, vs, scalars = zip(*batch)
        layers = [self._layer(p) for p in params]
        binaries = [None if layer is None else layer.binary_buffer() for layer in layers]
        binaries_int8 = [layer.binary_int8_buffer() if layer is not None and layer.uses_int8()
                         else None for layer in layers]
        scalar_table = torch.tensor(scalars, dtype=params[0].dtype, device=params[0].device)
        compiled(_fused_update)(list(params), list(grads), list(ms), list(vs), binaries,
                                binaries_int8, scalar_table)
        for layer, int8 in zip(layers, binaries_int8):
            if layer is not None:
                layer.mark_binary_current()
                if int8 is not None:
                    layer.mark_binary_int8_current()
