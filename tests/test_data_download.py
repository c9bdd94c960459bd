"""``python -m metaplastic.data_prep --download`` without the internet.

A local HTTP server on 127.0.0.1 serves a mirror, built by the test, of the files torchvision's
downloaders fetch (gzip'ed IDX files, torchvision's USPS bz2 files, CIFAR tarballs in the official
pickle format, all tiny and synthetic); torchvision's URLs are pointed at it. The synthetic files
cannot match the real registry, so the test substitutes their sums in the registry tables.
Any connection to another host fails the test. Without ``--download`` nothing may be fetched.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import hashlib
import io
import pickle
import socket
import tarfile
import threading
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from metaplastic import data_prep
from metaplastic.data import registry
from metaplastic.data.sources import fashion_deb
from metaplastic.data.sources.common import encode_idx_images, encode_idx_labels

tv = pytest.importorskip("torchvision.datasets")


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def connections(monkeypatch) -> list:
    """Every (host, port) a socket connects to; only 127.0.0.1 is let through."""
    attempted: list = []
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        attempted.append(address)
        if address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"network access attempted: {address}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return attempted


class _QuietHandler(SimpleHTTPRequestHandler):
    served: list

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.served.append(self.path)
        super().do_GET()


@pytest.fixture
def mirror(tmp_path: Path):
    """``(folder, base URL, list of served paths)`` of a local HTTP server."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    served: list = []
    handler = type("Handler", (_QuietHandler,), {"served": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def _idx_set(seed: int) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": encode_idx_images(rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)),
        "train-labels-idx1-ubyte": encode_idx_labels(rng.integers(0, 10, 3, dtype=np.uint8)),
        "t10k-images-idx3-ubyte": encode_idx_images(rng.integers(0, 256, (2, 28, 28), dtype=np.uint8)),
        "t10k-labels-idx1-ubyte": encode_idx_labels(rng.integers(0, 10, 2, dtype=np.uint8)),
    }


def _usps_bz2(seed: int, n: int) -> bytes:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        values = " ".join(f"{i}:{v / 1000:.3f}" for i, v in enumerate(rng.integers(-1000, 1001, 256), 1))
        lines.append(f"{int(rng.integers(1, 11))} {values}\n")
    return bz2.compress("".join(lines).encode())


def _cifar_tarball(folder: str, files: dict[str, dict]) -> tuple[bytes, dict[str, bytes]]:
    """A .tar.gz of ``folder/<name>`` pickles (str keys, protocol 2, like the official files)."""
    pickles = {name: pickle.dumps(obj, protocol=2) for name, obj in files.items()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in pickles.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), pickles


def _batch(rng, n: int, label_key: str, classes: int) -> dict:
    return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            label_key: [int(v) for v in rng.integers(0, classes, n)]}


def build_mirror(folder: Path, base: str, monkeypatch) -> dict[str, bytes]:
    """Write the synthetic mirror, point torchvision at it, and substitute the registry's sums.

    Returns the expected contents of every file under the data root, keyed by registry path.
    """
    expected: dict[str, bytes] = {}
    for dataset, sub, seed in (("MNIST", "mnist", 1), ("FashionMNIST", "fashion", 2)):
        (folder / sub).mkdir()
        resources = []
        for name, raw in _idx_set(seed).items():
            gz = gzip.compress(raw)
            (folder / sub / f"{name}.gz").write_bytes(gz)
            resources.append((f"{name}.gz", md5(gz)))
            expected[f"{dataset}/raw/{name}"] = raw
            monkeypatch.setitem(registry.SHA256, f"{dataset}/raw/{name}", sha256(raw))
        monkeypatch.setattr(getattr(tv, dataset), "mirrors", [f"{base}/{sub}/"])
        monkeypatch.setattr(getattr(tv, dataset), "resources", resources)

    (folder / "usps").mkdir()
    split_list = {}
    for split, name, seed, n in (("train", "usps.bz2", 3, 4), ("test", "usps.t.bz2", 4, 2)):
        data = _usps_bz2(seed, n)
        (folder / "usps" / name).write_bytes(data)
        split_list[split] = [f"{base}/usps/{name}", name, md5(data)]
        expected[f"USPS/{name}"] = data
        monkeypatch.setitem(registry.MD5, f"USPS/{name}", md5(data))
    monkeypatch.setattr(tv.USPS, "split_list", split_list)

    rng = np.random.default_rng(5)
    cifar10 = {f"data_batch_{i}": _batch(rng, 2, "labels", 10) for i in range(1, 6)}
    cifar10["test_batch"] = _batch(rng, 2, "labels", 10)
    cifar10["batches.meta"] = {"label_names": [f"c{i}" for i in range(10)]}
    cifar100 = {"train": _batch(rng, 3, "fine_labels", 100), "test": _batch(rng, 2, "fine_labels", 100),
                "meta": {"fine_label_names": [f"f{i}" for i in range(100)]}}
    for cls, folder_name, files, meta_name in (
            (tv.CIFAR10, registry.DATASETS["CIFAR10"].folder, cifar10, "batches.meta"),
            (tv.CIFAR100, registry.DATASETS["CIFAR100"].folder, cifar100, "meta")):
        tarball, pickles = _cifar_tarball(folder_name, files)
        (folder / cls.filename).write_bytes(tarball)
        monkeypatch.setattr(cls, "url", f"{base}/{cls.filename}")
        monkeypatch.setattr(cls, "tgz_md5", md5(tarball))
        names = [name for name in pickles if name != meta_name]
        train = [n for n in names if n.startswith("data_batch") or n == "train"]
        monkeypatch.setattr(cls, "train_list", [[n, md5(pickles[n])] for n in train])
        monkeypatch.setattr(cls, "test_list", [[n, md5(pickles[n])] for n in names if n not in train])
        monkeypatch.setattr(cls, "meta", dict(cls.meta, md5=md5(pickles[meta_name])))
        for name, data in pickles.items():
            expected[f"{folder_name}/{name}"] = data
            monkeypatch.setitem(registry.MD5, f"{folder_name}/{name}", md5(data))
    return expected


