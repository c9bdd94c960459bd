"""The task-sequence runner shared by continual_learning, mnist_usps and cifar_features.

For each task, for each epoch: train on the task, then evaluate (current task's training set,
every task's test set), write one CSV row, checkpoint. At the end of a task: store its
normalization state (scenario 'task'), consolidate (EWC / SI), save hidden weights if asked.
A run resumed from its checkpoint writes exactly the rows an uninterrupted run would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from metaplastic.data.tasks import TaskData, concatenated
from metaplastic.experiments.runner import Hooks, Phase, RunSettings, run_phases
from metaplastic.fast import make_optimizer
from metaplastic.method.consolidation import ConsolidationMethod
from metaplastic.method.engine import evaluate
from metaplastic.method.models import layer_weight, weight_layers
from metaplastic.method.norms import norm_state, using_norm_state
from metaplastic.method.optim import metaplastic_param_groups
from metaplastic.runs import records
from metaplastic.runs.checkpoint import save_atomic

HIDDEN_WEIGHT_BINS = 100


@dataclass(slots=True)
class SequenceSettings:
    """How a sequence of tasks is learned (everything the runner needs besides model and data):
    the loop's settings (:class:`RunSettings`) and the sequence's own. It begins like
    :class:`metaplastic.experiments.stream.StreamSettings` (loop, lr, weight decay): the two
    share the loop, and the rest differs."""

    loop: RunSettings
    lr: float
    weight_decay: float
    gamma: float = 1.0
    scenario: str = "task"             # 'task': earlier tasks evaluated with their own norm state
    optimizer_per_task: bool = True    # continual_learning: fresh Adam state for every task
    plain_adam: bool = False           # SI as published: torch.optim.Adam, not metaplastic
    beaker: Optional[dict] = None      # --beaker: BeakerAdam's n_bk, ratios, areas, feedback
    interleaved: bool = False
    save_hidden_weights: bool = False
    seed: int = 0
    consolidation: list = field(default_factory=list)   # ConsolidationMethod objects


def task_lr(settings: SequenceSettings, task_index: int) -> float:
    """The learning rate of the optimizer that learns task ``task_index`` (from 0):
    lr * gamma^(-task index) with a fresh optimizer per task, else the constant lr."""
    if not settings.optimizer_per_task:
        return settings.lr
    return settings.lr * settings.gamma ** (-task_index)


def new_optimizer(model: nn.Module, settings: SequenceSettings, task_index: int):
    """The optimizer that learns task ``task_index``: metaplastic Adam, or (SI as published)
    torch's plain Adam with coupled weight decay, or (--beaker) the beaker optimizer."""
    lr = task_lr(settings, task_index)
    if settings.plain_adam:
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=settings.weight_decay)
    if settings.beaker is not None:
        from metaplastic.method.beaker import BeakerAdam

        return BeakerAdam(metaplastic_param_groups(model, settings.loop.meta_per_layer), lr=lr,
                          weight_decay=settings.weight_decay, **settings.beaker)
    return make_optimizer(model, lr, settings.loop.meta_per_layer, settings.weight_decay)


