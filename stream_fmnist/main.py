"""Stream FMNIST (Fig. 4a, stream learning).

The training set (Fashion-MNIST or MNIST) is permuted once at random (seeded) and cut into
--nb-subset equal contiguous parts, learned one after another for --epochs-per-task epochs
each with ONE metaplastic Adam optimizer. Per epoch (metrics.csv, the published
columns): net, arch, lr, meta, init (the init width), task_order (part, 1-based), tsk
('sub_FMNIST_k/N'), epoch (within the part), acc_tr_sub (current part), acc_tr (whole training
set), acc_test, acc_1st_sub (first part).

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

from metaplastic import faithfulness, fast
from metaplastic import records
from metaplastic.cli import (ArgumentParser, RunOptions, add_run_arguments,
                             command_line, neutral, non_negative_float, positive_int,
                             run_options)
from metaplastic.errors import ConfigError
from metaplastic.optim import expand_meta
from metaplastic.stream import (StreamExperiment, StreamSettings, add_stream_arguments,
                                meta_column, run_function)
from stream_fmnist.data_utils import TASKS, load_data, pixels
from stream_fmnist.model_utils import build_model

EXPERIMENT_NAME = "stream_fmnist"


@dataclass
class StreamFmnistConfig(RunOptions):
    """Everything that defines a stream FMNIST run (saved as config.json)."""

    task: str = "FMNIST"
    hidden_layers: list = field(default_factory=lambda: [1024, 1024])
    lr: float = 0.005
    decay: float = 1e-7
    meta: list = field(default_factory=lambda: [0.0])
    epochs_per_task: int = 20
    nb_subset: int = 1
    mbs: int = 100
    init: str = "uniform"
    init_width: float = 0.1
    eval_batch: int = neutral(10_000)
    save: bool = False
    experiment: str = EXPERIMENT_NAME


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="stream_fmnist/main.py",
                       description="Stream learning of Fashion-MNIST/MNIST cut into parts "
                                   "(Fig. 4a); metaplasticity via --meta.",
                       epilog=faithfulness.epilog("stream_fmnist"))
    g = p.add_argument_group("model and data")
    g.add_argument("--task", choices=TASKS, default="FMNIST", help="dataset")
    g.add_argument("--hidden-layers", nargs="+", type=positive_int, default=[1024, 1024],
                   help="hidden layer sizes")
    g.add_argument("--decay", type=non_negative_float, default=1e-7,
                   help="L2 weight decay")
    g.add_argument("--save", action="store_true",
                   help="also write model_final.pt (model and optimizer) at the end")
    add_stream_arguments(p, lr=0.005, mbs=100, epochs_per_task=20, eval_batch=10_000)
    add_run_arguments(p, EXPERIMENT_NAME)
    return p


def config_from_args(args) -> StreamFmnistConfig:
    try:
        expand_meta(args.meta, len(args.hidden_layers) + 1)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return StreamFmnistConfig(
        task=args.task, hidden_layers=list(args.hidden_layers), lr=args.lr, decay=args.decay,
        meta=list(args.meta), epochs_per_task=args.epochs_per_task, nb_subset=args.nb_subset,
        mbs=args.mbs, init=args.init, init_width=args.init_width,
        eval_batch=args.eval_batch, save=args.save, **run_options(args))


def _configure(config: StreamFmnistConfig, model, device, settings: StreamSettings) -> None:
    settings.train_transform = pixels
    evaluator = fast.integer_evaluator(model)  # with --impl fast, or auto where int8 pays off
    if evaluator is not None:
        settings.predict, settings.eval_transform = evaluator, None
    else:
        settings.predict, settings.eval_transform = None, pixels
    print(f"evaluation: {'exact integer' if evaluator is not None else 'float32'} arithmetic, "
          f"{config.eval_batch} samples per forward pass")


def _row_prefix(config: StreamFmnistConfig, data) -> dict:
    return {"net": "bnn", "arch": "-".join(str(h) for h in config.hidden_layers), "lr": config.lr,
            "meta": meta_column(config.meta), "init": config.init_width}


EXPERIMENT = StreamExperiment(
    name=EXPERIMENT_NAME, columns=records.STREAM_FMNIST_COLUMNS, load_data=load_data,
    build_model=lambda c: build_model(c.hidden_layers, c.init, c.init_width),
    permute=lambda c: True, row_prefix=_row_prefix, configure=_configure)


def settings_from_config(config: StreamFmnistConfig, progress: bool = True) -> StreamSettings:
    return StreamSettings(
        epochs_per_task=config.epochs_per_task, lr=config.lr,
        meta=expand_meta(config.meta, len(config.hidden_layers) + 1), weight_decay=config.decay,
        batch_size=config.mbs, eval_batch_size=config.eval_batch, seed=config.seed,
        checkpoint_every=config.checkpoint_every, progress=progress, save_final=config.save,
        flip_statistics=config.flip_stats)


run = run_function(settings_from_config, EXPERIMENT)  # run(config, resume, dry_run, ...)


main = command_line(build_parser, config_from_args, run)


if __name__ == "__main__":
    sys.exit(main())
