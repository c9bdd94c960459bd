"""Continual learning on ResNet-18 features of CIFAR-10 / CIFAR-100 (Fig. 4e-h).

First make the features (once per dataset; see generate_features.py --help):
    python cifar_features/generate_features.py --dataset cifar10 --weights resnet18-f37072fd.pth
    python cifar_features/generate_features.py --dataset cifar100 --weights resnet18-f37072fd.pth
They are written to, and read from, <data-root>/features/ (or $METAPLASTIC_CIFAR_FEATURES).
By default (as published) the ResNet runs with its BatchNorm in training mode, on batches of 500
images in data-set order; --resnet-mode eval makes features with its running statistics instead.
Training refuses features of another mode than --features-resnet-mode (default train) and files
that do not record their mode.

Fig. 4(e, f), CIFAR-10 vehicles then animals, without / with metaplasticity:
    python cifar_features/main.py --net 'bnn' --norm 'bn' --decay 1e-8 --in-size 512 \
        --hidden-layers 2048 --out-size 10 --lr 0.005 --meta 0.0 --epochs-per-task 10 \
        --task-sequence 'vehicles' 'animals'
    (same with --meta 1.8)
Fig. 4(g, h), CIFAR-100 in two subsets of 50 classes, domain scenario:
    python cifar_features/main.py --net 'bnn' --norm 'in' --scenario 'domain' --in-size 512 \
        --hidden-layers 2048 2048 --out-size 100 --lr 0.005 --meta 0.0 --epochs-per-task 20 \
        --task-sequence 'cifar100-2'
    (same with --meta 1.3)

Every other flag is the published continual-learning script's (metaplastic/experiments/continual.py). Feature
processing per example: (x - mean) / var as published (the variance's divisor is n, NumPy's
default); --feature-scale std divides by the standard deviation instead. Training and
evaluation batches: 100 (CIFAR-10 tasks) or 20 (CIFAR-100 tasks).
"""
from __future__ import annotations

import sys
from pathlib import Path

from cifar_features.data_utils import (TASK_HELP, CifarFeaturesConfig, add_arguments,
                                       build_tasks, check_task_names, train_batch_size)
from cifar_features.model_utils import build_model
from metaplastic import fast
from metaplastic.experiments import continual
from metaplastic.experiments.sequence import run_sequence
from metaplastic.method import faithfulness
from metaplastic.runs.cli import ArgumentParser, add_run_arguments
from metaplastic.runs.faults import main_guard
from metaplastic.runs.rundir import set_up_run, start_run_folder

EXPERIMENT = "cifar_features"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="cifar_features/main.py",
                       description="BNN/DNN learning CIFAR-10 / CIFAR-100 feature tasks in sequence "
                                   "(Fig. 4e-h); metaplasticity via --meta.",
                       epilog=faithfulness.epilog(EXPERIMENT))
    continual.add_continual_arguments(p, default_tasks=["vehicles", "animals"],
                                      task_help=TASK_HELP)
    add_arguments(p.add_argument_group(EXPERIMENT))
    add_run_arguments(p, EXPERIMENT)
    return p


def run(config: CifarFeaturesConfig, resume: bool = False, dry_run: bool = False,
        progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Run (or, with ``dry_run``, only check flags, features and model) one configuration."""
    # set-up: device, seeds, exact float32 maths; the run folder
    device, run_dir = set_up_run(config, EXPERIMENT, resume)

    # data: the features, processed per example and cut into tasks, on the device
    data_root = Path(config.data_root) if config.data_root else None
    tasks = build_tasks(config.task_sequence, data_root, device, config.seed, config)
    continual.check_inputs(config, tasks)

    # model, and the implementation chosen once (--impl)
    model = build_model(config).to(device)
    print("implementation: " + fast.enable(model, device, config.impl))
    print(continual.describe(config, model, device, tasks))

    # run: checks and config.json first, then the task sequence (batch 100, or 20 for CIFAR-100)
    from_checkpoint = start_run_folder(run_dir, config, resume, dry_run)
    if from_checkpoint is None:  # dry run
        return run_dir
    settings = continual.sequence_settings(config, progress,
                                           train_batch_size(config.task_sequence))
    settings.loop.stop_after_epochs = stop_after_epochs
    run_sequence(model, tasks, settings, run_dir, continual.row_prefix(config),
                 resume=from_checkpoint)
    continual.finish(config, model, tasks, run_dir)
    return run_dir


def config_from_args(args) -> CifarFeaturesConfig:
    check_task_names(args.task_sequence)
    return continual.config_from_args(
        args, CifarFeaturesConfig, image_tasks=(), features_dir=str(args.features_dir or ""),
        feature_scale=args.feature_scale, features_resnet_mode=args.features_resnet_mode)


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    run(config, resume=args.resume, dry_run=args.dry_run, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
