"""Binarized layers whose trainable parameter is the hidden weight W_h.

Forward: W_b = sign(W_h) (torch.sign, so sign(0) = 0). Backward: dL/dW_h = dL/dW_b
(identity straight-through estimator). The sign activation passes gradients where |x| <= 1.
"""
from __future__ import annotations

import math
import weakref

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


class _ClippedSign(torch.autograd.Function):
    """y = sign(x); dy/dx := 1 where |x| <= 1, else 0 (hardtanh straight-through estimator)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return torch.sign(x)

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


class _BufferedSign(torch.autograd.Function):
    """Returns a precomputed W_b = sign(W_h); dL/dW_h := dL/dW_b (identity STE)."""

    @staticmethod
    def forward(ctx, hidden, binary):
        return binary.view_as(binary)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


# hidden weight -> its layer, so that the optimizer can fill the layer's sign buffer; weak on
# both sides (copies of a model are simply not found and compute their signs themselves)
# (tensors compare element-wise, so the table is keyed by id and checked by identity)
_LAYER_OF_WEIGHT: dict[int, weakref.ref] = {}


def binarized_layer_of(weight: torch.Tensor):
    """The binarized layer whose hidden weight is ``weight``, or None."""
    ref = _LAYER_OF_WEIGHT.get(id(weight))
    layer = ref() if ref is not None else None
    return layer if layer is not None and layer.hidden_weight is weight else None


class _BinarizedMixin:
    """Shared behaviour: the binary weight sign(W_h), kept in a buffer while W_h is unchanged.

    The buffer is refreshed when W_h changes (its version counter moves); metaplastic Adam
    writes sign(W_h) into it during its step (:meth:`binary_buffer`, :meth:`mark_binary_current`),
    so a training step computes the signs of a large layer once, inside the fused update.
    """

    hidden_weight: nn.Parameter

    def _init_binarized(self, binarize_input: bool) -> None:
        self.binarize_input = binarize_input
        self._binary: torch.Tensor | None = None
        self._binary_key: tuple | None = None
        key = id(self.hidden_weight)
        _LAYER_OF_WEIGHT[key] = weakref.ref(self, lambda _, key=key: _LAYER_OF_WEIGHT.pop(key, None))

    def _weight_key(self) -> tuple:
        w = self.hidden_weight
        return (w.data_ptr(), w._version, w.device, w.dtype, w.shape)

    def binary_buffer(self) -> torch.Tensor:
        """The tensor holding sign(W_h) (allocated on first use, same shape as W_h)."""
        w = self.hidden_weight
        if self._binary is None or self._binary.shape != w.shape or self._binary.device != w.device:
            self._binary = torch.empty_like(w, requires_grad=False)
            self._binary_key = None
        return self._binary

    def mark_binary_current(self) -> None:
        """Declare that the buffer holds sign(W_h) of the current W_h."""
        self._binary_key = self._weight_key()

    def current_binary(self) -> torch.Tensor:
        """The buffer holding sign(W_h) of the current W_h (refreshed if W_h changed); no graph."""
        if self._binary_key != self._weight_key() or self._binary is None:
            torch.sign(self.hidden_weight.detach(), out=self.binary_buffer())
            self.mark_binary_current()
        return self._binary

    def binary_weight(self) -> torch.Tensor:
        """W_b = sign(W_h); differentiable (identity STE) when gradients are being recorded."""
        w = self.hidden_weight
        binary = self.current_binary()
        if torch.is_grad_enabled() and w.requires_grad:
            return _BufferedSign.apply(w, binary)
        return binary

    def _prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        return binarize_ste(x) if self.binarize_input else x

    def init_hidden_weight(self, init: str = "uniform", width: float = 0.1) -> None:
        """'uniform': U(-width/2, width/2); 'gauss': N(0, width); 'xavier': Xavier-normal."""
        init_weight(self.hidden_weight, init, width)


def init_weight(weight: torch.Tensor, init: str, width: float) -> None:
    with torch.no_grad():
        if init == "uniform":
            weight.uniform_(-width / 2, width / 2)
        elif init == "gauss":
            weight.normal_(0.0, width)
        elif init == "xavier":
            nn.init.xavier_normal_(weight)
        else:
            raise ValueError(f"unknown init {init!r} (uniform, gauss, xavier)")


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


class _Int8Linear(torch.autograd.Function):
    """y = :func:`int8_product`; backward as for a float linear layer with weight W_b (dL/dW_b
    passed to W_h unchanged)."""

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


# int8 products for layers fed by sign activations or 8-bit images (CPU only). Chosen once at
# start by runtime.setup (:func:`int8_products_pay_off`): CPUs without int8 dot-product
# instructions (VNNI / AMX) run torch._int_mm tens of times slower than float32.
TERNARY_INT8 = {"enabled": True}
_INT8_PAYS_OFF: dict[str, bool] = {}


def int8_products_pay_off(rows: int = 1000, inner: int = 784, cols: int = 512) -> bool:
    """Whether exact int8 products (int32 sums) run on this CPU AND beat float32 at a training
    shape: measured once per process (best of 3 timings of each), then cached."""
    if "cpu" in _INT8_PAYS_OFF:
        return _INT8_PAYS_OFF["cpu"]
    import time

    pays_off = False
    if hasattr(torch, "_int_mm"):
        try:
            g = torch.Generator().manual_seed(0)
            a8 = torch.randint(-1, 2, (rows, inner), generator=g, dtype=torch.int8)
            b8 = torch.randint(-1, 2, (cols, inner), generator=g, dtype=torch.int8)
            a32, b32 = a8.float(), b8.float()

            def best(fn) -> float:
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
                return min(times)

            ok = torch.equal(torch._int_mm(a8, b8.t()).float(), a32 @ b32.t())
            pays_off = ok and best(lambda: torch._int_mm(a8, b8.t())) < best(lambda: a32 @ b32.t())
        except (RuntimeError, NotImplementedError):
            pays_off = False
    _INT8_PAYS_OFF["cpu"] = pays_off
    return pays_off


class BinarizedLinear(_BinarizedMixin, nn.Module):
    """y = x_in @ sign(W_h)^T, x_in = sign(x) if ``binarize_input`` else x; no bias.

    On CPU the product runs in int8 (exact integer sums) when the inputs are known to be
    ternary (``binarize_input``, or ``input_is_ternary`` set by a model whose previous layer ends
    with a sign activation) or 8-bit levels (``input_levels`` = L: inputs are k / L, k integer in
    [0, 255]; set for raw 8-bit images)."""

    def __init__(self, in_features: int, out_features: int, binarize_input: bool = True,
                 init: str = "uniform", init_width: float = 0.1):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.hidden_weight = nn.Parameter(torch.empty(out_features, in_features))
        self._init_binarized(binarize_input)
        self.init_hidden_weight(init, init_width)
        self.input_is_ternary = False
        self.input_levels: int | None = None
        self._binary_int8: torch.Tensor | None = None
        self._binary_int8_key: tuple | None = None
        self._row_sums: torch.Tensor | None = None
        self._row_sums_key: tuple | None = None
        self._prepared_int8 = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._prepare_input(x)
        if self.uses_int8() and x.device.type == "cpu" and x.dim() == 2:
            try:
                return self._int8_forward(x)
            except RuntimeError:  # no int8 matmul for this build or shape: float32 from now on
                TERNARY_INT8["enabled"] = False
        return F.linear(x, self.binary_weight())

    def _int8_levels(self) -> int | None:
        """None for ternary inputs, else the level count L of 8-bit inputs k / L."""
        return None if self.input_is_ternary or self.binarize_input else self.input_levels

    def uses_int8(self) -> bool:
        """Whether the forward product runs in int8 (ternary or 8-bit input, CPU, supported)."""
        known = self.input_is_ternary or self.binarize_input or self.input_levels is not None
        return known and TERNARY_INT8["enabled"] and self.hidden_weight.device.type == "cpu"

    def binary_int8_buffer(self) -> torch.Tensor:
        """The int8 copy of sign(W_h) used by the int8 product (allocated on first use)."""
        w = self.hidden_weight
        if self._binary_int8 is None or self._binary_int8.shape != w.shape:
            self._binary_int8 = torch.empty(w.shape, dtype=torch.int8)
            self._binary_int8_key = None
        return self._binary_int8

    def mark_binary_int8_current(self) -> None:
        """Declare that the int8 buffer holds sign(W_h) of the current W_h."""
        self._binary_int8_key = self._weight_key()

    def _int8_operands(self) -> tuple[torch.Tensor, torch.Tensor | None, int | None]:
        """(int8 sign(W_h), its row sums for 8-bit inputs, levels), brought up to date."""
        binary = self.current_binary()
        if self._binary_int8_key != self._binary_key or self._binary_int8 is None:
            self.binary_int8_buffer().copy_(binary)
            self._binary_int8_key = self._binary_key
        levels = self._int8_levels()
        if levels is not None and self._row_sums_key != self._binary_int8_key:
            self._row_sums = self._binary_int8.sum(dim=1, dtype=torch.int32)
            self._row_sums_key = self._binary_int8_key
        return self._binary_int8, (self._row_sums if levels is not None else None), levels

    def _int8_forward(self, x: torch.Tensor) -> torch.Tensor:
        binary_int8, row_sums, levels = self._int8_operands()
        if torch.is_grad_enabled() and (x.requires_grad or self.hidden_weight.requires_grad):
            return _Int8Linear.apply(x, self.hidden_weight, self._binary, binary_int8, row_sums,
                                     levels)
        return int8_product(x, binary_int8, row_sums, levels)

    def prepare_forward(self) -> None:
        """Bring sign(W_h) (and its int8 form when the product runs in int8) up to date, so that
        :meth:`forward_prepared` can use them without checks (it is traced by torch.compile)."""
        self.current_binary()
        self._prepared_int8 = self.uses_int8()
        if self._prepared_int8:
            self._int8_operands()

    def forward_prepared(self, x: torch.Tensor) -> torch.Tensor:
        """forward(x) after :meth:`prepare_forward` (training step, gradients recorded)."""
        x = self._prepare_input(x)
        if self._prepared_int8:
            levels = self._int8_levels()
            return _Int8Linear.apply(x, self.hidden_weight, self._binary, self._binary_int8,
                                     self._row_sums if levels is not None else None, levels)
        return F.linear(x, _BufferedSign.apply(self.hidden_weight, self._binary))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, binarize_input={self.binarize_input}"


class BinarizedConv2d(_BinarizedMixin, nn.Module):
    """2-d convolution with sign(W_h) as kernel, no bias; input binarized when asked."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, padding: int = 0, binarize_input: bool = True,
                 init: str = "uniform", init_width: float = 0.1):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.hidden_weight = nn.Parameter(
            torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self._init_binarized(binarize_input)
        self.init_hidden_weight(init, init_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self._prepare_input(x), self.binary_weight(),
                        stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, binarize_input={self.binarize_input}")


BINARIZED_TYPES = (BinarizedLinear, BinarizedConv2d)


def xavier_std(weight: torch.Tensor) -> float:
    """Standard deviation of Xavier-normal initialisation for ``weight``."""
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    fan_out = weight.shape[0] * math.prod(weight.shape[2:])
    return math.sqrt(2.0 / (fan_in + fan_out))
