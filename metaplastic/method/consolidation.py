"""Consolidation baselines: EWC, random consolidation and Synaptic Intelligence (docs/METHOD.md section 5).

Each method is a :class:`ConsolidationMethod` in the registry :data:`METHODS`: it owns its flags
and their checks, its state in the checkpoint, and what it does when a task begins, after each
optimizer step, when a task ends, and in the loss (its penalty). The continual-learning command
line and the sequence loop (:mod:`metaplastic.experiments.continual`, :mod:`metaplastic.experiments.sequence`) only
iterate over the registry: a new method is one class and one :func:`register` call.

Fisher estimator. The diagonal empirical Fisher with respect to the binary weights,
F = (1/d) sum_n (dl_n/dW_b)^2 over the first n = min(``samples``, set size) training samples with
their true labels. As published, d is the loop index at exit of the published script: d = n
(the mean) when the task has at least ``samples`` training samples, d = n - 1 when it has fewer
(``fisher_mean=True``, flag ``--ewc-fisher-mean``: always d = n). For a DNN, whose BatchNorm keeps
running statistics, the Fisher is taken in evaluation mode with those running statistics.
The published script took one sample at a time,
which batch-statistics BatchNorm refuses on current PyTorch. Here the normalization statistics
(mean and biased variance) of the whole ``samples`` batch are computed once and frozen, so every
sample's loss depends on that sample alone; then for a linear layer y = x W^T the per-sample
gradient is the outer product g_n x_n^T, and sum_n (g_n x_n^T)^2 = (G*G)^T (X*X) exactly, one
matrix product per layer instead of ``samples`` backward passes.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from metaplastic.errors import ConfigError
from metaplastic.method.layers import BINARIZED_TYPES, BinarizedLinear
from metaplastic.method.models import effective_weight, layer_weight, weight_layers
from metaplastic.method.norms import frozen_norm_forward

class ConsolidationMethod:
    """A consolidation method of the continual-learning sequence (EWC and SI are two).

    Class attributes: ``name`` (its key in the checkpoint's state and in config.json's
    ``consolidation_options``), ``switch`` (the flag destination that turns it on),
    ``options`` (every flag destination it adds, ``switch`` included), ``one_plain_adam``
    (True: the whole sequence learns with one plain Adam, as SI does in the published script).
    Flags that are not fields of the run's config class are recorded in config.json under
    ``consolidation_options[name]``.
    """

    name: str = ""
    switch: str = ""
    options: tuple[str, ...] = ()
    one_plain_adam: bool = False

    @classmethod
    def add_arguments(cls, group) -> None:
        """Add the method's flags to an argparse group."""
        raise NotImplementedError

    @classmethod
    def check(cls, args) -> None:
        """Refuse (ConfigError) flags that do not fit together; called for every method."""

    @classmethod
    def create(cls, values: dict, seed: int) -> "ConsolidationMethod":
        """The method for a run whose option values (``options`` -> value) turn it on."""
        raise NotImplementedError

    @classmethod
    def is_on(cls, values) -> bool:
        """Whether parsed flags or option values (``values``: a namespace or a dict) turn it on."""
        return bool(values[cls.switch] if isinstance(values, dict) else getattr(values, cls.switch))

    @classmethod
    def option_values(cls, config) -> dict:
        """The method's option values in a run's config (fields, or consolidation_options)."""
        own = (getattr(config, "consolidation_options", None) or {}).get(cls.name, {})
        return {o: getattr(config, o) if hasattr(config, o) else own[o] for o in cls.options}

    @classmethod
    def from_config(cls, config) -> "ConsolidationMethod | None":
        values = cls.option_values(config)
        return cls.create(values, int(getattr(config, "seed", 0))) if cls.is_on(values) else None

    def begin_task(self, model: nn.Module) -> None:
        """Before the first step of a task."""

    def after_step(self, model: nn.Module) -> None:
        """After every optimizer step."""

    def end_task(self, model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor) -> None:
        """After the last epoch of a task, with that task's training data."""

    def penalty(self, model: nn.Module) -> torch.Tensor:
        """Added to every batch's loss."""
        return torch.zeros(())

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError


#: every consolidation method, by name, in the order their flags appear in -h
METHODS: dict[str, type[ConsolidationMethod]] = {}


def register(method: type[ConsolidationMethod]) -> type[ConsolidationMethod]:
    """Add ``method`` to :data:`METHODS` (usable as a class decorator)."""
    if not method.name or method.switch not in method.options:
        raise ValueError(f"{method.__name__}: a ConsolidationMethod needs a name and its switch "
                         "among its options")
    METHODS[method.name] = method
    return method


