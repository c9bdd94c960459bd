"""Figures of the paper drawn from the result files of a run directory.

Every ``plot_*`` function takes run directories or CSV paths and an output path, writes a PNG
(and a PDF beside it when ``pdf=True`` or when ``out`` ends in ``.pdf``) and returns the list of
written paths. Figures:

==================================  =====================================================
``plot_task_accuracies``            Fig. 2(a-f): test accuracy of every task vs. epoch
``plot_hidden_weight_histograms``   Fig. 2(g,h): hidden-weight histograms after each task
``plot_hidden_size``                Fig. 3: final mean test accuracy vs. hidden size
``plot_two_task``                   Fig. 4: two-task sequences (MNIST/FMNIST, MNIST/USPS, ...)
``plot_stream``                     Fig. 4: stream FMNIST / stream CIFAR-10
``plot_sign_switch``                Fig. 5(c-e): loss increase of a sign switch vs. magnitude
==================================  =====================================================

Runs that share one configuration (the same ``config.json`` apart from the seed, the output
directory, the device and time stamps; see :func:`group_runs`) are drawn as their mean with a
shaded band of +/- one standard deviation.

Matplotlib is used through :class:`matplotlib.figure.Figure` with the Agg canvas (no pyplot
state, no display, no LaTeX). Command line: ``python plot_figures.py FIGURE PATHS... --out
OUT.png [--pdf] [--labels ...]``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.records import (
    CONFIG_FILE,
    HIDDEN_HIST_COLUMNS,
    HIDDEN_HIST_FILE,
    METRICS_FILE,
    SIGN_SWITCH_COLUMNS,
    SIGN_SWITCH_FILE,
    STREAM_CIFAR10_COLUMNS,
    STREAM_FMNIST_COLUMNS,
    RecordError,
    continual_columns,
    load_config,
    matches_schema,
    n_tasks_of,
    parse_meta_mapping,
    read_records,
)

__all__ = [
    "Run", "RunGroup", "load_run", "load_runs", "group_runs", "config_key", "task_names",
    "plot_task_accuracies", "plot_hidden_weight_histograms", "plot_hidden_size",
    "plot_two_task", "plot_stream", "plot_sign_switch", "main", "FIGURES",
]

#: config.json keys that do not distinguish one configuration from another (seeds of one
#: configuration differ only in these).
IGNORED_CONFIG_KEYS = frozenset({"seed", "out_dir", "device", "run_dir", "hostname",
                                 "environment", "data_root", "optimizer_impl", "train_impl",
                                 "keep_denormals", "checkpoint_every", "train_windows"})
_TIME_KEY = re.compile(r"(^|_)(time|timestamp|date|started|finished|created|elapsed|"
                       r"duration|wall_s|wall_time)(_|$)")

#: identity columns of each metrics schema, used for grouping when no config.json is present
_IDENTITY_COLUMNS = {
    "continual": ("net", "scenario", "arch", "norm", "lr", "meta", "ewc", "SI"),
    "stream_fmnist": ("net", "arch", "init", "meta", "lr"),
    "stream_cifar10": ("lr", "mbs", "meta"),
}
_KIND_TITLES = {"stream_fmnist": "stream FMNIST", "stream_cifar10": "stream CIFAR-10"}

_SEQ_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
               "tab:pink", "tab:gray", "tab:olive", "tab:cyan")


# --------------------------------------------------------------------------- loading


@dataclass
class Run:
    """One metrics file with its configuration (empty dict when there is no config.json)."""

    name: str
    csv_path: Path
    run_dir: Path | None
    config: dict
    frame: object  # pandas.DataFrame
    kind: str  # 'continual', 'stream_fmnist' or 'stream_cifar10'

    @property
    def n_tasks(self) -> int:
        if self.kind == "continual":
            return n_tasks_of(self.frame.columns)
        return int(self.frame["task_order"].max())

    def row_task_names(self) -> list[str]:
        """The ``tsk`` names of the phases present in the metrics, in ``task_order``."""
        first = self.frame.groupby("task_order", sort=True)["tsk"].first()
        return [str(v) for v in first.tolist()]

    def dataset(self) -> str:
        """Stream runs: the dataset ('FMNIST', 'CIFAR10'), from config.json or 'sub_X_k/N'."""
        if "task" in self.config:
            return str(self.config["task"])
        match = re.fullmatch(r"sub_(.+)_\d+/\d+", str(self.frame["tsk"].iloc[0]))
        return match.group(1) if match else ""

    def identity(self, column: str, default=None):
        """A hyperparameter: from config.json if present, else from the metrics' first row."""
        config_names = {"SI": "si", "arch": "hidden_layers"}
        key = config_names.get(column, column)
        if key in self.config:
            value = self.config[key]
            if column == "arch" and isinstance(value, (list, tuple)):
                return "-".join(str(v) for v in value)
            return value
        if column in self.frame.columns and len(self.frame):
            return self.frame[column].iloc[0]
        return default


