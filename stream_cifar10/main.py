"""Stream CIFAR-10 (Fig. 4b, stream learning) with a binarized VGG.

The CIFAR-10 training set (randomly permuted first with --source keras, in its stored order
with --source torchvision) is cut into --nb-subset equal parts learned one after another for
--epochs-per-task epochs each, with ONE metaplastic Adam optimizer. Training batches are
augmented on the device (horizontal flip p=0.5, then a rotation up to 10 degrees or a random
32x32 crop of the edge-padded image). Per epoch (metrics.csv): lr, mbs, meta, task_order, tsk,
epoch, acc_tr_sub, acc_tr, acc_test; the final model and optimizer go to model_final.pt (and
checkpoint.pt, also written every --checkpoint-every epochs, for --resume).

Published commands (--nb-subset 1 or 20, --meta 0.0 or 13.0):
    python stream_cifar10/main.py --lr 0.0001 --mbs 64 --source keras --nb-subset 20 \
        --epochs-per-task 200 --meta 13.0 --init gauss --init-width 0.007

--init/--init-width are recorded, but every binarized layer gets Xavier-normal init as published
(--weight-init flags uses them). CIFAR-10 must be present under the data root as torchvision's
cifar-10-batches-py/ (it cannot be downloaded offline; --download fetches it with torchvision on
a machine with internet). Defaults for flags the published commands omit: --weight-decay 0,
--channels 128 128 256 256 512 512, --normalize none (pixels in [0, 1]), augmentation on.
"""
from __future__ import annotations

import sys
from pathlib import Path
from dataclasses import dataclass, field

from metaplastic import fast
from metaplastic.experiments.stream import (add_stream_arguments, describe, meta_column, run_stream,
                                            stream_settings, subset_indices)
from metaplastic.flag_types import non_negative_float, positive_int
from metaplastic.method import faithfulness, published
from metaplastic.method.optim import MetaPerLayer, check_meta
from metaplastic.runs import records
from metaplastic.runs.cli import ArgumentParser, add_run_arguments, add_save_argument, fraction
from metaplastic.runs.faults import main_guard
from metaplastic.runs.run_config import RunOptions, config_from, neutral
from metaplastic.runs.rundir import set_up_run, start_run_folder
from stream_cifar10.data_utils import NORMALIZATIONS, SOURCES, load_data, permutes, transforms
from stream_cifar10.model_utils import (DEFAULT_CHANNELS, N_WEIGHT_LAYERS, WEIGHT_INITS,
                                        build_model, unused_init_note)

EXPERIMENT = "stream_cifar10"
CHECKPOINT_EVERY = 5      # a full checkpoint is ~220 MB: every 5 epochs by default


