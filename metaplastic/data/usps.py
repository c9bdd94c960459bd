"""USPS, read offline (docs/METHOD.md section 6): 16x16 digits padded to 28x28, pixels byte / 255.

USPS sources, looked for under ``<data-root>/USPS/``:

* ``usps.h5`` (written there by ``python -m metaplastic.data_prep``): groups ``train`` / ``test``
  with ``data`` (float32 N x 256, v = (x + 1) / 2 of the LIBSVM values x, step 0.0005) and
  ``target`` (digits 0-9). Checked against its SHA-256 in the registry :mod:`metaplastic.data.registry`.
* torchvision's LIBSVM files ``usps.bz2`` and ``usps.t.bz2`` ("label idx:value ..." lines,
  labels 1..10 for digits 0..9, x in [-1, 1] with three decimals), checked against torchvision's
  MD5s (recorded in the same registry).

Both give the same uint8 16x16 images, computed as torchvision does: pixel = uint8((x + 1) / 2 * 255)
in float32 arithmetic, x parsed from its decimal text as float32; from the h5, x is first recovered
exactly as the three-decimal number round(2v - 1, 3). The 16x16 images are padded with 6 zero
pixels on each side to 28x28 (zero = the background, x = -1), then scaled like MNIST (byte / 255).

Used by mnist_usps (the conv nets of Fig. 4(c, d)) and by continual_learning (task name USPS).
"""
from __future__ import annotations

import bz2
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from metaplastic.data.datasets import ImageDataset, images_to_float, verify_files
from metaplastic.data.registry import DATASETS, MD5, SHA256, how_to_obtain
from metaplastic.data.root import data_root_or_default
from metaplastic.errors import DataError
from metaplastic.fileio import md5_file

USPS_H5, = DATASETS["USPS"].paths
USPS_BZ2 = dict(zip(("train", "test"), DATASETS["USPS"].other_form_paths))
#: The registry's MD5 table; its USPS entries are torchvision's MD5s of the LIBSVM files.
USPS_BZ2_MD5 = MD5
LIBSVM_URL = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass/"
USPS_SIDE = 16
USPS_PAD = 6
N_PIXELS = USPS_SIDE * USPS_SIDE

# Loaded USPS datasets, keyed by (resolved root, device).
_usps_cache: dict[tuple[str, str], ImageDataset] = {}


# --------------------------------------------------------------------------------------------
# USPS values -> pixels
# --------------------------------------------------------------------------------------------


def libsvm_values_to_pixels(x: np.ndarray) -> np.ndarray:
    """torchvision's conversion: uint8((x + 1) / 2 * 255), in float32 arithmetic."""
    x = np.asarray(x, dtype=np.float32)
    return ((x + np.float32(1)) / np.float32(2) * np.float32(255)).astype(np.uint8)


def _decimal_lut() -> np.ndarray:
    """Pixel of every three-decimal x = k / 1000, k in -1000..1000, x parsed from its text."""
    texts = [f"{k / 1000:.3f}" for k in range(-1000, 1001)]
    return libsvm_values_to_pixels(np.asarray(texts, dtype=np.float32))


def h5_values_to_pixels(v: np.ndarray, what: str) -> np.ndarray:
    """Pixels of h5 values v = (x + 1) / 2: x = round(2v - 1, 3) recovered exactly, then as torchvision."""
    scaled = np.asarray(v, dtype=np.float64) * 2000.0
    k = np.rint(scaled)
    if scaled.size and (np.abs(scaled - k).max() > 0.01 or k.min() < 0 or k.max() > 2000):
        raise DataError(f"{what}: values are not (x + 1) / 2 of three-decimal x in [-1, 1]")
    return _decimal_lut()[k.astype(np.int64)]  # index k = 1000 x + 1000