@dataclass
class RunGroup:
    """Runs sharing one configuration (seeds of one experiment)."""

    key: tuple
    runs: list = field(default_factory=list)

    @property
    def first(self) -> Run:
        return self.runs[0]

    def __len__(self) -> int:
        return len(self.runs)


def _file_in(path: Path, filename: str) -> Path:
    """``path`` itself if it is a file, else ``path/filename``; a clear error if missing."""
    path = Path(path)
    if path.is_dir():
        target = path / filename
        if not target.is_file():
            present = sorted(p.name for p in path.iterdir())[:12]
            raise RecordError(f"run directory {path} has no {filename} (it holds: "
                              f"{', '.join(present) if present else 'nothing'})")
        return target
    if not path.exists():
        raise RecordError(f"no such run directory or result file: {path}")
    return path


def _read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordError(f"cannot read {path}: {exc}") from None
    if not header:
        raise RecordError(f"{path} is empty (expected a CSV header and at least one row)")
    return header


def _check_rows(frame, path: Path, what: str):
    if len(frame) == 0:
        raise RecordError(f"{path} has a header but no rows (expected {what})")
    return frame


def _load_config_of(csv_path: Path, run_dir: Path | None) -> dict:
    directory = run_dir if run_dir is not None else csv_path.parent
    try:
        return load_config(directory)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RecordError(f"{directory / CONFIG_FILE} is not valid JSON: {exc}") from None


def load_run(path: str | os.PathLike) -> Run:
    """Load a metrics CSV (or the ``metrics.csv`` of a run directory), recognising its schema.

    Raises :class:`RecordError` for a missing or empty file or one whose columns match none of
    the continual-learning, stream FMNIST and stream CIFAR-10 schemas.
    """
    path = Path(path)
    run_dir = path if path.is_dir() else None
    csv_path = _file_in(path, METRICS_FILE)
    header = _read_header(csv_path)
    if matches_schema(header, STREAM_FMNIST_COLUMNS):
        kind, columns = "stream_fmnist", STREAM_FMNIST_COLUMNS
    elif matches_schema(header, STREAM_CIFAR10_COLUMNS):
        kind, columns = "stream_cifar10", STREAM_CIFAR10_COLUMNS
    elif n_tasks_of(header) > 0:
        kind, columns = "continual", continual_columns(n_tasks_of(header))
    else:
        raise RecordError(
            f"{csv_path} is not a metrics file of a known schema; its columns are {header}.\n"
            f"  expected continual-learning columns {list(continual_columns(1))[:-2]}... "
            f"(acc_test_tsk_1..N, loss_test_tsk_1..N),\n"
            f"  or stream FMNIST columns {list(STREAM_FMNIST_COLUMNS)},\n"
            f"  or stream CIFAR-10 columns {list(STREAM_CIFAR10_COLUMNS)}")
    frame = read_records(csv_path, columns)
    _check_rows(frame, csv_path, "one row per epoch")
    config = _load_config_of(csv_path, run_dir)
    if run_dir is not None:
        name = run_dir.name
    elif csv_path.name == METRICS_FILE:
        name = csv_path.parent.name
    else:
        name = csv_path.stem
    return Run(name=name, csv_path=csv_path, run_dir=run_dir, config=config, frame=frame,
               kind=kind)


def load_runs(paths: Iterable[str | os.PathLike]) -> list[Run]:
    paths = list(paths)
    if not paths:
        raise ConfigError("no run directory or metrics file given")
    return [load_run(p) for p in paths]


def config_key(run: Run) -> tuple:
    """What identifies a run's configuration: config.json minus seed, output directory,
    device and time stamps; without config.json, the metrics' hyperparameter columns."""
    if run.config:
        items = {k: v for k, v in run.config.items()
                 if k not in IGNORED_CONFIG_KEYS and not _TIME_KEY.search(k)
                 and v not in ({}, None, [])}
        body = json.dumps(items, sort_keys=True, default=str)
    else:
        first = run.frame.iloc[0]
        body = json.dumps({c: str(first[c]) for c in _IDENTITY_COLUMNS[run.kind]},
                          sort_keys=True)
    return (run.kind, run.n_tasks, body)


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    """Group runs sharing one configuration, in order of first appearance."""
    groups: dict[tuple, RunGroup] = {}
    for run in runs:
        key = config_key(run)
        groups.setdefault(key, RunGroup(key=key)).runs.append(run)
    return list(groups.values())


