"""Stream learning (Fig. 4a, b): one dataset cut into equal parts learned one after another.

Shared by stream_fmnist/main.py and stream_cifar10/main.py, which differ only in their model,
data and record columns (a :class:`StreamExperiment`).

- Subsets (:func:`subset_indices`): the training set, randomly permuted once (generator seeded
  with the run's seed) or in its stored order, cut into ``nb_subset`` equal contiguous parts of
  ``n // nb_subset`` samples; the last ``n % nb_subset`` samples of that order are left out of
  every part (they still count in ``acc_tr``, the whole-training-set accuracy).
- Learning (:func:`run_stream`): ONE metaplastic Adam optimizer for the whole run; each part is
  learned for ``epochs_per_task`` epochs in shuffled batches (batch-order generator seeded with
  seed + 1). After every epoch, in evaluation mode: accuracy on the current part
  (``acc_tr_sub``), on the first part (``acc_1st_sub``), on the whole training set (``acc_tr``)
  and on the test set (``acc_test``), in percent rounded to 2 decimals. ``task_order`` is the
  part (1-based), ``tsk`` its name 'sub_<dataset>_k/N', ``epoch`` the epoch within that part
  (1 .. epochs_per_task).
- Evaluation: with running-statistics normalization (both stream models) a sample's output does
  not depend on the other samples of its batch, so every set is evaluated in large chunks and
  the part accuracies are read off the whole-training-set predictions (no second pass). A
  model with batch-statistics norms is evaluated set by set in batches of ``eval_batch_size``.
- Records and checkpoints: one CSV row per epoch, flushed at once; a checkpoint (model,
  optimizer, every generator, rows written) every ``checkpoint_every`` epochs, at the end of
  every part and at the end. ``--resume`` truncates the CSV to the checkpointed rows and
  continues, writing exactly the rows of an uninterrupted run.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from metaplastic import records
from metaplastic.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_atomic
from metaplastic.cli import config_dict, environment_summary, print_config, run_directory
from metaplastic.engine import evaluate, progress_bar, train_epoch
from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.flips import FlipStatistics
from metaplastic.optim import make_optimizer
from metaplastic.progress import RunClock

BATCH_SEED_OFFSET = 1     # batch order: generator seeded with seed + 1
AUGMENT_SEED_OFFSET = 2   # augmentation draws: generator on the device, seeded with seed + 2
FINAL_MODEL_FILE = "model_final.pt"

# Keys of config.json that may change when a run is resumed (they do not change the results,
# or only through floating-point details of another device).
RESUME_FREE_KEYS = frozenset({
    "device", "data_root", "out_dir", "checkpoint_every", "impl", "optimizer_impl", "train_impl",
    "eval_impl", "eval_batch", "download", "environment", "allow_tf32", "keep_denormals",
})


# --------------------------------------------------------------------------------------------
# Subsets
# --------------------------------------------------------------------------------------------


def subset_indices(n: int, nb_subset: int, permute: bool, seed: int) -> list[torch.Tensor]:
    """``nb_subset`` disjoint index tensors (int64, CPU) of ``n // nb_subset`` samples each.

    ``permute``: cut a random permutation of ``range(n)`` drawn from a generator seeded with
    ``seed``; else cut ``range(n)`` in its stored order. Part k is positions
    ``k * size .. (k + 1) * size - 1`` of that order.
    """
    if nb_subset < 1:
        raise ConfigError(f"--nb-subset must be at least 1, got {nb_subset}")
    size = n // nb_subset
    if size == 0:
        raise ConfigError(f"--nb-subset {nb_subset} is larger than the training set ({n} samples)")
    order = (torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
             if permute else torch.arange(n))
    return [order[k * size:(k + 1) * size].clone() for k in range(nb_subset)]


# --------------------------------------------------------------------------------------------
# Data, settings
# --------------------------------------------------------------------------------------------


@dataclass
class StreamData:
    """The dataset of a stream run, on the run's device (images in any stored form)."""

    name: str                 # the dataset in the tsk column ('sub_FMNIST_k/N'), e.g. "CIFAR10"
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


@dataclass
class StreamSettings:
    """How the parts are learned and evaluated (everything besides model, data and records)."""

    epochs_per_task: int
    lr: float
    meta: list[float]
    weight_decay: float
    batch_size: int = 100
    eval_batch_size: int = 10_000       # samples per forward pass at evaluation
    seed: int = 0
    optimizer_implementation: str = "auto"
    checkpoint_every: int = 1
    stop_after_epochs: Optional[int] = None   # testing aid: simulate a crash after N epochs
    progress: bool = True                      # per-batch progress bar (stderr)
    # Hooks. train_transform maps a stored training batch to the model input (conversion,
    # augmentation); eval_transform maps a stored evaluation chunk (conversion only);
    # predict(x) -> logits replaces model(x) at evaluation (a faster exact path).
    train_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    eval_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    predict: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    # Objects with state_dict()/load_state_dict() saved in the checkpoint (e.g. augmentation).
    extra_state: dict[str, Any] = field(default_factory=dict)
    save_final: bool = False            # write model_final.pt (model + optimizer) at the end
    flip_statistics: bool = True        # extra columns after the published ones (metaplastic.flips)


