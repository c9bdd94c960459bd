"""The task-sequence runner shared by continual_learning, mnist_usps and cifar_features.

For each task, for each epoch: train on the task, then evaluate (current task's training set,
every task's test set), write one CSV row, checkpoint. At the end of a task: store its
normalization state (scenario 'task'), consolidate (EWC / SI), save hidden weights if asked.
A run resumed from its checkpoint writes exactly the rows an uninterrupted run would.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from metaplastic import records
from metaplastic.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_atomic, save_checkpoint
from metaplastic.consolidation import EWC, SynapticIntelligence
from metaplastic.engine import evaluate, progress_bar, train_epoch
from metaplastic.flips import FlipStatistics
from metaplastic.models import layer_weight, weight_layers
from metaplastic.norms import norm_state, using_norm_state
from metaplastic.optim import make_optimizer
from metaplastic.progress import RunClock
from metaplastic.tasks import TaskData, concatenated

HIDDEN_WEIGHT_BINS = 100


@dataclass
class SequenceSettings:
    """How a sequence of tasks is learned (everything the runner needs besides model and data)."""

    epochs_per_task: int
    lr: float
    meta: list[float]
    weight_decay: float
    train_batch_size: int = 100
    gamma: float = 1.0
    scenario: str = "task"             # 'task': earlier tasks evaluated with their own norm state
    optimizer_per_task: bool = True    # continual_learning: fresh Adam state for every task
    plain_adam: bool = False           # SI as published: torch.optim.Adam, not metaplastic
    initial_evaluation: bool = False   # mnist_usps: an epoch-0 row before any training
    interleaved: bool = False
    save_hidden_weights: bool = False
    checkpoint_every: int = 1
    seed: int = 0
    optimizer_implementation: str = "auto"
    stop_after_epochs: Optional[int] = None  # testing aid: simulate a crash after N epochs
    ewc: Optional[EWC] = None
    si: Optional[SynapticIntelligence] = None
    progress: bool = True
    flip_statistics: bool = True       # extra columns after the published ones (metaplastic.flips)


@dataclass
class _Position:
    task: int = 0    # index of the task being learned
    epoch: int = 0   # epochs of that task already done
    rows: int = 0    # CSV rows written
    norm_states: list = field(default_factory=list)


class SimulatedCrash(RuntimeError):
    """Raised by ``stop_after_epochs`` (tests of --resume)."""


def task_lr(settings: SequenceSettings, task_index: int) -> float:
    """The learning rate of the optimizer that learns task ``task_index`` (from 0):
    lr * gamma^(-task index) with a fresh optimizer per task, else the constant lr."""
    if not settings.optimizer_per_task:
        return settings.lr
    return settings.lr * settings.gamma ** (-task_index)


def new_optimizer(model: nn.Module, settings: SequenceSettings, task_index: int):
    """The optimizer that learns task ``task_index``: metaplastic Adam, or (SI as published)
    torch's plain Adam with coupled weight decay."""
    lr = task_lr(settings, task_index)
    if settings.plain_adam:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=settings.weight_decay)
    return make_optimizer(model, lr, settings.meta, settings.weight_decay,
                          settings.optimizer_implementation)


