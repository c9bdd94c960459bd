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
from metaplastic.data.tasks import TaskData, check_task_names as check_experiment_tasks
from metaplastic.data.tasks import draw_permutations, permuted_task, positional_names
from metaplastic.data.usps import load_usps


def check_task_names(names: list[str]) -> None:
    """Refuse a task this experiment does not run, saying where it runs (or what is accepted)."""
    check_experiment_tasks(names, "continual_learning")


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
