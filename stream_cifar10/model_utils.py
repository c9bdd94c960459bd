"""Binary VGG of stream CIFAR-10 (docs/METHOD.md section 2).

channels c = [c0, ..., c5] (default 128 128 256 256 512 512), BN = batch norm with affine
parameters and running statistics, HT = Hardtanh:
    conv3x3(3 -> c0, pad 1) BN HT                      32x32   (input: the RGB image, not binarized)
    conv3x3(c0 -> c1, pad 1) MaxPool2 BN HT            16x16
    conv3x3(c1 -> c2, pad 1) BN HT                     16x16
    conv3x3(c2 -> c3, pad 1) MaxPool2 BN HT            8x8
    conv3x3(c3 -> c4, pad 1) BN HT                     8x8
    conv3x3(c4 -> c5, no pad) MaxPool2 BN HT           3x3
    BinarizedLinear(9 c5 -> 2048) BN HT Dropout(0.5)
    BinarizedLinear(2048 -> 2048) BN HT Dropout(0.5)
    BinarizedLinear(2048 -> 10) BN                      (logits)
Every layer after the first binarizes its input (sign, identity straight-through gradient; with
the Hardtanh before it, the gradient passes where |x| <= 1). Weights are sign(W_h). All
binarized layers get Xavier-normal initialisation ('xavier', the published behaviour, which
overrides --init), or --init/--init-width with --weight-init flags.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from metaplastic.method.layers import BinarizedConv2d, BinarizedLinear
from metaplastic.method.norms import BatchNorm1d, BatchNorm2d, init_batchnorm_gamma

DEFAULT_CHANNELS = (128, 128, 256, 256, 512, 512)
POOL_AFTER = (False, True, False, True, False, True)
PADDING = (1, 1, 1, 1, 1, 0)
WEIGHT_INITS = ("xavier", "flags")
N_WEIGHT_LAYERS = 9       # 6 convolutions + 3 linear layers (the --meta values)


def feature_size(image_size: int = 32) -> int:
    """Side of the maps before the classifier (3 for 32x32 images)."""
    s = image_size
    for pad, pool in zip(PADDING, POOL_AFTER):
        s = s + 2 * pad - 2
        if pool:
            s //= 2
    return s


class BinaryVGG(nn.Module):
    """The binarized VGG; ``features`` then ``classifier`` (both nn.Sequential)."""

    def __init__(self, channels: Sequence[int] = DEFAULT_CHANNELS, num_classes: int = 10,
                 fc_width: int = 2048, dropout: float = 0.5, in_channels: int = 3,
                 image_size: int = 32, init: str = "xavier", init_width: float = 0.1):
        super().__init__()
        if len(channels) != 6:
            raise ValueError(f"the VGG has 6 conv layers: give 6 channel counts, got {len(channels)}")
        self.channels = list(channels)
        self.side = feature_size(image_size)
        if self.side < 1:
            raise ValueError(f"images of {image_size} pixels are too small for this VGG")
        blocks: list[nn.Module] = []
        c_in = in_channels
        for i, (c_out, pad, pool) in enumerate(zip(channels, PADDING, POOL_AFTER)):
            blocks.append(BinarizedConv2d(c_in, c_out, 3, padding=pad, binarize_input=i > 0,
                                          init=init, init_width=init_width))
            if pool:
                blocks.append(nn.MaxPool2d(2, 2))
            blocks += [BatchNorm2d(c_out, affine=True, track_running_stats=True), nn.Hardtanh()]
            c_in = c_out
        self.features = nn.Sequential(*blocks)
        flat = self.side * self.side * channels[-1]
        self.classifier = nn.Sequential(
            BinarizedLinear(flat, fc_width, binarize_input=True, init=init, init_width=init_width),
            BatchNorm1d(fc_width, affine=True, track_running_stats=True), nn.Hardtanh(),
            nn.Dropout(dropout),
            BinarizedLinear(fc_width, fc_width, binarize_input=True, init=init, init_width=init_width),
            BatchNorm1d(fc_width, affine=True, track_running_stats=True), nn.Hardtanh(),
            nn.Dropout(dropout),
            BinarizedLinear(fc_width, num_classes, binarize_input=True, init=init,
                            init_width=init_width),
            BatchNorm1d(num_classes, affine=True, track_running_stats=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def build_model(channels: Sequence[int] = DEFAULT_CHANNELS, weight_init: str = "xavier",
                init: str = "uniform", init_width: float = 0.1, fc_width: int = 2048,
                dropout: float = 0.5, bn_gamma_init: str = "ones") -> BinaryVGG:
    """The stream CIFAR-10 model; ``weight_init`` 'xavier' (published) ignores init/init_width;
    every BatchNorm's gamma as ``bn_gamma_init`` says (metaplastic.method.published)."""
    if weight_init not in WEIGHT_INITS:
        raise ValueError(f"weight_init must be one of {WEIGHT_INITS}")
    chosen = "xavier" if weight_init == "xavier" else init
    model = BinaryVGG(channels, fc_width=fc_width, dropout=dropout, init=chosen,
                      init_width=init_width)
    init_batchnorm_gamma(model, bn_gamma_init)
    return model


def unused_init_note(weight_init: str, init: str, init_width: float) -> str | None:
    """The note printed when --init/--init-width are set but 'xavier' overrides them."""
    if weight_init == "xavier" and (init, init_width) != ("uniform", 0.1):
        return (f"note: --init {init} --init-width {init_width} recorded but not used: every "
                "binarized layer gets Xavier-normal init (--weight-init xavier)")
    return None
