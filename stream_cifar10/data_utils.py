"""Data of stream CIFAR-10: torchvision's ``cifar-10-batches-py`` under the data root.

Images stay uint8 (N x 3 x 32 x 32) on the run's device; each batch is converted to float32
pixels in [0, 1] (pixel / 255), augmented (training only, batch-wise on the device), then, with
--normalize channel, standardized per channel with the CIFAR-10 training-set mean and std.
Default: --normalize none (pixels in [0, 1]; every conv is followed by batch norm, and the zero
fill of rotations stays black, as with the PIL pipeline of the paper's scripts).
--source keras: the training set is permuted at random (seeded) before being cut into parts;
--source torchvision: it is cut in the stored order (data_batch_1 ... data_batch_5).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import torch

from metaplastic.data import cifar
from metaplastic.data.sources.torchvision_download import download_cifar
from metaplastic.experiments.stream import StreamData

SOURCES = ("keras", "torchvision")
NORMALIZATIONS = ("none", "channel")


def permutes(config) -> bool:
    """--source keras permutes the training set at random before cutting it."""
    return config.source == "keras"


def load_data(config, device: torch.device) -> StreamData:
    """CIFAR-10 on ``device`` (fetched first with ``config.download``, which needs internet)."""
    root = Path(config.data_root) if config.data_root else None
    if getattr(config, "download", False) and cifar.missing_files(root, "cifar10"):
        download_cifar(root, "cifar10")
    splits = cifar.load_cifar10(root, device)
    return StreamData("CIFAR10", splits.train_x, splits.train_y, splits.test_x, splits.test_y,
                      part_prefix="")   # published tsk: CIFAR10_k/N


class Preprocess:
    """uint8 batch -> float32 [0, 1] -> optional augmentation -> optional normalization."""

    def __init__(self, normalize: str = "none", augment: Optional[Callable] = None,
                 device: torch.device | str = "cpu"):
        self.augment = augment
        self.mean = self.std = None
        if normalize == "channel":
            self.mean = torch.tensor(cifar.CIFAR10_MEAN, device=device).view(1, 3, 1, 1)
            self.std = torch.tensor(cifar.CIFAR10_STD, device=device).view(1, 3, 1, 1)
        elif normalize != "none":
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = cifar.to_float(x)
        if self.augment is not None:
            x = self.augment(x)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        return x


def transforms(config, device: torch.device):
    """(training transform, evaluation transform, training-accuracy transform, augmentation):
    pixels to [0, 1] (and the --normalize standardization) for all; the training batches
    augmented on the device with a generator seeded by seed + AUGMENT_SEED_OFFSET (its state
    goes into checkpoints). The training-set accuracies see augmented images too, as in the
    published script (its evaluation loaders of the training set use the training transform),
    unless --train-eval clean."""
    from metaplastic.data.augment import AugmentSettings, BatchAugment, device_generator
    from metaplastic.experiments.stream import AUGMENT_SEED_OFFSET

    augment = BatchAugment(AugmentSettings(enabled=config.augment),
                           device_generator(device, config.seed + AUGMENT_SEED_OFFSET))
    train = Preprocess(config.normalize, augment if config.augment else None, device)
    clean = Preprocess(config.normalize, None, device)
    return train, clean, train if config.train_eval == "augmented" else clean, augment
