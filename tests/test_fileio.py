"""Tests of metaplastic.fileio: hashing and the project's one atomic writer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from metaplastic.errors import DataError, MetaplasticError
from metaplastic.fileio import FileWriteError, md5_file, sha256_file, write_atomic
from metaplastic.runs.checkpoint import save_atomic
from metaplastic.runs.records import write_atomic_text


def temp_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


def test_hashes_match_hashlib(tmp_path: Path) -> None:
    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    assert md5_file(tmp_path / "f") == hashlib.md5(data).hexdigest()


def test_write_atomic_bytes_text_and_stream(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a/b/bytes", b"\x00\x01")
    write_atomic(tmp_path / "text", "caf\u00e9\n")
    write_atomic(tmp_path / "stream", lambda f: f.write(b"streamed"))
    assert (tmp_path / "a/b/bytes").read_bytes() == b"\x00\x01"
    assert (tmp_path / "text").read_bytes() == "caf\u00e9\n".encode()
    assert (tmp_path / "stream").read_bytes() == b"streamed"
    assert temp_files(tmp_path) == []


def test_failed_write_names_file_and_cause_and_keeps_previous(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    write_atomic(target, b"previous")

    def fails(stream):
        stream.write(b"half")
        raise ValueError("disk on fire")

    with pytest.raises(FileWriteError) as caught:
        write_atomic(target, fails)
    assert str(target) in str(caught.value) and "disk on fire" in str(caught.value)
    assert isinstance(caught.value, MetaplasticError) and isinstance(caught.value, OSError)
    assert target.read_bytes() == b"previous"
    assert temp_files(tmp_path) == []


def test_check_refuses_file_and_its_error_propagates(tmp_path: Path) -> None:
    def refuse(path: Path) -> None:
        assert path.read_bytes() == b"new" and path != tmp_path / "f"
        raise DataError("checksum mismatch")

    with pytest.raises(DataError, match="checksum mismatch"):
        write_atomic(tmp_path / "f", b"new", check=refuse)
    assert not (tmp_path / "f").exists() and temp_files(tmp_path) == []


def test_unwritable_folder_is_a_file_write_error(tmp_path: Path) -> None:
    (tmp_path / "not_a_dir").write_bytes(b"")
    with pytest.raises(FileWriteError, match="not_a_dir"):
        write_atomic(tmp_path / "not_a_dir" / "f", b"x")


def test_existing_helpers_use_the_atomic_writer(tmp_path: Path) -> None:
    write_atomic_text(tmp_path / "t.csv", "a,b\n1,2\n")
    save_atomic({"x": torch.arange(3)}, tmp_path / "c.pt")
    assert (tmp_path / "t.csv").read_text() == "a,b\n1,2\n"
    assert torch.equal(torch.load(tmp_path / "c.pt")["x"], torch.arange(3))
    with pytest.raises(FileWriteError, match="c.pt"):
        save_atomic({"f": lambda: None}, tmp_path / "c.pt")  # a lambda cannot be pickled
    assert torch.equal(torch.load(tmp_path / "c.pt")["x"], torch.arange(3))
    assert temp_files(tmp_path) == []