def run_sequence(model: nn.Module, tasks: list[TaskData], settings: SequenceSettings,
                 run_dir: str | Path, row_prefix: dict, resume: bool = False,
                 log: Callable[[str], None] = print) -> list[dict]:
    """Learn ``tasks`` in order (or interleaved) with :func:`metaplastic.experiments.runner.run_phases` and
    record every epoch; returns the new rows."""
    run_dir = Path(run_dir)
    training_tasks = [concatenated(tasks)] if settings.interleaved else tasks
    generator = torch.Generator().manual_seed(int(settings.seed))
    norm_states = NormStates()
    hist = (records.CsvRecorder(run_dir / records.HIDDEN_HIST_FILE, records.HIDDEN_HIST_COLUMNS)
            if settings.save_hidden_weights else None)
    phases = [Phase(task.name, task.training_inputs, task.train_y,
                    f"lr {task_lr(settings, t):g}") for t, task in enumerate(training_tasks)]
    def evaluate_epoch(t: int, epoch: int, train_x: torch.Tensor) -> dict:
        current = training_tasks[t]
        # acc_tr as published: the training loader in its (seeded) shuffled order, so that
        # batch-statistics norms see the batches a shuffled loader gives
        order = torch.randperm(len(current.train_y), generator=generator).to(current.train_y.device)
        tr = evaluate(model, train_x.index_select(0, order),
                      current.train_y.index_select(0, order), current.train_eval_batch_size)
        row = dict(lr=task_lr(settings, t), task_order=t + 1, tsk=current.name, epoch=epoch,
                   acc_tr=tr.accuracy, loss_tr=tr.loss)
        for k, task in enumerate(tasks, start=1):
            state = None
            if settings.scenario == "task" and k - 1 < len(norm_states.states) and k - 1 < t:
                state = norm_states.states[k - 1]
            with using_norm_state(model, state):
                ev = evaluate(model, task.test_x, task.test_y, task.test_batch_size)
            row[f"acc_test_tsk_{k}"], row[f"loss_test_tsk_{k}"] = ev.accuracy, ev.loss
        return row

    methods = settings.consolidation
    stepping = [m for m in methods if type(m).after_step is not ConsolidationMethod.after_step]

    def end_task(t: int, train_x: torch.Tensor, train_y: torch.Tensor) -> None:
        norm_states.states.append(norm_state(model))
        for method in methods:
            method.end_task(model, train_x, train_y)
        if settings.save_hidden_weights:
            _save_hidden_weights(model, t, run_dir, hist)

    hooks = Hooks(
        new_optimizer=lambda t: new_optimizer(model, settings, t),
        evaluate=evaluate_epoch,
        summary=lambda row, loss: _summary(row, len(tasks)),
        optimizer_per_phase=settings.optimizer_per_task,
        on_phase_start=(lambda t: [m.begin_task(model) for m in methods]) if methods else None,
        on_phase_end=end_task,
        on_resume=(lambda done: _truncate_hist(hist, done)) if hist is not None else None,
        penalty=(lambda: sum(m.penalty(model) for m in methods)) if methods else None,
        after_step=(lambda: [m.after_step(model) for m in stepping]) if stepping else None,
        state={"norm_states": norm_states, **{m.name: m for m in methods}})
    written, _ = run_phases(model, phases, hooks, settings.loop, generator, run_dir,
                            records.continual_columns(len(tasks))
                            + tuple(c for c in records.VERSION_COLUMNS if c in row_prefix),
                            row_prefix, resume=resume,
                            log=log)
    return written


class NormStates:
    """The normalization state stored at the end of each task (scenario 'task')."""

    def __init__(self):
        self.states: list[dict] = []

    def state_dict(self) -> dict:
        return {"states": [{k: v.cpu() for k, v in s.items()} for s in self.states]}

    def load_state_dict(self, state: dict) -> None:
        self.states = list(state["states"])


def _save_hidden_weights(model, t, run_dir, hist) -> None:
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


def _truncate_hist(hist, completed_tasks: int) -> None:
    import csv

    with open(hist.path, newline="") as f:
        rows = list(csv.reader(f))
    keep = [rows[0]] + [r for r in rows[1:] if int(r[0]) <= completed_tasks]
    records.write_atomic_text(hist.path, records._rows_to_text(keep))


def _summary(row: dict, n_tasks: int) -> str:
    tests = " ".join(f"{row[f'acc_test_tsk_{k}']:6.2f}" for k in range(1, n_tasks + 1))
    return (f"task {row['task_order']} ({row['tsk']}) epoch {row['epoch']:3d} | train {row['acc_tr']:6.2f}% "
            f"loss {row['loss_tr']:.4f} | test per task: {tests}")
