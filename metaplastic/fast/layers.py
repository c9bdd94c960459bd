"""Fast binarized layers: sign(W_h) kept in buffers, and int8 products on CPU.

:func:`install` turns the binarized layers of a model into these subclasses in place (same
parameters, same state_dict, same results):
- W_b = sign(W_h) is kept in a buffer, refreshed when W_h changes (its version counter moves);
  :class:`metaplastic.fast.optim.FusedMetaplasticAdam` writes it during its step
  (:meth:`binary_buffer`, :meth:`mark_binary_current`), so a training step computes the signs
  of a large layer once, inside the fused update;
- with ``int8``, a linear layer whose inputs are known to be ternary (it binarizes its input,
  or a sign activation feeds it) or 8-bit levels k / L (``input_levels``, raw 8-bit images)
  multiplies in int8 with int32 sums on CPU (:mod:`metaplastic.fast.products`);
- :meth:`prepare_forward` / :meth:`forward_prepared` let the compiled training step
  (:mod:`metaplastic.fast.training`) read those buffers without checks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from metaplastic.fast.products import BufferedSign, Int8Linear, int8_product
from metaplastic.method.layers import BinarizedConv2d, BinarizedLinear, SignActivation


class _SignBuffer:
    """sign(W_h) in a buffer while W_h is unchanged (mixed into a binarized layer class)."""

    hidden_weight: nn.Parameter

    def _init_fast(self) -> None:
        self._binary: torch.Tensor | None = None
        self._binary_key: tuple | None = None

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
        """W_b = sign(W_h) from the buffer; differentiable (identity STE) when recording."""
        w = self.hidden_weight
        binary = self.current_binary()
        if torch.is_grad_enabled() and w.requires_grad:
            return BufferedSign.apply(w, binary)
        return binary

    def uses_int8(self) -> bool:
        return False


class FastBinarizedConv2d(_SignBuffer, BinarizedConv2d):
    """:class:`BinarizedConv2d` reading sign(W_h) from its buffer."""


class FastBinarizedLinear(_SignBuffer, BinarizedLinear):
    """:class:`BinarizedLinear` reading sign(W_h) from its buffer, with an int8 product on CPU
    where ``int8_inputs`` is 'ternary' or a level count L (inputs k / L, k in [0, 255])."""

    def _init_fast(self) -> None:
        super()._init_fast()
        self.int8_inputs: str | int | None = None
        self._binary_int8: torch.Tensor | None = None
        self._binary_int8_key: tuple | None = None
        self._row_sums: torch.Tensor | None = None
        self._row_sums_key: tuple | None = None
        self._prepared_int8 = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_input(x)
        if self.uses_int8() and x.device.type == "cpu" and x.dim() == 2:
            return self._int8_forward(x)
        return F.linear(x, self.binary_weight())

    @property
    def input_levels(self) -> int | None:
        """L when the inputs are 8-bit levels k / L, else None."""
        return self.int8_inputs if isinstance(self.int8_inputs, int) else None

    def uses_int8(self) -> bool:
        """Whether the forward product runs in int8 (ternary or 8-bit input, CPU)."""
        return self.int8_inputs is not None and self.hidden_weight.device.type == "cpu"

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
        levels = self.input_levels
        if levels is not None and self._row_sums_key != self._binary_int8_key:
            self._row_sums = self._binary_int8.sum(dim=1, dtype=torch.int32)
            self._row_sums_key = self._binary_int8_key
        return self._binary_int8, (self._row_sums if levels is not None else None), levels

    def _int8_forward(self, x: torch.Tensor) -> torch.Tensor:
        binary_int8, row_sums, levels = self._int8_operands()
        if torch.is_grad_enabled() and (x.requires_grad or self.hidden_weight.requires_grad):
            return Int8Linear.apply(x, self.hidden_weight, self._binary, binary_int8, row_sums,
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
        x = self.layer_input(x)
        if self._prepared_int8:
            levels = self.input_levels
            return Int8Linear.apply(x, self.hidden_weight, self._binary, self._binary_int8,
                                    self._row_sums if levels is not None else None, levels)
        return F.linear(x, BufferedSign.apply(self.hidden_weight, self._binary))


FAST_TYPES = {BinarizedLinear: FastBinarizedLinear, BinarizedConv2d: FastBinarizedConv2d}


def install(model: nn.Module, int8: bool = False, input_levels: int | None = None) -> list:
    """Turn every binarized layer of ``model`` into its fast subclass (in place: parameters,
    state_dict and results unchanged) and return them in forward order.

    ``int8``: linear layers with known integer inputs multiply in int8 on CPU: ternary inputs
    where the layer binarizes its input or, in an MLP with sign activations, follows another
    layer; 8-bit inputs k / ``input_levels`` for an MLP's unbinarized first layer."""
    if input_levels is not None and not 1 <= input_levels <= 255:
        raise ValueError(f"input_levels must be in 1..255, got {input_levels}")
    installed = []
    for module in model.modules():
        fast = FAST_TYPES.get(type(module))
        if fast is not None:
            module.__class__ = fast
            module._init_fast()
        if isinstance(module, _SignBuffer):
            installed.append(module)
    if not int8:
        return installed
    from metaplastic.method.models import MLP

    signs_between = isinstance(model, MLP) and isinstance(model.activation, SignActivation)
    for module in installed:
        if not isinstance(module, FastBinarizedLinear):
            continue
        first = not signs_between or module is model.layers[0]
        if module.binarize_input or not first:
            module.int8_inputs = "ternary"
        elif signs_between and input_levels is not None:
            module.int8_inputs = input_levels
    return installed


def uninstall(model: nn.Module) -> None:
    """Give the binarized layers of ``model`` back their reference classes."""
    reference = {fast: plain for plain, fast in FAST_TYPES.items()}
    for module in model.modules():
        if type(module) in reference:
            module.__class__ = reference[type(module)]
            for name in [k for k in vars(module) if k.startswith("_binary") or k.startswith(
                    "_row_sums") or k in ("int8_inputs", "_prepared_int8")]:
                delattr(module, name)
