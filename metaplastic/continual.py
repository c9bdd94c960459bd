"""The continual-learning command line: MLP (BNN or DNN) learning a sequence of tasks.

Shared by continual_learning/main.py (MNIST, FMNIST, pMNIST) and cifar_features/main.py
(CIFAR features), which differ only in how they build their tasks (an :class:`Experiment`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from metaplastic import faithfulness, fast, records, runtime
from metaplastic.cli import (ArgumentParser, RunOptions, add_run_arguments,
                             main_guard, non_negative_float, positive_float,
                             positive_int, print_config, run_directory, run_options)
from metaplastic.consolidation import EWC, SynapticIntelligence
from metaplastic.datasets import IMAGE_LEVELS
from metaplastic.errors import ConfigError
from metaplastic.models import BNN, DNN, MLP
from metaplastic.optim import expand_meta
from metaplastic.sequence import SequenceSettings, run_sequence, start_run_directory
from metaplastic.tasks import TaskData


@dataclass
class Experiment:
    """What differs between the experiments that use this command line."""

    name: str                                   # results/<name>/..., config "experiment"
    prog: str                                   # e.g. continual_learning/main.py
    task_help: str
    check_task_names: Callable[[list], None]    # raises ConfigError for unknown names
    build_tasks: Callable[..., list]            # (names, data_root, device, seed, config) -> tasks
    default_tasks: tuple = ("MNIST",)     # published default --task-sequence
    add_arguments: Callable | None = None       # (parser) -> None: the experiment's own flags
    extra_options: tuple = ()                   # their dests, kept in ContinualConfig.extra
    image_tasks: tuple = ("MNIST", "FMNIST", "pMNIST")  # tasks with 784 inputs
    train_batch_size: Callable[[list], int] | None = None  # task names -> batch (None: 100)


def build_model(net: str, in_size: int, hidden_layers: list[int], out_size: int, norm: str,
                init: str, init_width: float) -> MLP:
    """'bnn' -> BNN, 'dnn' -> DNN with dims [in_size, *hidden_layers, out_size]."""
    dims = [in_size, *hidden_layers, out_size]
    if net == "bnn":
        return BNN(dims, norm=norm, init=init, init_width=init_width)
    return DNN(dims, norm=norm, init=init, init_width=init_width)


@dataclass
class ContinualConfig(RunOptions):
    """Everything that defines a continual_learning run (saved as config.json)."""

    net: str = "bnn"
    hidden_layers: list = field(default_factory=list)   # published default: no hidden layer
    in_size: int = 784
    out_size: int = 10
    task_sequence: list = field(default_factory=lambda: ["MNIST"])
    lr: float = 0.005
    gamma: float = 1.0
    epochs_per_task: int = 5
    norm: str = "bn"
    meta: list = field(default_factory=lambda: [0.0])
    ewc: bool = False
    ewc_lambda: float = 0.0
    ewc_samples: int = 5000
    rnd_consolidation: bool = False
    si: bool = False
    si_lambda: float = 0.0
    bin_path: bool = False
    decay: float = 0.0
    init: str = "uniform"
    init_width: float = 0.1
    interleaved: bool = False
    scenario: str = "task"
    save: bool = False
    sign_switch: bool = False
    sign_switch_runs: int = 100
    sign_switch_train_samples: int = 0
    experiment: str = "continual_learning"
    extra: dict = field(default_factory=dict)   # the experiment's own options (Experiment)


def build_parser(experiment: Experiment) -> ArgumentParser:
    p = ArgumentParser(prog=experiment.prog,
                       description="BNN/DNN learning a sequence of tasks; metaplasticity via --meta.",
                       epilog=faithfulness.epilog(experiment.name))
    g = p.add_argument_group("model")
    g.add_argument("--net", choices=("bnn", "dnn"), default="bnn",
                   help="bnn: binarized weights and activations; dnn: full-precision network")
    g.add_argument("--hidden-layers", nargs="*", type=positive_int, default=[],
                   help="hidden layer sizes; none: a single layer in -> out")
    g.add_argument("--in-size", type=positive_int, default=784, help="inputs per sample")
    g.add_argument("--out-size", type=positive_int, default=10, help="output classes")
    g.add_argument("--norm", choices=("bn", "in"), default="bn",
                   help="normalization after each layer: bn (batch) or in (per sample)")
    g.add_argument("--init", choices=("uniform", "gauss"), default="uniform",
                   help="hidden-weight init: uniform U(-w/2, w/2) or gauss N(0, w)")
    g.add_argument("--init-width", type=positive_float, default=0.1,
                   help="w of --init")
    g = p.add_argument_group("learning")
    g.add_argument("--task-sequence", nargs="+", default=list(experiment.default_tasks),
                   help=experiment.task_help)
    g.add_argument("--lr", type=positive_float, default=0.005, help="Adam learning rate")
    g.add_argument("--gamma", type=positive_float, default=1.0,
                   help="task k (from 0) learns with lr * gamma^(-k)")
    g.add_argument("--epochs-per-task", type=positive_int, default=5,
                   help="epochs of training on each task")
    g.add_argument("--meta", nargs="+", type=non_negative_float, default=[0.0],
                   help="metaplasticity m: one value, or one per layer")
    g.add_argument("--decay", type=non_negative_float, default=0.0,
                   help="coupled L2 weight decay")
    g.add_argument("--interleaved", action="store_true",
                   help="learn all tasks' training sets at once (test sets still separate)")
    g.add_argument("--scenario", choices=("task", "domain"), default="task",
                   help="task: earlier tasks evaluated with their own stored norm state")
    g = p.add_argument_group("consolidation baselines")
    g.add_argument("--ewc", action="store_true", help="elastic weight consolidation")
    g.add_argument("--ewc-lambda", type=non_negative_float, default=0.0,
                   help="EWC penalty strength")
    g.add_argument("--ewc-samples", type=positive_int, default=5000,
                   help="training samples of a task used for its Fisher")
    g.add_argument("--rnd-consolidation", action="store_true",
                   help="EWC with each Fisher's values shuffled (Table 1 control)")
    g.add_argument("--si", action="store_true",
                   help="synaptic intelligence, as published: one plain Adam (constant --lr, "
                        "coupled --decay) for the whole sequence; needs --meta 0")
    g.add_argument("--si-lambda", type=non_negative_float, default=0.0,
                   help="SI penalty strength")
    g.add_argument("--bin-path", action="store_true", help="SI path integral on binary weights")
    g = p.add_argument_group("outputs")
    g.add_argument("--save", action="store_true",
                   help="save hidden weights after each task (Fig. 2g,h) and the final model")
    g.add_argument("--sign-switch", action="store_true",
                   help="after training, run the sign-switch analysis (Fig. 5c-e)")
    g.add_argument("--sign-switch-runs", type=positive_int, default=100,
                   help="random draws averaged per magnitude bin")
    g.add_argument("--sign-switch-train-samples", type=int, default=0,
                   help="training samples for the sign-switch losses (0 = all, as published)")
    if experiment.add_arguments is not None:
        experiment.add_arguments(p.add_argument_group(experiment.name))
    add_run_arguments(p, experiment.name)
    return p


def config_from_args(args, experiment: Experiment) -> ContinualConfig:
    """Validate the flags together and build the run's config."""
    experiment.check_task_names(args.task_sequence)
    if args.net == "dnn" and args.norm == "in":
        pass  # allowed: per-sample normalization
    if args.rnd_consolidation and not args.ewc:
        raise ConfigError("--rnd-consolidation is a variant of EWC: add --ewc")
    if args.ewc and args.si:
        raise ConfigError("choose one of --ewc and --si")
    if args.si and any(m != 0 for m in args.meta):
        raise ConfigError("--si trains with plain Adam as published (no metaplasticity): "
                          "use --meta 0")
    if args.si and args.gamma != 1.0:
        raise ConfigError("--si uses one optimizer with a constant --lr for the whole "
                          "sequence, as published: --gamma does not apply")
    if args.ewc_lambda > 0 and not args.ewc and not args.dry_run:
        print("note: --ewc-lambda is set but EWC is off (add --ewc); the 'ewc' column records "
              "the lambda, as the published scripts do", file=sys.stderr)
    if args.in_size != 784 and any(t in experiment.image_tasks for t in args.task_sequence):
        raise ConfigError(f"--in-size {args.in_size}: MNIST-type tasks have 784 inputs")
    try:
        expand_meta(args.meta, len(args.hidden_layers) + 1)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return ContinualConfig(
        net=args.net, hidden_layers=list(args.hidden_layers), in_size=args.in_size,
        out_size=args.out_size, task_sequence=list(args.task_sequence), lr=args.lr,
        gamma=args.gamma, epochs_per_task=args.epochs_per_task, norm=args.norm,
        meta=list(args.meta), ewc=args.ewc, ewc_lambda=args.ewc_lambda,
        ewc_samples=args.ewc_samples,
        rnd_consolidation=args.rnd_consolidation, si=args.si, si_lambda=args.si_lambda,
        bin_path=args.bin_path, decay=args.decay, init=args.init, init_width=args.init_width,
        interleaved=args.interleaved, scenario=args.scenario, save=args.save,
        sign_switch=args.sign_switch, sign_switch_runs=args.sign_switch_runs,
        sign_switch_train_samples=args.sign_switch_train_samples, **run_options(args),
        experiment=experiment.name,
        extra={k: (str(v) if isinstance(v, Path) else v)
               for k, v in ((k, getattr(args, k)) for k in experiment.extra_options)})


