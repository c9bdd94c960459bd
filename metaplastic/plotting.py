"""The figures' public names under their former module name; see :mod:`metaplastic.plots`
(one module per figure) and plot_figures.py (the command line)."""
from metaplastic.plots import *  # noqa: F401,F403
from metaplastic.plots import __all__  # noqa: F401
