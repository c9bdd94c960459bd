"""Command-line plumbing shared by every experiment's main.py.

Expected failures (bad flags, missing data, NaN loss) end with a one-paragraph message on stderr
and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from metaplastic.data.root import PACKAGE_PARENT
from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.flag_types import positive_int, published_bool, seed_int

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
REPO_ROOT = PACKAGE_PARENT  # the clone (git state) or site-packages


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """-h shows every option's default after its help: ``(default: 0.005)``, lists as
    ``(default: 1024 1024)``, switches as ``(default: off)``. An option whose default is None
    says in its own help what happens without it (nothing is appended); descriptions and
    epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("%(default)" in text or action.default is argparse.SUPPRESS or action.required
                or not (action.option_strings or action.nargs in (argparse.OPTIONAL,
                                                                  argparse.ZERO_OR_MORE))):
            return text
        if action.default is None:
            return text
        return f"{text} (default: {_shown_default(action)})"


def _shown_default(action: argparse.Action) -> str:
    value = action.default
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        on = value if isinstance(action, argparse._StoreTrueAction) else not value
        return "on" if on else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) if value else "none"
    return str(value).replace("%", "%%")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports bad flags as a usage line and exit 2, and accepts 1e-7 style values.

    -h shows every option's default (:class:`HelpFormatter`); --version prints the code version
    (:func:`code_version`)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.add_argument("--version", action=_VersionAction,
                          help="print the code version (package version and git commit) and exit")

    def error(self, message: str):  # pragma: no cover - argparse prints and exits
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class _VersionAction(argparse.Action):
    """--version: computed only when asked (it may run git)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog} {code_version()}")
        parser.exit()


def git_state(root: Path | None = None) -> dict:
    """The git commit of the code and whether tracked files differ from it.

    ``{"git_commit": sha or None, "git_modified": bool or None}``: None when the code is not a
    git checkout (e.g. an unpacked archive), git is missing, or git fails (e.g. a repository
    owned by another user). Untracked files (data, results) do not count as modifications.
    """
    import subprocess

    root = Path(root) if root is not None else REPO_ROOT
    unknown = {"git_commit": None, "git_modified": None}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True, timeout=20,
                              env=dict(os.environ, GIT_OPTIONAL_LOCKS="0")).stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if Path(top).resolve() != root.resolve():
            return unknown  # the code lies inside some other repository
        commit = git("rev-parse", "HEAD")
        modified = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return unknown
    return {"git_commit": commit, "git_modified": modified}


def code_version() -> str:
    """``<package version> (git <commit>[, modified])``, or the package version alone."""
    from metaplastic import __version__

    state = git_state()
    if state["git_commit"] is None:
        return __version__
    return (f"{__version__} (git {state['git_commit'][:12]}"
            + (", with uncommitted changes)" if state["git_modified"] else ")"))


def add_save_argument(group, help: str) -> None:
    """--save [VALUE], the published ``--save`` (type=bool): a value parses as the published
    boolean (:func:`published_bool`); the flag alone is true."""
    group.add_argument("--save", nargs="?", const=True, default=False, type=published_bool,
                       metavar="VALUE",
                       help=help + "; a VALUE reads as the published scripts' bool(VALUE): "
                                   "every non-empty value, 'False' too, is true")


BEAKER_FLAGS = ("--beaker", "--fb", "--n-bk", "--ratios", "--areas")


def add_beaker_arguments(parser: argparse.ArgumentParser, areas: bool = True,
                         refused: bool = True) -> None:
    """The published parsers' Benna-Fusi "beaker" optimizer flags (metaplastic/method/beaker.py),
    with their defaults; ``refused``: parsed so that a published command line reads, and
    --beaker refused by :func:`refuse_beaker` (the other four are unused without it, as
    published)."""
    g = parser.add_argument_group("Benna-Fusi beaker optimizer (published flags)"
                                  + (", refused here" if refused else ""))
    g.add_argument("--beaker", action="store_true",
                   help="refused here (see the note under the flags)" if refused else
                   "train with Adam driving the first vessel of a Benna-Fusi chain, one "
                   "optimizer for the whole sequence at the constant --lr (metaplastic/method/beaker.py)")
    g.add_argument("--fb", type=float, default=5e-3,
                   help="feedback from the last vessel to the weight")
    g.add_argument("--n-bk", type=int, default=4, help="number of vessels")
    g.add_argument("--ratios", nargs="+", type=float, default=[1e-2, 1e-3, 1e-4, 1e-5],
                   help="tubes g_k between vessel k and k+1 (the last drains to 0)")
    if areas:
        g.add_argument("--areas", nargs="+", type=float, default=[1.0, 2.0, 4.0, 8.0],
                       help="vessel areas C_k")


def refuse_beaker(args) -> None:
    if getattr(args, "beaker", False):
        raise ConfigError("--beaker: the published stream script calls the beaker optimizer "
                          "without --areas, which fails for --n-bk > 1; it is refused here "
                          "(continual_learning has it)")


def fraction(text: str) -> float:
    """A number in [0, 1) (e.g. a dropout probability)."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_run_arguments(parser: argparse.ArgumentParser, experiment: str,
                      checkpoint_every: int = 1) -> None:
    """Flags every experiment has: seed, device, data root, output, resume, dry run;
    ``checkpoint_every`` is the default of --checkpoint-every."""
    from metaplastic.data.root import default_data_root

    g = parser.add_argument_group("run")
    g.add_argument("--seed", type=seed_int, default=0, help="seed of every random draw")
    g.add_argument("--device", default="auto",
                   help="auto (CUDA if available, else CPU), cpu, cuda, cuda:N, or N (the "
                        "published meaning: CUDA device N, the CPU where there is no GPU)")
    now = str(default_data_root()).replace("%", "%%")
    g.add_argument("--data-root", type=Path, default=None,
                   help=f"dataset folder (default: $METAPLASTIC_DATA, else the clone's data/ "
                        f"folder, whatever the working directory; now {now})")
    g.add_argument("--out-dir", type=Path, default=None,
                   help=f"run folder for metrics.csv, config.json, checkpoint.pt "
                        f"(default: results/{experiment}/<date>-<time>-<process id>)")
    g.add_argument("--resume", action="store_true",
                   help="continue the run in --out-dir from its last checkpoint")
    g.add_argument("--dry-run", action="store_true",
                   help="check flags and data, print the configuration, build the model, and exit")
    g.add_argument("--no-progress", action="store_true",
                   help="no per-batch progress bars (they are shown only when stderr is a "
                        "terminal; the per-epoch log lines always are)")
    g.add_argument("--allow-tf32", action="store_true",
                   help="allow TF32 matmuls on NVIDIA GPUs (faster, less exact)")
    g.add_argument("--keep-denormals", action="store_true",
                   help="keep subnormal floats (< 1.2e-38) on CPU instead of flushing them to zero "
                        "(bit-for-bit IEEE arithmetic, often 2x slower)")
    g.add_argument("--impl", choices=("auto", "reference", "fast"), default="auto",
                   help="implementation, chosen once at start and printed: reference (plain "
                        "float products, eager optimizer and modules), fast (compiled optimizer "
                        "step writing sign buffers; on CPU a compiled MLP training step and exact "
                        "int8 products; refused where it cannot run), auto (fast where it works, "
                        "int8 products only where they beat float32 on this CPU)")
    g.add_argument("--mixed-resume", action="store_true",
                   help="--resume even where this launch's implementation or CPU thread count "
                        "differs from the run's earlier launch (the CSV then equals no "
                        "uninterrupted run; config.json's 'launches' records each)")
    g.add_argument("--checkpoint-every", type=positive_int, default=checkpoint_every,
                   help="epochs between checkpoints (the end of each task, or of each part of "
                        "a stream, and of the run always checkpoint)")
    g.add_argument("--debug", action="store_true",
                   help=f"show tracebacks of errors (also ${DEBUG_ENV}=1)")
    g.add_argument("--no-flip-stats", dest="flip_stats", action="store_false",
                   help="do not record the per-layer flip statistics (fraction of binary weights "
                        "that changed sign in the epoch, fractions with f_meta < 0.5 and < 0.1) "
                        "as extra columns after the published ones")


