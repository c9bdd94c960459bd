"""Readers for CIFAR-10 and CIFAR-100 in torchvision's Python-pickle layout.

CIFAR cannot be obtained offline (no package ships it, see DATA.md): users supply the folders
that ``torchvision.datasets.CIFAR10/CIFAR100(root, download=True)`` creates, or that the
official archives unpack to:

    <root>/cifar-10-batches-py/   data_batch_1 ... data_batch_5, test_batch, batches.meta
    <root>/cifar-100-python/      train, test, meta

Each batch file is a pickled dict (keys ``data``: uint8 N x 3072 rows, the 1024 red, then 1024
green, then 1024 blue pixels of a 32x32 image in row-major order; ``labels`` for CIFAR-10,
``fine_labels`` and ``coarse_labels`` for CIFAR-100). Keys may be ``str`` (the official
Python-2 pickles read with latin-1) or ``bytes``; both are accepted. The files are read with a
restricted unpickler that only rebuilds numpy arrays (never a plain ``pickle.load`` of a
third-party file).

API (all tensors on ``device``):
    load_cifar10(root, device)  -> CifarSplits(train_x, train_y, test_x, test_y)
    load_cifar100(root, device) -> the same, fine labels (0-99)
images uint8 N x 3 x 32 x 32 (``to_float`` gives float32 in [0, 1], i.e. pixel / 255, exactly
what torchvision's ``ToTensor`` gives), labels int64. A missing folder or file raises
:class:`DataError` naming the files and how to obtain them. ``root`` None means the project's
data root (``$METAPLASTIC_DATA``, else the clone's ``data/``).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import torch

from metaplastic.data.registry import DATASETS, MD5, how_to_obtain
from metaplastic.data.root import data_root_or_default
from metaplastic.errors import DataError
from metaplastic.fileio import md5_file

# The role of each file of the registry's CIFAR folders (:data:`metaplastic.data.registry.DATASETS`).
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_META_FILE = "batches.meta"

CIFAR100_TRAIN_FILE = "train"
CIFAR100_TEST_FILE = "test"
CIFAR100_META_FILE = "meta"

#: MD5 sums of the official files (those torchvision checks), from the registry
#: :data:`metaplastic.data.registry.MD5` (no SHA-256 of them is known). Only full-size data is
#: compared (a mismatch is a warning, since re-pickled copies hold the same pixels).
OFFICIAL_MD5 = MD5
OFFICIAL_SIZES = {"cifar10": (50000, 10000), "cifar100": (50000, 10000)}

IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3 * 32 * 32

# Per-channel mean and standard deviation of the CIFAR-10 training set (pixels in [0, 1]);
# used only when a run asks for per-channel normalization.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class CifarSplits(NamedTuple):
    """Training and test images (uint8 N x 3 x 32 x 32) and labels (int64)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


def missing_files(root: str | os.PathLike | None, which: str = "cifar10") -> list[Path]:
    """The files of ``which`` ('cifar10' or 'cifar100') absent under ``root``."""
    folder, names = _layout(which)
    base = _root(root) / folder
    return [base / name for name in names if not (base / name).is_file()]


def _registered(which: str):
    """The registry's entry of ``which`` ('cifar10' or 'cifar100')."""
    if which not in ("cifar10", "cifar100"):
        raise ValueError(f"unknown CIFAR variant {which!r} (cifar10, cifar100)")
    return DATASETS[which.upper()]


def _layout(which: str) -> tuple[str, tuple[str, ...]]:
    """The folder of ``which`` and its file names, from the registry."""
    dataset = _registered(which)
    return dataset.folder, tuple(Path(path).name for path in dataset.paths)


def _root(root: str | os.PathLike | None) -> Path:
    return data_root_or_default(root)


