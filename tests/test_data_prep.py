"""Tests of metaplastic.data_prep on tiny synthetic files (no network)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from metaplastic import data_prep, fileio
from metaplastic.data import registry, root as data_root
from metaplastic.data.datasets import read_idx
from metaplastic.data.sources import common, fashion_deb, mnist_wheel, usps_files
from metaplastic.data.sources.common import encode_idx_images, encode_idx_labels, write_verified
from metaplastic.data.sources.fashion_deb import iter_ar_members, read_files_from_deb
from metaplastic.errors import ConfigError, DataError, MetaplasticError
from metaplastic.restricted_pickle import restricted_loads


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def leftover_temp_files(folder: Path) -> list[Path]:
    """Temporary files that an atomic write might have left behind."""
    return [path for path in folder.rglob("*") if path.name.endswith(".tmp")]


# --------------------------------------------------------------------------------------------
# IDX encoding
# --------------------------------------------------------------------------------------------


def test_idx_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    (tmp_path / "images").write_bytes(encode_idx_images(images))
    (tmp_path / "labels").write_bytes(encode_idx_labels(labels))

    assert np.array_equal(read_idx(tmp_path / "images").numpy(), images)
    assert np.array_equal(read_idx(tmp_path / "labels").numpy(), labels)
    header = (tmp_path / "images").read_bytes()[:16]
    assert header == bytes.fromhex("00000803" "00000005" "0000001c" "0000001c")


def test_encode_idx_rejects_wrong_dtype() -> None:
    with pytest.raises(ValueError):
        encode_idx_images(np.zeros((2, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError):
        encode_idx_labels(np.zeros((2, 1), dtype=np.uint8))


def test_pixels_to_uint8_requires_exact_multiples_of_1_over_256() -> None:
    exact = np.array([0, 1, 128, 255], dtype=np.float32) / 256
    assert mnist_wheel.pixels_to_uint8(exact, "x").tolist() == [0, 1, 128, 255]
    with pytest.raises(DataError, match="not exact"):
        mnist_wheel.pixels_to_uint8(np.array([0.5 / 256], dtype=np.float32), "x")
    with pytest.raises(DataError):
        mnist_wheel.pixels_to_uint8(np.array([1.0], dtype=np.float32), "x")


# --------------------------------------------------------------------------------------------
# Restricted unpickler
# --------------------------------------------------------------------------------------------


class _RunsCommand:
    """An object whose pickle would call os.system when loaded by a plain unpickler."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_restricted_unpickler_refuses_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2)
    assert b"system" in payload

    with pytest.raises(pickle.UnpicklingError, match="refused global"):
        restricted_loads(payload)
    assert not marker.exists()


@pytest.mark.parametrize("forbidden", [eval, getattr, __import__, Path])
def test_restricted_unpickler_refuses_other_globals(forbidden) -> None:
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(pickle.dumps(forbidden, protocol=2))


def test_restricted_unpickler_refuses_non_latin1_codecs() -> None:
    # _codecs.encode is admitted only as latin-1 encoding of a str (what protocol-2 bytes need).
    payload = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(pickle.UnpicklingError):
        restricted_loads(payload)


@pytest.mark.parametrize("protocol", [2, 5])
def test_restricted_unpickler_accepts_numpy_arrays(protocol: int) -> None:
    original = ((np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2, 3], dtype=np.int64)),
                np.float32(1.5), np.dtype(">u4"))
    loaded = restricted_loads(pickle.dumps(original, protocol=protocol))
    (x, y), scalar, dtype = loaded
    assert np.array_equal(x, original[0][0]) and x.dtype == np.float32
    assert np.array_equal(y, original[0][1]) and y.dtype == np.int64
    assert scalar == np.float32(1.5) and dtype == np.dtype(">u4")


def test_restricted_unpickler_accepts_legacy_numpy_core_name() -> None:
    # Old pickles (like mnist.pkl.gz) name numpy.core.multiarray, numpy 2 writes numpy._core.
    array = np.arange(6, dtype=np.float32)
    payload = pickle.dumps(array, protocol=2)
    legacy = payload.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"numpy.core.multiarray" in legacy
    assert np.array_equal(restricted_loads(legacy), array)


# --------------------------------------------------------------------------------------------
# Atomic, verified writes
# --------------------------------------------------------------------------------------------


def test_write_verified_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    data = b"synthetic contents\n" * 100
    table = {"Synth/raw/file": sha256_bytes(data)}

    target = write_verified(tmp_path, "Synth/raw/file", data, sha_table=table)

    assert target == tmp_path / "Synth/raw/file"
    assert target.read_bytes() == data
    assert leftover_temp_files(tmp_path) == []


