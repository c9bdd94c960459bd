"""Result records: CSV schemas of every experiment, a row writer that never loses a row,
and a reader that refuses files with the wrong columns.

A run directory holds ``metrics.csv`` (one row per epoch), ``config.json`` (the run's
hyperparameters) and, depending on the experiment, ``hidden_weight_hist.csv`` (Fig. 2g,h)
and ``sign_switch.csv`` (Fig. 5c-e).
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from metaplastic.errors import MetaplasticError
from metaplastic.fileio import append_whole, write_atomic

METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.json"
HIDDEN_HIST_FILE = "hidden_weight_hist.csv"
SIGN_SWITCH_FILE = "sign_switch.csv"

CONTINUAL_BASE_COLUMNS = (
    "net", "scenario", "arch", "norm", "lr", "meta", "ewc", "SI", "task_order",
    "tsk", "epoch", "acc_tr", "loss_tr",
)
# Published meanings (docs/METHOD.md section 4): task_order = 1-based index of the task being learned,
# tsk = its name (pMNIST1, MNIST, animals, cifar100-1, ...), lr = that task's learning rate,
# meta = {'l1': m1, 'l2': m2, ...}; then acc_test_tsk_i, loss_test_tsk_i task by task.
STREAM_FMNIST_COLUMNS = (
    "lr", "meta", "init", "task_order", "tsk", "epoch",
    "acc_tr_sub", "acc_tr", "acc_test", "acc_1st_sub",
)
# init = the init width, meta = the coefficient, task_order = 1-based part index,
# tsk = 'sub_FMNIST_k/N' (or sub_MNIST_k/N).
IDENTITY_COLUMNS = ("net", "arch")  # ours, after the published stream FMNIST columns
#: ours, after the published columns: the BatchNorm choices of the published version
#: (metaplastic.method.published); a CSV written before they existed has neither
VERSION_COLUMNS = ("bn_gamma_init", "bn_stats")
STREAM_CIFAR10_COLUMNS = (
    "lr", "mbs", "meta", "task_order", "tsk", "epoch", "acc_tr_sub", "acc_tr", "acc_test",
)
# task_order = 1-based part index, tsk = 'CIFAR10_k/N' (published; stream FMNIST has 'sub_').
HIDDEN_HIST_COLUMNS = ("task", "layer", "bin_low", "bin_high", "count")
SIGN_SWITCH_COLUMNS = (
    "layer", "bin", "magnitude_mean", "loss_increase_mean", "loss_increase_std",
    "n_weights", "sample", "runs",
)


class RecordError(MetaplasticError):
    """A result file is missing or does not have the expected columns."""


def continual_columns(n_tasks: int) -> tuple[str, ...]:
    """Columns of a continual-learning metrics row for a sequence of ``n_tasks`` tasks:
    the base columns, then ``acc_test_tsk_i, loss_test_tsk_i`` for i = 1..n_tasks."""
    pairs = tuple(c for k in range(1, n_tasks + 1) for c in (f"acc_test_tsk_{k}",
                                                              f"loss_test_tsk_{k}"))
    return CONTINUAL_BASE_COLUMNS + pairs


def meta_label(meta: Sequence[float]) -> object:
    """The stream records' 'meta' column: the value when one m serves all layers, else
    'm1-m2-...'."""
    return meta[0] if len(meta) == 1 else "-".join(str(m) for m in meta)


def meta_mapping(meta_per_layer: Sequence[float]) -> str:
    """The continual records' 'meta' column as published: "{'l1': m1, 'l2': m2, ...}"."""
    return str({f"l{k}": float(m) for k, m in enumerate(meta_per_layer, start=1)})


def continual_row_prefix(net: str, scenario: str, arch: str, norm: str,
                         meta_per_layer: Sequence[float], ewc: float = 0.0,
                         si: float = 0.0, bn_gamma_init: str | None = None,
                         bn_stats: str | None = None) -> dict:
    """The run-constant columns of a continual-learning metrics row (lr, task_order and tsk
    change with the task and are added by the runner), then those of our
    :data:`VERSION_COLUMNS` that are given (mnist_usps, whose versions agree, gives none)."""
    prefix = {"net": net, "scenario": scenario, "arch": arch, "norm": norm,
              "meta": meta_mapping(meta_per_layer), "ewc": ewc, "SI": si}
    given = {"bn_gamma_init": bn_gamma_init, "bn_stats": bn_stats}
    return prefix | {k: v for k, v in given.items() if v is not None}