class SimulatedCrash(RuntimeError):
    """Raised by ``stop_after_epochs`` (tests of --resume)."""


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def independent_evaluation(model: nn.Module) -> bool:
    """True when, in evaluation mode, each sample's output ignores the rest of its batch
    (every batch norm uses running statistics)."""
    return all(m.track_running_stats for m in model.modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm))


def percent(correct: torch.Tensor) -> float:
    """Accuracy in percent, rounded to 2 decimals, of a boolean tensor of hits."""
    n = correct.numel()
    return round(100.0 * int(correct.sum().item()) / n, 2) if n else float("nan")


@torch.no_grad()
def correct_predictions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int,
                        transform: Optional[Callable] = None,
                        predict: Optional[Callable] = None) -> torch.Tensor:
    """Boolean hits (argmax == label) of every sample, in evaluation mode, ``chunk`` at a time."""
    was_training = model.training
    model.eval()
    forward = predict if predict is not None else model
    hits = []
    try:
        for start in range(0, len(x), chunk):
            xb = x[start:start + chunk]
            if transform is not None:
                xb = transform(xb)
            hits.append(forward(xb).argmax(dim=1) == y[start:start + chunk])
    finally:
        model.train(was_training)
    return torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool, device=y.device)


def stream_accuracies(model: nn.Module, data: StreamData, current: torch.Tensor,
                      first: torch.Tensor, settings: StreamSettings) -> dict[str, float]:
    """acc_tr_sub (part ``current``), acc_1st_sub (part ``first``), acc_tr, acc_test."""
    if independent_evaluation(model):
        hits = correct_predictions(model, data.train_x, data.train_y, settings.eval_batch_size,
                                   settings.eval_transform, settings.predict)
        test_hits = correct_predictions(model, data.test_x, data.test_y, settings.eval_batch_size,
                                        settings.eval_transform, settings.predict)
        cur = current.to(hits.device)
        fst = first.to(hits.device)
        return {"acc_tr_sub": percent(hits[cur]), "acc_1st_sub": percent(hits[fst]),
                "acc_tr": percent(hits), "acc_test": percent(test_hits)}

    # Batch-statistics norms: each set on its own, every eval batch with its own statistics.
    def acc(x, y):
        if settings.eval_transform is not None:
            x = settings.eval_transform(x)
        return evaluate(model, x, y, settings.eval_batch_size).accuracy

    cur, fst = current.to(data.train_x.device), first.to(data.train_x.device)
    return {"acc_tr_sub": acc(data.train_x[cur], data.train_y[cur]),
            "acc_1st_sub": acc(data.train_x[fst], data.train_y[fst]),
            "acc_tr": acc(data.train_x, data.train_y), "acc_test": acc(data.test_x, data.test_y)}


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------


@dataclass
class _Position:
    subset: int = 0   # index of the part being learned
    epoch: int = 0    # epochs of that part already done
    rows: int = 0     # CSV rows written


