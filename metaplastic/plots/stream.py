"""Fig. 4 stream learning: stream FMNIST and stream CIFAR-10."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from metaplastic.plots.draw import band, save, task_colors
from metaplastic.plots.labels import (differences, fmt_value, group_labels, meta_of, natural_key,
                                      subsets_of, subsets_text)
from metaplastic.plots.runs import (KIND_TITLES, aggregate, cumulative_x, group_runs,
                                    load_runs)
from metaplastic.runs.records import STREAM_CIFAR10_COLUMNS, STREAM_FMNIST_COLUMNS, RecordError


def plot_stream(runs, out, labels: Sequence[str] | None = None,
                pdf: bool = False) -> list[Path]:
    """Fig. 4 stream learning (stream FMNIST / stream CIFAR-10 metrics, recognised by their
    columns). Per dataset, left: test accuracy against the cumulative epoch for each
    configuration (subset boundaries dotted); right: final test accuracy (solid) and
    final whole-training-set accuracy (dashed) against the metaplasticity m."""
    runs = load_runs(runs)
    bad = [r for r in runs if r.kind == "continual"]
    if bad:
        raise RecordError(
            f"{bad[0].csv_path} is a continual-learning metrics file; the stream figure needs "
            f"stream FMNIST columns {list(STREAM_FMNIST_COLUMNS)} or stream CIFAR-10 columns "
            f"{list(STREAM_CIFAR10_COLUMNS)}")
    groups = group_runs(runs)
    titles = group_labels(groups, labels)
    kinds = [k for k in ("stream_fmnist", "stream_cifar10") if any(g.first.kind == k
                                                                   for g in groups)]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 3.9 * len(kinds)), layout="constrained")
    axes = fig.subplots(len(kinds), 2, squeeze=False, width_ratios=(1.6, 1.0))
    all_metas = sorted({fmt_value(meta_of(g.first)) for g in groups}, key=natural_key)
    meta_colors = dict(zip(all_metas, task_colors(max(len(all_metas), 2))))
    for row, kind in enumerate(kinds):
        ax_curve, ax_meta = axes[row]
        kind_groups = [(g, t) for g, t in zip(groups, titles) if g.first.kind == kind]
        diffs = differences([g for g, _ in kind_groups])
        datasets = sorted({g.first.dataset() for g, _ in kind_groups}
                          - {"", "nan"})
        n_subsets = {subsets_of(g.first) for g, _ in kind_groups}
        final: dict[tuple, list] = {}
        used: dict[str, int] = {}
        boundary_sets = []
        for j, (group, title) in enumerate(kind_groups):
            keys, mean, std = aggregate(group, ["acc_test", "acc_tr"])
            x, boundaries = cumulative_x(keys["task_order"], keys["epoch"])
            boundary_sets.append(tuple(boundaries))
            meta = fmt_value(meta_of(group.first))
            if labels is not None:
                label = title
            else:
                label = ", ".join([f"m={meta}"] + diffs[j] +
                                  ([subsets_text(subsets_of(group.first))] if len(n_subsets) > 1
                                   else []))
                if len(group) > 1:
                    label += f" ({len(group)} seeds)"
            styles = ["-", "--", "-.", ":"]
            ls = styles[used.get(meta, 0) % len(styles)]
            used[meta] = used.get(meta, 0) + 1
            band(ax_curve, x, mean["acc_test"].to_numpy(), std["acc_test"].to_numpy(),
                 meta_colors[meta], label, len(group), lw=1.5, ls=ls)
            line_key = (group.first.dataset(), subsets_of(group.first))
            for member in group.runs:
                last = member.frame.iloc[-1]
                final.setdefault(line_key, []).append(
                    (meta_of(member), float(last["acc_test"]), float(last["acc_tr"])))
        if len(set(boundary_sets)) == 1:
            for b in boundary_sets[0]:
                ax_curve.axvline(b + 0.5, color="0.6", ls=":", lw=0.8, zorder=0)
        name = f"stream {', '.join(datasets)}" if datasets else KIND_TITLES[kind]
        subsets = ("/".join(str(n) for n in sorted(n_subsets)) + " subsets" if len(n_subsets) > 1
                   else subsets_text(*n_subsets))
        from matplotlib.ticker import MaxNLocator

        ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_curve.set_xlabel("epoch (cumulative over subsets; dotted: next subset)")
        ax_curve.set_ylabel("test accuracy (%)")
        ax_curve.set_title(f"{name} ({subsets}): test accuracy while learning",
                           fontsize=10)
        ax_curve.grid(True, alpha=0.3)
        ax_curve.legend(fontsize=8, loc="best", framealpha=0.85)
        _draw_final_vs_meta(ax_meta, final)
        ax_meta.set_title(f"{name}: final accuracy vs. m", fontsize=10)
    return save(fig, out, pdf)


def _draw_final_vs_meta(ax, final: dict) -> None:
    colors = task_colors(max(len(final), 1))
    all_meta = [m for pts in final.values() for m, _, _ in pts]
    numeric = all(isinstance(m, float) for m in all_meta)
    categories = sorted({str(m) for m in all_meta}) if not numeric else []
    for c, ((dataset, n_sub), pts) in enumerate(sorted(final.items())):
        by_meta: dict = {}
        for m, acc_test, acc_tr in pts:
            by_meta.setdefault(m if numeric else str(m), []).append((acc_test, acc_tr))
        ms = sorted(by_meta) if numeric else [m for m in categories if m in by_meta]
        x = np.array(ms, float) if numeric else np.array([categories.index(m) for m in ms],
                                                         float)
        test = np.array([[a for a, _ in by_meta[m]] for m in ms], dtype=object)
        t_mean = np.array([np.mean(v) for v in test])
        t_std = np.array([np.std(v) for v in test])
        tr_mean = np.array([np.mean([b for _, b in by_meta[m]]) for m in ms])
        tr_std = np.array([np.std([b for _, b in by_meta[m]]) for m in ms])
        name = f"{dataset}, {subsets_text(n_sub)}" if dataset else subsets_text(n_sub)
        ax.errorbar(x, t_mean, yerr=t_std, color=colors[c], marker="o", lw=1.6, capsize=3,
                    label=f"{name}: test")
        ax.errorbar(x, tr_mean, yerr=tr_std, color=colors[c], marker="s", lw=1.2, ls="--",
                    capsize=3, mfc="white", label=f"{name}: train (whole set)")
    if not numeric:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
    ax.set_xlabel("metaplasticity m")
    ax.set_ylabel("final accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right", framealpha=0.85)
