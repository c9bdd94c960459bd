"""The one runner of every experiment: phases (a task, or a part of a stream) times epochs.

For each phase, for each epoch: train on the phase's data in shuffled batches, evaluate
(``evaluate(phase, epoch) -> row``, written as one CSV row, flushed at once), checkpoint every
``checkpoint_every`` epochs and at the end of every phase. The runner owns the epoch loop, the
rows, the checkpoints and ``--resume``: a resumed run truncates the CSV to the checkpointed rows
and continues exactly where the checkpoint left off, so it writes the rows of an uninterrupted
run. The run folder's checks and config.json are :mod:`metaplastic.runs.rundir`'s.

What differs between experiments comes in as plain data and functions (:class:`Phase`,
:class:`Hooks`): the optimizer of a phase, the per-epoch evaluation, what happens at the start
and end of a phase, extra objects whose ``state_dict`` goes into the checkpoint.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from metaplastic.method.engine import progress_bar, train_epoch
from metaplastic.method.flips import FlipStatistics
from metaplastic.progress import RunClock, epoch_timing
from metaplastic.runs import records
from metaplastic.runs.checkpoint import (CHECKPOINT_FILE, check_run_state, load_checkpoint,
                                         save_checkpoint)


class SimulatedCrash(RuntimeError):
    """Raised after ``stop_after_epochs`` epochs (tests of --resume)."""


@dataclass
class Phase:
    """One phase: its name (the ``tsk`` column), its training data (inputs made on first use,
    e.g. a pMNIST permutation applied only while its task is learned)."""

    name: str
    inputs: Callable[[], torch.Tensor]
    labels: torch.Tensor
    description: str = ""          # for the log line at the phase's start


@dataclass
class Hooks:
    """The experiment's side of the loop (every function receives the phase index, from 0)."""

    new_optimizer: Callable[[int], torch.optim.Optimizer]
    evaluate: Callable[[int, int, torch.Tensor], dict]   # (phase, epoch, its inputs) -> values
    summary: Callable[[dict, float], str]            # (row, training loss) -> log text
    optimizer_per_phase: bool = False                 # a fresh optimizer at each phase start
    on_phase_start: Optional[Callable[[int], None]] = None
    on_phase_end: Optional[Callable[[int, torch.Tensor, torch.Tensor], None]] = None
    on_resume: Optional[Callable[[int], None]] = None  # phases completed, after a restore
    penalty: Optional[Callable[[], torch.Tensor]] = None
    after_step: Optional[Callable[[], None]] = None
    transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    state: dict[str, Any] = field(default_factory=dict)  # objects saved in the checkpoint


@dataclass(slots=True)   # slots: a misspelt setting is an error, not a new attribute
class RunSettings:
    """How the loop runs (what every experiment shares; contained in SequenceSettings and
    StreamSettings). Names as in the flags and config: --epochs-per-task, --checkpoint-every,
    --no-flip-stats, and --meta as the config's meta_per_layer (also for the flip statistics)."""

    epochs_per_task: int             # epochs of each phase (a task, or a part of a stream)
    batch_size: int
    meta_per_layer: Sequence[float]
    checkpoint_every: int = 1
    initial_evaluation: bool = False   # an epoch-0 row before any training (mnist_usps)
    flip_stats: bool = True
    progress: bool = True
    stop_after_epochs: Optional[int] = None   # testing aid: simulate a crash after N epochs


@dataclass
class Position:
    phase: int = 0   # index of the phase being learned
    epoch: int = 0   # epochs of that phase already done
    rows: int = 0    # CSV rows written