@dataclass
class StreamCifarConfig(RunOptions, MetaPerLayer):
    """Everything that defines a stream CIFAR-10 run (saved as config.json)."""

    lr: float = 1e-4
    mbs: int = 64
    source: str = "keras"
    nb_subset: int = 1
    epochs_per_task: int = 200
    meta: list = field(default_factory=lambda: [0.0])
    weight_decay: float = 0.0
    init: str = "uniform"
    init_width: float = 0.1
    weight_init: str = "xavier"
    channels: list = field(default_factory=lambda: list(DEFAULT_CHANNELS))
    fc_width: int = 2048
    dropout: float = 0.5
    augment: bool = True
    normalize: str = "none"
    train_eval: str = "augmented"
    published_version: str = published.DEFAULT_VERSION
    bn_gamma_init: str = "ones"
    eval_batch: int = neutral(1000)
    download: bool = neutral(False)
    checkpoint_every: int = CHECKPOINT_EVERY
    experiment: str = EXPERIMENT
    n_layers = N_WEIGHT_LAYERS   # weight layers (not a field): 6 convolutions, 3 linear layers


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="stream_cifar10/main.py",
                       description="Stream learning of CIFAR-10 cut into parts with a binarized "
                                   "VGG (Fig. 4b); metaplasticity via --meta.",
                       epilog=faithfulness.epilog("stream_cifar10"))
    g = p.add_argument_group("model and data")
    g.add_argument("--source", choices=SOURCES, default="keras",
                   help="keras: permute the training set at random before cutting it; "
                        "torchvision: cut it in the stored order")
    g.add_argument("--weight-decay", "--decay", dest="weight_decay", type=non_negative_float,
                   default=0.0, help="L2 weight decay")
    g.add_argument("--channels", nargs=6, type=positive_int, default=list(DEFAULT_CHANNELS),
                   metavar="C", help="the 6 conv widths")
    g.add_argument("--fc-width", type=positive_int, default=2048,
                   help="width of the two hidden linear layers")
    g.add_argument("--dropout", type=fraction, default=0.5, help="dropout after them")
    g.add_argument("--weight-init", choices=WEIGHT_INITS, default="xavier",
                   help="xavier: Xavier-normal on every binarized layer, ignoring --init "
                        "(published); flags: use --init/--init-width")
    g.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no data augmentation")
    g.add_argument("--train-eval", choices=("augmented", "clean"), default="augmented",
                   help="images of the training-set accuracies (acc_tr, acc_tr_sub): augmented "
                        "like training batches (published) or clean")
    g.add_argument("--normalize", choices=NORMALIZATIONS, default="none",
                   help="none: pixels in [0, 1]; channel: standardize each colour "
                        "channel with the CIFAR-10 training mean and std")
    add_save_argument(g, "accepted as published (the results are always written here, the final "
                         "model and optimizer too)")
    g.add_argument("--download", action="store_true",
                   help="fetch CIFAR-10 with torchvision's downloader when it is missing "
                        "(needs internet; never done otherwise)")
    add_stream_arguments(p, lr=1e-4, mbs=64, epochs_per_task=200, eval_batch=1000)
    published.add_arguments(p, bn_stats=False)
    add_run_arguments(p, EXPERIMENT, checkpoint_every=CHECKPOINT_EVERY)
    return p


def config_from_args(args) -> StreamCifarConfig:
    config = config_from(args, StreamCifarConfig, **published.resolve(args))
    check_meta(config.meta, config.n_layers)
    return config


def run(config: StreamCifarConfig, resume: bool = False, dry_run: bool = False,
        progress: bool = True, stop_after_epochs: int | None = None) -> Path:
    """Run (or, with ``dry_run``, only check flags, data and model) one configuration."""
    # set-up: device, seeds, exact float32 maths; the run folder
    device, run_dir = set_up_run(config, EXPERIMENT, resume)

    # data: CIFAR-10 (uint8 on the device), cut into parts (--source keras: permuted first);
    # augmentation batch-wise on the device
    data = load_data(config, device)
    parts = subset_indices(len(data.train_x), config.nb_subset, permutes(config), config.seed)
    train_transform, eval_transform, train_eval_transform, augment = transforms(config, device)

    # model (binary VGG) and the implementation chosen once (--impl)
    model = build_model(config.channels, config.weight_init, config.init, config.init_width,
                        config.fc_width, config.dropout, config.bn_gamma_init).to(device)
    print("implementation: " + fast.enable(model, device, config.impl))
    if note := unused_init_note(config.weight_init, config.init, config.init_width):
        print(note)
    print(describe(data, parts, model, device))

    # run: checks and config.json first; ONE metaplastic Adam for the whole stream
    from_checkpoint = start_run_folder(run_dir, config, resume, dry_run)
    if from_checkpoint is None:  # dry run
        return run_dir
    settings = stream_settings(config, config.weight_decay, progress, stop_after_epochs, save_final=True,
                               train_transform=train_transform, eval_transform=eval_transform,
                               train_eval_transform=train_eval_transform,
                               extra_state={"augment": augment})
    row_prefix = {"lr": config.lr, "mbs": config.mbs, "meta": meta_column(config.meta),
                  "bn_gamma_init": config.bn_gamma_init}
    run_stream(model, data, parts, settings, run_dir, row_prefix,
               records.STREAM_CIFAR10_COLUMNS + ("bn_gamma_init",), resume=from_checkpoint)
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