def test_download_fetches_every_dataset_through_torchvision(tmp_path: Path, mirror, connections,
                                                            monkeypatch, capsys) -> None:
    folder, base, served = mirror
    expected = build_mirror(folder, base, monkeypatch)
    root = tmp_path / "data"

    assert data_prep.main(["--data-root", str(root), "--datasets", "all", "--download"]) == 0

    for rel, data in expected.items():
        assert (root / rel).read_bytes() == data, rel
    kept = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert kept == sorted(expected)  # no tarball, no .gz, no temporary folder or file
    assert not list(root.glob(".metaplastic-download-*"))
    assert served and {address[0] for address in connections} == {"127.0.0.1"}
    assert "written" in capsys.readouterr().out

    # Everything valid: a second run fetches nothing.
    count = len(served)
    assert data_prep.main(["--data-root", str(root), "--datasets", "all", "--download"]) == 0
    assert len(served) == count
    # The downloaded files are what the loaders read.
    from metaplastic.data import cifar, datasets
    from metaplastic.data.usps import read_usps

    datasets.clear_caches()
    assert datasets.load_image_dataset("MNIST", root).train_x.shape == (3, 784)
    assert read_usps(root).train_images.shape == (4, 16, 16)
    assert cifar.load_cifar100(root).train_x.shape == (3, 3, 32, 32)
    datasets.clear_caches()


def test_download_checks_against_the_registry(tmp_path: Path, mirror, connections, monkeypatch,
                                              capsys) -> None:
    folder, base, _ = mirror
    expected = build_mirror(folder, base, monkeypatch)
    root = tmp_path / "data"
    # The real MNIST sums: torchvision accepts the synthetic files (their MD5s are patched in
    # torchvision), but the registry refuses them and nothing is put in place.
    real = {rel: registry.FILES[i].sha256 for i, rel in enumerate(registry.DATASETS["MNIST"].paths)}
    for rel, digest in real.items():
        monkeypatch.setitem(registry.SHA256, rel, digest)

    assert data_prep.main(["--data-root", str(root), "--datasets", "MNIST", "--download"]) == 2
    assert "SHA-256 mismatch" in capsys.readouterr().err
    assert not [p for p in root.rglob("*") if p.is_file()]  # nothing put in place, nothing left

    # The substitutable tables: sums passed to the downloader directly.
    from metaplastic.data.sources.torchvision_download import download_dataset

    table = {rel: sha256(expected[rel]) for rel in real}
    written = download_dataset(root, "MNIST", log=lambda m: None, sha_table=table)
    assert len(written) == 4 and (root / "MNIST/raw/t10k-labels-idx1-ubyte").read_bytes() == \
        expected["MNIST/raw/t10k-labels-idx1-ubyte"]


def test_unreachable_mirror_is_a_data_error_naming_the_offline_way(tmp_path: Path, connections,
                                                                   monkeypatch, capsys) -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(tv.USPS, "split_list", {
        split: [f"http://127.0.0.1:{port}/{name}", name, None]
        for split, name in (("train", "usps.bz2"), ("test", "usps.t.bz2"))})
    assert data_prep.main(["--data-root", str(tmp_path), "--datasets", "USPS", "--download"]) == 2
    err = capsys.readouterr().err
    assert "downloading USPS with torchvision failed" in err and "--usps-h5" in err
    assert not list(tmp_path.glob(".metaplastic-download-*"))


def test_without_download_nothing_is_fetched(tmp_path: Path, connections, monkeypatch, capsys) -> None:
    import torchvision.datasets.utils as tv_utils

    def forbidden(*args, **kwargs):
        raise AssertionError("a download was attempted without --download")

    for name in ("download_url", "download_and_extract_archive", "_urlretrieve"):
        monkeypatch.setattr(tv_utils, name, forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    for cls in (tv.MNIST, tv.FashionMNIST, tv.CIFAR10, tv.CIFAR100):
        monkeypatch.setattr(cls, "download", forbidden)
    # Offline sources: an "installed" Fashion-MNIST and a USPS folder of torchvision's files.
    system_dir = tmp_path / "system"
    system_dir.mkdir()
    for name, raw in _idx_set(7).items():
        (system_dir / f"{name}.gz").write_bytes(gzip.compress(raw))
        monkeypatch.setitem(registry.SHA256, f"FashionMNIST/raw/{name}", sha256(raw))
    monkeypatch.setattr(fashion_deb, "FASHION_SYSTEM_DIR", system_dir)
    usps_dir = tmp_path / "usps"
    usps_dir.mkdir()
    for name, seed in (("usps.bz2", 1), ("usps.t.bz2", 2)):
        data = _usps_bz2(seed, 2)
        (usps_dir / name).write_bytes(data)
        monkeypatch.setitem(registry.MD5, f"USPS/{name}", md5(data))
    root = tmp_path / "data"

    status = data_prep.main(["--data-root", str(root), "--datasets", "FMNIST", "USPS", "CIFAR10",
                             "--usps-dir", str(usps_dir)])

    assert status == 2  # CIFAR-10 cannot be had offline
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and "--download" in err
    assert (root / "FashionMNIST/raw/train-images-idx3-ubyte").is_file()
    assert (root / "USPS/usps.t.bz2").is_file()
    assert connections == []
