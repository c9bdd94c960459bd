"""Tests of metaplastic.data.datasets on tiny synthetic IDX files, plus one check on the real MNIST."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA_ROOT, needs_data, write_idx_dataset

from metaplastic.data import datasets, registry
from metaplastic.data.datasets import ImageDataset, load_image_dataset, read_idx, verify_files
from metaplastic.data.sources.common import encode_idx_images, encode_idx_labels
from metaplastic.errors import ConfigError, DataError


pytestmark = pytest.mark.usefixtures("fresh_caches")  # conftest: empty caches around each test


def write_synthetic_dataset(root: Path, name: str, monkeypatch, n_train: int = 6, n_test: int = 4) -> dict:
    """Write a tiny IDX dataset under ``root/name/raw`` and register its hashes; return its arrays."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    write_idx_dataset(root, name, arrays, monkeypatch)
    return arrays


# --------------------------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------------------------


def test_read_idx_round_trip_plain_and_gzip(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "images").write_bytes(encode_idx_images(images))
    (tmp_path / "images.gz").write_bytes(gzip.compress(encode_idx_images(images)))

    for path in (tmp_path / "images", tmp_path / "images.gz"):
        tensor = read_idx(path)
        assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (2, 3, 4)
        assert np.array_equal(tensor.numpy(), images)


def test_read_idx_rejects_bad_magic(tmp_path: Path) -> None:
    data = bytearray(encode_idx_labels(np.zeros(4, dtype=np.uint8)))
    data[3] = 0x05
    (tmp_path / "bad").write_bytes(bytes(data))
    with pytest.raises(DataError, match="bad IDX magic"):
        read_idx(tmp_path / "bad")


def test_read_idx_rejects_wrong_size_and_short_files(tmp_path: Path) -> None:
    data = encode_idx_images(np.zeros((3, 28, 28), dtype=np.uint8))
    (tmp_path / "truncated").write_bytes(data[:-1])
    (tmp_path / "tiny").write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="announces shape"):
        read_idx(tmp_path / "truncated")
    with pytest.raises(DataError, match="too short"):
        read_idx(tmp_path / "tiny")


# --------------------------------------------------------------------------------------------
# verify_files
# --------------------------------------------------------------------------------------------


def test_verify_files_lists_missing_files_and_the_prepare_command(tmp_path: Path) -> None:
    (tmp_path / "MNIST/raw").mkdir(parents=True)
    (tmp_path / "MNIST/raw/train-labels-idx1-ubyte").write_bytes(b"not the real file")

    with pytest.raises(DataError) as caught:
        verify_files(tmp_path, registry.DATASETS["MNIST"].paths)

    message = str(caught.value)
    for name in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        assert f"missing: MNIST/raw/{name}" in message
    assert "corrupt (SHA-256 mismatch): MNIST/raw/train-labels-idx1-ubyte" in message
    assert f"python -m metaplastic.data_prep --data-root {tmp_path}" in message


def test_verify_files_rejects_a_flipped_byte(tmp_path: Path, monkeypatch) -> None:
    write_synthetic_dataset(tmp_path, "MNIST", monkeypatch)
    files = registry.DATASETS["MNIST"].paths
    verify_files(tmp_path, files)

    corrupted_path = tmp_path / "MNIST/raw/t10k-images-idx3-ubyte"
    corrupted = bytearray(corrupted_path.read_bytes())
    corrupted[20] ^= 0x01
    corrupted_path.write_bytes(bytes(corrupted))
    # Same size and inode: move the mtime on so the per-process hash cache sees a changed file
    # even where the filesystem's timestamps are coarser than the time this test takes.
    stat = corrupted_path.stat()
    os.utime(corrupted_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(DataError) as caught:
        verify_files(tmp_path, files)
    assert "corrupt (SHA-256 mismatch): MNIST/raw/t10k-images-idx3-ubyte" in str(caught.value)
    assert "missing" not in str(caught.value)


def test_verify_files_hashes_each_file_once(tmp_path: Path, monkeypatch) -> None:
    write_synthetic_dataset(tmp_path, "MNIST", monkeypatch)
    calls: list[Path] = []
    real_sha256_file = datasets.sha256_file
    monkeypatch.setattr(datasets, "sha256_file", lambda path: calls.append(path) or real_sha256_file(path))

    for _ in range(3):
        verify_files(tmp_path, registry.DATASETS["MNIST"].paths)
    assert len(calls) == 4


# --------------------------------------------------------------------------------------------
# load_image_dataset
# --------------------------------------------------------------------------------------------


def test_load_image_dataset_on_synthetic_files(tmp_path: Path, monkeypatch) -> None:
    arrays = write_synthetic_dataset(tmp_path, "FashionMNIST", monkeypatch)

    dataset = load_image_dataset("FMNIST", tmp_path)

    assert isinstance(dataset, ImageDataset) and dataset.name == "FashionMNIST"
    assert dataset.num_classes == 10
    assert dataset.train_x.shape == (6, 784) and dataset.test_x.shape == (4, 784)
    assert dataset.train_x.dtype == torch.float32 and dataset.train_y.dtype == torch.int64
    # Same values as torchvision's ToTensor: uint8 -> float32, divided by 255.
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().div(255).reshape(6, 784)
    assert torch.equal(dataset.train_x, expected)
    assert dataset.test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert float(dataset.train_x.min()) >= 0.0 and float(dataset.train_x.max()) <= 1.0


def test_load_image_dataset_reads_once_per_process(tmp_path: Path, monkeypatch) -> None:
    write_synthetic_dataset(tmp_path, "MNIST", monkeypatch)
    first = load_image_dataset("MNIST", tmp_path)
    (tmp_path / "MNIST/raw/train-images-idx3-ubyte").unlink()  # a second read would now fail
    assert load_image_dataset("mnist", tmp_path) is first


def test_load_image_dataset_reports_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="metaplastic.data_prep"):
        load_image_dataset("MNIST", tmp_path)


def test_load_image_dataset_rejects_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown image dataset"):
        load_image_dataset("CIFAR10", tmp_path)


def test_load_image_dataset_label_image_count_mismatch(tmp_path: Path, monkeypatch) -> None:
    write_synthetic_dataset(tmp_path, "MNIST", monkeypatch)
    labels = encode_idx_labels(np.zeros(5, dtype=np.uint8))
    (tmp_path / "MNIST/raw/train-labels-idx1-ubyte").write_bytes(labels)
    monkeypatch.setitem(registry.SHA256, "MNIST/raw/train-labels-idx1-ubyte", hashlib.sha256(labels).hexdigest())
    with pytest.raises(DataError, match="6 images but 5 labels"):
        load_image_dataset("MNIST", tmp_path)


# --------------------------------------------------------------------------------------------
# The real MNIST, when prepared
# --------------------------------------------------------------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.slow
@needs_data("MNIST")
def test_real_mnist_shapes_range_and_label_counts() -> None:
    mnist = load_image_dataset("MNIST", DATA_ROOT)

    assert tuple(mnist.train_x.shape) == (60000, 784) and tuple(mnist.test_x.shape) == (10000, 784)
    assert float(mnist.train_x.min()) == 0.0 and float(mnist.train_x.max()) == 1.0
    assert float(mnist.test_x.min()) >= 0.0 and float(mnist.test_x.max()) <= 1.0
    assert torch.bincount(mnist.train_y, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(mnist.test_y, minlength=10).tolist() == MNIST_TEST_COUNTS
