"""How a command ends when something goes wrong: expected failures (bad flags, missing data, NaN
loss) with a one-paragraph message on stderr and exit status 2, faults of the machine (an
unwritable path, memory, a failing GPU) with exit status 1, Ctrl-C and SIGTERM with the command
that continues the run; a traceback only with --debug (docs/RELIABILITY.md)."""
from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from metaplastic.errors import MetaplasticError

EXIT_USAGE = 2


EXIT_INTERRUPTED = 130
#: stdout's reader closed it (128 + SIGPIPE, as a shell reports a process killed by SIGPIPE)
EXIT_BROKEN_PIPE = 141


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it at exit raises nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):   # no file descriptor (a test's capture)
        pass


def line_buffered_output() -> None:
    """Write stdout and stderr line by line even when they go to a file (a SLURM log, a
    redirection), so that each log line appears when it is printed, not at the end of the run."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and not stream.isatty():
            try:
                stream.reconfigure(line_buffering=True)
            except (ValueError, OSError):
                pass


EXIT_ENVIRONMENT = 1


DEBUG_ENV = "METAPLASTIC_DEBUG"


def debugging(argv: Sequence[str] | None = None) -> bool:
    """Whether tracebacks are wanted: --debug on the command line, or $METAPLASTIC_DEBUG=1."""
    args = sys.argv[1:] if argv is None else list(argv)
    return "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def environment_fault(exc: BaseException) -> str | None:
    """A one-paragraph message for a fault of the machine rather than of the code (a path that
    cannot be written, memory exhausted, a GPU that fails), or None."""
    text = str(exc)
    if isinstance(exc, MemoryError) or "can't allocate memory" in text or "out of memory" in text:
        return ("out of memory: the model and data need more memory than this machine has "
                f"({text.splitlines()[0][:200] if text else type(exc).__name__}); use a smaller "
                "network or --device with more memory")
    if isinstance(exc, OSError):
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        return f"cannot use{where}: {exc.strerror or text}"
    if isinstance(exc, RuntimeError) and ("CUDA" in text or "cuDNN" in text):
        return (f"the GPU failed: {text.splitlines()[0][:300]}; run with --device cpu, or check "
                "the driver (nvidia-smi)")
    return None


#: the run folder of this process once known (set by metaplastic.runs.rundir.set_up_run)
RUN_FOLDER: list[Path] = []


def interrupted_hint(argv: Sequence[str] | None = None) -> str:
    """What to do after Ctrl-C or SIGTERM: the exact command that continues."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if _is_launcher(argv):
        return ("interrupted; rerun the same reproduce.py command: finished runs are skipped, "
                "the others resume from their last checkpoints")
    if not RUN_FOLDER:
        return "interrupted before the run started; nothing was written"
    return (f"interrupted; the rows and the last checkpoint are in {RUN_FOLDER[-1]}; continue "
            f"with:\n  {resume_command(argv)}")


def _is_launcher(argv: Sequence[str]) -> bool:
    return Path(sys.argv[0]).name == "reproduce.py" or bool(
        argv and argv[0] in ("run", "summarize", "list"))


def resume_command(argv: Sequence[str]) -> str:
    """The command that continues this process's run (:data:`RUN_FOLDER`): its own flags with
    ``--out-dir FOLDER --resume``."""
    import shlex

    kept = []
    skip = False
    for token in argv:                  # the command without its own --out-dir / --resume
        if skip:
            skip = False
            continue
        if token == "--out-dir":
            skip = True
            continue
        if token.startswith("--out-dir=") or token == "--resume":
            continue
        kept.append(token)
    script = sys.argv[0] if sys.argv and sys.argv[0].endswith(".py") else "main.py"
    return "python " + shlex.join([script, *kept, "--out-dir", str(RUN_FOLDER[-1]), "--resume"])


def write_fault_tail(exc: BaseException, argv: Sequence[str] | None = None) -> str:
    """For a file that could not be written during a run (a full disk, a quota): where the run's
    rows and checkpoint stay, and the command that continues once the cause is fixed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not isinstance(exc, OSError) or not RUN_FOLDER or _is_launcher(argv):
        return ""
    folder = RUN_FOLDER[-1]
    if not any((folder / name).is_file() for name in ("config.json", "checkpoint.pt")):
        return "; nothing of the run was kept; once it can be written, run the same command again"
    return (f"; what was written stays in {folder}; once it can be written, continue with: "
            f"{resume_command(argv)}")


#: errno values of a full disk or an exhausted quota
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _terminate_as_interrupt() -> None:
    """SIGTERM (kill, a scheduler's end of job) ends the run like Ctrl-C: with a message."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):
        pass


def main_guard(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Wrap a main(argv): expected errors print a message and exit 2, environment faults
    (unwritable paths, out of memory, a failing GPU) a message and exit 1, never a traceback
    unless --debug (or $METAPLASTIC_DEBUG=1) asks for it."""

    def wrapped(argv: Sequence[str] | None = None) -> int:
        line_buffered_output()
        _terminate_as_interrupt()
        try:
            return main(argv)
        except MetaplasticError as exc:
            if debugging(argv):
                raise
            print(f"error: {exc}{write_fault_tail(exc, argv)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("\n" + interrupted_hint(argv), file=sys.stderr)
            return EXIT_INTERRUPTED
        except BrokenPipeError as exc:
            if not _stdout_closed():     # another pipe: a fault like any other
                if debugging(argv):
                    raise
                print(f"error: {environment_fault(exc)}", file=sys.stderr)
                return EXIT_ENVIRONMENT
            _silence_stdout()            # stdout's reader left (`reproduce.py list | head`)
            args = list(sys.argv[1:] if argv is None else argv)
            cut_a_run = args[:1] == ["run"] if _is_launcher(args) else bool(RUN_FOLDER)
            if cut_a_run:
                print(interrupted_hint(argv), file=sys.stderr)
            return EXIT_BROKEN_PIPE
        except (OSError, MemoryError, RuntimeError) as exc:
            if isinstance(exc, OSError) and exc.errno in DISK_FULL and not debugging(argv):
                where = f" {exc.filename}" if exc.filename else ""
                print(f"error: cannot write{where}: {exc.strerror}"
                      f"{write_fault_tail(exc, argv)}", file=sys.stderr)
                return EXIT_USAGE   # like a FileWriteError: every write fault ends alike
            message = environment_fault(exc)
            if message is None or debugging(argv):
                raise
            print(f"error: {message} (--debug shows the traceback)", file=sys.stderr)
            return EXIT_ENVIRONMENT

    wrapped.__wrapped__ = main
    return wrapped
