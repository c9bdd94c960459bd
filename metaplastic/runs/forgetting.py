"""Continual-learning metrics of a run, from its CSV (docs/METRICS.md).

R[l, i] is the test accuracy (%) of task i after the last epoch of task l (the last CSV row
with ``task_order == l + 1``), for T tasks learned one after another. Then

- average accuracy  ACC = (1/T) sum_i R[T-1, i]                       (Lopez-Paz & Ranzato 2017)
- backward transfer BWT = (1/(T-1)) sum_{i<T-1} (R[T-1, i] - R[i, i])  (Lopez-Paz & Ranzato 2017)
- forgetting        F   = (1/(T-1)) sum_{i<T-1} max_{l<T-1} (R[l, i] - R[T-1, i])
                                                                       (Chaudhry et al. 2018)

BWT < 0 is forgetting of earlier tasks; F >= 0 is the average drop of each earlier task from its
best accuracy to its final one. They exist only for a sequence of at least two tasks learned
one by one (not for interleaved training, a single task or the stream experiments).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metaplastic.runs import records

#: the summary columns these metrics add (metaplastic.launch.summary), in this order
METRIC_NAMES = ("BWT", "forgetting")


@dataclass(frozen=True)
class SequenceMetrics:
    average_accuracy: float
    backward_transfer: float
    forgetting: float


def accuracy_matrix(csv_path: str | Path) -> np.ndarray | None:
    """R (T x T, %) of a continual-learning CSV, or None where the metrics do not apply (fewer
    than two tasks, or not one phase per task: interleaved training, a run not finished)."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    tasks = sorted((k for k in rows[0] if re.fullmatch(r"acc_test_tsk_\d+", k)),
                   key=lambda k: int(k.rsplit("_", 1)[1]))
    if len(tasks) < 2 or "task_order" not in rows[0]:
        return None
    last_of_phase: dict[int, dict] = {}
    for row in rows:
        last_of_phase[int(row["task_order"])] = row
    if sorted(last_of_phase) != list(range(1, len(tasks) + 1)):
        return None
    return np.array([[float(last_of_phase[phase][k]) for k in tasks]
                     for phase in range(1, len(tasks) + 1)])


def sequence_metrics(matrix: np.ndarray) -> SequenceMetrics:
    """ACC, BWT and forgetting of an accuracy matrix (see the module docstring)."""
    r = np.asarray(matrix, dtype=float)
    t = r.shape[0]
    if r.shape != (t, t) or t < 2:
        raise ValueError(f"an accuracy matrix is T x T with T >= 2, got {r.shape}")
    earlier = np.arange(t - 1)
    backward = float(np.mean(r[-1, earlier] - r[earlier, earlier]))
    drops = np.max(r[:-1, earlier], axis=0) - r[-1, earlier]   # max over l < T-1, as defined
    return SequenceMetrics(float(np.mean(r[-1])), backward, float(np.mean(drops)))


#: the epochs of task 2 after which :func:`first_task_course` reads task 1's accuracy, and the
#: accuracy (%) whose crossing it reports: Fig. 1(a)'s caption (MNIST falls to about 20 %
#: within 25 epochs of Fashion-MNIST)
COURSE_EPOCHS = (1, 10, 25)
COURSE_THRESHOLD = 25.0


@dataclass(frozen=True)
class FirstTaskCourse:
    """Task 1's test accuracy (%) while task 2 is learned, in a two-task sequence."""

    learned: float                    # after task 1's last epoch
    after: tuple[float | None, ...]   # after COURSE_EPOCHS[k] epochs of task 2 (None: fewer ran)
    lowest: float                     # the lowest after any epoch of task 2
    final: float                      # after task 2's last epoch
    first_below: int | None           # the first epoch of task 2 after which it is < threshold
    stays_below: int | None           # the epoch of task 2 from which it stays < threshold


def first_task_course(csv_path: str | Path, epochs=COURSE_EPOCHS,
                      threshold: float = COURSE_THRESHOLD) -> FirstTaskCourse | None:
    """Task 1's course through task 2, from the rows of task 2's epochs (``task_order`` 2,
    ``epoch`` 1, 2, ... in the task); None where the run is not two tasks learned one after the
    other. A CSV that is not a continual-learning result, or holds a cell that is not a finite
    accuracy, raises :class:`metaplastic.runs.records.RecordError`."""
    frame = records.read_records(csv_path)
    if records.n_tasks_of(tuple(frame.columns)) != 2:
        return None
    records.check_finite_accuracies(frame, csv_path)
    order = frame["task_order"].astype(int)
    first, second = frame[order == 1], frame[order == 2]
    if first.empty or second.empty or len(first) + len(second) != len(frame) \
            or second["epoch"].astype(int).tolist() != list(range(1, len(second) + 1)):
        return None
    accuracy = second["acc_test_tsk_1"].astype(float).tolist()
    below = [e for e, acc in enumerate(accuracy, start=1) if acc < threshold]
    last_above = max((e for e, acc in enumerate(accuracy, start=1) if acc >= threshold),
                     default=0)
    return FirstTaskCourse(float(first["acc_test_tsk_1"].iloc[-1]),
                           tuple(accuracy[e - 1] if e <= len(accuracy) else None
                                 for e in epochs),
                           min(accuracy), accuracy[-1], below[0] if below else None,
                           last_above + 1 if last_above < len(accuracy) else None)
