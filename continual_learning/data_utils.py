"""Tasks of the continual_learning experiment: MNIST, FMNIST, USPS and permuted MNIST.

USPS is the full data set, its 16x16 digits padded to 28x28 (:mod:`metaplastic.data.usps`; the
mnist_usps experiment trains conv nets on windows of it). The CIFAR task names of the paper
(animals, vehicles, cifar100-K) belong to the cifar_features experiment; here they are refused
with a message saying where to run them.
"""
from __future__ import annotations

from pathlib import Path

import torch

from metaplastic.data.datasets import load_image_dataset
from metaplastic.data.tasks import TaskData, draw_permutations, permuted_task, positional_names
from metaplastic.data.usps import load_usps
from metaplastic.errors import ConfigError

TASKS = ("MNIST", "FMNIST", "USPS", "pMNIST")
ELSEWHERE = {
    "animals": "cifar_features/main.py",
    "vehicles": "cifar_features/main.py",
}


def check_task_names(names: list[str]) -> None:
    """Refuse unknown task names with a message naming what is accepted."""
    for name in names:
        if name in TASKS:
            continue
        where = ELSEWHERE.get(name) or ("cifar_features/main.py" if name.startswith("cifar100-") else None)
        if where:
            raise ConfigError(f"task {name!r} is not part of continual_learning; run it with {where}")
        raise ConfigError(f"unknown task {name!r}; continual_learning accepts {', '.join(TASKS)}")


def build_tasks(names: list[str], data_root: Path | None, device: torch.device,
                seed: int, config=None) -> list[TaskData]:
    """Load each dataset once and build the tasks in order (pMNIST permutations from ``seed``)."""
    check_task_names(names)
    datasets = {}
    if any(n in ("MNIST", "pMNIST") for n in names):
        datasets["MNIST"] = load_image_dataset("MNIST", data_root, device)
    if "FMNIST" in names:
        datasets["FMNIST"] = load_image_dataset("FMNIST", data_root, device)
    if "USPS" in names:
        datasets["USPS"] = load_usps(data_root, device)
    n_permuted = names.count("pMNIST")
    permutations = iter(draw_permutations(n_permuted, 784, seed))
    tasks = []
    for name, label in zip(names, positional_names(names)):
        source = datasets["MNIST" if name == "pMNIST" else name]
        base = TaskData(label, source.train_x, source.train_y, source.test_x, source.test_y)
        tasks.append(permuted_task(label, base, next(permutations)) if name == "pMNIST" else base)
    return tasks


TASK_HELP = ("tasks in order: MNIST, FMNIST, USPS (padded to 28x28), pMNIST (each pMNIST a new "
             "permutation)")
