"""The speed paths, switched on (or not) once, at start: ``--impl {auto,reference,fast}``.

The reference (:mod:`metaplastic.method.layers`, :class:`metaplastic.method.optim.MetaplasticAdam`, the
models' own forward) is what runs unless :func:`enable` installs these, with the same maths:
- sign buffers in the binarized layers (:mod:`metaplastic.fast.layers`), written by
- a fused, compiled optimizer step (:mod:`metaplastic.fast.optim`, equal to float32 rounding);
- on CPU, an MLP's training step as one compiled graph (:mod:`metaplastic.fast.training`,
  equal to float32 rounding);
- on CPU with ``int8``, exact int8 products where a linear layer's inputs are integers
  (:mod:`metaplastic.fast.products`: bit-identical for sign inputs, the exact product rounded
  once for 8-bit pixels), and stream FMNIST's exact integer evaluator
  (:mod:`metaplastic.fast.evaluator`).

'auto' installs them where they work and pay off on the device (int8 products only where
:func:`metaplastic.method.runtime.int8_products_pay_off` measured them faster than float32), and
declines (the reference runs) where torch.compile does not work; 'fast' installs all of them
or refuses with a ConfigError; 'reference' installs nothing. Nothing switches during a run.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from metaplastic.errors import ConfigError
from metaplastic.method import runtime

CHOICES = ("auto", "reference", "fast")


@dataclass
class FastPaths:
    """What :func:`enable` installed on a model (``model.fast_paths``)."""

    device: str
    int8: bool                     # int8 products (and the integer evaluator) on CPU
    compiled_training: bool        # model.training_forward is the compiled graph
    fused_optimizer: bool = True   # make_optimizer gives FusedMetaplasticAdam
    layers: list = field(default_factory=list)  # the fast binarized layers, forward order

    def describe(self, choice: str) -> str:
        parts = ["fused compiled optimizer step writing the layers' sign buffers"]
        if self.compiled_training:
            parts.append("compiled training step")
        if self.device == "cpu":
            parts.append("exact int8 products" if self.int8 else
                         "float32 products (int8 products are slower on this CPU)")
        return f"fast ({choice}): " + ", ".join(parts)


def enable(model: nn.Module, device, choice: str = "auto", input_levels: int | None = None) -> str:
    """Install the fast paths on ``model`` (already on ``device``) as ``choice`` says, before
    training and before any optimizer is made; returns a one-line description of what runs.

    ``input_levels`` = L declares the model's inputs to be k / L with integer k in [0, 255]
    (8-bit images: 255), so that an MLP's unbinarized first layer can multiply in int8.
    Refuses (ConfigError) 'fast' where a fast path cannot run; 'auto' declines instead."""
    from metaplastic.fast import layers as fast_layers

    if choice not in CHOICES:
        raise ConfigError(f"--impl must be one of {', '.join(CHOICES)}, got {choice!r}")
    device = torch.device(device)
    _remove(model)
    if choice == "reference":
        return _record("reference: plain float products, eager optimizer and training step")
    cpu = device.type == "cpu"
    problem = runtime.torch_compile_works(device)
    if problem is not None:
        if choice == "fast":
            raise ConfigError(f"--impl fast: torch.compile does not work on {device} ({problem}); "
                              "use --impl reference (or auto)")
        return _record(f"reference (auto: fast paths declined, torch.compile does not work on "
                       f"{device}: {problem})")
    if choice == "fast" and cpu and not runtime.int8_products_work():
        raise ConfigError("--impl fast: exact int8 products (torch._int_mm) do not run on this "
                          "CPU; use --impl auto (float32 products) or reference")
    int8 = cpu and (choice == "fast" or runtime.int8_products_pay_off())
    from metaplastic.method.models import MLP

    paths = FastPaths(device=device.type, int8=int8,
                      compiled_training=cpu and isinstance(model, MLP),
                      layers=fast_layers.install(model, int8, input_levels))
    model.fast_paths = paths
    if paths.compiled_training:
        from metaplastic.fast.training import CompiledTrainingForward

        model.training_forward = CompiledTrainingForward(model)
    return _record(paths.describe(choice))


def _record(description: str) -> str:
    runtime.SETTINGS["implementation"] = description
    return description


def _remove(model: nn.Module) -> None:
    """Undo an earlier :func:`enable` (the reference classes and forward again)."""
    from metaplastic.fast.layers import uninstall

    uninstall(model)
    for name in ("fast_paths", "training_forward"):
        if name in vars(model):
            delattr(model, name)


def integer_evaluator(model: nn.Module):
    """The exact integer evaluator for ``model`` where its fast paths multiply in int8 and it
    supports the model (a BNN with running-statistics batch norms), else None."""
    from metaplastic.fast import evaluator

    paths = getattr(model, "fast_paths", None)
    if paths is None or not paths.int8 or not evaluator.supports(model):
        return None
    return evaluator.IntegerEvaluator(model)


def make_optimizer(model: nn.Module, lr: float, meta: float | Sequence[float],
                   weight_decay: float = 0.0, implementation: str = "auto"):
    """Metaplastic Adam over the whole model with per-layer m_l
    (:func:`metaplastic.method.optim.metaplastic_param_groups`).

    ``implementation``: 'auto' follows the choice made for ``model`` at start (:func:`enable`:
    :class:`metaplastic.fast.optim.FusedMetaplasticAdam` where the fast paths are on, else the
    reference :class:`metaplastic.method.optim.MetaplasticAdam`); 'reference' ('eager') or 'fast'
    ('compiled') force one.
    """
    from metaplastic.fast.optim import FusedMetaplasticAdam
    from metaplastic.method.optim import MetaplasticAdam, metaplastic_param_groups

    aliases = {"eager": "reference", "compiled": "fast"}
    implementation = aliases.get(implementation, implementation)
    if implementation not in CHOICES:
        raise ValueError(f"implementation must be one of {CHOICES}")
    groups = metaplastic_param_groups(model, meta)
    fast_paths = getattr(model, "fast_paths", None)
    if implementation == "fast" or (implementation == "auto" and fast_paths is not None
                                    and fast_paths.fused_optimizer):
        layers = fast_paths.layers if fast_paths is not None else []
        return FusedMetaplasticAdam(groups, lr=lr, weight_decay=weight_decay, binary_layers=layers)
    return MetaplasticAdam(groups, lr=lr, weight_decay=weight_decay)
