"""Fig. 2(g,h): histograms of the hidden weights after each task."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from metaplastic.plots.draw import new_figure, save
from metaplastic.plots.labels import describe_config, layer_title, natural_key
from metaplastic.plots.runs import load_config_of, load_table
from metaplastic.runs.records import HIDDEN_HIST_COLUMNS, HIDDEN_HIST_FILE


def plot_hidden_weight_histograms(run, out, log_y: bool = False, density: bool = False,
                                  pdf: bool = False) -> list[Path]:
    """Fig. 2(g,h): per layer, the histogram of the hidden weights after each task, overlaid
    as step lines (darker = earlier task). ``density`` divides each count by the layer's
    weight count and the bin width (bins may differ between tasks: each histogram spans
    that task's own min..max); ``log_y`` makes the y axis logarithmic."""
    import matplotlib

    path, frame = load_table(run, HIDDEN_HIST_FILE, HIDDEN_HIST_COLUMNS,
                             "rows task, layer, bin_low, bin_high, count")
    config = load_config_of(path, Path(run) if Path(run).is_dir() else None)
    seq = config.get("task_sequence")
    layers = sorted(frame["layer"].unique(), key=natural_key)
    tasks = sorted(frame["task"].unique(), key=natural_key)
    fig, axes = new_figure(len(layers), ncols=min(len(layers), 3), panel_size=(4.4, 3.3),
                           extra_height=0.5)
    cmap = matplotlib.colormaps["viridis"]
    lines = []
    for ax, layer in zip(axes, layers):
        sub = frame[frame["layer"] == layer]
        lines = []
        for j, task in enumerate(tasks):
            rows = sub[sub["task"] == task].sort_values("bin_low")
            if rows.empty:
                continue
            edges = np.append(rows["bin_low"].to_numpy(float), rows["bin_high"].iloc[-1])
            counts = rows["count"].to_numpy(float)
            if density:
                counts = counts / max(counts.sum(), 1.0) / np.diff(edges)
            color = cmap(0.9 * j / max(len(tasks) - 1, 1))
            lines.append(ax.stairs(counts, edges, color=color, lw=1.4,
                                   label=_hist_task_label(task, seq)))
        ax.set_title(layer_title(layer), fontsize=10)
        ax.set_xlabel("hidden weight $W_h$")
        ax.set_ylabel("density" if density else "count")
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    fig.legend(handles=lines, loc="outside lower center", ncol=min(len(lines), 6),
               fontsize=8, frameon=False)
    title = "Hidden weights after each task"
    if config:
        title += f" — {describe_config(config)}"
    fig.suptitle(title, fontsize=11)
    return save(fig, out, pdf)


def _hist_task_label(task, seq) -> str:
    value = task.item() if hasattr(task, "item") else task
    try:
        t = int(value)
    except (TypeError, ValueError):
        return str(value)
    if t == 0:
        return "initial"
    name = ""
    if isinstance(seq, (list, tuple)) and 1 <= t <= len(seq):
        name = f" ({seq[t - 1]}{t if seq.count(seq[t - 1]) > 1 else ''})"
    return f"after task {t}{name}"
