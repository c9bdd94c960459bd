"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (about 31 MB).

Its files, ``/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``,
are the original IDX files re-compressed by Debian, so the uncompressed bytes are compared with the
registry. They are taken from an installed package when present, else from the .deb fetched with
``apt-get download`` (no root needed) and read without installing it (ar + data.tar.*).
"""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from metaplastic.data.registry import DATASETS
from metaplastic.data.sources.common import Log, files_to_produce, is_root_user, run_command, write_all_verified
from metaplastic.errors import DataError

FASHION_DEB_PACKAGE = "dataset-fashion-mnist"
#: Where an installed ``dataset-fashion-mnist`` keeps its files.
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_DEB_DIR = "usr/share/datasets/fashion-mnist"

AR_MAGIC = b"!<arch>\n"
AR_HEADER_SIZE = 60


def iter_ar_members(stream: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each member of a Unix ``ar`` archive (the container of a .deb).

    Each member has a 60-byte header: name (16), mtime (12), uid (6), gid (6), mode (8),
    size (10, decimal), terminator ``"`\\n"``; data follows, padded to an even length.
    """
    if stream.read(len(AR_MAGIC)) != AR_MAGIC:
        raise DataError("not an ar archive (bad global header)")
    while True:
        header = stream.read(AR_HEADER_SIZE)
        if not header:
            return
        if len(header) != AR_HEADER_SIZE or header[58:60] != b"`\n":
            raise DataError("malformed ar member header")
        name = header[0:16].decode("ascii", "replace").rstrip(" ").rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DataError(f"ar member {name!r}: bad size field") from None
        data = stream.read(size)
        if len(data) != size:
            raise DataError(f"ar member {name!r} is truncated")
        if size % 2:
            stream.read(1)
        yield name, data


def _zstd_decompress(data: bytes) -> bytes | None:
    """Decompress zstd data with ``compression.zstd`` (Python 3.14+) or ``zstandard``; None if neither exists."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
        return zstd.decompress(data)
    except ImportError:
        pass
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        return None
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def _normalise_tar_name(name: str) -> str:
    """A tar member name without a leading ``./`` or ``/``."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def read_files_from_tar(tar_bytes: bytes, mode: str, wanted: Iterable[str]) -> dict[str, bytes]:
    """The contents of the ``wanted`` members (paths without ``./``) of an in-memory tar archive."""
    wanted = set(wanted)
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode=mode) as archive:
        for member in archive:
            name = _normalise_tar_name(member.name)
            if name in wanted and member.isfile():
                found[name] = archive.extractfile(member).read()  # type: ignore[union-attr]
    return found


