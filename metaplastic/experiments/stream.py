"""Stream learning (Fig. 4a, b): one dataset cut into equal parts learned one after another.

Shared by stream_fmnist/main.py and stream_cifar10/main.py, which differ only in their model,
data and record columns (each main.py builds them and calls :func:`run_stream`).

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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from metaplastic.errors import ConfigError
from metaplastic.experiments.runner import Hooks, Phase, RunSettings, run_phases
from metaplastic.fast import make_optimizer
from metaplastic.method.engine import evaluate
from metaplastic.runs import records
from metaplastic.runs.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_atomic

BATCH_SEED_OFFSET = 1     # batch order: generator seeded with seed + 1
AUGMENT_SEED_OFFSET = 2   # augmentation draws: generator on the device, seeded with seed + 2
FINAL_MODEL_FILE = "model_final.pt"


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

    name: str                 # the dataset in the tsk column, e.g. "FMNIST", "CIFAR10"
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    part_prefix: str = "sub_"  # published tsk: 'sub_FMNIST_k/N', but 'CIFAR10_k/N'


@dataclass(slots=True)
class StreamSettings:
    """How the parts are learned and evaluated (everything besides model, data and records):
    the loop's settings (:class:`RunSettings`) and the stream's own."""

    loop: RunSettings
    lr: float
    weight_decay: float
    eval_batch_size: int = 10_000       # samples per forward pass at evaluation
    seed: int = 0
    # Hooks. train_transform maps a stored training batch to the model input (conversion,
    # augmentation); eval_transform maps a stored evaluation chunk (conversion only);
    # predict(x) -> logits replaces model(x) at evaluation (a faster exact path).
    train_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    eval_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    # the transform of the training-set accuracies (acc_tr, acc_tr_sub, acc_1st_sub); None:
    # eval_transform (stream CIFAR-10 as published: the augmenting training transform)
    train_eval_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    predict: Optional[Callable[[torch.Tensor], torch.Tensor]] = None
    # Objects with state_dict()/load_state_dict() saved in the checkpoint (e.g. augmentation).
    extra_state: dict[str, Any] = field(default_factory=dict)
    save_final: bool = False            # write model_final.pt (model + optimizer) at the end


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
    train_transform = settings.train_eval_transform or settings.eval_transform
    if independent_evaluation(model):
        hits = correct_predictions(model, data.train_x, data.train_y, settings.eval_batch_size,
                                   train_transform, settings.predict)
        test_hits = correct_predictions(model, data.test_x, data.test_y, settings.eval_batch_size,
                                        settings.eval_transform, settings.predict)
        cur = current.to(hits.device)
        fst = first.to(hits.device)
        return {"acc_tr_sub": percent(hits[cur]), "acc_1st_sub": percent(hits[fst]),
                "acc_tr": percent(hits), "acc_test": percent(test_hits)}

    # Batch-statistics norms: each set on its own, every eval batch with its own statistics.
    def acc(x, y, transform):
        if transform is not None:
            x = transform(x)
        return evaluate(model, x, y, settings.eval_batch_size).accuracy

    cur, fst = current.to(data.train_x.device), first.to(data.train_x.device)
    return {"acc_tr_sub": acc(data.train_x[cur], data.train_y[cur], train_transform),
            "acc_1st_sub": acc(data.train_x[fst], data.train_y[fst], train_transform),
            "acc_tr": acc(data.train_x, data.train_y, train_transform),
            "acc_test": acc(data.test_x, data.test_y, settings.eval_transform)}


# --------------------------------------------------------------------------------------------
# The runner
# --------------------------------------------------------------------------------------------


def run_stream(model: nn.Module, data: StreamData, subsets: Sequence[torch.Tensor],
               settings: StreamSettings, run_dir: str | Path, row_prefix: dict,
               columns: Sequence[str], resume: bool = False,
               log: Callable[[str], None] = print) -> list[dict]:
    """Learn the parts in order with one optimizer (:func:`metaplastic.experiments.runner.run_phases`),
    recording every epoch; returns the new rows.

    Each row is ``row_prefix`` plus task_order, tsk, epoch and the accuracies (``columns``).
    """
    run_dir = Path(run_dir)
    device = data.train_x.device
    generator = torch.Generator().manual_seed(int(settings.seed) + BATCH_SEED_OFFSET)
    n_sub = len(subsets)

    def part(idx: torch.Tensor):
        idx = idx.to(device)
        return (lambda: data.train_x.index_select(0, idx)), data.train_y.index_select(0, idx)

    phases = []
    for s, idx in enumerate(subsets):
        inputs, labels = part(idx)
        phases.append(Phase(part_name(data, s, n_sub), inputs, labels))

    def evaluate_epoch(s: int, epoch: int, _inputs) -> dict:
        return (dict(task_order=s + 1, tsk=part_name(data, s, n_sub), epoch=epoch)
                | stream_accuracies(model, data, subsets[s], subsets[0], settings))

    def summary(row: dict, loss: float) -> str:
        return (f"subset {row['task_order']}/{n_sub} epoch {row['epoch']:3d}/"
                f"{settings.loop.epochs_per_task} | loss {loss:.4f} | sub {row['acc_tr_sub']:6.2f}% "
                f"1st {row['acc_1st_sub']:6.2f}% train {row['acc_tr']:6.2f}% test "
                f"{row['acc_test']:6.2f}%")

    hooks = Hooks(
        new_optimizer=lambda s: make_optimizer(model, settings.lr, settings.loop.meta_per_layer,
                                               settings.weight_decay),
        evaluate=evaluate_epoch, summary=summary, optimizer_per_phase=False,
        transform=settings.train_transform, state=dict(settings.extra_state))
    written, optimizer = run_phases(model, phases, hooks, settings.loop, generator, run_dir,
                                    columns, row_prefix, resume=resume, log=log)
    if settings.save_final:
        if optimizer is None:  # resumed after the last part: the checkpoint holds its state
            optimizer = hooks.new_optimizer(0)
            optimizer.load_state_dict(load_checkpoint(run_dir / CHECKPOINT_FILE)["optimizer"])
        save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
                    run_dir / FINAL_MODEL_FILE)
    return written


def part_name(data: StreamData, index: int, n_parts: int) -> str:
    """The published ``tsk`` of part ``index`` (from 0): 'sub_FMNIST_k/N' (stream FMNIST) or
    'CIFAR10_k/N' (stream CIFAR-10)."""
    return f"{data.part_prefix}{data.name}_{index + 1}/{n_parts}"


# --------------------------------------------------------------------------------------------
# The command-line driver shared by both stream experiments
# --------------------------------------------------------------------------------------------


meta_column = records.meta_label  # the 'meta' column: the value, or per-layer values joined by '-'


def stream_settings(config, weight_decay: float, progress: bool = True,
                    stop_after_epochs: Optional[int] = None, **hooks) -> StreamSettings:
    """The settings a stream run takes from its config (--epochs-per-task, --lr, --mbs,
    --eval-batch, --seed, --checkpoint-every, --flip-stats, --meta per layer);
    ``weight_decay`` and ``hooks`` (transforms, predict, extra_state, save_final) are the
    experiment's."""
    loop = RunSettings(epochs_per_task=config.epochs_per_task, batch_size=config.mbs,
                       meta_per_layer=config.meta_per_layer,
                       checkpoint_every=config.checkpoint_every, flip_stats=config.flip_stats,
                       progress=progress, stop_after_epochs=stop_after_epochs)
    return StreamSettings(loop, lr=config.lr, weight_decay=weight_decay,
                          eval_batch_size=config.eval_batch, seed=config.seed, **hooks)


def describe(data: StreamData, parts: Sequence[torch.Tensor], model: nn.Module, device) -> str:
    """One line: the device, the data cut into parts, the model."""
    n_params = sum(p.numel() for p in model.parameters())
    left = len(data.train_x) - len(parts) * len(parts[0])
    return (f"device {device}; {data.name}: {len(data.train_x)} training samples in {len(parts)} "
            f"parts of {len(parts[0])}" + (f" ({left} left out)" if left else "")
            + f", {len(data.test_x)} test samples; model {type(model).__name__} "
            f"({n_params:,} parameters)")


def add_stream_arguments(parser, lr: float, mbs: int, epochs_per_task: int,
                         eval_batch: int) -> None:
    """The learning flags both stream experiments share."""
    from metaplastic.flag_types import non_negative_float, positive_float, positive_int

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