def _aggregate(group: RunGroup, columns: Sequence[str], by=("task_order", "epoch")):
    """Mean and std (ddof=0; 0 for one run) of ``columns`` over the group's runs, aligned on
    ``by``. Returns (keys frame sorted by ``by``, mean frame, std frame)."""
    import pandas as pd

    stacked = pd.concat([r.frame[list(by) + list(columns)] for r in group.runs],
                        ignore_index=True)
    grouped = stacked.groupby(list(by), sort=True)[list(columns)]
    mean = grouped.mean()
    std = grouped.std(ddof=0).fillna(0.0)
    keys = mean.index.to_frame(index=False)
    return keys, mean.reset_index(drop=True), std.reset_index(drop=True)


def _cumulative_x(tsk, epoch):
    """x position of each (task_order, epoch) row over the whole run, and the task boundaries.

    Task t's epochs follow the last epoch of task t-1; a row with epoch 0 (evaluation before
    training, mnist_usps) sits at x = 0.
    """
    tsk = np.asarray(tsk, dtype=int)
    epoch = np.asarray(epoch, dtype=float)
    offsets, boundaries, offset = {}, [], 0.0
    for t in sorted(set(tsk.tolist())):
        offsets[t] = offset
        offset += float(epoch[tsk == t].max())
        boundaries.append(offset)
    x = np.array([offsets[t] for t in tsk]) + epoch
    return x, boundaries[:-1]


# --------------------------------------------------------------------------- naming


def _expand_sequence(seq: list[str], n_tasks: int) -> list[str]:
    """Expand 'cifar100-K' entries into their K subsets when that gives n_tasks names."""
    if len(seq) == n_tasks:
        return seq
    out = []
    for item in seq:
        m = re.fullmatch(r"(?i)cifar100-(\d+)", item)
        if m:
            k = int(m.group(1))
            out.extend(f"CIFAR-100 {i}/{k}" for i in range(1, k + 1))
        else:
            out.append(item)
    return out


def task_names(run: Run) -> list[str]:
    """Names of the tasks of a continual-learning run, e.g. pMNIST1, pMNIST2, MNIST, FMNIST.

    Taken from config ``task_sequence`` (repeated names, and every pMNIST, get their occurrence
    number appended), or else the ``tsk`` column of the metrics (published names, already
    numbered); 'task k' when they cannot be matched.
    """
    n = run.n_tasks
    seq = run.config.get("task_sequence")
    if not (isinstance(seq, (list, tuple)) and seq):
        from_rows = run.row_task_names()
        return from_rows if len(from_rows) == n else [f"task {k}" for k in range(1, n + 1)]
    seq = _expand_sequence([str(s) for s in seq], n)
    if len(seq) != n:
        return [f"task {k}" for k in range(1, n + 1)]
    counts = {s: seq.count(s) for s in seq}
    seen: dict[str, int] = {}
    names = []
    for s in seq:
        seen[s] = seen.get(s, 0) + 1
        names.append(f"{s}{seen[s]}" if counts[s] > 1 or s == "pMNIST" else s)
    return names