def run_sequence(model: nn.Module, tasks: list[TaskData], settings: SequenceSettings,
                 run_dir: str | Path, row_prefix: dict, resume: bool = False,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Learn ``tasks`` in order (or interleaved) and record every epoch; returns the new rows."""
    run_dir = Path(run_dir)
    n_tasks = len(tasks)
    flips = FlipStatistics(model, settings.meta) if settings.flip_statistics else None
    recorder = records.CsvRecorder(run_dir / records.METRICS_FILE, records.continual_columns(n_tasks)
                                   + (flips.columns if flips is not None else ()))
    hist = (records.CsvRecorder(run_dir / records.HIDDEN_HIST_FILE, records.HIDDEN_HIST_COLUMNS)
            if settings.save_hidden_weights else None)
    training_tasks = [concatenated(tasks)] if settings.interleaved else tasks
    generator = torch.Generator().manual_seed(int(settings.seed))
    pos = _Position()
    optimizer = None
    checkpoint_path = run_dir / CHECKPOINT_FILE
    if resume:
        pos, optimizer = _restore(checkpoint_path, model, generator, settings, recorder, hist)
        log(f"resumed from {checkpoint_path}: task {pos.task + 1}, {pos.epoch} epochs done, "
            f"{pos.rows} rows")
    written: list[dict] = []
    epochs_run = 0
    inputs: dict[int, torch.Tensor] = {}  # training inputs of the task being learned

    def training_inputs(task_index: int) -> torch.Tensor:
        if task_index not in inputs:
            inputs.clear()
            inputs[task_index] = training_tasks[task_index].training_inputs()
        return inputs[task_index]

    def record(task_index: int, epoch: int, extra: dict | None = None) -> dict:
        current = training_tasks[task_index]
        # acc_tr as published: the training loader in its (seeded) shuffled order, so that
        # batch-statistics norms see the batches a shuffled loader gives
        order = torch.randperm(len(current.train_y), generator=generator).to(current.train_y.device)
        tr = evaluate(model, training_inputs(task_index).index_select(0, order),
                      current.train_y.index_select(0, order), current.train_eval_batch_size)
        row = dict(row_prefix, lr=task_lr(settings, task_index), task_order=task_index + 1,
                   tsk=current.name, epoch=epoch, acc_tr=tr.accuracy, loss_tr=tr.loss)
        row_extra = dict(extra or {})
        for k, task in enumerate(tasks, start=1):
            state = None
            if settings.scenario == "task" and k - 1 < len(pos.norm_states) and k - 1 < task_index:
                state = pos.norm_states[k - 1]
            with using_norm_state(model, state):
                ev = evaluate(model, task.test_x, task.test_y, task.test_batch_size)
            row[f"acc_test_tsk_{k}"], row[f"loss_test_tsk_{k}"] = ev.accuracy, ev.loss
        row.update(row_extra)
        recorder.write(row)
        pos.rows += 1
        written.append(row)
        return row

    if settings.initial_evaluation and pos.rows == 0:
        if flips is not None:
            flips.start_epoch()  # nothing trained yet: no flips, the initial magnitudes
        record(0, 0, flips.end_epoch() if flips is not None else None)
        _save(checkpoint_path, model, optimizer, generator, pos, settings, row_prefix)

    clock = RunClock(len(training_tasks) * settings.epochs_per_task,
                     pos.task * settings.epochs_per_task + pos.epoch)
    for t in range(pos.task, len(training_tasks)):
        task = training_tasks[t]
        log(f"task {t + 1}/{len(training_tasks)} ({task.name}): epochs {pos.epoch + 1}.."
            f"{settings.epochs_per_task} of {settings.epochs_per_task}, lr {task_lr(settings, t):g}, "
            f"{len(task.train_y)} training samples")
        if pos.epoch == 0:
            if optimizer is None or settings.optimizer_per_task:
                optimizer = new_optimizer(model, settings, t)
            if settings.si is not None:
                settings.si.begin_task(model)
        penalty = _penalty(model, settings)
        after_step = (lambda: settings.si.after_step(model)) if settings.si is not None else None
        n_batches = -(-len(task.train_y) // settings.train_batch_size)
        for epoch in range(pos.epoch + 1, settings.epochs_per_task + 1):
            started = time.perf_counter()
            bar = progress_bar(settings.progress, n_batches, f"task {t + 1}/{len(training_tasks)} "
                                f"({task.name}) epoch {epoch}/{settings.epochs_per_task}")
            if flips is not None:
                flips.start_epoch()
            try:
                train_epoch(model, optimizer, training_inputs(t), task.train_y,
                            settings.train_batch_size, generator, penalty=penalty,
                            after_step=after_step, progress=bar)
            finally:
                if bar is not None:
                    bar.close()
            trained = time.perf_counter()
            row = record(t, epoch, flips.end_epoch() if flips is not None else None)
            evaluated = time.perf_counter()
            pos.epoch = epoch
            if epoch == settings.epochs_per_task:
                _end_task(model, training_inputs(t), task.train_y, t, settings, pos, run_dir, hist)
                pos.task, pos.epoch = t + 1, 0
            if pos.epoch == 0 or epoch % settings.checkpoint_every == 0:
                _save(checkpoint_path, model, optimizer, generator, pos, settings, row_prefix)
            done = time.perf_counter()
            log(_summary(row, len(tasks)) + f" | {done - started:.1f}s (train "
                f"{trained - started:.1f}, eval {evaluated - trained:.1f}, "
                f"task end + checkpoint {done - evaluated:.1f}) | "
                + clock.epoch_done(done - started))
            epochs_run += 1
            if settings.stop_after_epochs is not None and epochs_run >= settings.stop_after_epochs:
                raise SimulatedCrash(f"stopped after {epochs_run} epochs (stop_after_epochs)")
        pos.epoch = 0
    return written


def _penalty(model, settings):
    terms = [c for c in (settings.ewc, settings.si) if c is not None]
    if not terms:
        return None
    return lambda: sum(c.penalty(model) for c in terms)


def _end_task(model, train_x, train_y, t, settings, pos, run_dir, hist) -> None:
    pos.norm_states.append(norm_state(model))
    if settings.ewc is not None:
        settings.ewc.consolidate(model, train_x, train_y)
    if settings.si is not None:
        settings.si.end_task(model)
    if settings.save_hidden_weights:
        weights = [layer_weight(l).detach().cpu().clone() for l in weight_layers(model)]
        save_atomic(weights, run_dir / f"hidden_weights_task{t + 1}.pt")
        for layer_index, w in enumerate(weights, start=1):
            lo, hi = float(w.min()), float(w.max())
            if hi <= lo:
                hi = lo + 1e-12
            counts = torch.histc(w.float(), bins=HIDDEN_WEIGHT_BINS, min=lo, max=hi)
            edges = torch.linspace(lo, hi, HIDDEN_WEIGHT_BINS + 1)
            for b in range(HIDDEN_WEIGHT_BINS):
                hist.write({"task": t + 1, "layer": layer_index, "bin_low": float(edges[b]),
                            "bin_high": float(edges[b + 1]), "count": int(counts[b])})


def _save(path, model, optimizer, generator, pos, settings, row_prefix) -> None:
    save_checkpoint({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "position": {"task": pos.task, "epoch": pos.epoch, "rows": pos.rows},
        "norm_states": [{k: v.cpu() for k, v in s.items()} for s in pos.norm_states],
        "ewc": settings.ewc.state_dict() if settings.ewc is not None else None,
        "si": settings.si.state_dict() if settings.si is not None else None,
        "row_prefix": row_prefix,
    }, path)


def _restore(path, model, generator, settings, recorder, hist):
    state = load_checkpoint(path)
    device = next(model.parameters()).device
    model.load_state_dict(state["model"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    p = state["position"]
    pos = _Position(p["task"], p["epoch"], p["rows"],
                    [{k: v.to(device) for k, v in s.items()} for s in state["norm_states"]])
    if settings.ewc is not None and state["ewc"] is not None:
        settings.ewc.load_state_dict(_to_device(state["ewc"], device))
    if settings.si is not None and state["si"] is not None:
        settings.si.load_state_dict(_to_device(state["si"], device))
    optimizer = None
    if state["optimizer"] is not None:
        task_index = pos.task if pos.epoch > 0 else max(pos.task - 1, 0)
        optimizer = new_optimizer(model, settings, task_index)
        optimizer.load_state_dict(state["optimizer"])
    recorder.truncate_rows(pos.rows)
    if hist is not None:
        completed = pos.task
        _truncate_hist(hist, completed)
    return pos, optimizer


def _truncate_hist(hist, completed_tasks: int) -> None:
    import csv

    with open(hist.path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= completed_tasks]
    records.write_atomic_text(hist.path, records._rows_to_text(keep))


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device) if obj.is_floating_point() else obj
    if isinstance(obj, list):
        return [_to_device(x, device) for x in obj]
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _summary(row: dict, n_tasks: int) -> str:
    tests = " ".join(f"{row[f'acc_test_tsk_{k}']:6.2f}" for k in range(1, n_tasks + 1))
    return (f"task {row['task_order']} ({row['tsk']}) epoch {row['epoch']:3d} | train {row['acc_tr']:6.2f}% "
            f"loss {row['loss_tr']:.4f} | test per task: {tests}")


def start_run_directory(run_dir: Path, config, resume: bool, dry_run: bool) -> bool | None:
    """After the checks of a run: None for a dry run; otherwise open the run folder
    (:func:`metaplastic.rundir.open_run_dir`: every check, then config.json) and return
    whether to continue from its checkpoint."""
    from metaplastic.cli import config_dict
    from metaplastic.rundir import open_run_dir

    if dry_run:
        print(f"dry run: flags and data OK; results would go to {run_dir}")
        return None
    return open_run_dir(run_dir, config_dict(config), resume)
