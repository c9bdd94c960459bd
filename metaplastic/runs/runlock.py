"""One writer per run folder: the folder's ``.lock`` file, held with flock(2) while a process
writes the run, whoever started it (main.py, reproduce.py's local executor, a SLURM task).

- The lock is taken without blocking; a second writer is refused at once with a message naming
  the holder (process id, host, start time, command), which the holder writes into the file.
- A lock dies with its process: flock locks are released by the kernel when the last file
  descriptor holding them closes, so a run killed by SIGKILL or a crash leaves no stale lock
  on its host, and the next writer simply takes it.
- A launcher that holds the lock for a child (reproduce.py) passes its file descriptor down
  and names it in ``$METAPLASTIC_RUN_LOCK_FD``; the child recognises the lock of its own folder
  (same file) and does not take it a second time.
- On a shared file system the lock holds across hosts where flock does: Linux NFS (v3 with
  lockd, v4) turns flock into byte-range locks that the server arbitrates; Lustre needs the
  ``flock`` mount option, GPFS/Spectrum Scale and BeeGFS support it. Where flock is only local
  (``localflock`` mounts), two hosts could write one folder: docs/RELIABILITY.md says so.
- The lock file is opened with O_NOFOLLOW: a ``.lock`` that is a symbolic link is refused, and
  its target is never truncated or written.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
from datetime import datetime
from pathlib import Path

from metaplastic.errors import MetaplasticError

LOCK_FILE = ".lock"
LOCK_FD_ENV = "METAPLASTIC_RUN_LOCK_FD"


class RunFolderBusy(MetaplasticError):
    """Another process writes this run folder."""


class UnsafeRunFile(MetaplasticError):
    """A file of the run folder is a symbolic link (or another non-regular file)."""


def _open_lock_file(run_dir: Path) -> int:
    path = Path(run_dir) / LOCK_FILE
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise UnsafeRunFile(f"{path} is a symbolic link; a run folder's files must be its "
                                "own (remove the link)") from None
        raise MetaplasticError(f"cannot open {path}: {exc.strerror or exc}") from None


def holder_of(run_dir: Path) -> str:
    """Who holds the folder's lock, as the holder wrote it ('unknown' where it wrote nothing)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd) as f:
            info = json.loads(f.read() or "{}")
        return (f"process {info['pid']} on {info['host']} since {info['started']} "
                f"({info.get('command', '?')})")
    except (OSError, ValueError, KeyError, TypeError):
        return "an unknown process"


def _inherited(run_dir: Path) -> int | None:
    """The lock's file descriptor passed down by the launcher that holds it for this folder."""
    value = os.environ.get(LOCK_FD_ENV, "")
    if not value.isdigit():
        return None
    fd = int(value)
    return fd if _still_the_lock_file(fd, run_dir) else None


def _still_the_lock_file(fd: int, run_dir: Path) -> bool:
    """Whether the open ``fd`` is still the file named ``.lock`` (a lock taken on a file that
    was meanwhile unlinked or replaced would protect nothing)."""
    try:
        here = os.stat(Path(run_dir) / LOCK_FILE, follow_symlinks=False)
        held = os.fstat(fd)
    except OSError:          # no .lock, or fd not open (a stale inherited number)
        return False
    return (held.st_dev, held.st_ino) == (here.st_dev, here.st_ino)


class RunLock:
    """The held lock of a run folder (released when closed or when the process ends)."""

    def __init__(self, run_dir: Path, fd: int, owned: bool):
        self.run_dir, self.fd, self.owned = Path(run_dir), fd, owned

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def fileno(self) -> int:
        return self.fd


def try_acquire(run_dir: Path, command: str | None = None) -> RunLock | None:
    """Take the folder's lock without waiting (creating the folder); None if another process
    holds it. The holder's id goes into the file."""
    import fcntl

    run_dir = Path(run_dir)
    inherited = _inherited(run_dir) if (run_dir / LOCK_FILE).exists() else None
    if inherited is not None:
        return RunLock(run_dir, inherited, owned=False)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MetaplasticError(f"cannot create the run folder {run_dir}: "
                               f"{exc.strerror or exc}") from None
    for _ in range(3):
        fd = _open_lock_file(run_dir)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None         # held by another process
            raise MetaplasticError(f"cannot lock {run_dir / LOCK_FILE}: {exc.strerror or exc} "
                                   "(on NFS the lock needs lockd or NFSv4; docs/RELIABILITY.md)"
                                   ) from None
        if _still_the_lock_file(fd, run_dir):
            break
        os.close(fd)   # .lock was deleted or replaced between the open and the flock: again
    else:
        raise MetaplasticError(f"{run_dir / LOCK_FILE} keeps being replaced; another program "
                               "is changing the run folder")
    info = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now().isoformat(timespec="seconds"),
            "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
    except OSError:   # a full disk: the lock holds all the same; its holder reads as unknown
        pass
    return RunLock(run_dir, fd, owned=True)


def acquire(run_dir: Path) -> RunLock:
    """Take the folder's lock or refuse at once, naming the holder."""
    lock = try_acquire(run_dir)
    if lock is None:
        raise RunFolderBusy(f"{run_dir} is being written by {holder_of(run_dir)}; one writer "
                            "per run folder: wait for it to finish or stop it, then rerun")
    return lock


def is_held(run_dir: Path) -> bool:
    """Whether some process holds the folder's lock now."""
    import fcntl

    path = Path(run_dir) / LOCK_FILE
    if not path.is_file() or path.is_symlink():
        return False
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
