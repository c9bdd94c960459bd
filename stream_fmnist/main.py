"""Stream FMNIST (Fig. 4a, stream learning).

The training set (Fashion-MNIST or MNIST) is permuted once at random (seeded) and cut into
--nb-subset equal contiguous parts, learned one after another for --epochs-per-task epochs
each with ONE metaplastic Adam optimizer. Per epoch (metrics.csv, the published
columns): lr, meta, init (the init width), task_order (part, 1-based), tsk
('sub_FMNIST_k/N'), epoch (within the part), acc_tr_sub (current part), acc_tr (whole training
set), acc_test, acc_1st_sub (first part); then ours: net, arch and the flip statistics.

Published commands:
    python stream_fmnist/main.py --task FMNIST --hidden-layers 1024 1024 --lr 0.005 \
        --decay 1e-7 --meta 2.5 --epochs-per-task 20 --nb-subset 1
    python stream_fmnist/main.py --task FMNIST --hidden-layers 1024 1024 --lr 0.005 \
        --decay 1e-7 --meta 0.0 --epochs-per-task 20 --nb-subset 1
    python stream_fmnist/main.py --task FMNIST --hidden-layers 1024 1024 --lr 0.005 \
        --decay 1e-7 --meta 2.5 --epochs-per-task 20 --nb-subset 60
    python stream_fmnist/main.py --task FMNIST --hidden-layers 1024 1024 --lr 0.005 \
        --decay 1e-7 --meta 0.0 --epochs-per-task 20 --nb-subset 60

Defaults for flags the published commands omit: --mbs 100, --init uniform --init-width 0.1,
--seed 0. Data come from the offline files (python -m metaplastic.data_prep). A crashed or
interrupted run continues with the same command plus --resume --out-dir <run folder>.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from metaplastic import fast
from metaplastic.experiments.stream import (add_stream_arguments, describe, meta_column, run_stream,
                                            stream_settings, subset_indices)
from metaplastic.flag_types import non_negative_float, positive_int
from metaplastic.method import faithfulness
from metaplastic.method.optim import MetaPerLayer, check_meta
from metaplastic.runs import records
from metaplastic.runs.cli import (ArgumentParser, add_beaker_arguments, add_run_arguments,
                                  add_save_argument, refuse_beaker)
from metaplastic.runs.faults import main_guard
from metaplastic.runs.run_config import RunOptions, config_from, neutral
from metaplastic.runs.rundir import set_up_run, start_run_folder
from stream_fmnist.data_utils import TASKS, load_data, pixels
from stream_fmnist.model_utils import build_model

EXPERIMENT = "stream_fmnist"
PERMUTE = True   # the training set is permuted once (seeded) before it is cut, as published


@dataclass
class StreamFmnistConfig(RunOptions, MetaPerLayer):
    """Everything that defines a stream FMNIST run (saved as config.json)."""

    task: str = "FMNIST"
    hidden_layers: list = field(default_factory=lambda: [1024, 1024])
    lr: float = 0.005
    decay: float = 0.0                 # the published parser's defaults (its commands give 1e-7)
    meta: list = field(default_factory=lambda: [0.0])
    epochs_per_task: int = 5
    nb_subset: int = 1
    mbs: int = 100
    init: str = "uniform"
    init_width: float = 0.1
    eval_batch: int = neutral(10_000)
    save: bool = False
    experiment: str = EXPERIMENT

    @property
    def n_layers(self) -> int:
        """Weight layers: the hidden layers and the classifier."""
        return len(self.hidden_layers) + 1


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="stream_fmnist/main.py",
                       description="Stream learning of Fashion-MNIST/MNIST cut into parts "
                                   "(Fig. 4a); metaplasticity via --meta.",
                       epilog=faithfulness.epilog("stream_fmnist"))
    g = p.add_argument_group("model and data")
    g.add_argument("--task", choices=TASKS, default="FMNIST", help="dataset")
    g.add_argument("--hidden-layers", nargs="+", type=positive_int, default=[1024, 1024],
                   help="hidden layer sizes")
    g.add_argument("--decay", type=non_negative_float, default=0.0,
                   help="L2 weight decay (the published Fig. 4a commands give 1e-7)")
    add_save_argument(g, "also write model_final.pt (model and optimizer) at the end")
    add_stream_arguments(p, lr=0.005, mbs=100, epochs_per_task=5, eval_batch=10_000)
    add_beaker_arguments(p, areas=False)   # the published stream parser has no --areas
    add_run_arguments(p, EXPERIMENT)
    return p


def config_from_args(args) -> StreamFmnistConfig:
    refuse_beaker(args)
    config = config_from(args, StreamFmnistConfig)
    check_meta(config.meta, config.n_layers)
    return config


def run(config: StreamFmnistConfig, resume: bool = False, dry_run: bool = False,
        progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Run (or, with ``dry_run``, only check flags, data and model) one configuration."""
    # set-up: device, seeds, exact float32 maths; the run folder
    device, run_dir = set_up_run(config, EXPERIMENT, resume)

    # data: the training set (bytes on the device), permuted once (seeded) and cut into parts
    data = load_data(config, device)
    parts = subset_indices(len(data.train_x), config.nb_subset, PERMUTE, config.seed)

    # model, the implementation chosen once (--impl), and the evaluation arithmetic it gives
    model = build_model(config.hidden_layers, config.init, config.init_width).to(device)
    print("implementation: " + fast.enable(model, device, config.impl))
    evaluator = fast.integer_evaluator(model)  # exact integers where int8 products pay off
    print(f"evaluation: {'exact integer' if evaluator is not None else 'float32'} arithmetic, "
          f"{config.eval_batch} samples per forward pass")
    print(describe(data, parts, model, device))

    # run: checks and config.json first; ONE metaplastic Adam for the whole stream
    from_checkpoint = start_run_folder(run_dir, config, resume, dry_run)
    if from_checkpoint is None:  # dry run
        return run_dir
    settings = stream_settings(config, config.decay, progress, stop_after_epochs, save_final=config.save,
                               train_transform=pixels, predict=evaluator,
                               eval_transform=None if evaluator is not None else pixels)
    row_prefix = {"net": "bnn", "arch": "-".join(str(h) for h in config.hidden_layers),
                  "lr": config.lr, "meta": meta_column(config.meta), "init": config.init_width}
    run_stream(model, data, parts, settings, run_dir, row_prefix,
               records.STREAM_FMNIST_COLUMNS + records.IDENTITY_COLUMNS, resume=from_checkpoint)
    print(f"results: {run_dir / records.METRICS_FILE}")
    return run_dir


@main_guard
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    run(config_from_args(args), resume=args.resume, dry_run=args.dry_run,
        progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
