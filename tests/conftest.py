"""Shared test fixtures, markers and synthetic-data builders.

Test modules import the builders with ``from conftest import ...`` (pytest puts tests/ on the
import path). Real data: :data:`DATA_ROOT` is $METAPLASTIC_DATA, else ./data of the repository;
tests that need prepared data files carry :func:`needs_data`. Tests that train through a
command line (main() or a subprocess) or take more than a few seconds carry ``slow``: the
quick loop is ``pytest -m "not slow"``, plain ``pytest`` runs everything.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("METAPLASTIC_DATA", "").strip() or REPO / "data")

IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _process_settings_restored():
    """metaplastic.fast.enable (the one --impl switch) records its choice in runtime.SETTINGS,
    which config.json's environment reports; a test's choice must not leak into later tests.
    (Tests that fake runtime's measurements do it with monkeypatch, which undoes itself; real
    measurements stay cached for the process, as in a run.)"""
    from metaplastic.method import runtime

    settings = dict(runtime.SETTINGS)
    yield
    runtime.SETTINGS.clear()
    runtime.SETTINGS.update(settings)


@pytest.fixture
def fresh_caches():
    """Empty dataset and hash caches (metaplastic.data.datasets) before and after the test; a module
    asks for it with ``pytestmark = pytest.mark.usefixtures("fresh_caches")``."""
    from metaplastic.data import datasets

    datasets.clear_caches()
    yield
    datasets.clear_caches()


# --------------------------------------------------------------------------- real data


def have_data(*datasets: str) -> bool:
    """Whether every prepared file of ``datasets`` ('MNIST', 'FashionMNIST', 'USPS') is under
    :data:`DATA_ROOT`."""
    from metaplastic.data.registry import DATASETS

    return all((DATA_ROOT / f).is_file() for name in datasets for f in DATASETS[name].paths)


def needs_data(*datasets: str):
    """Skip marker for tests that read the prepared ``datasets`` under :data:`DATA_ROOT`."""
    return pytest.mark.skipif(
        not have_data(*datasets),
        reason=f"{', '.join(datasets)} not prepared under {DATA_ROOT}: run "
               f"`python -m metaplastic.data_prep --data-root {DATA_ROOT}`"
               + (" (USPS: add --datasets USPS --usps-h5 PATH, or --usps-dir DIR, or --download)"
                  if "USPS" in datasets else ""))


# --------------------------------------------------------------------------- processes


def run_script(script: str, *args, cwd=REPO, timeout: float = 900, **env) -> subprocess.CompletedProcess:
    """Run a repository script (e.g. 'continual_learning/main.py') in a fresh Python with the
    repository on its path; stdout and stderr captured as text. ``env`` adds variables."""
    environ = dict(os.environ, PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, str(REPO / script), *map(str, args)],
                          capture_output=True, text=True, env=environ, cwd=cwd, timeout=timeout)


# --------------------------------------------------------------------------- synthetic data


def write_idx_dataset(root: Path, name: str, arrays: dict, monkeypatch) -> Path:
    """Write ``arrays`` (IDX file name -> uint8 images (n, 28, 28) or labels (n,)) as
    ``root/name/raw/<file>`` and register their SHA-256 for this test, as metaplastic.data.registry records
    the real files'. Returns the folder."""
    from metaplastic.data.registry import SHA256
    from metaplastic.data.sources.common import encode_idx_images, encode_idx_labels

    folder = root / name / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, array in arrays.items():
        encode = encode_idx_images if array.ndim == 3 else encode_idx_labels
        data = encode(array)
        (folder / file_name).write_bytes(data)
        monkeypatch.setitem(SHA256, f"{name}/raw/{file_name}",
                            hashlib.sha256(data).hexdigest())
    return folder


def idx_arrays(train_x, train_y, test_x, test_y) -> dict:
    """The four IDX file names mapped to the training and test images and labels."""
    return dict(zip(IDX_NAMES, (train_x, train_y, test_x, test_y)))