def _fmt_value(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt_value(v) for v in value) + "]"
    return str(value)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def _meta_of(run: Run):
    value = run.identity("meta", 0.0)
    if isinstance(value, str) and value.strip().startswith("{"):  # published "{'l1': m1, ...}"
        value = parse_meta_mapping(value)
        if len(set(value)) == 1:
            value = value[0]
    if isinstance(value, (list, tuple)) and len(value) == 1:  # one m for all layers
        value = value[0]
    if isinstance(value, (list, tuple)):
        return _fmt_value(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _method_of(run: Run) -> str:
    """'interleaved', 'EWC', 'SI', 'random consolidation' or 'sequential'."""
    if _truthy(run.config.get("interleaved", False)):
        return "interleaved"
    if _truthy(run.config.get("rnd_consolidation", False)):
        return "random consolidation"
    if _truthy(run.identity("ewc", False)):
        return "EWC"
    if _truthy(run.identity("SI", False)):
        return "SI"
    return "sequential"


def _describe(run: Run) -> str:
    """A short title from the configuration, e.g. 'BNN m=1.35 4096-4096'."""
    if run.kind != "continual":
        parts = [_KIND_TITLES[run.kind], f"m={_fmt_value(_meta_of(run))}"]
        parts.append(f"{run.n_tasks} subsets")
        return ", ".join(parts)
    net = run.identity("net", "")
    arch = run.identity("arch", "")
    parts = [str(net).upper() if str(net).lower() in ("bnn", "dnn") else str(net),
             f"m={_fmt_value(_meta_of(run))}", str(arch)]
    method = _method_of(run)
    if method != "sequential":
        parts.append(method)
    return " ".join(p for p in parts if p and p != "nan")


_SHOWN_KEYS = frozenset({"net", "meta", "hidden_layers", "interleaved", "ewc", "si",
                         "rnd_consolidation", "task_sequence", "experiment"})


def _sequence_text(run: Run) -> str:
    seq = run.config.get("task_sequence")
    if isinstance(seq, (list, tuple)) and seq:
        items = [str(s) for s in seq]
    else:
        items = run.row_task_names()
    return " → ".join(i for i in items if i)


def _differences(groups: Sequence[RunGroup]) -> list[list[str]]:
    """Per group, 'key=value' for the settings (beyond those in the title) that differ
    between the groups, so that panels with otherwise equal titles can be told apart."""
    def settings(run: Run) -> dict:
        if run.config:
            return {k: v for k, v in run.config.items()
                    if k not in IGNORED_CONFIG_KEYS and k not in _SHOWN_KEYS
                    and not _TIME_KEY.search(k) and v not in ({}, None, [])}
        first = run.frame.iloc[0]
        return {c: first[c] for c in _IDENTITY_COLUMNS[run.kind]
                if c not in ("net", "meta", "arch", "ewc", "SI")}

    all_settings = [settings(g.first) for g in groups]
    keys = sorted({k for s in all_settings for k in s})
    differing = [k for k in keys
                 if len({json.dumps(s.get(k), default=str) for s in all_settings}) > 1]
    return [[f"{k}={_fmt_value(s.get(k, '-'))}" for k in differing] for s in all_settings]


def _group_labels(groups: Sequence[RunGroup], labels: Sequence[str] | None,
                  with_sequence: bool | None = None) -> list[str]:
    """Titles of the groups: ``labels`` if given (one per group), else from the config, with
    the task sequence (always if ``with_sequence``, else when it differs between groups) and
    any other differing setting on a second line."""
    if labels is None:
        sequences = [_sequence_text(g.first) for g in groups]
        if with_sequence is None:
            with_sequence = len(set(sequences)) > 1
        titles = []
        for g, seq, diff in zip(groups, sequences, _differences(groups)):
            title = _describe(g.first)
            if with_sequence and seq and g.first.kind == "continual":
                title = f"{seq}: {title}"
            if diff:
                title += "\n" + ", ".join(diff)
            titles.append(title)
        return titles
    labels = list(labels)
    if len(labels) != len(groups):
        listing = "; ".join(f"[{i + 1}] {_describe(g.first)} ({', '.join(r.name for r in g.runs)})"
                            for i, g in enumerate(groups))
        raise ConfigError(
            f"got {len(labels)} labels for {len(groups)} configurations (runs sharing one "
            f"configuration apart from the seed are drawn together): {listing}")
    return labels


def _seed_note(group: RunGroup) -> str:
    return f" (mean ± std, {len(group)} seeds)" if len(group) > 1 else ""


def _title_with_seeds(title: str, group: RunGroup) -> str:
    first, sep, rest = title.partition("\n")
    return first + _seed_note(group) + sep + rest


# --------------------------------------------------------------------------- figure helpers


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


def _new_figure(n_panels: int, ncols: int | None = None, panel_size=(4.6, 3.4),
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


def _save(fig, out, pdf: bool) -> list[Path]:
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


def _band(ax, x, mean, std, color, label, n, **kw):
    line, = ax.plot(x, mean, color=color, label=label, **kw)
    if n > 1:
        ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.22, linewidth=0)
    return line


def _task_colors(n: int) -> list:
    if n <= len(_SEQ_COLORS):
        return list(_SEQ_COLORS[:n])
    import matplotlib

    cmap = matplotlib.colormaps["viridis"]
    return [cmap(i / max(n - 1, 1)) for i in range(n)]


def _continual_only(runs: Sequence[Run], figure: str) -> None:
    for r in runs:
        if r.kind != "continual":
            raise RecordError(
                f"{r.csv_path} is a {_KIND_TITLES[r.kind]} metrics file; the {figure} figure "
                f"needs continual-learning metrics (acc_test_tsk_k columns); use 'stream'")


def _draw_task_curves(ax, group: RunGroup, names: list[str], shade_phases: bool,
                      marker: str | None = None):
    """Test accuracy of every task of a group against the cumulative epoch; returns lines."""
    n = group.first.n_tasks
    acc_cols = [f"acc_test_tsk_{k}" for k in range(1, n + 1)]
    keys, mean, std = _aggregate(group, acc_cols)
    x, boundaries = _cumulative_x(keys["task_order"], keys["epoch"])
    colors = _task_colors(n)
    lines = []
    for k, col in enumerate(acc_cols):
        lines.append(_band(ax, x, mean[col].to_numpy(), std[col].to_numpy(), colors[k],
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


# --------------------------------------------------------------------------- figures


def plot_task_accuracies(runs, out, labels: Sequence[str] | None = None,
                         pdf: bool = False) -> list[Path]:
    """Fig. 2(a-f): one panel per configuration, test accuracy of every task against the
    cumulative epoch, dotted lines at task boundaries. Seeds of one configuration are drawn
    as mean +/- std. ``labels`` (one per configuration) replace the panel titles."""
    runs = load_runs(_as_list(runs))
    _continual_only(runs, "accuracy")
    groups = group_runs(runs)
    titles = _group_labels(groups, labels)
    all_names = [task_names(g.first) for g in groups]
    shared_legend = all(n == all_names[0] for n in all_names)
    fig, axes = _new_figure(len(groups), sharey=True)
    legend_lines = None
    for i, (ax, group, title, names) in enumerate(zip(axes, groups, titles, all_names)):
        lines = _draw_task_curves(ax, group, names, shade_phases=False)
        ax.set_title(_title_with_seeds(title, group), fontsize=10)
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
    return _save(fig, out, pdf)


def plot_hidden_weight_histograms(run, out, log_y: bool = False, density: bool = False,
                                  pdf: bool = False) -> list[Path]:
    """Fig. 2(g,h): per layer, the histogram of the hidden weights after each task, overlaid
    as step lines (darker = earlier task). ``density`` divides each count by the layer's
    weight count and the bin width (bins may differ between tasks: each histogram spans
    that task's own min..max); ``log_y`` makes the y axis logarithmic."""
    import matplotlib

    path = _file_in(Path(run), HIDDEN_HIST_FILE)
    _read_header(path)
    frame = _check_rows(read_records(path, HIDDEN_HIST_COLUMNS), path,
                        "rows task, layer, bin_low, bin_high, count")
    config = _load_config_of(path, Path(run) if Path(run).is_dir() else None)
    seq = config.get("task_sequence")
    layers = sorted(frame["layer"].unique(), key=_natural_key)
    tasks = sorted(frame["task"].unique(), key=_natural_key)
    fig, axes = _new_figure(len(layers), ncols=min(len(layers), 3), panel_size=(4.4, 3.3),
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
        ax.set_title(_layer_title(layer), fontsize=10)
        ax.set_xlabel("hidden weight $W_h$")
        ax.set_ylabel("density" if density else "count")
        if log_y:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
    fig.legend(handles=lines, loc="outside lower center", ncol=min(len(lines), 6),
               fontsize=8, frameon=False)
    title = "Hidden weights after each task"
    if config:
        title += f" — {_describe_config(config)}"
    fig.suptitle(title, fontsize=11)
    return _save(fig, out, pdf)


def plot_hidden_size(runs, out, labels: Sequence[str] | None = None,
                     pdf: bool = False) -> list[Path]:
    """Fig. 3: final mean test accuracy over all tasks (last row of each run) against the
    width of the first hidden layer, one line per method ('sequential', 'interleaved',
    'EWC', ...; with the metaplasticity value appended when several are present). Seeds of
    one configuration give the mean with a +/- std band. ``labels`` rename the lines, in
    order of first appearance."""
    runs = load_runs(_as_list(runs))
    _continual_only(runs, "hidden-size")
    groups = group_runs(runs)
    metas = {_meta_of(g.first) for g in groups}
    lines: dict[str, dict[int, list[float]]] = {}
    for group in groups:
        run = group.first
        width = _hidden_width(run)
        label = _method_of(run)
        if len(metas) > 1:
            label += f" m={_fmt_value(_meta_of(run))}"
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
    fig, (ax,) = _new_figure(1, panel_size=(6.0, 4.2))
    markers = "osD^v<>ph*"
    all_widths = set()
    meta_names = sorted({n.partition(" m=")[2] for n in names} - {""}, key=_natural_key,
                        reverse=True)
    for i, (name, shown) in enumerate(zip(names, names_shown)):
        widths = sorted(lines[name])
        all_widths.update(widths)
        mean = np.array([np.mean(lines[name][w]) for w in widths])
        std = np.array([np.std(lines[name][w]) for w in widths])
        n = max(len(v) for v in lines[name].values())
        style = _method_style(name, i, meta_names)
        _band(ax, np.array(widths, float), mean, std, style["color"], shown, n,
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
    return _save(fig, out, pdf)


def plot_two_task(runs, out, labels: Sequence[str] | None = None,
                  pdf: bool = False) -> list[Path]:
    """Fig. 4 (MNIST/FMNIST, MNIST/USPS, CIFAR animals/vehicles, cifar100-K): one panel per
    configuration, test accuracy of each task against the epoch, the task phases shaded and
    labelled, seeds as mean +/- std."""
    runs = load_runs(_as_list(runs))
    _continual_only(runs, "two-task")
    groups = group_runs(runs)
    titles = _group_labels(groups, labels, with_sequence=True)
    fig, axes = _new_figure(len(groups), ncols=min(len(groups), 2), panel_size=(5.0, 3.6))
    for i, (ax, group, title) in enumerate(zip(axes, groups, titles)):
        names = task_names(group.first)
        _draw_task_curves(ax, group, names, shade_phases=True,
                          marker="o" if group.first.frame.shape[0] <= 40 else None)
        ax.set_title(_title_with_seeds(title, group), fontsize=10, pad=14)
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=8, loc="best", framealpha=0.85)
    return _save(fig, out, pdf)


def plot_stream(runs, out, labels: Sequence[str] | None = None,
                pdf: bool = False) -> list[Path]:
    """Fig. 4 stream learning (stream FMNIST / stream CIFAR-10 metrics, recognised by their
    columns). Per dataset, left: test accuracy against the cumulative epoch for each
    configuration (subset boundaries dotted); right: final test accuracy (solid) and
    final whole-training-set accuracy (dashed) against the metaplasticity m."""
    runs = load_runs(_as_list(runs))
    bad = [r for r in runs if r.kind == "continual"]
    if bad:
        raise RecordError(
            f"{bad[0].csv_path} is a continual-learning metrics file; the stream figure needs "
            f"stream FMNIST columns {list(STREAM_FMNIST_COLUMNS)} or stream CIFAR-10 columns "
            f"{list(STREAM_CIFAR10_COLUMNS)}")
    groups = group_runs(runs)
    titles = _group_labels(groups, labels)
    kinds = [k for k in ("stream_fmnist", "stream_cifar10") if any(g.first.kind == k
                                                                    for g in groups)]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11.0, 3.9 * len(kinds)), layout="constrained")
    axes = fig.subplots(len(kinds), 2, squeeze=False, width_ratios=(1.6, 1.0))
    all_metas = sorted({_fmt_value(_meta_of(g.first)) for g in groups}, key=_natural_key)
    meta_colors = dict(zip(all_metas, _task_colors(max(len(all_metas), 2))))
    for row, kind in enumerate(kinds):
        ax_curve, ax_meta = axes[row]
        kind_groups = [(g, t) for g, t in zip(groups, titles) if g.first.kind == kind]
        diffs = _differences([g for g, _ in kind_groups])
        datasets = sorted({g.first.dataset() for g, _ in kind_groups}
                          - {"", "nan"})
        n_subsets = {g.first.n_tasks for g, _ in kind_groups}
        final: dict[tuple, list] = {}
        used: dict[str, int] = {}
        boundary_sets = []
        for j, (group, title) in enumerate(kind_groups):
            keys, mean, std = _aggregate(group, ["acc_test", "acc_tr"])
            x, boundaries = _cumulative_x(keys["task_order"], keys["epoch"])
            boundary_sets.append(tuple(boundaries))
            meta = _fmt_value(_meta_of(group.first))
            if labels is not None:
                label = title
            else:
                label = ", ".join([f"m={meta}"] + diffs[j] +
                                  ([f"{group.first.n_tasks} subsets"] if len(n_subsets) > 1
                                   else []))
                if len(group) > 1:
                    label += f" ({len(group)} seeds)"
            styles = ["-", "--", "-.", ":"]
            ls = styles[used.get(meta, 0) % len(styles)]
            used[meta] = used.get(meta, 0) + 1
            _band(ax_curve, x, mean["acc_test"].to_numpy(), std["acc_test"].to_numpy(),
                  meta_colors[meta], label, len(group), lw=1.5, ls=ls)
            line_key = (group.first.dataset(), group.first.n_tasks)
            for member in group.runs:
                last = member.frame.iloc[-1]
                final.setdefault(line_key, []).append(
                    (_meta_of(member), float(last["acc_test"]), float(last["acc_tr"])))
        if len(set(boundary_sets)) == 1:
            for b in boundary_sets[0]:
                ax_curve.axvline(b + 0.5, color="0.6", ls=":", lw=0.8, zorder=0)
        name = f"stream {', '.join(datasets)}" if datasets else _KIND_TITLES[kind]
        subsets = "/".join(str(n) for n in sorted(n_subsets))
        from matplotlib.ticker import MaxNLocator

        ax_curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_curve.set_xlabel("epoch (cumulative over subsets; dotted: next subset)")
        ax_curve.set_ylabel("test accuracy (%)")
        ax_curve.set_title(f"{name} ({subsets} subsets): test accuracy while learning",
                           fontsize=10)
        ax_curve.grid(True, alpha=0.3)
        ax_curve.legend(fontsize=8, loc="best", framealpha=0.85)
        _draw_final_vs_meta(ax_meta, final)
        ax_meta.set_title(f"{name}: final accuracy vs. m", fontsize=10)
    return _save(fig, out, pdf)


def plot_sign_switch(run_or_csv, out, pdf: bool = False) -> list[Path]:
    """Fig. 5(c-e): one panel per layer, mean loss increase of a sign switch (+/- std over
    the repeats) against the mean normalised hidden-weight magnitude of its bin."""
    path = _file_in(Path(run_or_csv), SIGN_SWITCH_FILE)
    _read_header(path)
    frame = _check_rows(read_records(path, SIGN_SWITCH_COLUMNS), path,
                        "one row per layer and magnitude bin")
    layers = sorted(frame["layer"].unique(), key=_natural_key)
    fig, axes = _new_figure(len(layers), ncols=min(len(layers), 3), panel_size=(4.2, 3.4))
    for i, (ax, layer) in enumerate(zip(axes, layers)):
        rows = frame[frame["layer"] == layer].sort_values("magnitude_mean")
        x = rows["magnitude_mean"].to_numpy(float)
        y = rows["loss_increase_mean"].to_numpy(float)
        e = rows["loss_increase_std"].to_numpy(float)
        color = _SEQ_COLORS[i % len(_SEQ_COLORS)]
        ax.fill_between(x, y - e, y + e, color=color, alpha=0.2, lw=0)
        ax.errorbar(x, y, yerr=e, color=color, marker="o", ms=4, lw=1.4, capsize=2.5)
        ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
        sample = rows["sample"].iloc[0]
        repeats = rows["runs"].iloc[0]
        ax.set_title(f"{_layer_title(layer)}  (sample {_fmt_value(sample)}, "
                     f"{_fmt_value(repeats)} runs)", fontsize=10)
        ax.set_xlabel(r"mean normalised magnitude $|W_h|/\max|W_h|$")
        if i % 3 == 0:
            ax.set_ylabel("loss increase per switched weight")
        ax.set_xlim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.suptitle("Loss increase caused by switching the sign of binary weights", fontsize=11)
    return _save(fig, out, pdf)


# --------------------------------------------------------------------------- small helpers


def _as_list(runs) -> list:
    if isinstance(runs, (str, os.PathLike)):
        return [runs]
    return list(runs)


def _natural_key(value):
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _layer_title(layer) -> str:
    text = _fmt_value(layer.item() if hasattr(layer, "item") else layer)
    return text if not text.replace(".", "").isdigit() else f"layer {text}"


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


def _describe_config(config: dict) -> str:
    parts = []
    if "net" in config:
        parts.append(str(config["net"]).upper())
    if "meta" in config:
        meta = config["meta"]
        if isinstance(meta, (list, tuple)) and len(meta) == 1:
            meta = meta[0]
        parts.append(f"m={_fmt_value(meta)}")
    if isinstance(config.get("hidden_layers"), (list, tuple)):
        parts.append("-".join(str(h) for h in config["hidden_layers"]))
    return " ".join(parts)


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
    color = _METHOD_COLORS.get(method, _SEQ_COLORS[index % len(_SEQ_COLORS)])
    styles = ["-", "-.", (0, (1, 1.5)), (0, (5, 1.5, 1, 1.5))]
    if not meta:
        return {"color": color, "ls": "-"}
    if meta in ("0", "0.0"):
        return {"color": color, "ls": "--"}
    nonzero = [m for m in metas if m not in ("0", "0.0")]
    return {"color": color, "ls": styles[nonzero.index(meta) % len(styles)]}


def _draw_final_vs_meta(ax, final: dict) -> None:
    colors = _task_colors(max(len(final), 1))
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
        name = f"{dataset}, {n_sub} subsets" if dataset else f"{n_sub} subsets"
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


# --------------------------------------------------------------------------- command line

FIGURES = {
    "accuracy": "Fig. 2(a-f): test accuracy of every task vs. epoch (runs or metrics.csv)",
    "histograms": "Fig. 2(g,h): hidden-weight histograms after each task (one run or "
                  "hidden_weight_hist.csv)",
    "hidden-size": "Fig. 3: final mean test accuracy vs. hidden layer width (runs)",
    "two-task": "Fig. 4: two-task sequences, accuracy of each task vs. epoch (runs)",
    "stream": "Fig. 4: stream FMNIST / CIFAR-10 (runs)",
    "sign-switch": "Fig. 5(c-e): loss increase of a sign switch vs. magnitude (one run or "
                   "sign_switch.csv)",
    "flips": "flip statistics per layer: signs flipped per epoch, weights consolidated (runs)",
}


def _parser() -> argparse.ArgumentParser:
    from metaplastic.cli import ArgumentParser  # -h shows defaults; --version

    parser = ArgumentParser(
        prog="plot_figures.py",
        description="Draw the paper's figures from run directories or result CSV files.",
        epilog="figures:\n" + "\n".join(f"  {k:<12} {v}" for k, v in FIGURES.items()) +
        "\n\nexample: python plot_figures.py accuracy results/m0 results/m1.35 "
        "--out figs/fig2.png --pdf")
    parser.add_argument("figure", choices=sorted(FIGURES), metavar="FIGURE",
                        help="one of: " + ", ".join(FIGURES))
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="run directories or CSV files")
    parser.add_argument("--out", required=True, help="output PNG path")
    parser.add_argument("--pdf", action="store_true", help="also write a PDF beside the PNG")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="panel titles / line names, one per configuration (accuracy, "
                             "two-task, stream) or per line (hidden-size) (default: taken from "
                             "each run's configuration)")
    parser.add_argument("--log-y", action="store_true",
                        help="histograms: logarithmic count axis")
    parser.add_argument("--density", action="store_true",
                        help="histograms: normalise each histogram to unit area")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.figure in ("histograms", "sign-switch"):
            if len(args.paths) != 1:
                raise ConfigError(f"the {args.figure} figure takes one run directory or CSV "
                                  f"file, got {len(args.paths)}")
            if args.labels is not None:
                raise ConfigError(f"--labels does not apply to the {args.figure} figure")
        if (args.log_y or args.density) and args.figure != "histograms":
            raise ConfigError("--log-y and --density apply only to the histograms figure")
        if args.figure == "accuracy":
            written = plot_task_accuracies(args.paths, args.out, labels=args.labels,
                                           pdf=args.pdf)
        elif args.figure == "histograms":
            written = plot_hidden_weight_histograms(args.paths[0], args.out, log_y=args.log_y,
                                                    density=args.density, pdf=args.pdf)
        elif args.figure == "hidden-size":
            written = plot_hidden_size(args.paths, args.out, labels=args.labels, pdf=args.pdf)
        elif args.figure == "two-task":
            written = plot_two_task(args.paths, args.out, labels=args.labels, pdf=args.pdf)
        elif args.figure == "stream":
            written = plot_stream(args.paths, args.out, labels=args.labels, pdf=args.pdf)
        elif args.figure == "flips":
            from metaplastic.plot_flips import plot_flips

            written = plot_flips(args.paths, args.out, labels=args.labels, pdf=args.pdf)
        else:
            written = plot_sign_switch(args.paths[0], args.out, pdf=args.pdf)
    except MetaplasticError as exc:
        print(f"plot_figures.py: error: {exc}", file=sys.stderr)
        return 2
    for p in written:
        print(f"wrote {p}")
    return 0
