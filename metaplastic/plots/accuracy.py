"""Fig. 2(a-f): test accuracy of every task against the cumulative epoch."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from metaplastic.plots.draw import continual_only, draw_task_curves, new_figure, save
from metaplastic.plots.labels import group_labels, title_with_seeds
from metaplastic.plots.runs import group_runs, load_runs, task_names


def plot_task_accuracies(runs, out, labels: Sequence[str] | None = None,
                         pdf: bool = False) -> list[Path]:
    """Fig. 2(a-f): one panel per configuration, test accuracy of every task against the
    cumulative epoch, dotted lines at task boundaries. Seeds of one configuration are drawn
    as mean +/- std. ``labels`` (one per configuration) replace the panel titles."""
    runs = load_runs(runs)
    continual_only(runs, "accuracy")
    groups = group_runs(runs)
    titles = group_labels(groups, labels)
    all_names = [task_names(g.first) for g in groups]
    shared_legend = all(n == all_names[0] for n in all_names)
    fig, axes = new_figure(len(groups), sharey=True)
    legend_lines = None
    for i, (ax, group, title, names) in enumerate(zip(axes, groups, titles, all_names)):
        lines = draw_task_curves(ax, group, names, shade_phases=False)
        ax.set_title(title_with_seeds(title, group), fontsize=10)
        ax.set_ylim(0, 100)
        if i % min(len(groups), 3) == 0:
            ax.set_ylabel("test accuracy (%)")
        if shared_legend:
            legend_lines = lines
        else:
            ax.legend(fontsize=7, loc="best", ncol=2, framealpha=0.85)
    if shared_legend and legend_lines:
        n = len(legend_lines)
        ncol = min(n, max(1, int(fig.get_figwidth() / 1.3)))
        fig.legend(legend_lines, all_names[0], loc="outside lower center", ncol=ncol,
                   fontsize=8, frameon=False)
    return save(fig, out, pdf)
