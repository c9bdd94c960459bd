"""Continual learning of a task sequence: Fig. 2, Fig. 3, Table 1, Fig. 4(a, b), Supp. Fig. 6,
Fig. 5(c-e).

A BNN (or a full-precision DNN) learns MNIST, Fashion-MNIST and permuted-MNIST tasks one after
another; metaplasticity (--meta) attenuates the updates that would flip a binary weight. After
every epoch, one CSV row: the current task's training accuracy and every task's test accuracy.

Example (Fig. 2d):
    python continual_learning/main.py --net bnn --hidden-layers 4096 4096 --lr 0.005 \
        --decay 1e-7 --meta 1.35 --epochs-per-task 40 --task-sequence pMNIST pMNIST pMNIST \
        pMNIST pMNIST pMNIST
"""
from __future__ import annotations

import sys
from pathlib import Path

from continual_learning.data_utils import TASK_HELP, build_tasks, check_task_names
from continual_learning.model_utils import build_model, image_levels
from metaplastic import fast
from metaplastic.experiments import continual
from metaplastic.experiments.sequence import run_sequence
from metaplastic.method import faithfulness
from metaplastic.runs.cli import ArgumentParser, add_run_arguments
from metaplastic.runs.faults import main_guard
from metaplastic.runs.rundir import set_up_run, start_run_folder

EXPERIMENT = "continual_learning"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="continual_learning/main.py",
                       description="BNN/DNN learning a sequence of tasks; metaplasticity via --meta.",
                       epilog=faithfulness.epilog(EXPERIMENT))
    continual.add_continual_arguments(p, default_tasks=["MNIST"], task_help=TASK_HELP)
    add_run_arguments(p, EXPERIMENT)
    return p


def run(config: continual.ContinualConfig, resume: bool = False, dry_run: bool = False,
        progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Run (or, with ``dry_run``, only check flags, data and model) one configuration."""
    # set-up: device, seeds, exact float32 maths; the run folder
    device, run_dir = set_up_run(config, EXPERIMENT, resume)

    # data: the tasks, on the device (pMNIST permutations drawn from the seed)
    data_root = Path(config.data_root) if config.data_root else None
    tasks = build_tasks(config.task_sequence, data_root, device, config.seed)
    continual.check_inputs(config, tasks)

    # model, and the implementation chosen once (--impl)
    model = build_model(config).to(device)
    levels = image_levels(config.task_sequence, tasks)
    print("implementation: " + fast.enable(model, device, config.impl, input_levels=levels))
    print(continual.describe(config, model, device, tasks))

    # run: checks and config.json first, then the task sequence
    from_checkpoint = start_run_folder(run_dir, config, resume, dry_run)
    if from_checkpoint is None:  # dry run
        return run_dir
    settings = continual.sequence_settings(config, progress)
    settings.loop.stop_after_epochs = stop_after_epochs
    run_sequence(model, tasks, settings, run_dir, continual.row_prefix(config),
                 resume=from_checkpoint)
    continual.finish(config, model, tasks, run_dir)
    return run_dir


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    check_task_names(args.task_sequence)
    config = continual.config_from_args(args)
    run(config, resume=args.resume, dry_run=args.dry_run, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
