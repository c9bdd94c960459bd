#!/usr/bin/env python
"""Draw the paper's figures from run directories or result CSV files.

    python plot_figures.py FIGURE PATHS... --out OUT.png [--pdf] [--labels ...] [--log-y]

FIGURE is one of accuracy, histograms, hidden-size, two-task, stream, sign-switch, flips; see
``python plot_figures.py --help`` and :mod:`metaplastic.plots` (one module per figure).
Expected failures (a missing or malformed result file, bad flags) end with a message on stderr
and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from metaplastic import plots
from metaplastic.cli import EXIT_USAGE, ArgumentParser, debugging, main_guard
from metaplastic.errors import ConfigError, MetaplasticError

#: figures drawn from a single run directory or CSV file
SINGLE_RUN_FIGURES = ("histograms", "sign-switch")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="plot_figures.py",
        description="Draw the paper's figures from run directories or result CSV files.",
        epilog="figures:\n" + "\n".join(f"  {k:<12} {v}" for k, v in plots.FIGURES.items()) +
        "\n\nexample: python plot_figures.py accuracy results/m0 results/m1.35 "
        "--out figs/fig2.png --pdf")
    parser.add_argument("figure", choices=sorted(plots.FIGURES), metavar="FIGURE",
                        help="one of: " + ", ".join(plots.FIGURES))
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="run directories or CSV files")
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("--pdf", action="store_true", help="also write a PDF beside the PNG")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="panel titles / line names, one per configuration (accuracy, "
                             "two-task, stream) or per line (hidden-size) (default: taken from "
                             "each run's configuration)")
    parser.add_argument("--log-y", action="store_true",
                        help="histograms: logarithmic count axis")
    parser.add_argument("--density", action="store_true",
                        help="histograms: normalise each histogram to unit area")
    return parser


def _check_flags(args) -> None:
    if args.figure in SINGLE_RUN_FIGURES:
        if len(args.paths) != 1:
            raise ConfigError(f"the {args.figure} figure takes one run directory or CSV "
                              f"file, got {len(args.paths)}")
        if args.labels is not None:
            raise ConfigError(f"--labels does not apply to the {args.figure} figure")
    if (args.log_y or args.density) and args.figure != "histograms":
        raise ConfigError("--log-y and --density apply only to the histograms figure")


def draw(args) -> list[Path]:
    """Draw the figure the parsed flags ask for; returns the written paths."""
    _check_flags(args)
    common = dict(pdf=args.pdf)
    if args.figure == "histograms":
        return plots.plot_hidden_weight_histograms(args.paths[0], args.out, log_y=args.log_y,
                                                   density=args.density, **common)
    if args.figure == "sign-switch":
        return plots.plot_sign_switch(args.paths[0], args.out, **common)
    several = {"accuracy": plots.plot_task_accuracies, "hidden-size": plots.plot_hidden_size,
               "two-task": plots.plot_two_task, "stream": plots.plot_stream,
               "flips": plots.plot_flips}
    return several[args.figure](args.paths, args.out, labels=args.labels, **common)


def main(argv: Sequence[str] | None = None) -> int:
    """Draw; bad input exits 2 with a message, an unwritable --out 1, never a traceback
    (unless --debug)."""

    def run(argv) -> int:
        args = build_parser().parse_args(argv)
        try:
            written = draw(args)
        except MetaplasticError as exc:
            if debugging(argv):
                raise
            print(f"plot_figures.py: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        for p in written:
            print(f"wrote {p}")
        return 0

    return main_guard(run)(argv)


if __name__ == "__main__":
    sys.exit(main())