def pickle_dump(path: Path, obj) -> None:
    """Pickle as torchvision's CIFAR files are (protocol 2)."""
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def gaussian_tasks(names=("A", "B"), n: int = 200, dim: int = 20, classes: int = 4,
                   seed: int = 0, batch: int = 50):
    """Tiny learnable tasks: ``classes`` Gaussian blobs in ``dim`` dimensions, ``n`` training
    and ``n // 2`` test examples each (metaplastic.data.tasks.TaskData)."""
    import torch

    from metaplastic.data.tasks import TaskData

    g = torch.Generator().manual_seed(seed)
    tasks = []
    for name in names:
        centers = torch.randn(classes, dim, generator=g) * 2
        y = torch.randint(0, classes, (n,), generator=g)
        x = centers[y] + torch.randn(n, dim, generator=g)
        yt = torch.randint(0, classes, (n // 2,), generator=g)
        xt = centers[yt] + torch.randn(n // 2, dim, generator=g)
        tasks.append(TaskData(name, x, y, xt, yt, test_batch_size=batch,
                              train_eval_batch_size=batch))
    return tasks


def write_cifar_folder(root, which: str, train_x: np.ndarray, train_y: np.ndarray,
                       test_x: np.ndarray, test_y: np.ndarray,
                       label_names=None) -> Path:
    """Write images (uint8 N x 3 x 32 x 32 or N x 3072) and labels in torchvision's layout:
    pickles (protocol 2) of dicts with bytes keys, as the official files load in Python 3.

    CIFAR-10's training set is split into five batch files in order (sizes differ by at most
    one); CIFAR-100 stores fine labels (and coarse labels = fine // 5, for completeness).
    """
    from metaplastic.data import cifar

    folder, _ = cifar._layout(which)
    base = Path(root) / folder
    base.mkdir(parents=True, exist_ok=True)
    flat = lambda a: np.ascontiguousarray(np.asarray(a, dtype=np.uint8).reshape(len(a), cifar.PIXELS))  # noqa: E731

    def dump(name: str, obj: dict) -> None:
        with open(base / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    if which == "cifar10":
        names = list(label_names or [f"class{i}" for i in range(10)])
        chunks = np.array_split(np.arange(len(train_x)), 5)
        for i, idx in enumerate(chunks, start=1):
            dump(f"data_batch_{i}", {b"batch_label": f"training batch {i} of 5".encode(),
                                     b"labels": [int(v) for v in np.asarray(train_y)[idx]],
                                     b"data": flat(np.asarray(train_x)[idx]),
                                     b"filenames": [f"img{j}.png".encode() for j in idx]})
        dump(cifar.CIFAR10_TEST_FILE, {b"batch_label": b"testing batch 1 of 1",
                                 b"labels": [int(v) for v in np.asarray(test_y)],
                                 b"data": flat(test_x),
                                 b"filenames": [f"t{j}.png".encode() for j in range(len(test_x))]})
        dump(cifar.CIFAR10_META_FILE, {b"num_cases_per_batch": max(len(c) for c in chunks),
                                 b"label_names": [n.encode() for n in names], b"num_vis": cifar.PIXELS})
    else:
        names = list(label_names or [f"fine{i}" for i in range(100)])
        for name, x, y in ((cifar.CIFAR100_TRAIN_FILE, train_x, train_y), (cifar.CIFAR100_TEST_FILE, test_x, test_y)):
            fine = [int(v) for v in np.asarray(y)]
            dump(name, {b"batch_label": name.encode(), b"fine_labels": fine,
                        b"coarse_labels": [v // 5 for v in fine], b"data": flat(x),
                        b"filenames": [f"{name}{j}.png".encode() for j in range(len(x))]})
        dump(cifar.CIFAR100_META_FILE, {b"fine_label_names": [n.encode() for n in names],
                                  b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return base
