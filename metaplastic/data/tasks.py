"""Tasks of a continual-learning sequence: their names, and their data already on the run's device.

pMNIST: every occurrence of 'pMNIST' in a sequence gets its own random pixel permutation of
MNIST, drawn once per task, in sequence order, from a generator seeded by the run's seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from metaplastic.errors import ConfigError

PMNIST_TEST_BATCH = 1000
DEFAULT_TEST_BATCH = 100
TRAIN_EVAL_BATCH = 100


@dataclass(frozen=True)
class TaskName:
    """What a task name of the experiments' ``--task-sequence`` means."""

    #: The experiment folders that run it; a name refused elsewhere is sent to the first.
    experiments: tuple[str, ...]
    #: Its inputs are 28x28 8-bit images (784 pixels, byte / 255).
    image: bool = False


#: Every task name of the experiments (``cifar100-K`` stands for each K): docs/METHOD.md section 4.
TASK_NAMES: dict[str, TaskName] = {
    "MNIST": TaskName(("continual_learning", "mnist_usps"), image=True),
    "FMNIST": TaskName(("continual_learning",), image=True),
    "USPS": TaskName(("mnist_usps", "continual_learning"), image=True),
    "pMNIST": TaskName(("continual_learning",), image=True),
    "animals": TaskName(("cifar_features",)),
    "vehicles": TaskName(("cifar_features",)),
    "cifar100-K": TaskName(("cifar_features",)),
}
#: The tasks whose inputs are 784 8-bit pixels.
IMAGE_TASKS: tuple[str, ...] = tuple(name for name, task in TASK_NAMES.items() if task.image)


def _entry(name: str) -> str:
    return "cifar100-K" if name.startswith("cifar100-") else name


def tasks_of(experiment: str) -> tuple[str, ...]:
    """The task names ``experiment`` (a folder name such as ``continual_learning``) runs."""
    return tuple(name for name, task in TASK_NAMES.items() if experiment in task.experiments)


def check_task_names(names: list[str], experiment: str) -> None:
    """Refuse a name ``experiment`` does not run: where it runs, or that it is unknown."""
    for name in names:
        task = TASK_NAMES.get(_entry(name))
        if task is not None and experiment in task.experiments:
            continue
        if task is not None:
            raise ConfigError(f"task {name!r} is not part of {experiment}; run it with "
                              f"{task.experiments[0]}/main.py")
        raise ConfigError(f"unknown task {name!r}; {experiment} accepts {', '.join(tasks_of(experiment))}")


@dataclass
class TaskData:
    """One task: its name in the records, its data, and its evaluation batch sizes."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    test_batch_size: int = DEFAULT_TEST_BATCH
    train_eval_batch_size: int = TRAIN_EVAL_BATCH
    train_permutation: Optional[torch.Tensor] = None  # pixel order applied to train_x on use

    def training_inputs(self) -> torch.Tensor:
        """The training inputs as the model sees them (permuted pMNIST pixels made only when
        the task is learned, so a 10-task sequence holds one permuted training set at a time)."""
        if self.train_permutation is None:
            return self.train_x
        return self.train_x.index_select(1, self.train_permutation)


def permutation_generator(seed: int) -> torch.Generator:
    """The generator that draws the pMNIST pixel permutations of a run."""
    return torch.Generator().manual_seed(int(seed))


def draw_permutations(n_tasks: int, n_pixels: int, seed: int) -> list[torch.Tensor]:
    """``n_tasks`` pixel permutations, reproducible from ``seed`` (task k gets the k-th draw)."""
    generator = permutation_generator(seed)
    return [torch.randperm(n_pixels, generator=generator) for _ in range(n_tasks)]


def permuted_task(name: str, base: TaskData, permutation: torch.Tensor) -> TaskData:
    """``base`` with the pixels of every image reordered by ``permutation``."""
    perm = permutation.to(base.train_x.device)
    return TaskData(name, base.train_x, base.train_y, base.test_x.index_select(1, perm),
                    base.test_y, test_batch_size=PMNIST_TEST_BATCH,
                    train_eval_batch_size=base.train_eval_batch_size, train_permutation=perm)


def concatenated(tasks: list[TaskData], name: str = "interleaved") -> TaskData:
    """All training sets joined into one task (interleaved training); test set of the first."""
    return TaskData(name, torch.cat([t.training_inputs() for t in tasks]),
                    torch.cat([t.train_y for t in tasks]),
                    tasks[0].test_x, tasks[0].test_y, tasks[0].test_batch_size,
                    tasks[0].train_eval_batch_size)


def positional_names(names: list[str]) -> list[str]:
    """Each pMNIST is named by its position in the sequence, as published:
    [pMNIST, MNIST, pMNIST] -> [pMNIST1, MNIST, pMNIST3]."""
    return [f"pMNIST{k}" if n == "pMNIST" else n for k, n in enumerate(names, start=1)]
