"""USPS from a file the user gives: no package registry ships it.

Two interchangeable forms end up under ``<root>/USPS/`` (``mnist_usps`` reads either, and both
give identical pixels):

* ``usps.h5`` (``--usps-h5 PATH``): the widely circulated HDF5 copy of the LIBSVM USPS, checked
  by its SHA-256;
* torchvision's ``usps.bz2`` and ``usps.t.bz2`` (``--usps-dir DIR``, a folder holding both, e.g.
  what ``torchvision.datasets.USPS(DIR, download=True)`` left there), checked by torchvision's
  MD5s (no SHA-256 of them could be obtained offline).

Without a source, USPS is skipped (or refused when asked for explicitly) with a message naming
``--usps-h5``, ``--usps-dir`` and ``--download``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from metaplastic.data.registry import DATASETS, how_to_obtain
from metaplastic.data.sources.common import Log, copy_verified, files_to_produce, has_expected_hash
from metaplastic.errors import ConfigError, DataError

USPS = DATASETS["USPS"]


def usps_form_present(root: Path, sha_table: Mapping[str, str] | None = None,
                      md5_table: Mapping[str, str] | None = None) -> str | None:
    """``"h5"`` or ``"bz2"`` when that form of USPS is complete and valid under ``root``, else None."""
    for form, files in (("h5", USPS.paths), ("bz2", USPS.other_form_paths)):
        if all(has_expected_hash(root, rel, sha_table, md5_table) for rel in files):
            return form
    return None


def _copy_files(root: Path, sources: dict[str, Path], log: Log) -> list[Path]:
    """Copy each ``rel_path -> source file`` that is absent or corrupt, verifying its checksum."""
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        raise DataError(f"no such file: {', '.join(missing)}")
    written = []
    for rel in files_to_produce(root, sources, log):
        log(f"  copying {sources[rel]}")
        try:
            written.append(copy_verified(root, rel, sources[rel]))
        except DataError as error:
            raise DataError(f"{sources[rel]} is not the expected USPS file: {error}") from None
        log(f"  {rel}: written, checksum verified")
    return written


def prepare_usps(
    root: Path,
    usps_h5: str | os.PathLike[str] | None = None,
    usps_dir: str | os.PathLike[str] | None = None,
    log: Log = print,
    required: bool = False,
) -> list[Path]:
    """Put USPS under ``root/USPS/`` from ``usps_h5`` or ``usps_dir``; return the files written.

    With neither source, a USPS already present (either form) is reported as ok; otherwise USPS
    is skipped with a log message, or, when ``required``, refused with a :class:`DataError`.
    """
    log("USPS:")
    if usps_h5 is not None and usps_dir is not None:
        raise ConfigError("give one USPS source: --usps-h5 PATH or --usps-dir DIR, not both")
    if usps_h5 is not None:
        source = Path(usps_h5).expanduser()
        if not source.is_file():
            raise DataError(f"--usps-h5 {source}: no such file")
        return _copy_files(root, {USPS.paths[0]: source}, log)
    if usps_dir is not None:
        folder = Path(usps_dir).expanduser()
        if not folder.is_dir():
            raise DataError(f"--usps-dir {folder}: no such folder (it should hold usps.bz2 and usps.t.bz2)")
        return _copy_files(root, {rel: folder / Path(rel).name for rel in USPS.other_form_paths}, log)
    form = usps_form_present(root)
    if form is not None:
        for rel in USPS.paths if form == "h5" else USPS.other_form_paths:
            log(f"  {rel}: ok")
        return []
    message = f"USPS is not under {root / 'USPS'} and no source was given; {how_to_obtain('USPS', root)}"
    if required:
        raise DataError(message)
    log("  skipped: " + message.replace("\n", "\n  "))
    return []
