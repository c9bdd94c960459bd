"""Binarized layers whose trainable parameter is the hidden weight W_h (docs/METHOD.md section 1).

Forward: W_b = sign(W_h) (torch.sign, so sign(0) = 0). Backward: dL/dW_h = dL/dW_b (identity
straight-through estimator). Optional input binarization sign(x), with the same identity
estimator. The sign activation passes gradients where |x| <= 1.

This is the reference: plain float products, nothing cached. The CPU/GPU speed paths (int8
products, cached sign buffers, compiled steps) live in :mod:`metaplastic.fast` and are switched
on, or not, once at start (``--impl``).
"""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn


class _IdentitySign(torch.autograd.Function):
    """y = sign(x); dy/dx := 1 (identity straight-through estimator)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.sign(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class _ClippedSign(_IdentitySign):
    """y = sign(x); dy/dx := 1 where |x| <= 1, else 0 (hardtanh straight-through estimator)."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        (x,) = inputs
        ctx.save_for_backward(x.abs() <= 1)

    @staticmethod
    def backward(ctx, grad_output):
        (inside,) = ctx.saved_tensors
        return grad_output * inside


def _records_grad(x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def binarize_ste(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with the identity straight-through gradient (used for weights and inputs)."""
    return _IdentitySign.apply(x) if _records_grad(x) else torch.sign(x)


def sign_activation(x: torch.Tensor) -> torch.Tensor:
    """sign(x) with the gradient passed only where |x| <= 1."""
    return _ClippedSign.apply(x) if _records_grad(x) else torch.sign(x)


class SignActivation(nn.Module):
    """Module form of :func:`sign_activation`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sign_activation(x)


def init_weight(weight: torch.Tensor, init: str, width: float) -> None:
    """'uniform': U(-width/2, width/2); 'gauss': N(0, width); 'xavier': Xavier-normal."""
    with torch.no_grad():
        if init == "uniform":
            weight.uniform_(-width / 2, width / 2)
        elif init == "gauss":
            weight.normal_(0.0, width)
        elif init == "xavier":
            nn.init.xavier_normal_(weight)
        else:
            raise ValueError(f"unknown init {init!r} (uniform, gauss, xavier)")


class _Binarized(nn.Module):
    """Shared behaviour: W_b = sign(W_h) with the identity estimator; optional sign(input)."""

    hidden_weight: nn.Parameter
    binarize_input: bool

    def binary_weight(self) -> torch.Tensor:
        """W_b = sign(W_h); differentiable (identity STE) when gradients are being recorded."""
        return binarize_ste(self.hidden_weight)

    def layer_input(self, x: torch.Tensor) -> torch.Tensor:
        return binarize_ste(x) if self.binarize_input else x

    def init_hidden_weight(self, init: str = "uniform", width: float = 0.1) -> None:
        init_weight(self.hidden_weight, init, width)


class BinarizedLinear(_Binarized):
    """y = x_in @ sign(W_h)^T, x_in = sign(x) if ``binarize_input`` else x; no bias."""

    def __init__(self, in_features: int, out_features: int, binarize_input: bool = True,
                 init: str = "uniform", init_width: float = 0.1):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.binarize_input = binarize_input
        self.hidden_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.init_hidden_weight(init, init_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.layer_input(x), self.binary_weight())

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, binarize_input={self.binarize_input}"


class BinarizedConv2d(_Binarized):
    """2-d convolution with sign(W_h) as kernel, no bias; input binarized when asked."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, binarize_input: bool = True,
                 init: str = "uniform", init_width: float = 0.1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.binarize_input = binarize_input
        self.hidden_weight = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.init_hidden_weight(init, init_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.layer_input(x), self.binary_weight(), stride=self.stride,
                        padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, binarize_input={self.binarize_input}")


BINARIZED_TYPES = (BinarizedLinear, BinarizedConv2d)
