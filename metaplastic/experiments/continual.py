"""What continual_learning/main.py and cifar_features/main.py share: the published flags of the
continual-learning script, its typed config, and the pieces of a run (model, the runner's
settings, the records' constant columns, the sign-switch analysis). Each main.py reads top to
bottom: its parser, then set-up, data, model, optimizer settings, run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch

from metaplastic.data.datasets import IMAGE_LEVELS
from metaplastic.data.tasks import IMAGE_TASKS, TaskData
from metaplastic.errors import ConfigError
from metaplastic.experiments.runner import RunSettings
from metaplastic.experiments.sequence import SequenceSettings
from metaplastic.flag_types import non_negative_float, positive_float, positive_int
from metaplastic.method import published
from metaplastic.method.consolidation import METHODS, check_consolidation_flags, methods_of
from metaplastic.method.models import BNN, DNN, MLP
from metaplastic.method.norms import init_batchnorm_gamma
from metaplastic.method.optim import MetaPerLayer, check_meta
from metaplastic.runs import records
from metaplastic.runs.cli import ArgumentParser, add_beaker_arguments, add_save_argument
from metaplastic.runs.run_config import RunOptions, config_from



def build_model(net: str, in_size: int, hidden_layers: list[int], out_size: int, norm: str,
                init: str, init_width: float, bn_stats: str = "batch",
                bn_gamma_init: str = "ones") -> MLP:
    """'bnn' -> BNN, 'dnn' -> DNN with dims [in_size, *hidden_layers, out_size]; the BNN's
    BatchNorm statistics and every BatchNorm's initial gamma as the published version says
    (:mod:`metaplastic.method.published`)."""
    dims = [in_size, *hidden_layers, out_size]
    if net == "bnn":
        model = BNN(dims, norm=norm, init=init, init_width=init_width,
                    norm_running_stats=bn_stats == "running")
    else:
        model = DNN(dims, norm=norm, init=init, init_width=init_width)
    init_batchnorm_gamma(model, bn_gamma_init)
    return model


@dataclass
class ContinualConfig(RunOptions, MetaPerLayer):
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
    ewc_fisher_mean: bool = False
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
    beaker: bool = False             # the Benna-Fusi beaker optimizer (metaplastic.method.beaker)
    fb: float = 5e-3
    n_bk: int = 4
    ratios: list = field(default_factory=lambda: [1e-2, 1e-3, 1e-4, 1e-5])
    areas: list = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    published_version: str = published.DEFAULT_VERSION
    bn_gamma_init: str = "ones"
    bn_stats: str = "batch"           # the BNN's; a DNN's is always "running"
    # the flags of registered consolidation methods that are not fields above, by method name
    # (metaplastic.method.consolidation.ConsolidationMethod); EWC's and SI's are the fields above
    consolidation_options: dict = field(default_factory=dict)
    experiment: str = "continual_learning"

    @property
    def n_layers(self) -> int:
        """Weight layers: the hidden layers and the classifier."""
        return len(self.hidden_layers) + 1


def add_continual_arguments(p: ArgumentParser, default_tasks: list[str], task_help: str) -> None:
    """The published flags of the continual-learning script (defaults: the published ones)."""
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
    g.add_argument("--task-sequence", nargs="+", default=list(default_tasks), help=task_help)
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
    for method in METHODS.values():
        method.add_arguments(g)
    g = p.add_argument_group("outputs")
    add_save_argument(g, "save hidden weights after each task (Fig. 2g,h) and the final model "
                         "(the published lines that do so sit behind the same --save)")
    g.add_argument("--sign-switch", action="store_true",
                   help="after training, run the sign-switch analysis (Fig. 5c-e)")
    g.add_argument("--sign-switch-runs", type=positive_int, default=100,
                   help="random draws averaged per magnitude bin")
    g.add_argument("--sign-switch-train-samples", type=int, default=0,
                   help="training samples for the sign-switch losses (0 = all, as published)")
    published.add_arguments(p, bn_stats=True)
    add_beaker_arguments(p, refused=False)


def config_from_args(args, config_class=ContinualConfig, image_tasks=IMAGE_TASKS,
                     **own) -> ContinualConfig:
    """Validate the published flags together and build the run's config (``own``: the
    experiment's own fields of ``config_class``)."""
    check_consolidation_flags(args)
    if args.beaker:
        from metaplastic.method.beaker import check_chain

        check_chain(args.n_bk, args.ratios, args.areas)
    if args.in_size != 784 and any(t in image_tasks for t in args.task_sequence):
        raise ConfigError(f"--in-size {args.in_size}: MNIST-type tasks have 784 inputs")
    fields = {f.name for f in dataclasses.fields(config_class)}
    options = {m.name: {o: getattr(args, o) for o in m.options}
               for m in METHODS.values() if not set(m.options) <= fields}
    config = config_from(args, config_class, **published.resolve(args, args.net),
                         consolidation_options=options, **own)
    check_meta(config.meta, config.n_layers)
    return config


