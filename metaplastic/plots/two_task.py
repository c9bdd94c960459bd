"""Fig. 4: two-task sequences (MNIST/FMNIST, MNIST/USPS, CIFAR animals/vehicles, cifar100-K)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from metaplastic.plots.draw import continual_only, draw_task_curves, new_figure, save
from metaplastic.plots.labels import group_labels, title_with_seeds
from metaplastic.plots.runs import group_runs, load_runs, task_names


def plot_two_task(runs, out, labels: Sequence[str] | None = None,
                  pdf: bool = False) -> list[Path]:
    """Fig. 4 (MNIST/FMNIST, MNIST/USPS, CIFAR animals/vehicles, cifar100-K): one panel per
    configuration, test accuracy of each task against the epoch, the task phases shaded and
    labelled, seeds as mean +/- std."""
    runs = load_runs(runs)
    continual_only(runs, "two-task")
    groups = group_runs(runs)
    titles = group_labels(groups, labels, with_sequence=True)
    fig, axes = new_figure(len(groups), ncols=min(len(groups), 2), panel_size=(5.0, 3.6))
    for i, (ax, group, title) in enumerate(zip(axes, groups, titles)):
        names = task_names(group.first)
        draw_task_curves(ax, group, names, shade_phases=True,
                         marker="o" if group.first.frame.shape[0] <= 40 else None)
        ax.set_title(title_with_seeds(title, group), fontsize=10, pad=14)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return save(fig, out, pdf)
