"""Exact int8 matrix products for binarized layers on CPU (torch._int_mm: int8 operands, int32
sums), and the autograd function that uses them in a training step."""
from __future__ import annotations

import torch


def int8_product(x: torch.Tensor, binary_int8: torch.Tensor, row_sums: torch.Tensor | None,
                 levels: int | None) -> torch.Tensor:
    """x W_b^T in integer arithmetic (int8 operands, int32 sums), for W_b in {-1, 0, 1} and
    - levels None: x in {-1, 0, 1};
    - levels L: x = k / L with integer k in [0, 255] (8-bit images, L = 255), computed as
      ((k - 128) W_b^T + 128 sum_j W_b[:, j]) / L, with ``row_sums`` = sum_j W_b[:, j] (int32).
    Ternary inputs give exactly the float32 product; 8-bit inputs give the exact product rounded
    once (a float32 matmul rounds at every addition)."""
    if levels is None:
        return torch._int_mm(x.to(torch.int8), binary_int8.t()).to(x.dtype)
    shifted = torch.round(x * levels).sub_(128).to(torch.int8)
    return (torch._int_mm(shifted, binary_int8.t()) + 128 * row_sums).to(x.dtype) / levels


class Int8Linear(torch.autograd.Function):
    """y = :func:`int8_product`; backward as for a float linear layer with weight W_b (dL/dW_b
    passed to W_h unchanged: identity straight-through estimator)."""

    @staticmethod
    def forward(ctx, x, hidden, binary, binary_int8, row_sums, levels):
        ctx.save_for_backward(x, binary)
        return int8_product(x, binary_int8, row_sums, levels)

    @staticmethod
    def backward(ctx, grad_output):
        x, binary = ctx.saved_tensors
        grad_x = grad_output @ binary if ctx.needs_input_grad[0] else None
        grad_w = grad_output.t() @ x if ctx.needs_input_grad[1] else None
        return grad_x, grad_w, None, None, None, None


class BufferedSign(torch.autograd.Function):
    """Returns a precomputed W_b = sign(W_h); dL/dW_h := dL/dW_b (identity STE)."""

    @staticmethod
    def forward(ctx, hidden, binary):
        return binary.view_as(binary)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None
