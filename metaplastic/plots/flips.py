"""`plot_figures.py flips`: the flip statistics of runs (metaplastic.method.flips), per task.

One row per configuration (seeds drawn as mean +/- std): left, the fraction of binary weights
of each layer that changed sign in each epoch (log scale); right, the fraction of weights whose
metaplastic factor f_meta = 1 - tanh²(m |W_h|) is below 0.5 (solid) and 0.1 (dashed). Task or
part boundaries are dotted.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from metaplastic.errors import ConfigError
from metaplastic.method.flips import THRESHOLDS
from metaplastic.plots.draw import band, save, task_colors
from metaplastic.plots.labels import group_labels, title_with_seeds
from metaplastic.plots.runs import aggregate, cumulative_x, group_runs, load_runs


def _n_layers(columns) -> int:
    return sum(1 for c in columns if c.startswith("flips_l"))


def plot_flips(runs, out, labels: Sequence[str] | None = None, pdf: bool = False) -> list[Path]:
    """Flip statistics of every configuration against the cumulative epoch."""
    from matplotlib.figure import Figure

    runs = load_runs(runs)
    missing = [str(r.csv_path) for r in runs if _n_layers(r.frame.columns) == 0]
    if missing:
        raise ConfigError("no flip statistics (flips_l1, ... columns) in "
                          f"{', '.join(missing)}: they were run with --no-flip-stats")
    groups = group_runs(runs)
    titles = group_labels(groups, labels)
    fig = Figure(figsize=(11.0, 3.3 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), 2, squeeze=False)
    for (ax_flips, ax_meta), group, title in zip(axes, groups, titles):
        n_layers = _n_layers(group.first.frame.columns)
        flips = [f"flips_l{k}" for k in range(1, n_layers + 1)]
        consolidated = [f"meta_below_{t}_l{k}" for t in THRESHOLDS
                        for k in range(1, n_layers + 1)]
        keys, mean, std = aggregate(group, flips + consolidated)
        x, boundaries = cumulative_x(keys["task_order"], keys["epoch"])
        colors = task_colors(n_layers)
        for k, column in enumerate(flips):
            values = mean[column].to_numpy()
            band(ax_flips, x, values, std[column].to_numpy(), colors[k], f"layer {k + 1}",
                 len(group), lw=1.4)
        for t, style in zip(THRESHOLDS, ("-", "--")):
            for k in range(n_layers):
                column = f"meta_below_{t}_l{k + 1}"
                band(ax_meta, x, mean[column].to_numpy(), std[column].to_numpy(), colors[k],
                     f"layer {k + 1}, f_meta < {t}", len(group), lw=1.4, ls=style)
        if (mean[flips].to_numpy() > 0).any():
            ax_flips.set_yscale("log")
        for ax in (ax_flips, ax_meta):
            for b in boundaries:
                ax.axvline(b + 0.5, color="0.35", ls=":", lw=1.0, zorder=0)
            ax.set_xlabel("epoch (cumulative over tasks)")
        ax_flips.set_ylabel("fraction of signs flipped in the epoch")
        ax_meta.set_ylabel("fraction of weights consolidated")
        ax_meta.set_ylim(-0.02, 1.02)
        ax_flips.set_title(title_with_seeds(title, group), fontsize=10)
        ax_flips.legend(fontsize=7, loc="best")
        ax_meta.legend(fontsize=7, loc="best", ncol=2 if n_layers > 2 else 1)
    return save(fig, out, pdf)
