"""One training epoch and one evaluation, on tensors already on the run's device."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from metaplastic.errors import MetaplasticError
from metaplastic.method.norms import batch_statistics_groups

# Evaluations process up to this many samples per forward pass; batch-statistics norms still
# normalize every evaluation batch with its own statistics (see norms.batch_statistics_groups).
EVAL_CHUNK_SAMPLES = 10_000


class NonFiniteLossError(MetaplasticError):
    """Training produced a NaN or infinite loss."""


@dataclass
class Evaluation:
    accuracy: float  # percent, rounded to 2 decimals
    loss: float      # summed cross-entropy / number of samples


def progress_bar(enabled: bool, total: int, desc: str):
    """A tqdm bar on stderr for one epoch's batches, or None when progress is off or stderr is
    not a terminal (a SLURM log, a redirected file: no carriage-return redraws there; the
    per-epoch log lines report progress instead)."""
    import sys

    from metaplastic.progress import interactive

    if not enabled or not interactive(sys.stderr):
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5)


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator,
                     device: torch.device) -> list[torch.Tensor]:
    """A fresh random order of ``range(n)`` cut into batches (the last one may be smaller)."""
    order = torch.randperm(n, generator=generator).to(device)
    return list(torch.split(order, batch_size))


def needs_batch_statistics(model: nn.Module) -> bool:
    """Whether training normalizes with batch statistics over samples alone (BatchNorm1d),
    which a batch of one sample cannot give."""
    return any(isinstance(m, nn.BatchNorm1d) for m in model.modules())


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, batch_size: int, generator: torch.Generator,
                penalty: Optional[Callable[[], torch.Tensor]] = None,
                after_step: Optional[Callable[[], None]] = None,
                transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                progress=None) -> float:
    """One pass over (x, y) in shuffled batches; returns the mean training cross-entropy.

    ``penalty()`` is added to each batch's loss (EWC, SI); ``after_step()`` runs after each
    optimizer step; ``transform`` maps a batch of inputs (data augmentation).
    """
    model.train()
    forward = getattr(model, "training_forward", model)  # MLPs: a compiled graph on CPU
    total = torch.zeros((), device=x.device)
    batches = shuffled_batches(len(x), batch_size, generator, x.device)
    if len(batches) > 1 and len(batches[-1]) == 1 and needs_batch_statistics(model):
        # A last batch of ONE sample: BatchNorm1d cannot normalize it (the published scripts
        # stop with "Expected more than 1 value per channel"); it is skipped, as a
        # drop_last loader would, and the sample is seen in the other epochs' shuffles.
        batches = batches[:-1]
    for idx in batches:
        xb, yb = x.index_select(0, idx), y.index_select(0, idx)
        if transform is not None:
            xb = transform(xb)
        loss = F.cross_entropy(forward(xb), yb)
        objective = loss if penalty is None else loss + penalty()
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        if after_step is not None:
            after_step()
        total += loss.detach()
        if progress is not None:
            progress.update(1)
    mean = (total / max(len(batches), 1)).item()
    if not torch.isfinite(torch.tensor(mean)):
        raise NonFiniteLossError(
            "the training loss became NaN or infinite; lower --lr, check the input data, "
            "or resume from the last checkpoint with other settings")
    return mean


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> Evaluation:
    """Accuracy and loss in evaluation mode, each batch of ``batch_size`` normalized on its own."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    samples = getattr(model, "eval_chunk_samples", EVAL_CHUNK_SAMPLES)  # conv nets: smaller
    chunk = max(batch_size, (samples // batch_size) * batch_size)
    with batch_statistics_groups(model, batch_size):
        for start in range(0, len(x), chunk):
            xb, yb = x[start:start + chunk], y[start:start + chunk]
            out = model(xb)
            loss_sum += F.cross_entropy(out, yb, reduction="sum").double()
            correct += (out.argmax(dim=1) == yb).sum()
    model.train(was_training)
    n = len(x)
    return Evaluation(accuracy=round(100.0 * correct.item() / n, 2), loss=loss_sum.item() / n)