def row_prefix(config: ContinualConfig) -> dict:
    """The run-constant columns of every metrics row (ewc, SI: the lambdas, as published)."""
    return records.continual_row_prefix(
        config.net, config.scenario, "-".join(str(h) for h in config.hidden_layers), config.norm,
        config.meta_per_layer, ewc=config.ewc_lambda, si=config.si_lambda,
        bn_gamma_init=config.bn_gamma_init, bn_stats=config.bn_stats)


def sequence_settings(config: ContinualConfig, progress: bool = True,
                      train_batch_size: int = 100) -> SequenceSettings:
    """The runner's settings: metaplastic Adam per task with lr * gamma^-k, or (SI as
    published) one plain Adam, or (--beaker, as published) one beaker optimizer at the constant
    lr; the consolidation methods the config turns on; every run option."""
    methods = methods_of(config)
    plain_adam = any(m.one_plain_adam for m in methods)
    loop = RunSettings(epochs_per_task=config.epochs_per_task, batch_size=train_batch_size,
                       meta_per_layer=config.meta_per_layer, checkpoint_every=config.checkpoint_every,
                       flip_stats=config.flip_stats, progress=progress)
    return SequenceSettings(
        loop, lr=config.lr, weight_decay=config.decay, gamma=config.gamma,
        scenario=config.scenario, optimizer_per_task=not (plain_adam or config.beaker),
        plain_adam=plain_adam,
        beaker=dict(n_bk=config.n_bk, ratios=config.ratios, areas=config.areas,
                    feedback=config.fb) if config.beaker else None,
        interleaved=config.interleaved, save_hidden_weights=config.save, seed=config.seed,
        consolidation=methods)


def check_inputs(config: ContinualConfig, tasks: list[TaskData]) -> None:
    if tasks and tasks[0].train_x[0].numel() != config.in_size:
        raise ConfigError(f"--in-size {config.in_size}, but the tasks have "
                          f"{tasks[0].train_x[0].numel()} inputs")


def describe(config: ContinualConfig, model: MLP, device, tasks: list[TaskData]) -> str:
    n_params = sum(p.numel() for p in model.parameters())
    return (f"device {device}; model {config.net} "
            f"{[config.in_size, *config.hidden_layers, config.out_size]} ({n_params:,} "
            f"parameters); tasks {[t.name for t in tasks]}")


def finish(config: ContinualConfig, model: MLP, tasks: list[TaskData], run_dir: Path) -> None:
    """After training: the final model (--save) and the sign-switch analysis (--sign-switch)."""
    if config.save:
        from metaplastic.runs.checkpoint import save_atomic

        save_atomic(model.state_dict(), run_dir / "model_final.pt")
    if config.sign_switch:
        _sign_switch(model, tasks[0], config, run_dir)  # the FIRST task's data, as published
    print(f"results: {run_dir / records.METRICS_FILE}")


def image_levels(task_names: list[str], tasks: list[TaskData],
                 image_tasks=IMAGE_TASKS) -> int | None:
    """255 when every task is an 8-bit image task (pixels byte / 255, checked on a sample)."""
    if not tasks or any(name not in image_tasks for name in task_names):
        return None
    sample = tasks[0].train_x[:1000]
    if not torch.equal(torch.round(sample * IMAGE_LEVELS) / IMAGE_LEVELS, sample):
        return None
    return IMAGE_LEVELS


def _sign_switch(model, task, config: ContinualConfig, run_dir: Path) -> None:
    from dataclasses import asdict

    from metaplastic.method.sign_switch import PUBLISHED_SAMPLES, sign_switch_analysis

    if config.net != "bnn":
        raise ConfigError("--sign-switch analyses a BNN (--net bnn)")
    train_x = task.training_inputs()
    n = config.sign_switch_train_samples or len(train_x)
    n_layers = config.n_layers
    samples = list(PUBLISHED_SAMPLES[:n_layers]) + [100] * max(0, n_layers - len(PUBLISHED_SAMPLES))
    results = sign_switch_analysis(model, train_x[:n], task.train_y[:n], samples=samples,
                                   runs=config.sign_switch_runs, seed=config.seed, progress=print)
    records.write_rows(run_dir / records.SIGN_SWITCH_FILE, records.SIGN_SWITCH_COLUMNS,
                       [asdict(r) for r in results])
    print(f"sign-switch results: {run_dir / records.SIGN_SWITCH_FILE}")
