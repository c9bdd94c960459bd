"""An MLP's training-step forward pass (and so its backward) as one torch.compile graph.

Same operations as the eager modules (elementwise ones fused), equal to float32 rounding
(tested); binarized layers read the sign buffers prepared before each step
(:meth:`metaplastic.fast.layers.FastBinarizedLinear.prepare_forward`).
"""
from __future__ import annotations

import torch

from metaplastic.method.runtime import compiled


def _prepared_forward(model, x: torch.Tensor) -> torch.Tensor:
    """MLP.forward_from(0, x) with binarized layers reading their prepared sign buffers."""
    last = len(model.layers) - 1
    for i, (layer, norm) in enumerate(zip(model.layers, model.norms)):
        prepared = getattr(layer, "forward_prepared", None)
        x = norm(prepared(x) if prepared is not None else layer(x))
        if i < last:
            x = model.activation(x)
    return x


def _compiled_prepared_forward():
    """torch.compile(_prepared_forward), made once per process (graphs are cached per shape)."""
    return compiled(_prepared_forward)


class CompiledTrainingForward:
    """``model.training_forward(x)``: the compiled graph while training with gradients
    recorded, the model's own forward otherwise (:func:`metaplastic.method.engine.train_epoch` calls
    it when the model has one)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        model = self.model
        if not (model.training and torch.is_grad_enabled()):
            return model(x)
        for layer in model.layers:
            prepare = getattr(layer, "prepare_forward", None)
            if prepare is not None:
                prepare()
        return _compiled_prepared_forward()(model, x.reshape(x.shape[0], -1))