def run_phases(model: nn.Module, phases: Sequence[Phase], hooks: Hooks, settings: RunSettings,
               generator: torch.Generator, run_dir: str | Path, columns: Sequence[str],
               row_prefix: dict, resume: bool = False,
               log: Callable[[str], None] = print) -> tuple[list[dict], Any]:
    """Learn ``phases`` in order, one CSV row per epoch; returns (the new rows, the optimizer)."""
    run_dir = Path(run_dir)
    flips = FlipStatistics(model, settings.meta_per_layer) if settings.flip_stats else None
    columns = tuple(columns) + (flips.columns if flips is not None else ())
    recorder = records.CsvRecorder(run_dir / records.METRICS_FILE, columns,
                                   added_later=records.VERSION_COLUMNS)
    columns = recorder.columns
    checkpoint_path = run_dir / CHECKPOINT_FILE
    run_config = _run_config(run_dir)   # embedded in every checkpoint (rundir: source of truth)
    pos, optimizer = Position(), None
    if resume:
        pos, optimizer = _restore(checkpoint_path, model, hooks, generator)
        recorder.truncate_rows(pos.rows)
        if hooks.on_resume is not None:
            hooks.on_resume(pos.phase)
        log(f"resumed from {checkpoint_path}: phase {pos.phase + 1}, {pos.epoch} epochs done, "
            f"{pos.rows} rows")
    written: list[dict] = []
    cache: dict[int, torch.Tensor] = {}

    def inputs(p: int) -> torch.Tensor:
        if p not in cache:
            cache.clear()
            cache[p] = phases[p].inputs()
        return cache[p]

    def record(p: int, epoch: int, flip_row: dict | None) -> dict:
        row = dict(row_prefix) | hooks.evaluate(p, epoch, inputs(p)) | (flip_row or {})
        recorder.write({c: row[c] for c in columns})
        pos.rows += 1
        written.append(row)
        return row

    if settings.initial_evaluation and pos.rows == 0:
        if flips is not None:
            flips.start_epoch()  # nothing trained yet: no flips, the initial magnitudes
        record(0, 0, flips.end_epoch() if flips is not None else None)
        _save(checkpoint_path, model, optimizer, generator, pos, hooks, row_prefix, run_config)

    n_epochs = settings.epochs_per_task
    clock = RunClock(len(phases) * n_epochs, pos.phase * n_epochs + pos.epoch)
    epochs_run = 0
    for p in range(pos.phase, len(phases)):
        phase = phases[p]
        log(f"phase {p + 1}/{len(phases)} ({phase.name}): epochs {pos.epoch + 1}..{n_epochs} of "
            f"{n_epochs}, {len(phase.labels)} training samples"
            + (f", {phase.description}" if phase.description else ""))
        if pos.epoch == 0:
            if optimizer is None or hooks.optimizer_per_phase:
                optimizer = hooks.new_optimizer(p)
            if hooks.on_phase_start is not None:
                hooks.on_phase_start(p)
        n_batches = -(-len(phase.labels) // settings.batch_size)
        for epoch in range(pos.epoch + 1, n_epochs + 1):
            started = time.perf_counter()
            bar = progress_bar(settings.progress, n_batches,
                               f"{phase.name} ({p + 1}/{len(phases)}) epoch {epoch}/{n_epochs}")
            if flips is not None:
                flips.start_epoch()
            try:
                loss = train_epoch(model, optimizer, inputs(p), phase.labels, settings.batch_size,
                                   generator, penalty=hooks.penalty, after_step=hooks.after_step,
                                   transform=hooks.transform, progress=bar)
            finally:
                if bar is not None:
                    bar.close()
            trained = time.perf_counter()
            row = record(p, epoch, flips.end_epoch() if flips is not None else None)
            evaluated = time.perf_counter()
            pos.epoch = epoch
            if epoch == n_epochs:
                if hooks.on_phase_end is not None:
                    hooks.on_phase_end(p, inputs(p), phase.labels)
                pos.phase, pos.epoch = p + 1, 0
            if pos.epoch == 0 or epoch % settings.checkpoint_every == 0:
                _save(checkpoint_path, model, optimizer, generator, pos, hooks, row_prefix,
                      run_config)
            done = time.perf_counter()
            log(hooks.summary(row, loss) + " | "
                + epoch_timing(trained - started, evaluated - trained, done - evaluated)
                + " | " + clock.epoch_done(done - started))
            epochs_run += 1
            if settings.stop_after_epochs is not None and epochs_run >= settings.stop_after_epochs:
                raise SimulatedCrash(f"stopped after {epochs_run} epochs (stop_after_epochs)")
        pos.epoch = 0
    return written, optimizer


def _run_config(run_dir: Path) -> dict | None:
    """The run's config.json (written before training starts), kept in each checkpoint."""
    try:
        return records.load_config(run_dir) or None
    except records.RecordError:
        return None


def _save(path, model, optimizer, generator, pos, hooks, row_prefix, config=None) -> None:
    device = next(model.parameters()).device
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "position": {"phase": pos.phase, "epoch": pos.epoch, "rows": pos.rows},
        "state": {name: obj.state_dict() for name, obj in hooks.state.items()},
        "row_prefix": row_prefix,
        "config": config,
    }
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    save_checkpoint(state, path)


def _restore(path, model, hooks, generator):
    from metaplastic.errors import MetaplasticError

    state = check_run_state(load_checkpoint(path), path)   # the run folder's own check
    try:
        return _load_state(state, model, hooks, generator)
    except torch.cuda.OutOfMemoryError:
        raise                       # the machine's fault, not the checkpoint's
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        # entries of the right type whose contents do not fit this run (an edited checkpoint)
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise MetaplasticError(f"--resume: {path} does not fit this run ({detail}); start a "
                               "new --out-dir") from None


def _load_state(state, model, hooks, generator):
    device = next(model.parameters()).device
    model.load_state_dict(state["model"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    for name, obj in hooks.state.items():
        if state["state"].get(name) is not None:
            obj.load_state_dict(to_device(state["state"][name], device))
    p = state["position"]
    pos = Position(p["phase"], p["epoch"], p["rows"])
    optimizer = None
    if state["optimizer"] is not None:
        optimizer = hooks.new_optimizer(pos.phase if pos.epoch > 0 else max(pos.phase - 1, 0))
        optimizer.load_state_dict(state["optimizer"])
    return pos, optimizer


def to_device(obj, device):
    """Floating-point tensors of a nested structure moved to ``device`` (states stay on CPU
    in checkpoints)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device) if obj.is_floating_point() else obj
    if isinstance(obj, list):
        return [to_device(x, device) for x in obj]
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    return obj