def neutral(default=dataclasses.MISSING, **kwargs):
    """A config field that does not change a run's results (device, paths, progress,
    implementation switches equal to float32 rounding): a resumed run may change it, and runs
    that differ only in such fields are one configuration in plots."""
    return dataclasses.field(default=default, metadata={"result_neutral": True}, **kwargs)


def per_seed(**kwargs):
    """A config field derived from the seed (e.g. mnist_usps' training windows): part of the
    run, but seeds of one configuration differ in it."""
    return dataclasses.field(metadata={"per_seed": True}, **kwargs)


def config_marks(config) -> dict:
    """The marked field names of a config dataclass: {"result_neutral": [...], "per_seed": [...]}
    (saved in config.json, read by --resume and by the plots)."""
    fields = dataclasses.fields(config)
    return {mark: sorted(f.name for f in fields if f.metadata.get(mark))
            for mark in ("result_neutral", "per_seed")}


@dataclasses.dataclass
class RunOptions:
    """The fields every experiment's config shares (from :func:`add_run_arguments`)."""

    seed: int = 0
    device: str = neutral("auto")
    data_root: str = neutral("")
    out_dir: str = neutral("")
    impl: str = neutral("auto")
    allow_tf32: bool = neutral(False)
    keep_denormals: bool = neutral(False)
    checkpoint_every: int = neutral(1)
    mixed_resume: bool = neutral(False)
    flip_stats: bool = True