def run_stream(model: nn.Module, data: StreamData, subsets: Sequence[torch.Tensor],
               settings: StreamSettings, run_dir: str | Path, row_prefix: dict,
               columns: Sequence[str], resume: bool = False,
               log: Callable[[str], None] = print) -> list[dict]:
    """Learn the parts in order with one optimizer, recording every epoch; returns new rows.

    Each row is ``row_prefix`` plus tsk, epoch and the accuracies, restricted to ``columns``.
    """
    run_dir = Path(run_dir)
    flips = FlipStatistics(model, settings.meta) if settings.flip_statistics else None
    columns = tuple(columns) + (flips.columns if flips is not None else ())
    recorder = records.CsvRecorder(run_dir / records.METRICS_FILE, columns)
    device = data.train_x.device
    generator = torch.Generator().manual_seed(int(settings.seed) + BATCH_SEED_OFFSET)
    optimizer = make_optimizer(model, settings.lr, settings.meta, settings.weight_decay,
                               settings.optimizer_implementation)
    checkpoint_path = run_dir / CHECKPOINT_FILE
    pos = _Position()
    if resume:
        pos = _restore(checkpoint_path, model, optimizer, generator, settings, recorder, device)
        log(f"resumed from {checkpoint_path}: subset {pos.subset + 1}, {pos.epoch} epochs done, "
            f"{pos.rows} rows")
    written: list[dict] = []
    epochs_run = 0
    n_sub = len(subsets)
    clock = RunClock(n_sub * settings.epochs_per_task,
                     pos.subset * settings.epochs_per_task + pos.epoch)
    for s in range(pos.subset, n_sub):
        log(f"subset {s + 1}/{n_sub}: epochs {pos.epoch + 1}..{settings.epochs_per_task} of "
            f"{settings.epochs_per_task}, {len(subsets[s])} training samples")
        idx = subsets[s].to(device)
        sub_x, sub_y = data.train_x.index_select(0, idx), data.train_y.index_select(0, idx)
        n_batches = -(-len(idx) // settings.batch_size)
        for epoch in range(pos.epoch + 1, settings.epochs_per_task + 1):
            started = time.perf_counter()
            bar = progress_bar(settings.progress, n_batches,
                                f"subset {s + 1}/{n_sub} epoch {epoch}/{settings.epochs_per_task}")
            if flips is not None:
                flips.start_epoch()
            try:
                loss = train_epoch(model, optimizer, sub_x, sub_y, settings.batch_size, generator,
                                   transform=settings.train_transform, progress=bar)
            finally:
                if bar is not None:
                    bar.close()
            trained = time.perf_counter()
            acc = stream_accuracies(model, data, subsets[s], subsets[0], settings)
            if flips is not None:
                acc = acc | flips.end_epoch()
            row = {k: v for k, v in (dict(row_prefix, task_order=s + 1, tsk=part_name(data, s, n_sub),
                                          epoch=epoch) | acc).items() if k in columns}
            recorder.write(row)
            pos.rows += 1
            written.append(row)
            done = time.perf_counter()
            pos.epoch = epoch
            if epoch == settings.epochs_per_task:
                pos.subset, pos.epoch = s + 1, 0
            saved = pos.epoch == 0 or epoch % settings.checkpoint_every == 0
            if saved:
                _save(checkpoint_path, model, optimizer, generator, pos, settings, row_prefix)
            end = time.perf_counter()
            log(f"subset {s + 1}/{n_sub} epoch {epoch:3d}/{settings.epochs_per_task} | loss "
                f"{loss:.4f} | sub {acc['acc_tr_sub']:6.2f}% 1st {acc['acc_1st_sub']:6.2f}% "
                f"train {acc['acc_tr']:6.2f}% test {acc['acc_test']:6.2f}% | "
                f"{end - started:.2f}s (train {trained - started:.2f}s, eval {done - trained:.2f}s"
                + (f", checkpoint {end - done:.2f}s)" if saved else ")")
                + " | " + clock.epoch_done(end - started))
            epochs_run += 1
            if settings.stop_after_epochs is not None and epochs_run >= settings.stop_after_epochs:
                raise SimulatedCrash(f"stopped after {epochs_run} epochs (stop_after_epochs)")
        pos.epoch = 0
    if settings.save_final:
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                    run_dir / FINAL_MODEL_FILE)
    return written


def part_name(data: StreamData, index: int, n_parts: int) -> str:
    """The published ``tsk`` of part ``index`` (from 0): 'sub_FMNIST_k/N'."""
    return f"sub_{data.name}_{index + 1}/{n_parts}"


def _rng_states(device: torch.device) -> dict:
    states = {"torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def _save(path, model, optimizer, generator, pos, settings, row_prefix) -> None:
    device = next(model.parameters()).device
    save_atomic({
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        **_rng_states(device),
        "extra": {k: v.state_dict() for k, v in settings.extra_state.items()},
        "position": {"subset": pos.subset, "epoch": pos.epoch, "rows": pos.rows},
        "row_prefix": row_prefix,
    }, path)


def _restore(path, model, optimizer, generator, settings, recorder, device) -> _Position:
    state = load_checkpoint(path)
    if "position" not in state or "subset" not in state["position"]:
        raise MetaplasticError(f"--resume: {path} is not a stream-learning checkpoint")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    for key, obj in settings.extra_state.items():
        if key in state.get("extra", {}):
            obj.load_state_dict(state["extra"][key])
    p = state["position"]
    pos = _Position(p["subset"], p["epoch"], p["rows"])
    recorder.truncate_rows(pos.rows)
    return pos


# --------------------------------------------------------------------------------------------
# The command-line driver shared by both stream experiments
# --------------------------------------------------------------------------------------------


@dataclass
class StreamExperiment:
    """What differs between the stream experiments."""

    name: str                                   # results/<name>/..., config "experiment"
    columns: tuple                              # CSV schema (records.STREAM_*_COLUMNS)
    load_data: Callable[[Any, torch.device], StreamData]        # (config, device) -> data
    build_model: Callable[[Any], nn.Module]                     # config -> model (CPU)
    permute: Callable[[Any], bool]                              # config -> permute before cutting
    row_prefix: Callable[[Any, StreamData], dict]               # run-constant columns
    # (config, model, device, settings) -> None: set transforms, predict, extra_state
    configure: Optional[Callable[[Any, nn.Module, torch.device, StreamSettings], None]] = None


meta_column = records.meta_label  # the 'meta' column: the value, or per-layer values joined by '-'


def check_resume(run_dir: Path, resume: bool, config: dict) -> None:
    """Refuse to overwrite a run, to resume a missing one, or to resume with other settings."""
    from metaplastic.sequence import check_resumable

    check_resumable(run_dir, resume)
    if not resume:
        return
    saved = records.load_config(run_dir)
    differing = sorted(k for k in set(saved) | set(config)
                       if k not in RESUME_FREE_KEYS and saved.get(k) != config.get(k))
    if saved and differing:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in differing)
        raise ConfigError(f"--resume with other settings than the run in {run_dir} ({details}); "
                          "resume with the original flags or start a new --out-dir")