def row_prefix(config: ContinualConfig) -> dict:
    """The run-constant columns of every metrics row (ewc, SI: the lambdas, as published)."""
    return records.continual_row_prefix(
        config.net, config.scenario, "-".join(str(h) for h in config.hidden_layers), config.norm,
        expand_meta(config.meta, len(config.hidden_layers) + 1),
        ewc=config.ewc_lambda, si=config.si_lambda)


def settings_from_config(config: ContinualConfig, progress: bool) -> SequenceSettings:
    n_layers = len(config.hidden_layers) + 1
    ewc = (EWC(config.ewc_lambda, config.ewc_samples, config.rnd_consolidation,
               seed=config.seed) if config.ewc else None)
    si = SynapticIntelligence(config.si_lambda, binary_path=config.bin_path) if config.si else None
    return SequenceSettings(
        epochs_per_task=config.epochs_per_task, lr=config.lr,
        meta=expand_meta(config.meta, n_layers), weight_decay=config.decay, gamma=config.gamma,
        scenario=config.scenario, optimizer_per_task=not config.si, plain_adam=config.si,
        interleaved=config.interleaved,
        save_hidden_weights=config.save, checkpoint_every=config.checkpoint_every,
        flip_statistics=config.flip_stats,
        seed=config.seed, ewc=ewc, si=si,
        progress=progress)


