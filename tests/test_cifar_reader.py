"""metaplastic.data.cifar on tiny synthetic folders written here in torchvision's exact pickle format."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import pickle_dump, run_script, write_cifar_folder

from metaplastic.data import cifar
from metaplastic.errors import DataError


def write_cifar10(root: Path, per_batch=(3, 2, 4, 1, 2), n_test=5, seed=0, str_keys=False):
    """cifar-10-batches-py with dicts of bytes keys (as the official files load in Python 3)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    key = (lambda k: k) if str_keys else (lambda k: k.encode())
    xs, ys = [], []
    for i, n in enumerate(per_batch, start=1):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        pickle_dump(folder / f"data_batch_{i}", {key("batch_label"): f"training batch {i} of 5",
                                           key("labels"): labels, key("data"): data,
                                           key("filenames"): [f"f{j}.png" for j in range(n)]})
        xs.append(data)
        ys += labels
    test = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = [int(v) for v in rng.integers(0, 10, size=n_test)]
    pickle_dump(folder / "test_batch", {key("batch_label"): "testing batch 1 of 1",
                                  key("labels"): test_labels, key("data"): test})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    pickle_dump(folder / "batches.meta", {key("label_names"): [n.encode() if not str_keys else n
                                                         for n in names],
                                    key("num_cases_per_batch"): 10000, key("num_vis"): 3072})
    return np.concatenate(xs), np.array(ys), test, np.array(test_labels), names


def write_cifar100(root: Path, n_train=6, n_test=4, seed=1):
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = []
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(v) for v in rng.integers(0, 100, size=n)]
        pickle_dump(folder / name, {b"filenames": [b"x"] * n, b"batch_label": name.encode(),
                              b"fine_labels": fine, b"coarse_labels": [f // 5 for f in fine],
                              b"data": data})
        out += [data, np.array(fine)]
    pickle_dump(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    return out


def test_cifar10_reads_torchvision_layout_in_order(tmp_path):
    train_x, train_y, test_x, test_y, names = write_cifar10(tmp_path)
    splits = cifar.load_cifar10(tmp_path, "cpu")
    a, b, c, d = splits  # a plain 4-tuple as well
    assert a.shape == (12, 3, 32, 32) and a.dtype == torch.uint8
    assert c.shape == (5, 3, 32, 32)
    assert b.dtype == torch.int64 and d.dtype == torch.int64
    # batches in order, rows = 1024 R, 1024 G, 1024 B, each row-major 32x32
    assert np.array_equal(a.numpy().reshape(12, 3072), train_x)
    assert np.array_equal(a[0, 1].numpy().reshape(-1), train_x[0, 1024:2048])
    assert np.array_equal(b.numpy(), train_y) and np.array_equal(d.numpy(), test_y)
    assert np.array_equal(c.numpy().reshape(5, 3072), test_x)
    assert cifar.read_label_names(tmp_path) == names
    f = cifar.to_float(a)
    assert f.dtype == torch.float32 and float(f.max()) <= 1.0 and float(f.min()) >= 0.0
    assert torch.equal(f * 255, a.float())


def test_cifar10_with_str_keys(tmp_path):
    train_x, *_ = write_cifar10(tmp_path, str_keys=True)
    assert np.array_equal(cifar.load_cifar10(tmp_path).train_x.numpy().reshape(-1, 3072), train_x)


def test_cifar100_fine_labels(tmp_path):
    train_x, train_y, test_x, test_y = write_cifar100(tmp_path)
    s = cifar.load_cifar100(tmp_path)
    assert s.train_x.shape == (6, 3, 32, 32) and s.test_x.shape == (4, 3, 32, 32)
    assert np.array_equal(s.train_y.numpy(), train_y) and np.array_equal(s.test_y.numpy(), test_y)
    assert np.array_equal(s.train_x.numpy().reshape(6, -1), train_x)
    assert cifar.read_label_names(tmp_path, "cifar100")[:2] == ["f0", "f1"]


def test_writer_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (11, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, 11)
    write_cifar_folder(tmp_path, "cifar10", x, y, x[:3], y[:3])
    s = cifar.load_cifar10(tmp_path)
    assert np.array_equal(s.train_x.numpy(), x) and np.array_equal(s.train_y.numpy(), y)
    write_cifar_folder(tmp_path, "cifar100", x, y * 9, x[:2], y[:2])
    assert np.array_equal(cifar.load_cifar100(tmp_path).train_y.numpy(), y * 9)


def test_missing_folder_and_missing_file_name_the_files(tmp_path):
    with pytest.raises(DataError) as err:
        cifar.load_cifar10(tmp_path)
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "data_batch_1" in msg and "test_batch" in msg
    assert "download=True" in msg and "cifar-10-python.tar.gz" in msg
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match="test_batch"):
        cifar.load_cifar10(tmp_path)
    with pytest.raises(DataError, match="cifar-100-python"):
        cifar.load_cifar100(tmp_path)


def test_malformed_and_malicious_files_are_refused(tmp_path):
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    pickle_dump(folder / "data_batch_2", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match="uint8 N x 3072"):
        cifar.load_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    pickle_dump(folder / "data_batch_2", Evil())
    with pytest.raises(DataError, match="not a CIFAR pickle"):
        cifar.load_cifar10(tmp_path)


@pytest.mark.slow
def test_stream_cifar10_main_exits_2_without_traceback(tmp_path):
    """A real process: no CIFAR under the data root -> the message, exit status 2."""
    proc = run_script("stream_cifar10/main.py", "--dry-run", "--data-root", tmp_path,
                      "--out-dir", tmp_path / "run", timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "cifar-10-batches-py" in proc.stderr and "download" in proc.stderr
