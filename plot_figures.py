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
from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.runs.cli import ArgumentParser
from metaplastic.runs.faults import EXIT_USAGE, debugging, main_guard

def build_parser() -> argparse.ArgumentParser:
    """One sub-command per figure, each with its own options (``plot_figures.py FIGURE -h``)."""
    parser = ArgumentParser(
        prog="plot_figures.py",
        description="Draw the paper's figures from run directories or result CSV files.",
        epilog="figures (plot_figures.py FIGURE -h shows a figure's options):\n"
        + "\n".join(f"  {k:<12} {v.description}" for k, v in plots.FIGURE_KINDS.items())
        + "\n\nexample: python plot_figures.py accuracy results/m0 results/m1.35 "
        "--out figs/fig2.png --pdf")
    figures = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True,
                                    help="one of: " + ", ".join(plots.FIGURE_KINDS))
    for name, kind in plots.FIGURE_KINDS.items():
        sub = figures.add_parser(name, help=kind.description, description=kind.description,
                                 formatter_class=parser.formatter_class)
        one = kind.one_run
        if kind.over_seeds:
            paths_help = "a run directory or CSV file, or the seeds of one configuration"
        elif one:
            paths_help = "a run directory or CSV file"
        else:
            paths_help = "run directories or CSV files"
        sub.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
        sub.add_argument("--out", required=True, help="output PNG path")
        sub.add_argument("--pdf", action="store_true", help="also write a PDF beside the PNG")
        sub.add_argument("--debug", action="store_true", help="show tracebacks of errors")
        if not one:
            sub.add_argument("--labels", nargs="+", default=None,
                             help="panel titles / line names, one per configuration (per line "
                                  "for hidden-size) (default: taken from each run's "
                                  "configuration)")
        if name == "histograms":
            sub.add_argument("--log-y", action="store_true", help="logarithmic count axis")
            sub.add_argument("--density", action="store_true",
                             help="normalise each histogram to unit area")
    return parser


def draw(args) -> list[Path]:
    """Draw the figure the parsed flags ask for; returns the written paths."""
    kind = plots.FIGURE_KINDS[args.figure]
    if kind.one_run and not kind.over_seeds and len(args.paths) != 1:
        raise ConfigError(f"the {args.figure} figure takes one run directory or CSV file, got "
                          f"{len(args.paths)}")
    if args.figure == "histograms":
        return kind.draw(args.paths[0], args.out, log_y=args.log_y, density=args.density,
                         pdf=args.pdf)
    if kind.one_run:
        return kind.draw(args.paths if kind.over_seeds else args.paths[0], args.out,
                         pdf=args.pdf)
    return kind.draw(args.paths, args.out, labels=args.labels, pdf=args.pdf)


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
