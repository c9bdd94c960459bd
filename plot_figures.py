#!/usr/bin/env python
"""Draw the paper's figures from run directories or result CSV files.

    python plot_figures.py FIGURE PATHS... --out OUT.png [--pdf] [--labels ...] [--log-y]

FIGURE is one of accuracy, histograms, hidden-size, two-task, stream, sign-switch; see
``python plot_figures.py --help`` and :mod:`metaplastic.plotting`.
"""
import sys

from metaplastic.plotting import main

if __name__ == "__main__":
    sys.exit(main())