def _read_files_with_dpkg_deb(deb: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    """Unpack ``deb`` with ``dpkg-deb -x`` and read the ``wanted`` files (fallback for zstd)."""
    if shutil.which("dpkg-deb") is None:
        raise DataError(f"{deb.name}: its data archive is zstd-compressed and neither Python's zstd "
                        f"support (Python 3.14+ or the 'zstandard' package) nor dpkg-deb is available")
    with tempfile.TemporaryDirectory(prefix="metaplastic-deb-") as tmp:
        run_command(["dpkg-deb", "-x", str(deb), tmp], Path(tmp), f"unpacking {deb.name}")
        return {name: (Path(tmp) / name).read_bytes() for name in wanted if (Path(tmp) / name).is_file()}


def read_files_from_deb(deb: Path, wanted: Iterable[str]) -> dict[str, bytes]:
    """The contents of the ``wanted`` files (paths like ``usr/share/...``) inside a .deb package."""
    wanted = list(wanted)
    tar_modes = {".tar": "r:", ".tar.gz": "r:gz", ".tar.xz": "r:xz", ".tar.bz2": "r:bz2"}
    with open(deb, "rb") as stream:
        for name, data in iter_ar_members(stream):
            if not name.startswith("data.tar"):
                continue
            suffix = name[len("data"):]
            if suffix == ".tar.zst":
                tar_bytes = _zstd_decompress(data)
                if tar_bytes is None:
                    return _read_files_with_dpkg_deb(deb, wanted)
                return read_files_from_tar(tar_bytes, "r:", wanted)
            if suffix not in tar_modes:
                raise DataError(f"{deb.name}: unsupported data member {name!r}")
            try:
                return read_files_from_tar(data, tar_modes[suffix], wanted)
            except (tarfile.TarError, OSError, EOFError) as error:
                raise DataError(f"{deb.name}: cannot read {name}: {error}") from None
    raise DataError(f"{deb.name}: no data.tar.* member (is it a Debian package?)")


def download_deb(package: str, dest: Path) -> Path:
    """Download a Debian package (no root needed) with ``apt-get download`` into ``dest``."""
    if shutil.which("apt-get") is None:
        raise DataError(f"apt-get is not available to download the Debian package {package!r}; "
                        f"on Debian/Ubuntu run 'apt-get download {package}'")
    what = f"apt-get download {package} (if the package is not found, run 'apt-get update' first)"
    try:
        run_command(["apt-get", "download", package], dest, what)
    except DataError:
        if not is_root_user():
            raise
        # a fresh machine may have no package lists yet; as root, fetch them once and retry
        run_command(["apt-get", "update", "-qq"], dest, "apt-get update")
        run_command(["apt-get", "download", package], dest, what)
    debs = sorted(dest.glob(f"{package}_*.deb"))
    if len(debs) != 1:
        raise DataError(f"apt-get download {package} produced {len(debs)} .deb files, expected 1")
    return debs[0]


def fashion_gz_from_system(names: Iterable[str]) -> dict[str, bytes] | None:
    """The installed ``<name>.gz`` files from :data:`FASHION_SYSTEM_DIR`, or None if any is missing."""
    paths = {name: FASHION_SYSTEM_DIR / f"{name}.gz" for name in names}
    if not all(path.is_file() for path in paths.values()):
        return None
    return {name: path.read_bytes() for name, path in paths.items()}


def fashion_gz_from_deb(names: Iterable[str], log: Log) -> dict[str, bytes]:
    """The ``<name>.gz`` files from the ``dataset-fashion-mnist`` package, downloaded with apt-get."""
    names = list(names)
    member_of = {name: f"{FASHION_DEB_DIR}/{name}.gz" for name in names}
    with tempfile.TemporaryDirectory(prefix="metaplastic-fmnist-") as tmp:
        log(f"  downloading the Debian package {FASHION_DEB_PACKAGE} (about 31 MB)")
        deb = download_deb(FASHION_DEB_PACKAGE, Path(tmp))
        found = read_files_from_deb(deb, member_of.values())
    missing = [member for member in member_of.values() if member not in found]
    if missing:
        raise DataError(f"{deb.name} lacks {', '.join(missing)}")
    return {name: found[member] for name, member in member_of.items()}


def prepare_fashion_mnist(root: Path, log: Log = print) -> list[Path]:
    """Write Fashion-MNIST's uncompressed IDX files under ``root/FashionMNIST/raw/``; return files written."""
    log("FashionMNIST:")
    needed = files_to_produce(root, DATASETS["FashionMNIST"].paths, log)
    if not needed:
        return []
    names = [Path(rel).name for rel in needed]
    compressed = fashion_gz_from_system(names)
    if compressed is None:
        compressed = fashion_gz_from_deb(names, log)
    else:
        log(f"  using the installed files in {FASHION_SYSTEM_DIR}")
    contents = {}
    for rel in needed:
        try:
            contents[rel] = gzip.decompress(compressed[Path(rel).name])
        except (OSError, EOFError) as error:
            raise DataError(f"{Path(rel).name}.gz: cannot decompress: {error}") from None
    return write_all_verified(root, contents, log)