def run_options(args) -> dict:
    """:class:`RunOptions` fields from parsed flags, as keyword arguments of a config."""
    return dict(seed=args.seed, device=args.device, data_root=str(args.data_root or ""),
                out_dir=str(args.out_dir or ""), impl=args.impl,
                allow_tf32=args.allow_tf32, keep_denormals=args.keep_denormals,
                checkpoint_every=args.checkpoint_every, flip_stats=args.flip_stats,
                mixed_resume=args.mixed_resume)


def config_from(args, config_class, **overrides):
    """``config_class`` from parsed flags: every field that is a flag (lists copied), the run
    options (:func:`run_options`), then ``overrides``."""
    run = run_options(args)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_class)
              if f.name not in run and f.name not in overrides and hasattr(args, f.name)}
    values = {k: list(v) if isinstance(v, list) else v for k, v in values.items()}
    return config_class(**values, **run, **overrides)


def config_dict(config) -> dict:
    """A dataclass config as a JSON-friendly dict."""
    out = {}
    for key, value in dataclasses.asdict(config).items():
        out[key] = str(value) if isinstance(value, Path) else value
    return out


def print_config(config, stream=sys.stdout) -> None:
    print(f"{type(config).__name__}:", file=stream)
    for key, value in config_dict(config).items():
        print(f"  {key:24s} {json.dumps(value)}", file=stream)


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


def package_version(name: str) -> str | None:
    """The installed version of a distribution (without importing it), or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment_summary() -> dict:
    """What config.json records about the code and the machine (key "environment"), with the
    process settings of :mod:`metaplastic.method.runtime` (cpu_int8_products: whether int8 products
    beat float32 on this CPU, null where not measured; implementation: what --impl chose)."""
    import platform

    import torch

    from metaplastic import __version__
    from metaplastic.method import runtime

    return {"code_version": __version__, **git_state(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": package_version("torchvision"), "numpy": package_version("numpy"),
            "torch_cuda_build": torch.version.cuda,
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu_int8_products": None, "implementation": None,
            **runtime.recorded_settings(),
            "started": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