def check_consolidation_flags(args) -> None:
    """Every method's own checks, then: at most one method at a time."""
    for method in METHODS.values():
        method.check(args)
    active = [m for m in METHODS.values() if m.is_on(args)]
    if len(active) > 1:
        flags = " and ".join("--" + m.switch.replace("_", "-") for m in active)
        raise ConfigError(f"choose one of {flags}")


def methods_of(config) -> list[ConsolidationMethod]:
    """The consolidation methods a run's config turns on, in registry order."""
    made = (method.from_config(config) for method in METHODS.values())
    return [m for m in made if m is not None]


def _batch_stat_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and not m.track_running_stats]


@contextlib.contextmanager
def frozen_batch_statistics(model: nn.Module, x: torch.Tensor) -> Iterator[None]:
    """Inside the block, batch-statistics norms use the statistics they see on ``x`` (frozen)."""
    norms = _batch_stat_norms(model)
    stats: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}

    def record(module, inputs):
        (inp,) = inputs
        dims = [0] + list(range(2, inp.dim()))
        var, mean = torch.var_mean(inp.detach(), dim=dims, correction=0)
        stats[module] = (mean, var)

    handles = [m.register_forward_pre_hook(record) for m in norms]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()

    def replace(module, inputs, output):
        mean, var = stats[module]
        return frozen_norm_forward(module, inputs[0], mean, var)

    handles = [m.register_forward_hook(replace) for m in norms]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def empirical_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                     chunk: int = 1000, divisor: int | None = None) -> list[torch.Tensor]:
    """Diagonal empirical Fisher of each weight layer w.r.t. its (binary) weight:
    F = sum over the samples of (dl_n/dW_b)^2 / divisor (default: the number of samples, the
    mean), one tensor per layer of :func:`weight_layers`.
    """
    layers = weight_layers(model)
    for layer in layers:
        if not isinstance(layer, (BinarizedLinear, nn.Linear)):
            raise ConfigError("EWC's Fisher is implemented for linear layers (the MLPs); "
                              f"got {type(layer).__name__}")
    was_training = model.training
    model.eval()
    fishers = [torch.zeros_like(layer_weight(layer)) for layer in layers]
    inputs: dict[int, torch.Tensor] = {}
    out_grads: dict[int, torch.Tensor] = {}

    def keep_input(i):
        def hook(module, args, output):
            inp = args[0]
            if isinstance(module, BINARIZED_TYPES) and module.binarize_input:
                inp = torch.sign(inp)
            inputs[i] = inp.detach()
            output.register_hook(lambda g: out_grads.__setitem__(i, g.detach()))
        return hook

    with frozen_batch_statistics(model, x):
        handles = [layer.register_forward_hook(keep_input(i)) for i, layer in enumerate(layers)]
        try:
            for start in range(0, len(x), chunk):
                xb, yb = x[start:start + chunk], y[start:start + chunk]
                # reduction="sum": each sample's gradient is that of its own loss l_n
                loss = F.cross_entropy(model(xb), yb, reduction="sum")
                model.zero_grad(set_to_none=True)
                loss.backward()
                for i, fisher in enumerate(fishers):
                    fisher += out_grads[i].square().T @ inputs[i].square()
        finally:
            for h in handles:
                h.remove()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return [f / (len(x) if divisor is None else divisor) for f in fishers]


def fisher_divisor(available: int, requested: int, fisher_mean: bool = False) -> int:
    """What the Fisher sum is divided by: the published loop index at exit, n = ``requested``
    when the task has that many samples, else ``available`` - 1; ``fisher_mean``: the count."""
    used = min(available, requested)
    if fisher_mean or available >= requested:
        return used
    if used < 2:
        raise ConfigError(f"EWC's Fisher needs at least 2 training samples as published (divided "
                          f"by n - 1 = {used - 1}); the task has {available} "
                          "(--ewc-fisher-mean divides by n)")
    return used - 1


def shuffled_like(tensors: list[torch.Tensor], generator: torch.Generator) -> list[torch.Tensor]:
    """Random consolidation: each tensor's values permuted across its positions."""
    out = []
    for t in tensors:
        perm = torch.randperm(t.numel(), generator=generator).to(t.device)
        out.append(t.reshape(-1)[perm].reshape(t.shape))
    return out


