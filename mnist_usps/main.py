"""MNIST -> USPS with a binarized conv net (Fig. 4c,d).

Fig. 4(c), metaplastic and non-metaplastic:
    python mnist_usps/main.py --net 'bcnn' --ch 1 12 20 30 --kr 4 4 4 --decay 1e-8 --norm 'bn' \
        --lr 0.005 --meta 1.2 --epochs-per-task 240 --task-sequence 'MNIST' 'USPS'
    python mnist_usps/main.py --net 'bcnn' --ch 1 12 20 30 --kr 4 4 4 --decay 1e-8 --norm 'bn' \
        --lr 0.005 --meta 0.0 --epochs-per-task 240 --task-sequence 'MNIST' 'USPS'
Fig. 4(d) baselines: --ch 1 6 10 15 --meta 0.0 --task-sequence 'USPS' (or 'MNIST').

Defaults for flags the published commands omit: --decay 0.0 (the Fig. 4d single-task runs give
none; the two-task runs give 1e-8 explicitly), --meta 0.0, --epochs-per-task 240,
--task-sequence MNIST USPS, --train-batch-size 20, training windows of 2000 MNIST / 1800 USPS
samples, --init uniform with --init-width 0.1 (hidden weights U(-0.05, 0.05), as the MLPs).
One metaplastic Adam optimizer for the whole sequence; an epoch-0 row (evaluation before
training) opens metrics.csv.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from metaplastic import fast
from metaplastic.errors import ConfigError
from metaplastic.experiments.sequence import run_sequence
from metaplastic.flag_types import non_negative_float, positive_float, positive_int
from metaplastic.method import faithfulness
from metaplastic.method.optim import MetaPerLayer
from metaplastic.runs.cli import ArgumentParser, add_run_arguments, add_save_argument
from metaplastic.runs.faults import main_guard
from metaplastic.runs.run_config import RunOptions, config_from, neutral, per_seed, print_config
from metaplastic.runs.rundir import set_up_run, start_run_folder
from mnist_usps.data_utils import (TRAIN_EVAL_BATCH_SIZE, TRAIN_WINDOW, build_tasks,
                                   check_task_names)
from mnist_usps.model_utils import (build_model, check_architecture, describe, row_prefix,
                                   sequence_settings)

EXPERIMENT = "mnist_usps"
SCENARIO = "task"  # records' scenario column; the net has no per-task normalization state


@dataclass
class MnistUspsConfig(RunOptions, MetaPerLayer):
    """Everything that defines an mnist_usps run (saved as config.json)."""

    net: str = "bcnn"
    ch: list = field(default_factory=lambda: [1, 12, 20, 30])
    kr: list = field(default_factory=lambda: [4, 4, 4])
    norm: str = "bn"
    init: str = "uniform"
    init_width: float = 0.1
    task_sequence: list = field(default_factory=lambda: ["MNIST", "USPS"])
    lr: float = 0.005
    meta: list = field(default_factory=lambda: [0.0])
    decay: float = 0.0
    epochs_per_task: int = 240
    train_batch_size: int = 20
    mnist_train_samples: int = TRAIN_WINDOW["MNIST"]
    usps_train_samples: int = TRAIN_WINDOW["USPS"]
    train_windows: dict = per_seed(default_factory=dict)  # filled at run time: name -> [start, size]
    des: str = neutral("")   # the published --des: a description of the run, recorded
    experiment: str = EXPERIMENT

    @property
    def n_layers(self) -> int:
        """Weight layers: the convolutions and the classifier."""
        return len(self.kr) + 1


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="mnist_usps/main.py",
                       description="Binarized conv net learning MNIST and USPS in sequence "
                                   "(Fig. 4c,d); metaplasticity via --meta.",
                       epilog=faithfulness.epilog("mnist_usps"))
    g = p.add_argument_group("model")
    g.add_argument("--net", choices=("bcnn",), default="bcnn", help="binarized conv net (only choice)")
    g.add_argument("--ch", nargs="+", type=positive_int, default=[1, 12, 20, 30],
                   help="channels: input (1) then one per conv layer")
    g.add_argument("--kr", nargs="+", type=positive_int, default=[4, 4, 4],
                   help="kernel size of each conv layer")
    g.add_argument("--norm", choices=("bn",), default="bn",
                   help="batch norm without affine parameters or running statistics")
    g.add_argument("--init", choices=("uniform", "gauss", "xavier"), default="uniform",
                   help="hidden-weight init: uniform U(-w/2, w/2), gauss N(0, w), or xavier")
    g.add_argument("--init-width", type=positive_float, default=0.1, help="w of --init")
    g = p.add_argument_group("learning")
    g.add_argument("--task-sequence", nargs="+", default=["MNIST", "USPS"],
                   help="MNIST, USPS in any order, or one alone")
    g.add_argument("--lr", type=positive_float, default=0.005, help="Adam learning rate")
    g.add_argument("--meta", nargs="+", type=non_negative_float, default=[0.0],
                   help="metaplasticity m: one value, or one per layer (convs, then classifier)")
    g.add_argument("--decay", type=non_negative_float, default=0.0,
                   help="L2 weight decay (Fig. 4c uses 1e-8)")
    g.add_argument("--epochs-per-task", type=positive_int, default=240,
                   help="epochs of training on each task")
    g.add_argument("--train-batch-size", type=positive_int, default=20,
                   help="training mini-batch size")
    g.add_argument("--mnist-train-samples", type=positive_int, default=TRAIN_WINDOW["MNIST"],
                   help="size of the random contiguous MNIST training window")
    g.add_argument("--usps-train-samples", type=positive_int, default=TRAIN_WINDOW["USPS"],
                   help="size of the random contiguous USPS training window")
    g = p.add_argument_group("outputs")
    g.add_argument("--des", default="", help="a description of the run (recorded in config.json; "
                                            "the published script appends it to its folder name)")
    add_save_argument(g, "accepted as published (the results are always written here)")
    add_run_arguments(p, EXPERIMENT)
    return p


def config_from_args(args) -> MnistUspsConfig:
    """Validate the flags together and build the run's config."""
    check_task_names(args.task_sequence)
    check_architecture(args.ch, args.kr, args.meta)
    check_batch_statistics(args)
    return config_from(args, MnistUspsConfig)


