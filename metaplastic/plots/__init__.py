"""Figures of the paper drawn from the result files of a run directory.

Every ``plot_*`` function takes run directories or CSV paths and an output path, writes a PNG
(and a PDF beside it when ``pdf=True`` or when ``out`` ends in ``.pdf``) and returns the list of
written paths. One module per figure:

==================================  ================  =====================================
function                            module            figure
==================================  ================  =====================================
``plot_task_accuracies``            ``accuracy``      Fig. 2(a-f): test accuracy of every
                                                      task vs. epoch
``plot_hidden_weight_histograms``   ``histograms``    Fig. 2(g,h): hidden-weight histograms
                                                      after each task
``plot_hidden_size``                ``hidden_size``   Fig. 3: final mean test accuracy vs.
                                                      hidden size
``plot_two_task``                   ``two_task``      Fig. 4: two-task sequences
                                                      (MNIST/FMNIST, MNIST/USPS, ...)
``plot_stream``                     ``stream``        Fig. 4: stream FMNIST / CIFAR-10
``plot_sign_switch``                ``sign_switch``   Fig. 5(c-e): loss increase of a sign
                                                      switch vs. magnitude
``plot_flips``                      ``flips``         flip statistics per layer and epoch
==================================  ================  =====================================

``runs`` loads and groups the runs (runs sharing one configuration apart from the seed are
drawn as their mean with a +/- one standard deviation band), ``labels`` makes titles and
legends from their configurations, ``draw`` holds the shared drawing helpers. Command line:
``python plot_figures.py FIGURE PATHS... --out OUT.png [--pdf] [--labels ...]``.
"""
from dataclasses import dataclass
from typing import Callable

from metaplastic.plots.accuracy import plot_task_accuracies
from metaplastic.plots.flips import plot_flips
from metaplastic.plots.hidden_size import plot_hidden_size
from metaplastic.plots.histograms import plot_hidden_weight_histograms
from metaplastic.plots.runs import (Run, RunGroup, config_key, group_runs, load_run, load_runs,
                                    task_names)
from metaplastic.plots.sign_switch import plot_sign_switch
from metaplastic.plots.stream import plot_stream
from metaplastic.plots.two_task import plot_two_task

__all__ = [
    "Run", "RunGroup", "load_run", "load_runs", "group_runs", "config_key", "task_names",
    "plot_task_accuracies", "plot_hidden_weight_histograms", "plot_hidden_size",
    "plot_two_task", "plot_stream", "plot_sign_switch", "plot_flips", "FigureKind",
    "FIGURE_KINDS",
]

@dataclass(frozen=True)
class FigureKind:
    """One kind of figure: its name on the command line (``plot_figures.py NAME``), the
    function that draws it, whether it is drawn from one run (else from several, with
    ``--labels``), and what it shows; ``over_seeds``: a one-run figure that also takes the seeds
    of one configuration and draws their mean ± std. :data:`FIGURE_KINDS` is the one registry,
    read by plot_figures.py, ``reproduce.py summarize`` and the figures of
    :mod:`metaplastic.paper`."""

    name: str
    draw: Callable[..., list]
    one_run: bool
    description: str
    over_seeds: bool = False


FIGURE_KINDS = {kind.name: kind for kind in (
    FigureKind("accuracy", plot_task_accuracies, False,
               "Fig. 2(a-f): test accuracy of every task vs. epoch (runs or metrics.csv)"),
    FigureKind("histograms", plot_hidden_weight_histograms, True,
               "Fig. 2(g,h): hidden-weight histograms after each task (one run or "
               "hidden_weight_hist.csv)"),
    FigureKind("hidden-size", plot_hidden_size, False,
               "Fig. 3: final mean test accuracy vs. hidden layer width (runs)"),
    FigureKind("two-task", plot_two_task, False,
               "Fig. 4: two-task sequences, accuracy of each task vs. epoch (runs)"),
    FigureKind("stream", plot_stream, False, "Fig. 4: stream FMNIST / CIFAR-10 (runs)"),
    FigureKind("sign-switch", plot_sign_switch, True,
               "Fig. 5(c-e): loss increase of a sign switch vs. magnitude (one run or "
               "sign_switch.csv, or the seeds of one configuration: mean ± std over them)",
               over_seeds=True),
    FigureKind("flips", plot_flips, False,
               "flip statistics per layer: signs flipped per epoch, weights consolidated (runs)"),
)}
