"""Helpers every source uses: verified atomic writes, the skip-when-valid check, IDX encoding,
and running external commands (pip, apt-get, dpkg-deb)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from metaplastic.data.registry import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, MD5, SHA256
from metaplastic.errors import DataError
from metaplastic.fileio import md5_file, sha256_file, write_atomic

Log = Callable[[str], None]


def _expected_sum(rel_path: str, sha_table: Mapping[str, str] | None,
                  md5_table: Mapping[str, str] | None) -> tuple[str, str]:
    """``(algorithm, hex digest)`` recorded for ``rel_path``: SHA-256 if known, else torchvision's MD5."""
    sha_table = SHA256 if sha_table is None else sha_table
    md5_table = MD5 if md5_table is None else md5_table
    if rel_path in sha_table:
        return "SHA-256", sha_table[rel_path]
    if rel_path in md5_table:
        return "MD5", md5_table[rel_path]
    raise DataError(f"no SHA-256 (or MD5) is recorded for {rel_path!r}")


def has_expected_hash(root: Path, rel_path: str, sha_table: Mapping[str, str] | None = None,
                      md5_table: Mapping[str, str] | None = None) -> bool:
    """True when ``root/rel_path`` exists and matches its recorded sum."""
    algorithm, expected = _expected_sum(rel_path, sha_table, md5_table)
    path = root / rel_path
    if not path.is_file():
        return False
    return (sha256_file(path) if algorithm == "SHA-256" else md5_file(path)) == expected


def _checker(rel_path: str, sha_table: Mapping[str, str] | None,
             md5_table: Mapping[str, str] | None) -> Callable[[Path], None]:
    """A ``check`` for :func:`write_atomic` comparing the temporary file with the recorded sum."""
    algorithm, expected = _expected_sum(rel_path, sha_table, md5_table)

    def check(tmp_path: Path) -> None:
        actual = sha256_file(tmp_path) if algorithm == "SHA-256" else md5_file(tmp_path)
        if actual != expected:
            raise DataError(f"{rel_path}: {algorithm} mismatch for the freshly produced file "
                            f"(expected {expected}, got {actual}); the source may have changed")
    return check


def write_verified(root: Path, rel_path: str, data: bytes,
                   sha_table: Mapping[str, str] | None = None,
                   md5_table: Mapping[str, str] | None = None) -> Path:
    """Write ``data`` to ``root/rel_path`` atomically, refusing it unless it matches its recorded sum.

    The bytes go to a temporary file in the target's folder, flushed, fsynced and hashed from disk;
    only a match is moved into place. On any failure the target is left as it was.
    """
    check = _checker(rel_path, sha_table, md5_table)
    return write_atomic(root / rel_path, data, check=check)


def copy_verified(root: Path, rel_path: str, source: Path,
                  sha_table: Mapping[str, str] | None = None,
                  md5_table: Mapping[str, str] | None = None) -> Path:
    """Copy the file ``source`` to ``root/rel_path`` like :func:`write_verified` (streamed)."""
    check = _checker(rel_path, sha_table, md5_table)

    def copy(stream) -> None:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, stream, 1 << 20)

    return write_atomic(root / rel_path, copy, check=check)


def files_to_produce(root: Path, rel_paths: Iterable[str], log: Log,
                     sha_table: Mapping[str, str] | None = None,
                     md5_table: Mapping[str, str] | None = None) -> list[str]:
    """The files among ``rel_paths`` that are absent or corrupt (logging the state of each)."""
    needed = []
    for rel_path in rel_paths:
        path = root / rel_path
        if not path.exists():
            needed.append(rel_path)
        elif has_expected_hash(root, rel_path, sha_table, md5_table):
            log(f"  {rel_path}: ok")
        else:
            algorithm, _ = _expected_sum(rel_path, sha_table, md5_table)
            log(f"  {rel_path}: wrong {algorithm}, re-creating it")
            needed.append(rel_path)
    return needed


def write_all_verified(root: Path, contents: Mapping[str, bytes], log: Log,
                       sha_table: Mapping[str, str] | None = None) -> list[Path]:
    """Write each ``rel_path -> bytes`` item with :func:`write_verified`, logging each file."""
    written = []
    for rel_path, data in contents.items():
        written.append(write_verified(root, rel_path, data, sha_table))
        log(f"  {rel_path}: written, {_expected_sum(rel_path, sha_table, None)[0]} verified")
    return written


# --------------------------------------------------------------------------------------------
# IDX encoding
# --------------------------------------------------------------------------------------------


def encode_idx_images(images: np.ndarray) -> bytes:
    """IDX bytes (magic 2051, big-endian count, rows, cols) for a uint8 array N x rows x cols."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(f"expected uint8 images N x H x W, got {images.dtype} {images.shape}")
    header = np.array([IDX_IMAGES_MAGIC, *images.shape], dtype=">u4").tobytes()
    return header + np.ascontiguousarray(images).tobytes()


def encode_idx_labels(labels: np.ndarray) -> bytes:
    """IDX bytes (magic 2049, big-endian count) for a uint8 vector of labels."""
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"expected a uint8 label vector, got {labels.dtype} {labels.shape}")
    header = np.array([IDX_LABELS_MAGIC, labels.shape[0]], dtype=">u4").tobytes()
    return header + np.ascontiguousarray(labels).tobytes()


# --------------------------------------------------------------------------------------------
# External commands
# --------------------------------------------------------------------------------------------


def run_command(command: Sequence[str], cwd: Path, what: str) -> None:
    """Run an external command; :class:`DataError` with its output tail if it fails or is missing."""
    try:
        result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError(f"{what}: command {command[0]!r} not found") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-1500:]
        raise DataError(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{tail}")


def is_root_user() -> bool:
    """True when running as root (POSIX); False elsewhere."""
    return hasattr(os, "geteuid") and os.geteuid() == 0
