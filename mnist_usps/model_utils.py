"""The binarized convolutional network of the MNIST/USPS experiment (Fig. 4c,d; docs/METHOD.md section 2).

Channels c = --ch (c_0 = 1, the grey-level image), kernels k = --kr. Block i:

    BinarizedConv2d(c_i -> c_i+1, k_i, padding 1) -> AvgPool2d(2, 2)
    -> BatchNorm2d(affine=False, track_running_stats=False) -> sign

then BinarizedLinear(s*s*c_last -> 10) -> BatchNorm1d(10, affine=False, track_running_stats=False),
whose output is the logit vector. Every binarized layer applies sign() to its input (docs/METHOD.md
section 1): the first conv turns a pixel in [0, 1] into 0 (black) or 1, later layers receive sign outputs
already (binarizing them again changes neither the values nor the straight-through gradient).

The normalization layers are the core's (metaplastic.method.norms), whose evaluation can normalize each
batch of 100 with its own statistics inside one larger forward pass.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from metaplastic.errors import ConfigError
from metaplastic.method.layers import BinarizedConv2d, BinarizedLinear, SignActivation
from metaplastic.method.norms import BatchNorm1d, BatchNorm2d

IMAGE_SIZE = 28
N_CLASSES = 10
CONV_PADDING = 1
POOL = 2


def spatial_sizes(ch: Sequence[int], kr: Sequence[int], image_size: int = IMAGE_SIZE) -> list[int]:
    """Side of the feature maps after each block, starting with ``image_size``.

    Per block: s <- s + 3 - k (conv with padding 1), then s <- floor((s - 2) / 2) + 1 (pool 2, stride 2).
    """
    if len(ch) < 2:
        raise ConfigError(f"--ch needs the input channels and at least one conv layer, got {list(ch)}")
    if len(kr) != len(ch) - 1:
        raise ConfigError(f"--kr needs one kernel size per conv layer: --ch {list(ch)} has "
                          f"{len(ch) - 1} conv layers, --kr {list(kr)} has {len(kr)} values")
    sizes = [image_size]
    s = image_size
    for i, k in enumerate(kr):
        s = s + 2 * CONV_PADDING + 1 - k
        if s < POOL:
            raise ConfigError(f"--kr {list(kr)}: conv layer {i + 1} (kernel {k}) leaves {s}x{s} maps "
                              f"from {sizes[-1]}x{sizes[-1]}, too small for the 2x2 pooling")
        s = (s - POOL) // POOL + 1
        sizes.append(s)
    return sizes


def spatial_size(ch: Sequence[int], kr: Sequence[int], image_size: int = IMAGE_SIZE) -> int:
    """Side of the last block's feature maps (the classifier sees s*s*ch[-1] inputs)."""
    return spatial_sizes(ch, kr, image_size)[-1]


class ConvBNN(nn.Module):
    """Binarized conv net; accepts N x 784 rows (or N x 1 x 28 x 28 images)."""

    eval_chunk_samples = 2000  # samples per evaluation forward pass (feature maps are large)

    def __init__(self, ch: Sequence[int], kr: Sequence[int], n_classes: int = N_CLASSES,
                 image_size: int = IMAGE_SIZE, init: str = "uniform", init_width: float = 0.1):
        super().__init__()
        self.ch, self.kr = [int(c) for c in ch], [int(k) for k in kr]
        self.image_size = image_size
        self.side = spatial_size(self.ch, self.kr, image_size)
        # Registration order = forward order: metaplastic.method.models.weight_layers (and so the
        # per-layer --meta values) lists the convs first, then the classifier.
        self.convs = nn.ModuleList(
            BinarizedConv2d(self.ch[i], self.ch[i + 1], self.kr[i], padding=CONV_PADDING,
                            binarize_input=True, init=init, init_width=init_width)
            for i in range(len(self.kr)))
        self.pool = nn.AvgPool2d(POOL, POOL)
        self.norms = nn.ModuleList(
            BatchNorm2d(c, affine=False, track_running_stats=False) for c in self.ch[1:])
        self.activation = SignActivation()
        self.classifier = BinarizedLinear(self.side * self.side * self.ch[-1], n_classes,
                                          binarize_input=True, init=init, init_width=init_width)
        self.out_norm = BatchNorm1d(n_classes, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], self.ch[0], self.image_size, self.image_size)
        for conv, norm in zip(self.convs, self.norms):
            x = self.activation(norm(self.pool(conv(x))))
        return self.out_norm(self.classifier(x.flatten(1)))

    def extra_repr(self) -> str:
        return f"ch={self.ch}, kr={self.kr}, final maps {self.side}x{self.side}"


def build_model(ch: Sequence[int], kr: Sequence[int], init: str = "uniform",
                init_width: float = 0.1) -> ConvBNN:
    """The ConvBNN of --ch/--kr (checked: one kernel per conv, maps never smaller than 2x2)."""
    return ConvBNN(ch, kr, init=init, init_width=init_width)


def architecture_label(ch: Sequence[int], kr: Sequence[int]) -> str:
    """The CSV 'arch' value, e.g. 'ch1-12-20-30_kr4-4-4'."""
    return f"ch{'-'.join(str(c) for c in ch)}_kr{'-'.join(str(k) for k in kr)}"


def check_architecture(ch: Sequence[int], kr: Sequence[int], meta: Sequence[float]) -> None:
    """ConfigError unless --ch starts with the one input channel, --kr fits --ch (one kernel per
    conv, maps never smaller than 2x2) and --meta gives 1 value or one per weight layer."""
    from metaplastic.method.optim import check_meta

    if ch[0] != 1:
        raise ConfigError(f"--ch starts with the input channels: 1 for MNIST/USPS, got {ch[0]}")
    spatial_sizes(ch, kr)
    check_meta(meta, len(kr) + 1, f"the {len(kr)} convs, then the classifier")


def row_prefix(config, scenario: str) -> dict:
    """The run-constant columns of every metrics row (records.continual_columns schema)."""
    from metaplastic.runs import records

    return records.continual_row_prefix(config.net, scenario,
                                        architecture_label(config.ch, config.kr), config.norm,
                                        config.meta_per_layer)


def describe(model, device, windows: dict, tasks) -> str:
    n_params = sum(p.numel() for p in model.parameters())
    return (f"device {device}; model bcnn, final maps {model.side}x{model.side} ({n_params:,} "
            "hidden weights); training windows "
            + ", ".join(f"{n} [{s}:{s + k}]" for n, (s, k) in windows.items())
            + f"; test sets {', '.join(f'{t.name} {len(t.test_x)}' for t in tasks)}")


def sequence_settings(config, scenario: str, progress: bool = True):
    """The runner's settings: ONE metaplastic Adam for the whole sequence, batch 20, an epoch-0
    row before training."""
    from metaplastic.experiments.runner import RunSettings
    from metaplastic.experiments.sequence import SequenceSettings

    loop = RunSettings(epochs_per_task=config.epochs_per_task, batch_size=config.train_batch_size,
                       meta_per_layer=config.meta_per_layer, checkpoint_every=config.checkpoint_every,
                       initial_evaluation=True, flip_stats=config.flip_stats, progress=progress)
    return SequenceSettings(loop, lr=config.lr, weight_decay=config.decay, scenario=scenario,
                            optimizer_per_task=False, seed=config.seed)
