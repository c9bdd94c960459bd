"""Readers for the prepared datasets: IDX files checked by SHA-256 and loaded once into tensors.

The files are those written by :mod:`metaplastic.data_prep` (torchvision's ``<root>/<Name>/raw/``
layout), checked against the registry :mod:`metaplastic.data.registry`. Images become float32
rows of 784 pixels equal to ``byte / 255`` (exactly what torchvision's ``ToTensor`` gives),
labels int64.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from metaplastic.data.registry import (
    DATASETS,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    SHA256,
    canonical_dataset_name,
    dataset_of_file,
    how_to_obtain,
)
from metaplastic.data.root import data_root_or_default
from metaplastic.errors import ConfigError, DataError
from metaplastic.fileio import sha256_file

__all__ = [
    "ImageDataset",
    "IMAGE_DATASETS",
    "clear_caches",
    "load_image_dataset",
    "read_idx",
    "verify_files",
]

#: The registry's datasets this module loads (28x28 IDX images).
IMAGE_DATASETS: tuple[str, ...] = tuple(d.name for d in DATASETS.values()
                                        if d.loader.startswith(f"{__name__}:"))

_IDX_DIMENSIONS = {IDX_IMAGES_MAGIC: 3, IDX_LABELS_MAGIC: 1}

# SHA-256 of files already hashed in this process, keyed by (resolved path, inode, size, mtime in ns).
_hash_cache: dict[tuple[str, int, int, int], str] = {}
# Loaded datasets, keyed by (canonical name, resolved root, device).
_dataset_cache: dict[tuple[str, str, str], "ImageDataset"] = {}


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when its name ends in ``.gz``."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix == ".gz" else data
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read: {error}") from None


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an IDX file (images, magic 2051, N x rows x cols; or labels, magic 2049, N) as uint8.

    The header is big-endian: the magic, then one 32-bit size per dimension. Files ending in
    ``.gz`` are decompressed. A wrong magic or a size that disagrees with the file's length raises
    :class:`DataError`.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 8:
        raise DataError(f"{path}: too short for an IDX file ({len(data)} bytes)")
    magic = int.from_bytes(data[0:4], "big")
    ndim = _IDX_DIMENSIONS.get(magic)
    if ndim is None:
        raise DataError(f"{path}: bad IDX magic number {magic} (expected {IDX_IMAGES_MAGIC} for images "
                        f"or {IDX_LABELS_MAGIC} for labels)")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected_size = header_size + int(np.prod(shape, dtype=np.int64))
    if len(data) != expected_size:
        raise DataError(f"{path}: IDX header announces shape {shape} ({expected_size} bytes in all) "
                        f"but the file holds {len(data)} bytes")
    values = np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)
    return torch.from_numpy(values.copy())


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def cached_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, computed at most once per process for a given (path, inode, size, mtime).

    data_prep replaces files atomically (a new inode), so a re-prepared file is hashed again.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _hash_cache:
        _hash_cache[key] = sha256_file(resolved)
    return _hash_cache[key]


def verify_files(root: str | os.PathLike[str], names: Iterable[str]) -> None:
    """Check that each file ``root/name`` exists and matches its SHA-256 in :data:`SHA256`.

    ``names`` are paths relative to ``root`` such as ``"MNIST/raw/train-images-idx3-ubyte"``; a name
    with no recorded hash is only checked for existence. Raises :class:`DataError` listing every
    missing and every corrupt file and how to obtain them (the offline preparation command and
    its ``--download`` alternative).
    """
    root = Path(root)
    missing, corrupt = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            missing.append(name)
        elif name in SHA256 and cached_sha256(path) != SHA256[name]:
            corrupt.append(name)
    if missing or corrupt:
        lines = [f"dataset files under {root} are not ready:"]
        lines += [f"  missing: {name}" for name in missing]
        lines += [f"  corrupt (SHA-256 mismatch): {name}" for name in corrupt]
        for dataset in dict.fromkeys(dataset_of_file(name) for name in missing + corrupt):
            if dataset is not None:
                lines.append(f"{dataset}: {how_to_obtain(dataset, root)}")
        raise DataError("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Image datasets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageDataset:
    """A dataset held in memory: flattened float32 images in [0, 1] and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    def to(self, device: str | torch.device) -> "ImageDataset":
        """A copy of this dataset with every tensor on ``device``."""
        return ImageDataset(self.name, self.train_x.to(device), self.train_y.to(device),
                            self.test_x.to(device), self.test_y.to(device), self.num_classes)


def canonical_image_dataset(name: str) -> str:
    """``"MNIST"`` or ``"FashionMNIST"`` for a name in any case or an alias such as ``"FMNIST"``."""
    try:
        canonical = canonical_dataset_name(name)
    except ConfigError:
        canonical = None
    if canonical not in IMAGE_DATASETS:
        raise ConfigError(f"unknown image dataset {name!r}; choose from {', '.join(IMAGE_DATASETS)} "
                          f"(alias FMNIST)")
    return canonical


IMAGE_LEVELS = 255  # image pixels are byte / IMAGE_LEVELS


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images N x H x W as float32 rows N x (H*W) equal to pixel / 255 (like ``ToTensor``)."""
    return images.reshape(images.shape[0], -1).to(torch.float32).div(IMAGE_LEVELS)


def _read_split(folder: Path, prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (float32, flattened) and labels (int64) of one split (``train`` or ``t10k``)."""
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(folder / f"{prefix}-labels-idx1-ubyte")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder}: {prefix} has {images.shape[0]} images but {labels.shape[0]} labels")
    return images_to_float(images), labels.to(torch.int64)


def _read_image_dataset(name: str, root: Path) -> ImageDataset:
    """Verify and read one image dataset from ``root/<name>/raw/`` onto the CPU."""
    verify_files(root, DATASETS[name].paths)
    folder = root / name / "raw"
    train_x, train_y = _read_split(folder, "train")
    test_x, test_y = _read_split(folder, "t10k")
    return ImageDataset(name, train_x, train_y, test_x, test_y, num_classes=10)


def load_image_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> ImageDataset:
    """Load MNIST or Fashion-MNIST (alias ``FMNIST``) from ``root`` (default :func:`default_data_root`).

    The files are checked by SHA-256 and read once per process; later calls with the same name, root
    and device return the same cached :class:`ImageDataset`.
    """
    canonical = canonical_image_dataset(name)
    root_path = data_root_or_default(root)
    root_key = str(root_path.resolve())
    device_key = str(torch.device(device))
    cpu_key = (canonical, root_key, "cpu")
    if cpu_key not in _dataset_cache:
        _dataset_cache[cpu_key] = _read_image_dataset(canonical, root_path)
    key = (canonical, root_key, device_key)
    if key not in _dataset_cache:
        _dataset_cache[key] = _dataset_cache[cpu_key].to(device)
    return _dataset_cache[key]


def load_mnist(root: str | os.PathLike[str] | None = None, device="cpu") -> ImageDataset:
    """MNIST (the registry's loader)."""
    return load_image_dataset("MNIST", root, device)


def load_fashion_mnist(root: str | os.PathLike[str] | None = None, device="cpu") -> ImageDataset:
    """Fashion-MNIST (the registry's loader)."""
    return load_image_dataset("FashionMNIST", root, device)


def clear_caches() -> None:
    """Forget the loaded datasets and the file hashes (for tests, or after files change)."""
    _dataset_cache.clear()
    _hash_cache.clear()
