"""Data of stream FMNIST: Fashion-MNIST or MNIST from the prepared offline files.

The images are kept as uint8 rows of 784 pixels on the run's device (a quarter of the float
memory); the model sees pixel / 255 (float32, exactly what torchvision's ``ToTensor`` gives),
converted batch by batch. The integer evaluation path reads the bytes directly.
"""
from __future__ import annotations

from pathlib import Path

import torch

from metaplastic.data.datasets import load_image_dataset
from metaplastic.errors import DataError
from metaplastic.experiments.stream import StreamData

TASKS = ("FMNIST", "MNIST")


def to_bytes(images: torch.Tensor) -> torch.Tensor:
    """Float pixels k / 255 back to the bytes k (checked to be exact)."""
    k = torch.round(images * 255.0).clamp_(0, 255).to(torch.uint8)
    if not torch.equal(pixels(k), images):
        raise DataError("the images are not byte / 255 values; cannot store them as bytes")
    return k


def pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 pixel / 255; float images pass unchanged."""
    return images.to(torch.float32).div_(255.0) if images.dtype == torch.uint8 else images


def load_data(config, device: torch.device) -> StreamData:
    """The task's training and test sets (``config.task``, ``config.data_root``) on ``device``."""
    root = Path(config.data_root) if config.data_root else None
    ds = load_image_dataset(config.task, root, "cpu")
    return StreamData(config.task, to_bytes(ds.train_x).to(device), ds.train_y.to(device),
                      to_bytes(ds.test_x).to(device), ds.test_y.to(device))