def parse_meta_mapping(value: object) -> list[float]:
    """Per-layer m from a 'meta' cell: "{'l1': 1.35, ...}" (continual) or a number / 'a-b'."""
    import ast

    text = str(value).strip()
    if text.startswith("{"):
        mapping = ast.literal_eval(text)
        return [float(mapping[k]) for k in sorted(mapping, key=lambda k: int(str(k)[1:]))]
    return [float(v) for v in text.split("-")] if "-" in text[1:] else [float(text)]


def n_tasks_of(columns: Sequence[str]) -> int:
    """Number of tasks of a continual-learning CSV, read from its ``acc_test_tsk_k`` columns."""
    return sum(1 for c in columns if c.startswith("acc_test_tsk_"))


class CsvRecorder:
    """Appends rows with a fixed column list; each row is flushed and fsync'ed when written.

    Opening an existing file checks its header, so a resumed run continues the same file.
    ``added_later`` are columns a file written before they existed lacks: such a file keeps its
    header, and rows are written without them.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str],
                 added_later: Sequence[str] = ()):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.dropped: tuple[str, ...] = ()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f), [])
            older = tuple(c for c in self.columns if c not in added_later)
            if added_later and tuple(header) == older != self.columns:
                self.dropped = tuple(c for c in self.columns if c in added_later)
                self.columns = older
            if tuple(header) != self.columns:
                raise RecordError(
                    f"{self.path} has columns {header}, expected {list(self.columns)}; "
                    "use another output directory")
        else:
            write_atomic_text(self.path, _rows_to_text([list(self.columns)]))

    def write(self, row: Mapping[str, object]) -> None:
        """Write one row; its keys must be exactly the recorder's columns."""
        missing = [c for c in self.columns if c not in row]
        extra = [k for k in row if k not in self.columns and k not in self.dropped]
        if missing or extra:
            raise RecordError(f"row for {self.path.name}: missing {missing}, unexpected {extra}")
        line = _rows_to_text([[_format(row[c]) for c in self.columns]])
        append_whole(self.path, line.encode("utf-8"), "a row")   # never half a row

    def truncate_rows(self, n_rows: int) -> None:
        """Keep the header and the first ``n_rows`` rows (used when resuming from a checkpoint)."""
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if rows and tuple(rows[0]) == self.columns:
            rows = rows[: n_rows + 1]
        else:
            rows = [list(self.columns)]
        write_atomic_text(self.path, _rows_to_text(rows))


def write_rows(path: str | os.PathLike, columns: Sequence[str],
               rows: Iterable[Mapping[str, object]]) -> None:
    """Write a whole CSV at once, atomically."""
    lines = [list(columns)] + [[_format(r[c]) for c in columns] for r in rows]
    write_atomic_text(Path(path), _rows_to_text(lines))


