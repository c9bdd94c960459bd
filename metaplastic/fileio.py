"""File helpers shared by the whole project: hashing, and atomic writes that never leave a
half-written file behind.

:func:`write_atomic` writes to a temporary file in the target's folder, flushes and fsyncs it,
optionally checks it, and only then moves it into place with ``os.replace``. On any failure the
temporary file is removed, the previous target (if any) is left untouched, and the error names the
file and the cause.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

from metaplastic.errors import MetaplasticError

_HASH_CHUNK = 1 << 20

#: What :func:`write_atomic` accepts as contents: bytes, text (written as UTF-8), or a function
#: that writes to the open binary stream.
Contents = Union[bytes, bytearray, memoryview, str, Callable[[BinaryIO], object]]


class FileWriteError(MetaplasticError, OSError):
    """A file could not be written; the message names the file and the cause.

    It is both a :class:`MetaplasticError` (command lines print it as a plain message) and an
    :class:`OSError` (callers that catch I/O errors still catch it).
    """


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest (``sha256`` by default, or ``md5``) of a file's contents, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's contents."""
    return file_digest(path, "sha256")


def md5_file(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file's contents (only to compare with sums that third parties publish as MD5)."""
    return file_digest(path, "md5")


def open_append(path: str | os.PathLike[str], text: bool = True):
    """``path`` opened for appending, created if missing, never through a symbolic link
    (O_NOFOLLOW: a link named ``path`` is refused with a FileWriteError)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o666)   # the umask applies
    except OSError as exc:
        if path.is_symlink():
            raise FileWriteError(f"{path} is a symbolic link; refusing to write through it "
                                 "(a run folder's files must be its own)") from None
        raise FileWriteError(f"cannot open {path} for appending: {exc.strerror or exc}") from None
    return os.fdopen(fd, "a" if text else "ab", newline="" if text else None)


def append_whole(path: str | os.PathLike[str], data: bytes, what: str = "a line") -> None:
    """Append ``data`` to ``path`` (see :func:`open_append`) and fsync it, all or nothing: if the
    write fails part-way (a full disk), the file is cut back to its previous length and a
    FileWriteError names the file and the cause."""
    with open_append(path, text=False) as stream:
        fd = stream.fileno()
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[write_some(fd, view):]
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise FileWriteError(f"cannot append {what} to {path}: "
                                 f"{exc.strerror or exc}") from exc


def write_some(fd: int, data: memoryview) -> int:
    """``os.write``: the bytes of ``data`` written (a seam for the full-disk tests)."""
    return os.write(fd, data)


def fsync_directory(folder: str | os.PathLike[str]) -> None:
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


def default_file_mode() -> int:
    """The permission bits a newly created file gets under the current umask (mkstemp uses 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(
    path: str | os.PathLike[str],
    contents: Contents,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Write ``contents`` to ``path`` atomically and return the path.

    ``contents`` is bytes, a ``str`` (encoded as UTF-8, newlines untouched), or a function called
    with the open binary stream (e.g. ``lambda f: torch.save(obj, f)``). ``check``, when given, is
    called with the temporary file's path after it is flushed to disk and before it replaces the
    target; it raises to refuse the file (e.g. a SHA-256 mismatch).

    On failure the temporary file is removed and the target keeps its previous contents. A
    :class:`MetaplasticError` (such as the ``check``'s :class:`DataError`) propagates unchanged;
    any other error becomes a :class:`FileWriteError` naming the file and the cause.
    """
    target = Path(path)
    tmp_path: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        tmp_path = Path(tmp_name)
        with os.fdopen(fd, "wb") as stream:
            if callable(contents):
                contents(stream)
            elif isinstance(contents, str):
                stream.write(contents.encode("utf-8"))
            else:
                stream.write(contents)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp_path, default_file_mode())
        if check is not None:
            check(tmp_path)
        os.replace(tmp_path, target)
        tmp_path = None
    except MetaplasticError:
        _remove(tmp_path)
        raise
    except Exception as error:
        _remove(tmp_path)
        raise FileWriteError(f"cannot write {target}: {type(error).__name__}: {error}") from error
    except BaseException:  # KeyboardInterrupt, SystemExit: clean up, then let it through
        _remove(tmp_path)
        raise
    fsync_directory(target.parent)
    return target


def _remove(tmp_path: Path | None) -> None:
    """Remove a temporary file if it exists (never raises)."""
    if tmp_path is not None:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:
            pass
