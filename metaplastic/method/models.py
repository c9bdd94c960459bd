"""Multilayer perceptrons of the paper: the binarized BNN and the full-precision DNN.

BNN, dims [in, h1, ..., out]: BinarizedLinear -> norm -> sign activation per layer, no
activation after the last layer (the normalized output is the logit vector).
DNN: Linear (no bias) -> BatchNorm1d(affine, running statistics) -> ReLU, same layout.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from metaplastic.method.layers import BINARIZED_TYPES, BinarizedLinear, SignActivation, init_weight
from metaplastic.method.norms import make_norm


def default_binarize_first_input(in_size: int) -> bool:
    """Published default: raw 28x28 pixels (784) enter unbinarized; other inputs are binarized."""
    return in_size != 784


class MLP(nn.Module):
    """layers[i] -> norms[i] -> activation, no activation after the last layer."""

    layers: nn.ModuleList
    norms: nn.ModuleList
    activation: nn.Module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(0, x.reshape(x.shape[0], -1))

    def forward_from(self, start: int, x: torch.Tensor) -> torch.Tensor:
        """The network from layer ``start`` on, given that layer's input."""
        last = len(self.layers) - 1
        for i in range(start, last + 1):
            x = self.norms[i](self.layers[i](x))
            if i < last:
                x = self.activation(x)
        return x


class BNN(MLP):
    """Binarized MLP; ``binarize_inputs[i]`` says whether layer i applies sign() to its input.

    Default: the first layer binarizes its input unless it is a 28x28 image (784 inputs).
    """

    def __init__(self, dims: Sequence[int], norm: str = "bn", init: str = "uniform",
                 init_width: float = 0.1, binarize_inputs: Sequence[bool] | None = None,
                 norm_affine: bool = True, norm_running_stats: bool = False):
        super().__init__()
        self.dims = list(dims)
        n_layers = len(self.dims) - 1
        if binarize_inputs is None:
            # Hidden layers receive sign activations, already binary: sign(sign(x)) = sign(x),
            # so binarizing them again would only cost time.
            binarize_inputs = [default_binarize_first_input(self.dims[0])] + [False] * (n_layers - 1)
        if len(binarize_inputs) != n_layers:
            raise ValueError(f"binarize_inputs needs {n_layers} values, got {len(binarize_inputs)}")
        self.layers = nn.ModuleList(
            BinarizedLinear(self.dims[i], self.dims[i + 1], binarize_input=binarize_inputs[i],
                            init=init, init_width=init_width)
            for i in range(n_layers))
        self.norms = nn.ModuleList(
            make_norm(norm, self.dims[i + 1], affine=norm_affine,
                      track_running_stats=norm_running_stats)
            for i in range(n_layers))
        self.activation = SignActivation()


class DNN(MLP):
    """Full-precision MLP with the same layout (the metaplastic rule then uses sign(W))."""

    def __init__(self, dims: Sequence[int], norm: str = "bn", init: str = "uniform",
                 init_width: float = 0.1):
        super().__init__()
        self.dims = list(dims)
        n_layers = len(self.dims) - 1
        self.layers = nn.ModuleList(
            nn.Linear(self.dims[i], self.dims[i + 1], bias=False) for i in range(n_layers))
        for layer in self.layers:
            init_weight(layer.weight, init, init_width)
        self.norms = nn.ModuleList(
            make_norm(norm, self.dims[i + 1], affine=True, track_running_stats=True)
            for i in range(n_layers))
        self.activation = nn.ReLU()


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """The layers holding (hidden) weights, in forward order: binarized layers, or Linear/Conv."""
    binarized = [m for m in model.modules() if isinstance(m, BINARIZED_TYPES)]
    if binarized:
        return binarized
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def layer_weight(layer: nn.Module) -> nn.Parameter:
    """The trainable weight of a layer: the hidden weight of a binarized layer, else ``weight``."""
    return layer.hidden_weight if isinstance(layer, BINARIZED_TYPES) else layer.weight


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """The weight the forward pass uses (sign(W_h) with STE for binarized layers), differentiable."""
    if isinstance(layer, BINARIZED_TYPES):
        return layer.binary_weight()
    return layer.weight