def run(config: ContinualConfig, experiment: Experiment, resume: bool = False,
        dry_run: bool = False, progress: bool = True,
        stop_after_epochs: int | None = None) -> Path:
    """Run (or, with dry_run, only check) one continual-learning configuration."""
    device = runtime.setup(config.device, config.seed, config.allow_tf32, config.keep_denormals)
    run_dir = run_directory(Path(config.out_dir) if config.out_dir else None, experiment.name,
                            resume)
    config.out_dir = str(run_dir)
    print_config(config)
    data_root = Path(config.data_root) if config.data_root else None
    tasks: list[TaskData] = experiment.build_tasks(config.task_sequence, data_root, device,
                                                   config.seed, config)
    if tasks and tasks[0].train_x[0].numel() != config.in_size:
        raise ConfigError(f"--in-size {config.in_size}, but the tasks have "
                          f"{tasks[0].train_x[0].numel()} inputs")
    model = build_model(config.net, config.in_size, config.hidden_layers, config.out_size,
                        config.norm, config.init, config.init_width).to(device)
    print("implementation: " + fast.enable(model, device, config.impl, input_levels=image_levels(
        config.task_sequence, tasks, experiment)))
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device {device}; model {config.net} {[config.in_size, *config.hidden_layers, config.out_size]}"
          f" ({n_params:,} parameters); tasks {[t.name for t in tasks]}")
    from_checkpoint = start_run_directory(run_dir, config, resume, dry_run)
    if from_checkpoint is None:  # dry run
        return run_dir
    settings = settings_from_config(config, progress)
    if experiment.train_batch_size is not None:
        settings.train_batch_size = experiment.train_batch_size(config.task_sequence)
    settings.stop_after_epochs = stop_after_epochs
    run_sequence(model, tasks, settings, run_dir, row_prefix(config), resume=from_checkpoint)
    if config.save:
        from metaplastic.checkpoint import save_atomic

        save_atomic(model.state_dict(), run_dir / "model_final.pt")
    if config.sign_switch:
        _sign_switch(model, tasks[0], config, run_dir)  # the FIRST task's data, as published
    print(f"results: {run_dir / records.METRICS_FILE}")
    return run_dir


def image_levels(task_names: list[str], tasks: list[TaskData], experiment: Experiment) -> int | None:
    """255 when every task is an 8-bit image task (pixels byte / 255, checked on a sample)."""
    if not tasks or any(name not in experiment.image_tasks for name in task_names):
        return None
    sample = tasks[0].train_x[:1000]
    if not torch.equal(torch.round(sample * IMAGE_LEVELS) / IMAGE_LEVELS, sample):
        return None
    return IMAGE_LEVELS


def _sign_switch(model, task, config: ContinualConfig, run_dir: Path) -> None:
    from dataclasses import asdict

    from metaplastic.sign_switch import PUBLISHED_SAMPLES, sign_switch_analysis

    if config.net != "bnn":
        raise ConfigError("--sign-switch analyses a BNN (--net bnn)")
    train_x = task.training_inputs()
    n = config.sign_switch_train_samples or len(train_x)
    n_layers = len(config.hidden_layers) + 1
    samples = list(PUBLISHED_SAMPLES[:n_layers]) + [100] * max(0, n_layers - len(PUBLISHED_SAMPLES))
    results = sign_switch_analysis(model, train_x[:n], task.train_y[:n], samples=samples,
                                   runs=config.sign_switch_runs, seed=config.seed, progress=print)
    records.write_rows(run_dir / records.SIGN_SWITCH_FILE, records.SIGN_SWITCH_COLUMNS,
                       [asdict(r) for r in results])
    print(f"sign-switch results: {run_dir / records.SIGN_SWITCH_FILE}")


def main(experiment: Experiment, argv=None) -> int:
    """Parse the flags, run, and turn expected errors into a message and exit status 2."""

    @main_guard
    def _main(argv) -> int:
        args = build_parser(experiment).parse_args(argv)
        config = config_from_args(args, experiment)
        run(config, experiment, resume=args.resume, dry_run=args.dry_run,
            progress=not args.no_progress)
        return 0

    return _main(argv)