def check_batch_statistics(args) -> None:
    """The conv net's BatchNorm normalizes with each batch's statistics: a training batch of
    one sample cannot be normalized, nor an evaluation batch of one (the training windows are
    evaluated in batches of TRAIN_EVAL_BATCH_SIZE)."""
    if args.train_batch_size == 1:
        raise ConfigError("--train-batch-size 1: batch-statistics BatchNorm cannot normalize a "
                          "batch of one sample; use 2 or more")
    for name in ("mnist", "usps"):
        size = getattr(args, f"{name}_train_samples")
        if size % TRAIN_EVAL_BATCH_SIZE == 1:
            raise ConfigError(f"--{name}-train-samples {size}: its training-set evaluation in "
                              f"batches of {TRAIN_EVAL_BATCH_SIZE} would end with a batch of one "
                              "sample, which batch-statistics BatchNorm cannot normalize; choose "
                              "another size")


def run(config: MnistUspsConfig, resume: bool = False, dry_run: bool = False,
        progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Run (or, with dry_run, only check flags, data and model) one mnist_usps configuration."""
    # set-up: device, seeds, exact float32 maths; the run folder (config printed once complete)
    device, run_dir = set_up_run(config, EXPERIMENT, resume, show_config=False)

    # data: seeded contiguous training windows of MNIST and USPS, full test sets
    data_root = Path(config.data_root) if config.data_root else None
    tasks, windows = build_tasks(config.task_sequence, data_root, device, config.seed,
                                 {"MNIST": config.mnist_train_samples,
                                  "USPS": config.usps_train_samples})
    config.train_windows = {name: list(w) for name, w in windows.items()}
    print_config(config)

    # model, and the implementation chosen once (--impl)
    model = build_model(config.ch, config.kr, config.init, config.init_width).to(device)
    print(f"implementation: {fast.enable(model, device, config.impl)}")
    print(describe(model, device, windows, tasks))

    # run: one optimizer for the sequence, an epoch-0 row before training
    from_checkpoint = start_run_folder(run_dir, config, resume, dry_run)
    if from_checkpoint is None:  # dry run
        return run_dir
    settings = sequence_settings(config, SCENARIO, progress)
    settings.loop.stop_after_epochs = stop_after_epochs
    run_sequence(model, tasks, settings, run_dir, row_prefix(config, SCENARIO),
                 resume=from_checkpoint)
    print(f"results: {run_dir / 'metrics.csv'}")
    return run_dir


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run(config_from_args(args), resume=args.resume, dry_run=args.dry_run,
        progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