def test_write_verified_rejects_corrupted_bytes_naming_file_and_hashes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    corrupted = bytearray(data)
    corrupted[100] ^= 0xFF
    table = {"Synth/raw/file": sha256_bytes(data)}

    with pytest.raises(DataError) as caught:
        write_verified(tmp_path, "Synth/raw/file", bytes(corrupted), sha_table=table)

    message = str(caught.value)
    assert "Synth/raw/file" in message
    assert sha256_bytes(data) in message and sha256_bytes(bytes(corrupted)) in message
    assert not (tmp_path / "Synth/raw/file").exists()
    assert leftover_temp_files(tmp_path) == []


def test_write_verified_keeps_previous_file_on_failure(tmp_path: Path) -> None:
    good = b"good"
    table = {"f": sha256_bytes(good)}
    write_verified(tmp_path, "f", good, sha_table=table)
    with pytest.raises(DataError):
        write_verified(tmp_path, "f", b"bad", sha_table=table)
    assert (tmp_path / "f").read_bytes() == good


def test_write_verified_needs_a_recorded_hash(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no SHA-256"):
        write_verified(tmp_path, "unknown/file", b"x", sha_table={})


def test_files_to_produce_skips_valid_and_redoes_corrupt(tmp_path: Path, monkeypatch) -> None:
    good, bad = b"good file", b"bad file"
    monkeypatch.setitem(registry.SHA256, "S/good", sha256_bytes(good))
    monkeypatch.setitem(registry.SHA256, "S/bad", sha256_bytes(good))
    (tmp_path / "S").mkdir()
    (tmp_path / "S/good").write_bytes(good)
    (tmp_path / "S/bad").write_bytes(bad)
    messages: list[str] = []

    needed = common.files_to_produce(tmp_path, ["S/good", "S/bad", "S/absent"], messages.append)

    assert needed == ["S/bad", "S/absent"]
    assert any("S/good: ok" in m for m in messages)
    assert any("S/bad: wrong SHA-256" in m for m in messages)


# --------------------------------------------------------------------------------------------
# ar archives and .deb packages
# --------------------------------------------------------------------------------------------


def ar_member(name: str, data: bytes) -> bytes:
    """One member of a Unix ar archive: 60-byte header, data, padding to an even length."""
    header = (f"{name + '/':<16}" f"{0:<12}" f"{0:<6}" f"{0:<6}" f"{100644:<8}" f"{len(data):<10}"
              ).encode("ascii") + b"`\n"
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A gzip-compressed tar archive holding ``files`` (names as given)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def build_deb(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal .deb (debian-binary, control.tar.gz, data.tar.gz) whose data holds ``files``."""
    members = [
        ar_member("debian-binary", b"2.0\n"),
        ar_member("control.tar.gz", tar_gz({"./control": b"Package: synthetic\n"})),
        ar_member("data.tar.gz", tar_gz(files)),
    ]
    path.write_bytes(b"!<arch>\n" + b"".join(members))
    return path


def test_iter_ar_members_handles_odd_sizes() -> None:
    archive = b"!<arch>\n" + ar_member("a", b"odd") + ar_member("b", b"even")
    assert list(iter_ar_members(io.BytesIO(archive))) == [("a", b"odd"), ("b", b"even")]


def test_iter_ar_members_rejects_non_ar_data() -> None:
    with pytest.raises(DataError, match="not an ar archive"):
        list(iter_ar_members(io.BytesIO(b"PK\x03\x04 not an ar file")))
    with pytest.raises(DataError, match="truncated"):
        list(iter_ar_members(io.BytesIO(b"!<arch>\n" + ar_member("a", b"abcdef")[:-3])))


def test_read_files_from_synthetic_deb(tmp_path: Path) -> None:
    wanted = "usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
    deb = build_deb(tmp_path / "synthetic_1.0_all.deb", {
        f"./{wanted}": b"compressed labels",
        "./usr/share/doc/synthetic/copyright": b"licence",
    })
    found = read_files_from_deb(deb, [wanted, "usr/share/absent"])
    assert found == {wanted: b"compressed labels"}


def test_read_files_from_deb_without_data_member(tmp_path: Path) -> None:
    deb = tmp_path / "broken.deb"
    deb.write_bytes(b"!<arch>\n" + ar_member("debian-binary", b"2.0\n"))
    with pytest.raises(DataError, match="no data.tar"):
        read_files_from_deb(deb, ["x"])


def test_prepare_fashion_mnist_from_installed_gz_files(tmp_path: Path, monkeypatch) -> None:
    """The full Fashion-MNIST path on synthetic .gz files standing in for the installed package."""
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    raw_contents = {}
    for index, name in enumerate(registry.IDX_FILE_NAMES):
        raw = encode_idx_labels(np.full(3 + index, index, dtype=np.uint8))
        raw_contents[name] = raw
        (system_dir / f"{name}.gz").write_bytes(gzip.compress(raw))
        monkeypatch.setitem(registry.SHA256, f"FashionMNIST/raw/{name}", sha256_bytes(raw))
    monkeypatch.setattr(fashion_deb, "FASHION_SYSTEM_DIR", system_dir)
    root = tmp_path / "root"

    written = data_prep.prepare(root, datasets=["FMNIST"], log=lambda message: None)

    assert len(written["FashionMNIST"]) == 4
    for name, raw in raw_contents.items():
        assert (root / "FashionMNIST/raw" / name).read_bytes() == raw
    assert data_prep.prepare(root, datasets=["fashionmnist"], log=lambda m: None) == {"FashionMNIST": []}


# --------------------------------------------------------------------------------------------
# USPS, names, command line
# --------------------------------------------------------------------------------------------

def write_synthetic_usps_h5(path: Path, monkeypatch) -> Path:
    """A tiny usps.h5 in the published layout, its SHA-256 substituted in the registry."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for split, n in (("train", 5), ("test", 3)):
            group = f.create_group(split)
            group["data"] = (rng.integers(-1000, 1001, size=(n, 256)) / 1000 + 1).astype(np.float32) / 2
            group["target"] = rng.integers(0, 10, size=n).astype(np.int32)
    monkeypatch.setitem(registry.SHA256, "USPS/usps.h5", fileio.sha256_file(path))
    return path


def write_synthetic_usps_bz2(folder: Path, monkeypatch) -> dict[str, bytes]:
    """torchvision's usps.bz2 / usps.t.bz2 (LIBSVM lines, bz2), their MD5s substituted in the registry."""
    import bz2

    folder.mkdir(parents=True, exist_ok=True)
    contents = {}
    for name, label in (("usps.bz2", 3), ("usps.t.bz2", 10)):
        data = bz2.compress(f"{label} 1:-1.000 2:0.500 256:1.000\n".encode())
        (folder / name).write_bytes(data)
        contents[name] = data
        monkeypatch.setitem(registry.MD5, f"USPS/{name}", hashlib.md5(data).hexdigest())
    return contents


def test_prepare_usps_from_usps_h5_checks_hash_and_is_idempotent(tmp_path: Path, monkeypatch) -> None:
    source = write_synthetic_usps_h5(tmp_path / "elsewhere/usps.h5", monkeypatch)
    root = tmp_path / "root"
    messages: list[str] = []

    written = data_prep.prepare(root, datasets=["USPS"], usps_h5=source, log=messages.append)

    target = root / "USPS/usps.h5"
    assert written == {"USPS": [target]}
    assert target.read_bytes() == source.read_bytes()
    assert leftover_temp_files(root) == []
    assert data_prep.prepare(root, datasets=["usps"], usps_h5=source, log=messages.append) == {"USPS": []}
    assert data_prep.prepare(root, datasets=["usps"], log=messages.append) == {"USPS": []}
    assert any("USPS/usps.h5: ok" in m for m in messages)


def test_prepare_usps_refuses_an_h5_with_the_wrong_hash(tmp_path: Path, monkeypatch) -> None:
    source = write_synthetic_usps_h5(tmp_path / "usps.h5", monkeypatch)
    monkeypatch.setitem(registry.SHA256, "USPS/usps.h5", "0" * 64)
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        data_prep.prepare(tmp_path / "root", datasets=["USPS"], usps_h5=source, log=lambda m: None)
    assert not (tmp_path / "root/USPS/usps.h5").exists()
    assert leftover_temp_files(tmp_path) == []


def test_prepare_usps_from_a_folder_of_torchvision_files(tmp_path: Path, monkeypatch) -> None:
    contents = write_synthetic_usps_bz2(tmp_path / "tv", monkeypatch)
    root = tmp_path / "root"

    written = data_prep.prepare(root, datasets=["USPS"], usps_dir=tmp_path / "tv", log=lambda m: None)

    assert sorted(p.name for p in written["USPS"]) == ["usps.bz2", "usps.t.bz2"]
    for name, data in contents.items():
        assert (root / "USPS" / name).read_bytes() == data
    assert data_prep.prepare(root, datasets=["USPS"], log=lambda m: None) == {"USPS": []}
    monkeypatch.setitem(registry.MD5, "USPS/usps.t.bz2", "0" * 32)
    with pytest.raises(DataError, match="MD5 mismatch"):
        data_prep.prepare(tmp_path / "other", datasets=["USPS"], usps_dir=tmp_path / "tv", log=lambda m: None)
    with pytest.raises(DataError, match="usps.t.bz2"):
        (tmp_path / "tv/usps.t.bz2").unlink()
        data_prep.prepare(tmp_path / "other", datasets=["USPS"], usps_dir=tmp_path / "tv", log=lambda m: None)


REAL_USPS_H5 = data_root.default_data_root() / "USPS/usps.h5"


@pytest.mark.skipif(not REAL_USPS_H5.is_file(),
                    reason=f"no real usps.h5 under the data root ({REAL_USPS_H5}); prepare USPS with "
                           "python -m metaplastic.data_prep --usps-h5 PATH (or --usps-dir DIR, or --download)")
def test_prepare_usps_copies_a_real_usps_h5_and_checks_hash(tmp_path: Path) -> None:
    messages: list[str] = []
    written = data_prep.prepare(tmp_path, datasets=["USPS"], usps_h5=REAL_USPS_H5, log=messages.append)

    target = tmp_path / "USPS/usps.h5"
    assert written == {"USPS": [target]}
    assert fileio.sha256_file(target) == registry.SHA256["USPS/usps.h5"]
    assert leftover_temp_files(tmp_path) == []


def test_prepare_usps_without_a_source_names_every_way(tmp_path: Path, capsys) -> None:
    # Not asked for explicitly (the default datasets): USPS is skipped with a message, no error.
    messages: list[str] = []
    written = usps_files.prepare_usps(tmp_path, log=messages.append)
    assert written == []
    text = "\n".join(messages)
    assert "skipped" in text
    for option in ("--usps-h5", "--usps-dir", "--download"):
        assert option in text
    assert "shared" not in text
    assert not (tmp_path / "USPS/usps.h5").exists()
    # Asked for explicitly: an error (exit status 2) with the same instructions.
    status = data_prep.main(["--data-root", str(tmp_path), "--datasets", "USPS"])
    err = capsys.readouterr().err
    assert status == 2 and "--usps-h5" in err and "--download" in err and "shared" not in err


def test_explicit_missing_usps_h5_is_an_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.h5"
    with pytest.raises(DataError, match="no such file"):
        data_prep.prepare(tmp_path, datasets=["USPS"], usps_h5=missing, log=lambda m: None)

    status = data_prep.main(["--data-root", str(tmp_path), "--datasets", "USPS", "--usps-h5", str(missing)])
    captured = capsys.readouterr()
    assert status == 2
    assert "no such file" in captured.err and "Traceback" not in captured.err


def test_unknown_dataset_is_a_config_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError):
        data_prep.prepare(tmp_path, datasets=["ImageNet"], log=lambda m: None)
    assert data_prep.main(["--data-root", str(tmp_path), "--datasets", "nope"]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_error_hierarchy() -> None:
    assert issubclass(DataError, MetaplasticError) and issubclass(ConfigError, MetaplasticError)


def test_default_data_root_reads_environment(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("METAPLASTIC_DATA", str(tmp_path))
    assert data_root.default_data_root() == tmp_path
    monkeypatch.delenv("METAPLASTIC_DATA")
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)                      # never the working directory
    assert data_root.default_data_root() == repo / "data"
    # an installed package (no clone around it): the per-user folder
    monkeypatch.setattr(data_root, "clone_root", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert data_root.default_data_root() == tmp_path / "share" / "metaplastic-bnn" / "data"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert data_root.default_data_root() == Path.home() / ".local/share/metaplastic-bnn/data"


def test_registry_has_a_checksum_for_every_file() -> None:
    for files in (d.paths for d in registry.DATASETS.values()):
        for rel_path in files:
            assert len(registry.SHA256.get(rel_path, "")) == 64 or len(registry.MD5[rel_path]) == 32
    for dataset in ("MNIST", "FashionMNIST", "USPS"):  # what the offline preparation writes
        for rel_path in registry.DATASETS[dataset].paths:
            assert len(registry.SHA256[rel_path]) == 64
    paths = [f.path for f in registry.FILES]
    assert len(paths) == len(set(paths))
    assert all(f.what for f in registry.FILES)


def test_every_missing_data_hint_names_both_ways(tmp_path: Path) -> None:
    for dataset in registry.DATASETS:
        hint = registry.how_to_obtain(dataset, tmp_path)
        assert "--download" in hint and "shared" not in hint
        if dataset in ("MNIST", "FashionMNIST"):
            assert registry.prepare_command(tmp_path) in hint
        if dataset == "USPS":
            assert "--usps-h5" in hint and "--usps-dir" in hint
        if dataset.startswith("CIFAR"):
            assert "cifar-" in hint and str(tmp_path) in hint
