"""The command lines' argparse plumbing shared by every experiment's main.py: -h showing every
default, --version, the flags every run takes (:func:`add_run_arguments`), the beaker flags and
the published --save. How a command ends on errors is :mod:`metaplastic.runs.faults`; a run's
config, :mod:`metaplastic.runs.run_config`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metaplastic.errors import ConfigError
from metaplastic.flag_types import positive_int, published_bool, seed_int
from metaplastic.runs.faults import DEBUG_ENV, EXIT_USAGE
from metaplastic.runs.provenance import code_version


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