# --------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UspsSplits:
    """USPS as uint8 16x16 images and int64 digit labels, on the CPU."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


def read_usps_h5(path: str | os.PathLike[str]) -> UspsSplits:
    """Read ``usps.h5`` (no hash check here; see :func:`read_usps`)."""
    import h5py

    path = Path(path)
    out = {}
    try:
        with h5py.File(path, "r") as f:
            for split in ("train", "test"):
                data = np.asarray(f[split]["data"][()])
                target = np.asarray(f[split]["target"][()])
                out[split] = _check_split(h5_values_to_pixels(data, f"{path} {split}"),
                                          target.astype(np.int64), f"{path} {split}")
    except (OSError, KeyError) as error:
        raise DataError(f"{path}: not a USPS HDF5 file with train/test data and target ({error})") from None
    return UspsSplits(*out["train"], *out["test"], source=str(path))


def read_libsvm_usps(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """One LIBSVM file (bz2-compressed): uint8 images N x 16 x 16 and labels 0..9.

    Each line is "label idx:value ..." with label 1..10 (digit + 1) and idx 1..256; an index that
    is absent has the value 0 (LIBSVM's sparse convention).
    """
    path = Path(path)
    texts: list[list[str]] = []
    labels: list[int] = []
    try:
        with bz2.open(path, "rt") as f:
            for line_no, line in enumerate(f, start=1):
                fields = line.split()
                if not fields:
                    continue
                row = ["0"] * N_PIXELS
                for item in fields[1:]:
                    idx, _, value = item.partition(":")
                    i = int(idx) - 1
                    if not 0 <= i < N_PIXELS or not value:
                        raise ValueError(f"bad feature {item!r}")
                    row[i] = value
                labels.append(int(float(fields[0])) - 1)
                texts.append(row)
    except (OSError, EOFError, ValueError) as error:
        raise DataError(f"{path}: not a USPS LIBSVM file ({error})") from None
    try:
        x = np.asarray(texts, dtype=np.float32).reshape(-1, USPS_SIDE, USPS_SIDE)
    except ValueError as error:
        raise DataError(f"{path}: unreadable value ({error})") from None
    return _check_split(libsvm_values_to_pixels(x), np.asarray(labels, dtype=np.int64), str(path))


def _check_split(images: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    images = images.reshape(-1, USPS_SIDE, USPS_SIDE)
    if images.shape[0] != labels.shape[0] or labels.ndim != 1:
        raise DataError(f"{what}: {images.shape[0]} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{what}: labels outside the digits 0-9")
    return images, labels


def missing_usps_message(root: Path) -> str:
    return "\n".join([
        f"USPS is not under {root / 'USPS'}: expected {USPS_H5} "
        f"(SHA-256 {SHA256.get(USPS_H5, '?')})",
        f"or torchvision's LIBSVM files {USPS_BZ2['train']} and {USPS_BZ2['test']} "
        f"(from {LIBSVM_URL});",
        how_to_obtain("USPS", root),
    ])


def read_usps(root: str | os.PathLike[str] | None = None) -> UspsSplits:
    """USPS from ``<root>/USPS/``: ``usps.h5`` (preferred, SHA-256 checked) or the two .bz2 files."""
    root = data_root_or_default(root)
    if (root / USPS_H5).is_file():
        verify_files(root, [USPS_H5])  # DataError naming the file if its SHA-256 differs
        return read_usps_h5(root / USPS_H5)
    present = [rel for rel in USPS_BZ2.values() if (root / rel).is_file()]
    if not present:
        raise DataError(missing_usps_message(root))
    if len(present) < len(USPS_BZ2):
        absent = [rel for rel in USPS_BZ2.values() if rel not in present]
        raise DataError(f"{root}: found {present[0]} but not {absent[0]}; torchvision's USPS needs "
                        f"both.\n" + missing_usps_message(root))
    for rel in USPS_BZ2.values():
        expected = USPS_BZ2_MD5.get(rel)
        if expected is not None and md5_file(root / rel) != expected:
            raise DataError(f"{root / rel}: MD5 differs from torchvision's ({expected}); the file is "
                            f"corrupt or not the LIBSVM USPS. Replace it;\n{how_to_obtain('USPS', root)}")
    train = read_libsvm_usps(root / USPS_BZ2["train"])
    test = read_libsvm_usps(root / USPS_BZ2["test"])
    return UspsSplits(*train, *test, source=f"{root / USPS_BZ2['train']}, {root / USPS_BZ2['test']}")


def pad_images(images: np.ndarray, pad: int = USPS_PAD) -> np.ndarray:
    """uint8 N x 16 x 16 -> N x 28 x 28 with ``pad`` zero pixels on every side."""
    return np.pad(images, ((0, 0), (pad, pad), (pad, pad)), mode="constant", constant_values=0)


def load_usps(root: str | os.PathLike[str] | None = None,
              device: str | torch.device = "cpu") -> ImageDataset:
    """USPS padded to 28x28, as float32 rows of 784 pixels (byte / 255) and int64 labels on
    ``device``; read once per process for a given root and device."""
    root_path = data_root_or_default(root)
    key = (str(root_path.resolve()), str(torch.device(device)))
    if key not in _usps_cache:
        splits = read_usps(root_path)

        def rows(images):
            return images_to_float(torch.from_numpy(pad_images(images)))

        _usps_cache[key] = ImageDataset(
            "USPS", rows(splits.train_images).to(device),
            torch.from_numpy(splits.train_labels).to(device),
            rows(splits.test_images).to(device), torch.from_numpy(splits.test_labels).to(device),
            num_classes=10)
    return _usps_cache[key]