def launch(config, experiment: StreamExperiment, settings: StreamSettings, resume: bool = False,
           dry_run: bool = False, log: Callable[[str], None] = print) -> Path:
    """Set up, check the data, build the model and (unless ``dry_run``) run; returns the run folder.

    ``config`` is the experiment's dataclass with at least seed, device, allow_tf32, out_dir,
    nb_subset; ``settings`` its learning settings (hooks are filled in by ``configure``).
    """
    from metaplastic import runtime

    device = runtime.setup(config.device, config.seed, getattr(config, "allow_tf32", False),
                           getattr(config, "keep_denormals", False))
    run_dir = run_directory(Path(config.out_dir) if config.out_dir else None, experiment.name, resume)
    config.out_dir = str(run_dir)
    print_config(config)
    data = experiment.load_data(config, device)
    subsets = subset_indices(len(data.train_x), config.nb_subset, experiment.permute(config),
                             config.seed)
    model = experiment.build_model(config).to(device)
    from metaplastic import fast

    log(f"implementation: {fast.enable(model, device, getattr(config, 'impl', 'auto'))}")
    if experiment.configure is not None:
        experiment.configure(config, model, device, settings)
    n_params = sum(p.numel() for p in model.parameters())
    left = len(data.train_x) - config.nb_subset * len(subsets[0])
    log(f"device {device}; {data.name}: {len(data.train_x)} training samples in {config.nb_subset} "
        f"parts of {len(subsets[0])}" + (f" ({left} left out)" if left else "")
        + f", {len(data.test_x)} test samples; model {type(model).__name__} ({n_params:,} parameters)")
    if dry_run:
        log(f"dry run: flags and data OK; results would go to {run_dir}")
        return run_dir
    saved = config_dict(config)
    check_resume(run_dir, resume, saved)
    run_dir.mkdir(parents=True, exist_ok=True)
    records.save_config(run_dir, saved | {"environment": environment_summary()})
    run_stream(model, data, subsets, settings, run_dir, experiment.row_prefix(config, data),
               experiment.columns, resume=resume, log=log)
    log(f"results: {run_dir / records.METRICS_FILE}")
    return run_dir


def add_stream_arguments(parser, lr: float, mbs: int, epochs_per_task: int,
                         eval_batch: int) -> None:
    """The learning flags both stream experiments share."""
    from metaplastic.cli import non_negative_float, positive_float, positive_int

    g = parser.add_argument_group("stream")
    g.add_argument("--nb-subset", type=positive_int, default=1,
                   help="number of equal parts the training set is cut into")
    g.add_argument("--epochs-per-task", type=positive_int, default=epochs_per_task,
                   help="epochs on each part")
    g.add_argument("--lr", type=positive_float, default=lr, help="learning rate")
    g.add_argument("--mbs", type=positive_int, default=mbs,
                   help="training mini-batch size")
    g.add_argument("--meta", nargs="+", type=non_negative_float, default=[0.0],
                   help="metaplasticity m: one value, or one per weight layer")
    g.add_argument("--init", choices=("uniform", "gauss"), default="uniform",
                   help="hidden-weight init: uniform U(-w/2, w/2) or gauss N(0, w)")
    g.add_argument("--init-width", type=positive_float, default=0.1, help="w of --init")
    g.add_argument("--eval-batch", type=positive_int, default=eval_batch,
                   help="samples per forward pass at evaluation (results do not depend on it: "
                        "the norms use running statistics)")


def run_function(settings_from_config: Callable[[Any, bool], "StreamSettings"],
                 experiment: "StreamExperiment"):
    """run(config, resume, dry_run, progress, stop_after_epochs) for a stream experiment."""

    def run(config, resume: bool = False, dry_run: bool = False, progress: bool = True,
            stop_after_epochs: int | None = None) -> Path:
        settings = settings_from_config(config, progress)
        settings.stop_after_epochs = stop_after_epochs
        return launch(config, experiment, settings, resume=resume, dry_run=dry_run)

    return run