@register
class EWC(ConsolidationMethod):
    """Elastic weight consolidation on the binary weights.

    Penalty (lambda / 2) sum_s sum F_s (W_b - W_b,s*)^2, kept as the equivalent
    (lambda / 2) sum (A W_b^2 - 2 B W_b) + const with A = sum_s F_s, B = sum_s F_s W_b,s*,
    so its cost does not grow with the number of tasks.
    """

    name, switch = "ewc", "ewc"
    options = ("ewc", "ewc_lambda", "ewc_samples", "ewc_fisher_mean", "rnd_consolidation")

    @classmethod
    def add_arguments(cls, group) -> None:
        from metaplastic.flag_types import non_negative_float, positive_int

        group.add_argument("--ewc", action="store_true", help="elastic weight consolidation")
        group.add_argument("--ewc-lambda", type=non_negative_float, default=0.0,
                           help="EWC penalty strength")
        group.add_argument("--ewc-samples", type=positive_int, default=5000,
                           help="training samples of a task used for its Fisher")
        group.add_argument("--ewc-fisher-mean", action="store_true",
                           help="divide the Fisher by the samples used even for a task with fewer "
                                "than --ewc-samples (published: by their number - 1 then; same "
                                "otherwise)")
        group.add_argument("--rnd-consolidation", action="store_true",
                           help="EWC with each Fisher's values shuffled (Table 1 control)")

    @classmethod
    def check(cls, args) -> None:
        if args.rnd_consolidation and not args.ewc:
            raise ConfigError("--rnd-consolidation is a variant of EWC: add --ewc")
        if args.ewc_fisher_mean and not args.ewc:
            raise ConfigError("--ewc-fisher-mean is an option of EWC: add --ewc")
        if args.ewc_lambda > 0 and not args.ewc and not getattr(args, "dry_run", False):
            print("note: --ewc-lambda is set but EWC is off (add --ewc); the 'ewc' column "
                  "records the lambda, as the published scripts do", file=sys.stderr)

    @classmethod
    def create(cls, values: dict, seed: int) -> "EWC":
        return cls(values["ewc_lambda"], values["ewc_samples"], values["rnd_consolidation"],
                   seed=seed, fisher_mean=values["ewc_fisher_mean"])

    def __init__(self, lam: float, samples: int = 5000, random_consolidation: bool = False,
                 seed: int = 0, fisher_mean: bool = False):
        self.lam, self.samples, self.fisher_mean = lam, samples, fisher_mean
        self.random_consolidation = random_consolidation
        self.generator = torch.Generator().manual_seed(seed)
        self.fisher_sum: list[torch.Tensor] | None = None
        self.fisher_anchor_sum: list[torch.Tensor] | None = None
        self.constant = 0.0

    def consolidate(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """End of a task: Fisher on its first ``samples`` training samples, anchor W_b*."""
        divisor = fisher_divisor(len(x), self.samples, self.fisher_mean)
        fishers = empirical_fisher(model, x[: self.samples], y[: self.samples], divisor=divisor)
        if self.random_consolidation:
            fishers = shuffled_like(fishers, self.generator)
        with torch.no_grad():
            anchors = [effective_weight(layer).detach().clone() for layer in weight_layers(model)]
        if self.fisher_sum is None:
            self.fisher_sum = [torch.zeros_like(f) for f in fishers]
            self.fisher_anchor_sum = [torch.zeros_like(f) for f in fishers]
        for a, b, f, w in zip(self.fisher_sum, self.fisher_anchor_sum, fishers, anchors):
            a += f
            b += f * w
            self.constant += float((f * w * w).sum())
        return fishers

    def end_task(self, model: nn.Module, train_x: torch.Tensor, train_y: torch.Tensor) -> None:
        self.consolidate(model, train_x, train_y)

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.fisher_sum is None:
            return torch.zeros(())
        total = 0.0
        for layer, a, b in zip(weight_layers(model), self.fisher_sum, self.fisher_anchor_sum):
            w = effective_weight(layer)
            total = total + (a * w * w).sum() - 2.0 * (b * w).sum()
        return 0.5 * self.lam * (total + self.constant)

    def state_dict(self) -> dict:
        return {"fisher_sum": self.fisher_sum, "fisher_anchor_sum": self.fisher_anchor_sum,
                "constant": self.constant, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.fisher_sum, self.fisher_anchor_sum = state["fisher_sum"], state["fisher_anchor_sum"]
        self.constant = state["constant"]
        self.generator.set_state(state["generator"])


@register
class SynapticIntelligence(ConsolidationMethod):
    """Synaptic Intelligence as published (docs/METHOD.md section 5), with its own plain Adam.

    After every optimizer step: w += -g * (W_now - W_before), with W the hidden weights (or,
    ``binary_path``, sign(W_h)) and g the gradient w.r.t. the binary weights (= that of W_h,
    straight-through). End of a task: omega += w / ((W_h,end - W_h,prev)^2 + damping) with the
    change of the HIDDEN weights over the task; w <- 0; W_h,prev <- W_h,end.
    Penalty: lambda * sum omega * (W_b - sign(W_h,prev))^2 for binarized layers, and
    lambda * sum omega * (W - W_prev)^2 for full-precision ones. Normalization parameters are
    not consolidated.
    """

    name, switch = "si", "si"
    options = ("si", "si_lambda", "bin_path")
    one_plain_adam = True

    @classmethod
    def add_arguments(cls, group) -> None:
        from metaplastic.flag_types import non_negative_float

        group.add_argument("--si", action="store_true",
                           help="synaptic intelligence, as published: one plain Adam (constant "
                                "--lr, coupled --decay) for the whole sequence; needs --meta 0")
        group.add_argument("--si-lambda", type=non_negative_float, default=0.0,
                           help="SI penalty strength")
        group.add_argument("--bin-path", action="store_true",
                           help="SI path integral on binary weights")

    @classmethod
    def check(cls, args) -> None:
        if not args.si:
            return
        if getattr(args, "beaker", False):
            raise ConfigError("choose one of --beaker and --si (the published script lets --si "
                              "replace the beaker optimizer silently)")
        if any(m != 0 for m in args.meta):
            raise ConfigError("--si trains with plain Adam as published (no metaplasticity): "
                              "use --meta 0")
        if args.gamma != 1.0:
            raise ConfigError("--si uses one optimizer with a constant --lr for the whole "
                              "sequence, as published: --gamma does not apply")

    @classmethod
    def create(cls, values: dict, seed: int) -> "SynapticIntelligence":
        return cls(values["si_lambda"], binary_path=values["bin_path"])

    def __init__(self, lam: float, damping: float = 0.1, binary_path: bool = False):
        self.lam, self.damping, self.binary_path = lam, damping, binary_path
        self.omega: list[torch.Tensor] | None = None          # importance, summed over tasks
        self.previous: list[torch.Tensor] | None = None       # W_h at the end of the last task
        self.path_integral: list[torch.Tensor] = []           # w, over the current task
        self.before: list[torch.Tensor] = []                  # path weights before the step

    def _path_weights(self, model: nn.Module) -> list[torch.Tensor]:
        hidden = [layer_weight(l).detach() for l in weight_layers(model)]
        return [torch.sign(w) if self.binary_path else w.clone() for w in hidden]

    def begin_task(self, model: nn.Module) -> None:
        """Start of a task (the first one also takes W_h,prev = the initial hidden weights)."""
        if self.previous is None:
            self.previous = [layer_weight(l).detach().clone() for l in weight_layers(model)]
            self.omega = [torch.zeros_like(w) for w in self.previous]
        self.path_integral = [torch.zeros_like(w) for w in self.previous]
        self.before = self._path_weights(model)

    def after_step(self, model: nn.Module) -> None:
        """w += -g * (W_now - W_before), g the gradient this step used (whole objective)."""
        now = self._path_weights(model)
        grads = [layer_weight(l).grad for l in weight_layers(model)]
        for w, g, new, old in zip(self.path_integral, grads, now, self.before):
            w.sub_(g * (new - old))
        self.before = now

    def end_task(self, model: nn.Module, train_x: torch.Tensor | None = None,
                 train_y: torch.Tensor | None = None) -> None:
        """omega += w / ((W_h,end - W_h,prev)^2 + damping); the data is not used."""
        end = [layer_weight(l).detach().clone() for l in weight_layers(model)]
        for omega, w, w_end, w_prev in zip(self.omega, self.path_integral, end, self.previous):
            omega.add_(w / ((w_end - w_prev) ** 2 + self.damping))
            w.zero_()
        self.previous = end

    def penalty(self, model: nn.Module) -> torch.Tensor:
        if self.omega is None:
            return torch.zeros(())
        total = 0.0
        for layer, omega, w_prev in zip(weight_layers(model), self.omega, self.previous):
            anchor = torch.sign(w_prev) if isinstance(layer, BINARIZED_TYPES) else w_prev
            total = total + (omega * (effective_weight(layer) - anchor) ** 2).sum()
        return self.lam * total

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("omega", "previous", "path_integral", "before")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
