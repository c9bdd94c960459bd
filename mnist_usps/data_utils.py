"""Data of the MNIST/USPS experiment: the training windows and the tasks (docs/METHOD.md section 6).

USPS itself (sources, checks, 28x28 padding) is read by :mod:`metaplastic.data.usps`.

Training windows: MNIST's training set is restricted to a random contiguous window of 2000 samples,
USPS's to one of 1800. The starts are drawn from ``torch.Generator().manual_seed(seed)``, always
MNIST first then USPS, whatever the task order, so that a dataset gets the same window in the
two-task runs and in the single-task baselines of the same seed. Test sets are complete.
"""
from __future__ import annotations

import os

import torch

from metaplastic.data.datasets import load_image_dataset
from metaplastic.data.tasks import DEFAULT_TEST_BATCH, TaskData, check_task_names as check_experiment_tasks
from metaplastic.data.usps import load_usps
from metaplastic.errors import ConfigError


#: Published training-window sizes.
TRAIN_WINDOW = {"MNIST": 2000, "USPS": 1800}
#: Order in which the window starts are drawn (independent of the task order).
WINDOW_DRAW_ORDER = ("MNIST", "USPS")
TEST_BATCH = DEFAULT_TEST_BATCH        # 100
TRAIN_EVAL_BATCH_SIZE = 20  # acc_tr on the training loader, batch 20 as published


# --------------------------------------------------------------------------------------------
# Windows and tasks
# --------------------------------------------------------------------------------------------


def window_start(n_total: int, size: int, generator: torch.Generator) -> int:
    """A uniformly drawn start of a contiguous window of ``size`` among ``n_total`` samples."""
    if not 0 < size <= n_total:
        raise ConfigError(f"a training window of {size} samples does not fit in {n_total}")
    return int(torch.randint(0, n_total - size + 1, (1,), generator=generator))


def draw_windows(seed: int, totals: dict[str, int], sizes: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(start, size) of each dataset's training window, reproducible from ``seed``.

    One generator seeded with ``seed`` draws the starts in :data:`WINDOW_DRAW_ORDER`, for every
    dataset of that order, so that a dataset's window does not depend on the task sequence.
    """
    generator = torch.Generator().manual_seed(int(seed))
    windows = {}
    for name in WINDOW_DRAW_ORDER:
        windows[name] = (window_start(totals[name], sizes[name], generator), sizes[name])
    return windows


def check_task_names(names: list[str]) -> None:
    """MNIST and USPS, in any order or alone."""
    if not names:
        raise ConfigError("--task-sequence needs at least one task (MNIST, USPS)")
    check_experiment_tasks(names, "mnist_usps")


def build_tasks(names: list[str], data_root: str | os.PathLike[str] | None, device: torch.device,
                seed: int, window_sizes: dict[str, int] | None = None) -> tuple[list[TaskData], dict]:
    """The tasks in order (training windows drawn from ``seed``), and the windows used.

    Each dataset is read once. Returns ``(tasks, windows)`` with windows[name] = (start, size).
    """
    check_task_names(names)
    sizes = dict(TRAIN_WINDOW, **(window_sizes or {}))
    full = {}
    for name in dict.fromkeys(names):
        full[name] = (load_image_dataset("MNIST", data_root, device) if name == "MNIST"
                      else load_usps(data_root, device))
    # Totals of datasets not in the sequence: their published sizes, so the draws never change.
    totals = {"MNIST": 60000, "USPS": 7291}
    totals.update({name: len(d.train_x) for name, d in full.items()})
    windows = draw_windows(seed, totals, sizes)
    tasks = []
    for name in names:
        data = full[name]
        start, size = windows[name]
        tasks.append(TaskData(name, data.train_x[start:start + size], data.train_y[start:start + size],
                              data.test_x, data.test_y, test_batch_size=TEST_BATCH,
                              train_eval_batch_size=TRAIN_EVAL_BATCH_SIZE))
    used = {name: windows[name] for name in dict.fromkeys(names)}
    return tasks, used
