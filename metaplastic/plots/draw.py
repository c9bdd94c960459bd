"""Drawing helpers shared by the figures: matplotlib figures without pyplot state (the Agg
canvas of :class:`matplotlib.figure.Figure`; no display, no LaTeX), output paths, mean +/- std
bands, colours, and the accuracy-of-every-task curves of Fig. 2 and 4."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.plots.runs import KIND_TITLES, Run, RunGroup, aggregate, cumulative_x
from metaplastic.runs.records import RecordError

SEQ_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
              "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


def _out_paths(out: str | os.PathLike, pdf: bool) -> list[Path]:
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in ("", ".png", ".pdf"):
        raise ConfigError(f"output {out}: expected a .png (or .pdf) file name")
    png = out.with_suffix(".png")
    paths = [png]
    if pdf or suffix == ".pdf":
        paths.append(out.with_suffix(".pdf"))
    return paths


def new_figure(n_panels: int, ncols: int | None = None, panel_size=(4.6, 3.4),
               sharey=False, sharex=False, extra_height=0.0):
    from matplotlib.figure import Figure

    ncols = ncols or min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows + extra_height),
                 layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey, sharex=sharex).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes[:n_panels])


def save(fig, out, pdf: bool) -> list[Path]:
    import matplotlib

    paths = _out_paths(out, pdf)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context({"text.usetex": False}):
        for p in paths:
            try:
                fig.savefig(p, dpi=150 if p.suffix == ".png" else None)
            except OSError as exc:
                raise MetaplasticError(f"cannot write {p}: {exc}") from None
    return paths


def band(ax, x, mean, std, color, label, n, **kw):
    line, = ax.plot(x, mean, color=color, label=label, **kw)
    if n > 1:
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.22, linewidth=0)
    return line


def task_colors(n: int) -> list:
    if n <= len(SEQ_COLORS):
        return list(SEQ_COLORS[:n])
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def continual_only(runs: Sequence[Run], figure: str) -> None:
    for r in runs:
        if r.kind != "continual":
            raise RecordError(
                f"{r.csv_path} is a {KIND_TITLES[r.kind]} metrics file; the {figure} figure "
                f"needs continual-learning metrics (acc_test_tsk_k columns); use 'stream'")


def draw_task_curves(ax, group: RunGroup, names: list[str], shade_phases: bool,
                     marker: str | None = None):
    """Test accuracy of every task of a group against the cumulative epoch; returns lines."""
    n = group.first.n_tasks
    acc_cols = [f"acc_test_tsk_{k}" for k in range(1, n + 1)]
    keys, mean, std = aggregate(group, acc_cols)
    x, boundaries = cumulative_x(keys["task_order"], keys["epoch"])
    if marker is None and len(x) <= 3:   # a line of one point (an interleaved epoch) is invisible
        marker = "o"
    colors = task_colors(n)
    lines = []
    for k, col in enumerate(acc_cols):
        lines.append(band(ax, x, mean[col].to_numpy(), std[col].to_numpy(), colors[k],
                          names[k], len(group), lw=1.6, marker=marker, ms=3))
    for b in boundaries:
        ax.axvline(b + 0.5, color="0.35", ls=":", lw=1.1, zorder=0)
    if shade_phases:
        edges = [float(x.min()) - 0.5] + [b + 0.5 for b in boundaries] + [float(x.max()) + 0.5]
        tsk_values = sorted(set(keys["task_order"].astype(int)))
        for i in range(len(edges) - 1):
            if i % 2 == 1:
                ax.axvspan(edges[i], edges[i + 1], color="0.93", zorder=-1, lw=0)
            t = tsk_values[i] if i < len(tsk_values) else i + 1
            label = names[t - 1] if 1 <= t <= len(names) and group.first.n_tasks > 1 else ""
            if label and len(edges) <= 7:
                ax.text((edges[i] + edges[i + 1]) / 2, 1.0, f"learning {label}",
                        transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                        fontsize=8, color="0.3")
        ax.set_xlim(edges[0], edges[-1])
    else:
        ax.set_xlim(float(x.min()) - 0.5, float(x.max()) + 0.5)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("epoch (cumulative)")
    return lines
