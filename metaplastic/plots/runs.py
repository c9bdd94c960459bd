"""Loading and grouping of runs for the figures.

A run is one metrics CSV (``metrics.csv`` of a run directory, or a CSV file given directly)
with its ``config.json`` when there is one; its schema (continual learning, stream FMNIST,
stream CIFAR-10) is recognised from the columns. Runs sharing one configuration (the same
``config.json`` apart from the settings in :data:`IGNORED_CONFIG_KEYS` and time stamps; the
metrics' hyperparameter columns when there is no config.json) form a :class:`RunGroup`, drawn
as the mean with a +/- one standard deviation band.
"""
from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from metaplastic.errors import ConfigError
from metaplastic.method import published
from metaplastic.runs.records import (
    CONFIG_FILE,
    METRICS_FILE,
    STREAM_CIFAR10_COLUMNS,
    STREAM_FMNIST_COLUMNS,
    RecordError,
    check_finite_accuracies,
    continual_columns,
    load_config,
    matches_schema,
    n_tasks_of,
    read_records,
)

#: config.json keys that never distinguish one configuration from another: the seed, and the
#: records written beside the config. The config's own fields marked result-neutral or
#: per-seed (metaplastic.runs.run_config.neutral / per_seed) are listed in config.json itself.
IGNORED_CONFIG_KEYS = frozenset({"seed", "run_dir", "hostname", "environment", "launches",
                                 "result_neutral", "per_seed"})
#: the flags of the Benna-Fusi optimizer (metaplastic/method/beaker.py), used only with --beaker
BEAKER_PARAMETERS = frozenset({"fb", "n_bk", "ratios", "areas"})
TIME_KEY = re.compile(r"(^|_)(time|timestamp|date|started|finished|created|elapsed|"
                      r"duration|wall_s|wall_time)(_|$)")

#: the hyperparameter columns of each metrics schema that group runs when no config.json is present
GROUPING_COLUMNS = {
    "continual": ("net", "scenario", "arch", "norm", "lr", "meta", "ewc", "SI"),
    "stream_fmnist": ("net", "arch", "init", "meta", "lr"),
    "stream_cifar10": ("lr", "mbs", "meta"),
}
KIND_TITLES = {"stream_fmnist": "stream FMNIST", "stream_cifar10": "stream CIFAR-10"}


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


def file_in(path: Path, filename: str) -> Path:
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


def read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="") as f:
            header = next(csv.reader(f), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise RecordError(f"cannot read {path}: {exc}") from None
    if not header:
        raise RecordError(f"{path} is empty (expected a CSV header and at least one row)")
    return header


def check_rows(frame, path: Path, what: str):
    if len(frame) == 0:
        raise RecordError(f"{path} has a header but no rows (expected {what})")
    return frame


def load_config_of(csv_path: Path, run_dir: Path | None) -> dict:
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
    csv_path = file_in(path, METRICS_FILE)
    header = read_header(csv_path)
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
    check_rows(frame, csv_path, "one row per epoch")
    check_finite_accuracies(frame, csv_path)
    config = load_config_of(csv_path, run_dir)
    if run_dir is not None:
        name = run_dir.name
    elif csv_path.name == METRICS_FILE:
        name = csv_path.parent.name
    else:
        name = csv_path.stem
    return Run(name=name, csv_path=csv_path, run_dir=run_dir, config=config, frame=frame,
               kind=kind)


def load_runs(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Run]:
    """:func:`load_run` of one path or of each of several."""
    paths = as_list(paths)
    if not paths:
        raise ConfigError("no run directory or metrics file given")
    return [load_run(p) for p in paths]


def as_list(runs) -> list:
    """One path, or an iterable of paths, as a list."""
    if isinstance(runs, (str, os.PathLike)):
        return [runs]
    return list(runs)


def load_table(run_or_csv, filename: str, columns, what: str):
    """(path, frame) of a run directory's ``filename`` (or the CSV given directly), read with
    the published ``columns``; a clear error if it is missing, empty or has no rows (``what``
    says which rows were expected)."""
    path = file_in(Path(run_or_csv), filename)
    read_header(path)
    return path, check_rows(read_records(path, columns), path, what)


def run_settings(config: dict) -> dict:
    """The settings of a config.json that distinguish one configuration from another: all
    but :data:`IGNORED_CONFIG_KEYS`, time stamps, empty values and switches that are off
    (False: how an option added later reads in the config.json of an older run, which lacks it);
    an older run's missing published-version fields read as the 2023 head's choices."""
    marked = set(config.get("result_neutral", [])) | set(config.get("per_seed", []))
    config = published.older_run_defaults(config) | config
    if not config.get("beaker"):   # the beaker's parameters mean nothing without --beaker (and
        # configs written before they existed lack them)
        config = {k: v for k, v in config.items() if k not in BEAKER_PARAMETERS}
    return {k: v for k, v in config.items()
            if k not in IGNORED_CONFIG_KEYS and k not in marked and not TIME_KEY.search(k)
            and v not in ({}, None, []) and v is not False}


def config_key(run: Run) -> tuple:
    """What identifies a run's configuration: config.json minus seed, output directory,
    device and time stamps; without config.json, the metrics' hyperparameter columns."""
    if run.config:
        body = json.dumps(run_settings(run.config), sort_keys=True, default=str)
    else:
        first = run.frame.iloc[0]
        body = json.dumps({c: str(first[c]) for c in GROUPING_COLUMNS[run.kind]},
                          sort_keys=True)
    return (run.kind, run.n_tasks, body)


def group_runs(runs: Sequence[Run]) -> list[RunGroup]:
    """Group runs sharing one configuration, in order of first appearance."""
    groups: dict[tuple, RunGroup] = {}
    for run in runs:
        key = config_key(run)
        groups.setdefault(key, RunGroup(key=key)).runs.append(run)
    return list(groups.values())


def aggregate(group: RunGroup, columns: Sequence[str], by=("task_order", "epoch")):
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


def cumulative_x(tsk, epoch):
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

    Taken from config ``task_sequence`` (every pMNIST gets its position in the sequence, as in
    the ``tsk`` column; other repeated names their occurrence number), or else the ``tsk``
    column of the metrics (published names, already numbered); 'task k' when they cannot be
    matched.
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
    for position, s in enumerate(seq, start=1):
        seen[s] = seen.get(s, 0) + 1
        if s == "pMNIST":
            names.append(f"pMNIST{position}")
        else:
            names.append(f"{s}{seen[s]}" if counts[s] > 1 else s)
    return names