def read_records(path: str | os.PathLike, columns: Sequence[str] | None = None,
                 kind: str = "continual"):
    """Read a result CSV into a pandas DataFrame, refusing it when its columns are wrong.

    ``columns`` is the expected published header; with ``kind="continual"`` and no
    ``columns``, the header must start with ``continual_columns(N)`` for the N it declares.
    Our extra columns (:func:`extra_columns_ok`) may follow the published ones.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise RecordError(f"no such result file: {path}")
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for malformed files
        raise RecordError(f"{path} is not a readable CSV: {exc}") from None
    header = tuple(frame.columns)
    if columns is None and kind == "continual":
        columns = continual_columns(n_tasks_of(header))
        if n_tasks_of(header) == 0:
            raise RecordError(f"{path} has no acc_test_tsk_k columns; columns are {list(header)}")
    if columns is not None and not matches_schema(header, columns):
        raise RecordError(
            f"{path} has the wrong columns.\n  found:    {list(header)}\n"
            f"  expected: {list(columns)}")
    for column in header:   # accuracies and losses are numbers (NaN and inf are numbers)
        if (str(column).startswith(("acc_", "loss_"))
                and not pd.api.types.is_numeric_dtype(frame[column])):
            numbers = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][numbers.isna() & frame[column].notna()]
            if len(bad):
                raise RecordError(f"{path}: column {column}, row {bad.index[0] + 1} holds "
                                  f"{bad.iloc[0]!r}, not a number")
    return frame


def numbers_in(frame, path, columns: Sequence[str]):
    """A copy of ``frame`` whose ``columns`` are numeric; RecordError naming ``path``, the column
    and the file's row where a cell is empty or not a number."""
    import pandas as pd

    frame = frame.copy()
    for column in columns:
        numbers = pd.to_numeric(frame[column], errors="coerce")
        if numbers.isna().any():
            raise RecordError(f"{path}: column {column} holds a value that is not a number "
                              f"(row {int(numbers.isna().to_numpy().argmax()) + 2} of the file)")
        frame[column] = numbers
    return frame


def check_finite_accuracies(frame, path) -> None:
    """Refuse a result whose accuracy cells are NaN or infinite: a run stops at a non-finite
    loss (one line, no row written), so such a cell means a damaged or foreign file, and a plot
    or mean of it would be silently wrong."""
    import numpy as np

    for column in frame.columns:
        if str(column).startswith("acc_"):
            values = frame[column].to_numpy(dtype=float, na_value=np.nan)
            bad = np.flatnonzero(~np.isfinite(values))   # NaN, inf and empty cells
            if len(bad):
                raise RecordError(f"{path}: column {column}, row {bad[0] + 1} holds "
                                  f"{values[bad[0]]}, not a finite accuracy; not plotted")


def extra_columns_ok(extra: Sequence[str]) -> bool:
    """Whether ``extra`` (the columns after the published ones) are ours: optionally
    :data:`IDENTITY_COLUMNS`, optionally each of :data:`VERSION_COLUMNS`, then none or the flip
    statistics of some number of layers (:func:`metaplastic.method.flips.flip_columns`)."""
    from metaplastic.method.flips import flip_columns

    extra = tuple(extra)
    for optional in (IDENTITY_COLUMNS, *((c,) for c in VERSION_COLUMNS)):
        if extra[:len(optional)] == optional:
            extra = extra[len(optional):]
    n_layers = sum(1 for c in extra if c.startswith("flips_l"))
    return extra == flip_columns(n_layers)


def matches_schema(header: Sequence[str], published: Sequence[str]) -> bool:
    """The published columns, in order, then only our extra columns."""
    header, published = tuple(header), tuple(published)
    return header[:len(published)] == published and extra_columns_ok(header[len(published):])


def save_config(run_dir: str | os.PathLike, config: Mapping[str, object]) -> Path:
    """Save the run's hyperparameters as ``config.json`` beside its metrics."""
    path = Path(run_dir) / CONFIG_FILE
    write_atomic_text(path, json.dumps(dict(config), indent=2, sort_keys=True, default=str) + "\n")
    return path


def load_config(run_dir: str | os.PathLike) -> dict:
    """The run's config.json as a dict ({} where there is none); RecordError where it is not
    a readable JSON object (malformed, not UTF-8, a list, null, a symbolic link)."""
    path = Path(run_dir) / CONFIG_FILE
    if path.is_symlink():
        raise RecordError(f"{path} is a symbolic link; a run folder's files must be its own")
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RecordError(f"{path} is not a readable config.json ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120]})") from None
    if not isinstance(config, dict):
        raise RecordError(f"{path} holds {type(config).__name__}, not a configuration (a JSON "
                          "object)")
    return config


def write_atomic_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`metaplastic.fileio.write_atomic`)."""
    write_atomic(path, text)


def _rows_to_text(rows: list[list[object]]) -> str:
    import io

    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue()


def _format(value: object) -> object:
    if isinstance(value, float):   # NumPy's float64 too: its repr is 'np.float64(...)'
        return repr(float(value))
    return value
