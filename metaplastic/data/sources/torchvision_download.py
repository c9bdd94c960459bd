"""Any dataset through torchvision's own downloaders: only with ``--download`` (needs internet).

``torchvision.datasets.X(tmp, download=True)`` fetches into a temporary folder under the data
root (torchvision checks the MD5s it publishes); then every file the project reads is checked
against the registry (:mod:`metaplastic.data.registry`) and copied into place atomically:

* MNIST, Fashion-MNIST: torchvision unpacks its ``.gz`` files into ``<Name>/raw/``; the
  uncompressed bytes are the same as the offline preparation's, so they must match the registry's
  SHA-256 exactly.
* USPS: torchvision's ``usps.bz2`` and ``usps.t.bz2`` go to ``USPS/``; checked by the registry's
  MD5 (torchvision's; no SHA-256 known), and parsed by torchvision while downloading.
* CIFAR-10/100: the folders ``cifar-10-batches-py/`` and ``cifar-100-python/``; each file checked
  by the registry's MD5 (torchvision's), the layout and label names read back.

The tarballs and ``.gz`` files are not kept. Checksums come from the registry tables, or from
``sha_table`` / ``md5_table`` when given (tests substitute sums of synthetic files).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

from metaplastic.data.registry import DATASETS, how_to_obtain
from metaplastic.data.root import data_root_or_default
from metaplastic.data.sources.common import Log, copy_verified, files_to_produce
from metaplastic.data.sources.usps_files import usps_form_present
from metaplastic.errors import DataError, MetaplasticError, import_torchvision

#: Datasets that torchvision can download (every one of the registry), and the files each must provide.
DOWNLOADABLE: dict[str, tuple[str, ...]] = {d.name: d.download_paths for d in DATASETS.values()}


def _fetch(name: str, folder: Path) -> None:
    """Run torchvision's downloader for ``name`` into ``folder`` (its own layout)."""
    tv = import_torchvision("--download").datasets
    if name == "USPS":
        for train in (True, False):  # torchvision keeps USPS's files directly in its root
            tv.USPS(str(folder / "USPS"), train=train, download=True)
    else:
        getattr(tv, name)(str(folder), train=True, download=True)


def _check_structure(name: str, folder: Path) -> None:
    """Beyond checksums: CIFAR's folder must be complete and its label names readable."""
    if name in ("CIFAR10", "CIFAR100"):
        from metaplastic.data import cifar

        which = name.lower()
        cifar.check_present(folder, which)
        cifar.read_label_names(folder, which)


def download_dataset(
    root: Path,
    name: str,
    log: Log = print,
    sha_table: Mapping[str, str] | None = None,
    md5_table: Mapping[str, str] | None = None,
) -> list[Path]:
    """Fetch ``name`` with torchvision into ``root`` unless its files are already valid; return files written."""
    log(f"{name} (torchvision download):")
    if name not in DOWNLOADABLE:
        raise DataError(f"torchvision cannot download {name!r}")
    if name == "USPS" and usps_form_present(root, sha_table, md5_table) == "h5":
        log("  USPS/usps.h5: ok")
        return []
    needed = files_to_produce(root, DOWNLOADABLE[name], log, sha_table, md5_table)
    if not needed:
        return []
    root.mkdir(parents=True, exist_ok=True)
    written = []
    # A hidden folder under the data root: same disk as the data, removed afterwards.
    with tempfile.TemporaryDirectory(prefix=".metaplastic-download-", dir=root) as tmp:
        folder = Path(tmp)
        log("  downloading with torchvision (needs internet)")
        try:
            _fetch(name, folder)
        except MetaplasticError:   # its own message (missing torchvision, ...)
            raise
        except Exception as error:  # URLError, RuntimeError (MD5 mismatch), OSError, ...
            raise DataError(f"downloading {name} with torchvision failed ({type(error).__name__}: "
                            f"{error}).\nWithout internet, {how_to_obtain(name, root)}") from None
        _check_structure(name, folder)
        for rel in needed:
            if not (folder / rel).is_file():
                raise DataError(f"torchvision's download of {name} did not produce {rel}")
            written.append(copy_verified(root, rel, folder / rel, sha_table, md5_table))
            log(f"  {rel}: written, checksum verified")
    return written


def download_cifar(root: str | os.PathLike | None, which: str = "cifar10") -> Path:
    """Only behind an explicit ``--download``: CIFAR-10 or CIFAR-100 (``which``) through
    :func:`download_dataset` (a temporary folder, every file checked against the registry) into
    ``root`` (None: the default data root); returns the dataset's folder."""
    from metaplastic.data import cifar

    root_path = data_root_or_default(root)
    cifar.missing_files(root_path, which)   # refuses an unknown name before any download
    download_dataset(root_path, "CIFAR10" if which == "cifar10" else "CIFAR100")
    return cifar.check_present(root_path, which)