def check_present(root: str | os.PathLike | None, which: str = "cifar10") -> Path:
    """The dataset folder; :class:`DataError` naming every missing file and how to get them."""
    root_path = _root(root)
    missing = missing_files(root_path, which)
    folder, _ = _layout(which)
    if missing:
        name = "CIFAR-10" if which == "cifar10" else "CIFAR-100"
        base = root_path / folder
        _, names = _layout(which)
        if not base.is_dir():
            what = f"no folder {base} (it should hold {', '.join(names)})"
        else:
            what = "missing " + ", ".join(str(p) for p in missing)
        raise DataError(f"{name} not found: {what}.\n{how_to_obtain(_registered(which).name, root_path)}")
    return root_path / folder


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def read_batch_file(path: str | os.PathLike) -> dict:
    """One pickled CIFAR file as a dict with ``str`` keys (restricted unpickling)."""
    from metaplastic.restricted_pickle import restricted_loads

    path = Path(path)
    try:
        obj = restricted_loads(path.read_bytes(), encoding="latin1")
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    except Exception as exc:  # UnpicklingError, EOFError, ValueError, ...
        raise DataError(f"{path} is not a CIFAR pickle file ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _images_labels(path: Path, label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    entry = read_batch_file(path)
    for key in ("data", label_key):
        if key not in entry:
            raise DataError(f"{path}: no {key!r} entry (found {sorted(entry)})")
    data = np.asarray(entry["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != PIXELS:
        raise DataError(f"{path}: 'data' must be uint8 N x {PIXELS}, found {data.dtype} "
                        f"{tuple(data.shape)}")
    labels = np.asarray(entry[label_key], dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(f"{path}: labels outside 0..{n_classes - 1}")
    return data, labels


def read_label_names(root: str | os.PathLike | None, which: str = "cifar10") -> list[str]:
    """Class names from ``batches.meta`` (CIFAR-10) or the fine names of ``meta`` (CIFAR-100)."""
    folder = check_present(root, which)
    if which == "cifar10":
        path, key = folder / CIFAR10_META_FILE, "label_names"
    else:
        path, key = folder / CIFAR100_META_FILE, "fine_label_names"
    entry = read_batch_file(path)
    if key not in entry:
        raise DataError(f"{path}: no {key!r} entry (found {sorted(entry)})")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in entry[key]]


def _to_tensors(parts: Sequence[tuple[np.ndarray, np.ndarray]], device) -> tuple[torch.Tensor, torch.Tensor]:
    data = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    x = torch.from_numpy(np.ascontiguousarray(data).reshape(-1, *IMAGE_SHAPE).copy())
    y = torch.from_numpy(labels.astype(np.int64, copy=True))
    return x.to(device), y.to(device)


def _check_official(folder: Path, names: Sequence[str], which: str, n_train: int, n_test: int) -> None:
    """Warn when full-size data differs from the official files (never for smaller copies)."""
    if (n_train, n_test) != OFFICIAL_SIZES[which]:
        return
    differing = [n for n in names
                 if OFFICIAL_MD5.get(f"{folder.name}/{n}") not in (None, md5_file(folder / n))]
    if differing:
        warnings.warn(f"{folder}: {', '.join(differing)} differ from the official files "
                      "(MD5); results may not be comparable to the paper", stacklevel=3)


def load_cifar10(root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 check_md5: bool = True) -> CifarSplits:
    """CIFAR-10 from ``<root>/cifar-10-batches-py``: uint8 images N x 3 x 32 x 32 in the stored
    order (data_batch_1 ... data_batch_5), int64 labels 0-9."""
    folder = check_present(root, "cifar10")
    train = [_images_labels(folder / n, "labels", 10) for n in CIFAR10_TRAIN_FILES]
    test = [_images_labels(folder / CIFAR10_TEST_FILE, "labels", 10)]
    read_label_names(root, "cifar10")  # the meta file must be readable too
    train_x, train_y = _to_tensors(train, device)
    test_x, test_y = _to_tensors(test, device)
    if check_md5:
        _check_official(folder, (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE), "cifar10",
                        len(train_x), len(test_x))
    return CifarSplits(train_x, train_y, test_x, test_y)


def load_cifar100(root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                  check_md5: bool = True) -> CifarSplits:
    """CIFAR-100 from ``<root>/cifar-100-python``: uint8 images N x 3 x 32 x 32, fine labels 0-99."""
    folder = check_present(root, "cifar100")
    train = [_images_labels(folder / CIFAR100_TRAIN_FILE, "fine_labels", 100)]
    test = [_images_labels(folder / CIFAR100_TEST_FILE, "fine_labels", 100)]
    read_label_names(root, "cifar100")
    train_x, train_y = _to_tensors(train, device)
    test_x, test_y = _to_tensors(test, device)
    if check_md5:
        _check_official(folder, (CIFAR100_TRAIN_FILE, CIFAR100_TEST_FILE), "cifar100",
                        len(train_x), len(test_x))
    return CifarSplits(train_x, train_y, test_x, test_y)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images as float32 in [0, 1] (pixel / 255, like torchvision's ``ToTensor``)."""
    return images.to(torch.float32).div_(255.0) if images.dtype == torch.uint8 else images.float()
