"""Fig. 3: final mean test accuracy over all tasks against the hidden layer width."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from metaplastic.errors import ConfigError
from metaplastic.plots.draw import SEQ_COLORS, band, continual_only, new_figure, save
from metaplastic.plots.labels import fmt_value, meta_of, method_of, natural_key
from metaplastic.plots.runs import Run, group_runs, load_runs
from metaplastic.runs.records import RecordError


def plot_hidden_size(runs, out, labels: Sequence[str] | None = None,
                     pdf: bool = False) -> list[Path]:
    """Fig. 3: final mean test accuracy over all tasks (last row of each run) against the
    width of the first hidden layer, one line per method ('sequential', 'interleaved',
    'EWC', ...; with the metaplasticity value appended when several are present). Seeds of
    one configuration give the mean with a +/- std band. ``labels`` rename the lines, in
    order of first appearance."""
    runs = load_runs(runs)
    continual_only(runs, "hidden-size")
    groups = group_runs(runs)
    metas = {meta_of(g.first) for g in groups}
    lines: dict[str, dict[int, list[float]]] = {}
    for group in groups:
        run = group.first
        width = _hidden_width(run)
        label = method_of(run)
        if len(metas) > 1:
            label += f" m={fmt_value(meta_of(run))}"
        for member in group.runs:
            last = member.frame.iloc[-1]
            accs = [float(last[f"acc_test_tsk_{k}"]) for k in range(1, member.n_tasks + 1)]
            lines.setdefault(label, {}).setdefault(width, []).append(float(np.mean(accs)))
    names = list(lines)
    if labels is not None:
        if len(labels) != len(names):
            raise ConfigError(f"got {len(labels)} labels for {len(names)} lines: "
                              f"{', '.join(names)}")
        names_shown = list(labels)
    else:
        names_shown = names
    fig, (ax,) = new_figure(1, panel_size=(6.0, 4.2))
    markers = "osD^v<>ph*"
    all_widths = set()
    meta_names = sorted({n.partition(" m=")[2] for n in names} - {""}, key=natural_key,
                        reverse=True)
    for i, (name, shown) in enumerate(zip(names, names_shown)):
        widths = sorted(lines[name])
        all_widths.update(widths)
        mean = np.array([np.mean(lines[name][w]) for w in widths])
        std = np.array([np.std(lines[name][w]) for w in widths])
        n = max(len(v) for v in lines[name].values())
        style = _method_style(name, i, meta_names)
        band(ax, np.array(widths, float), mean, std, style["color"], shown, n,
             marker=markers[i % len(markers)], lw=1.6, ls=style["ls"])
    ax.set_xscale("log", base=2)
    ticks = sorted(all_widths)
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("hidden layer width (neurons)")
    ax.set_ylabel("final mean test accuracy over tasks (%)")
    n_tasks = sorted({g.first.n_tasks for g in groups})
    ax.set_title(f"Accuracy after {'/'.join(map(str, n_tasks))} tasks vs. hidden size",
                 fontsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save(fig, out, pdf)


def _hidden_width(run: Run) -> int:
    arch = run.identity("arch", "")
    m = re.match(r"\s*\[?\s*(\d+)", str(arch))
    if not m:
        raise RecordError(f"{run.csv_path}: cannot read the hidden layer width from arch "
                          f"{arch!r} (expected e.g. '4096-4096')")
    return int(m.group(1))


_METHOD_COLORS = {"sequential": "tab:blue", "interleaved": "tab:green", "EWC": "tab:red",
                  "SI": "tab:purple", "random consolidation": "tab:brown"}


def _method_style(name: str, index: int, metas: list) -> dict:
    """Colour by method; with several meta values, line style by meta (m=0 dashed)."""
    method, _, meta = name.partition(" m=")
    color = _METHOD_COLORS.get(method, SEQ_COLORS[index % len(SEQ_COLORS)])
    styles = ["-", "-.", (0, (1, 1.5)), (0, (5, 1.5, 1, 1.5))]
    if not meta:
        return {"color": color, "ls": "-"}
    if meta in ("0", "0.0"):
        return {"color": color, "ls": "--"}
    nonzero = [m for m in metas if m not in ("0", "0.0")]
    return {"color": color, "ls": styles[nonzero.index(meta) % len(styles)]}
