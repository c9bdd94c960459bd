"""The paper as data: every run of every figure and table, with its published flags.

A :class:`Figure` lists :class:`PaperRun` entries; a run is one experiment's ``main.py`` with
its published flags made explicit (e.g. Table 1's EWC rows carry ``--ewc``, which the published
command line left out). :func:`scaled` keeps those flags (``paper``), or shrinks them to finish
on a laptop CPU (``cpu``: every hidden layer at most 512 wide, the published epochs) or in
seconds (``smoke``, for tests: 16-wide layers, one epoch per task). ``reproduce.py`` lists,
launches and summarizes these runs; the command lists of README.md and docs/EXPERIMENTS.md
are generated from them.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from metaplastic.method import published
from metaplastic.runs.folders import run_folder

SCALES = ("paper", "cpu", "smoke")
CPU_MAX_WIDTH = 512
SMOKE_WIDTH = 16

#: seconds per epoch of a 784-h-h-10 BNN on one permuted-MNIST task (training, then evaluating
#: the training set and two test sets) with ONE thread, two runs sharing this project's 2-core
#: machine (AMD EPYC, AVX2, float32 products). 512: measured (the README demo's epochs, 5.9-6.1 s;
#: docs/reproduction's six-task runs, 6.3-7.3 s per epoch with six test sets); the other widths
#: scaled from 512 by their training products' FLOPs (4096: 30 x; benchmarks/benchmark_epoch.py
#: gives 87-124 s per 4096-wide epoch with both threads).
#: start-up of a run (imports, data onto the device, checks)
STARTUP_SECONDS = 10.0
CPU_EPOCH_SECONDS = {16: 2.0, 512: 6.0, 1024: 17.0, 2048: 52.0, 4096: 180.0}
#: the sign-switch analysis (--sign-switch, Fig. 5(c-e)) after training, in epochs of the same
#: network at the published 100 repeats: up to 15 bins per layer, each 100 forward passes over
#: the 60,000 training samples (from that layer on, in float32; --sign-switch-train-samples
#: and --sign-switch-runs scale it). Measured at width 512: 960 s
#: after 40 epochs (docs/reproduction's fig5ce runs, AMX Xeon, two runs at once), about 160
#: epochs of CPU_EPOCH_SECONDS' 6 s (AVX2: not measured there); 200 leaves room for a slower CPU.
SIGN_SWITCH_EPOCHS = 200
#: a stream run (stream_fmnist) evaluates the whole training and test sets after every epoch of
#: every part: that evaluation in epochs of the whole set. Measured at width 512 (docs/
#: reproduction's stream runs, AMX Xeon): 0.3 s per epoch of a 1000-sample part against 2.2 s
#: per whole-set epoch, of which 0.2-0.25 s evaluating (both with int8 products there; the share
#: is assumed to carry over to the float32 products of CPU_EPOCH_SECONDS' AVX2 machine).
STREAM_EVAL_SHARE = 0.12


@dataclass(frozen=True)
class PaperRun:
    """One configuration of a figure: ``experiment``'s main.py with ``flags``."""

    name: str                       # short id within its figure, e.g. "bnn-m1.35"
    label: str                      # what the figure calls it
    experiment: str                 # folder: continual_learning, mnist_usps, ...
    flags: tuple[str, ...]
    needs: str = ""                 # what it needs that cannot be had offline, if anything


@dataclass(frozen=True)
class Figure:
    id: str
    title: str
    plot: str                       # plot_figures.py figure drawn by `summarize` ("" = none)
    seeds: int                      # default number of seeds (ours; the paper's are not stated)
    runs: tuple[PaperRun, ...]
    claim: str = ""                 # what the paper shows with it
    note: str = ""
    task1_course: bool = False      # summarize: task 1's course through task 2 (Fig. 1(a))

    def run(self, name: str) -> PaperRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise KeyError(f"{self.id} has no run {name!r} (runs: "
                       + ", ".join(r.name for r in self.runs) + ")")


def _continual(name: str, label: str, *, net="bnn", hidden=(4096, 4096), decay="1e-7",
               meta="0.0", epochs=40, tasks: Sequence[str] = (), extra: Sequence[str] = ()
               ) -> PaperRun:
    flags = ["--net", net, "--hidden-layers", *map(str, hidden), "--lr", "0.005",
             "--decay", decay, "--meta", meta, "--epochs-per-task", str(epochs), *extra,
             "--task-sequence", *tasks]
    return PaperRun(name, label, "continual_learning", tuple(flags))


def _fig2() -> tuple[PaperRun, ...]:
    runs = []
    for net in ("bnn", "dnn"):
        for m in ("0.0", "0.5", "1.0", "1.35"):
            runs.append(_continual(f"{net}-m{m}", f"{net.upper()}, m = {m}", net=net, meta=m,
                                   tasks=["pMNIST"] * 6))
    return tuple(runs)


def _fig3() -> tuple[PaperRun, ...]:
    runs = []
    for h in (512, 1024, 2048, 4096):
        ten = ["pMNIST"] * 10
        runs += [
            _continual(f"meta-{h}", f"metaplastic m = 1.35, {h}", hidden=(h, h), decay="1e-8",
                       meta="1.35", tasks=ten),
            _continual(f"ewc-{h}", f"EWC, {h}", hidden=(h, h), decay="1e-8", meta="0.0",
                       tasks=ten, extra=("--ewc", "--ewc-lambda", "5000.0")),
            _continual(f"interleaved-m0-{h}", f"interleaved m = 0, {h}", hidden=(h, h),
                       decay="1e-8", meta="0.0", tasks=ten, extra=("--interleaved",)),
            _continual(f"interleaved-m1.35-{h}", f"interleaved m = 1.35, {h}", hidden=(h, h),
                       decay="1e-8", meta="1.35", tasks=ten, extra=("--interleaved",)),
        ]
    return tuple(runs)


def _two_task(first: str, second: str) -> tuple[PaperRun, ...]:
    return tuple(_continual(f"m{m}", f"{first} then {second}, m = {m}", meta=m, epochs=50,
                            tasks=[first, second]) for m in ("0.0", "1.5"))


def _mnist_usps(channels: Sequence[str]) -> tuple[PaperRun, ...]:
    common = ["--net", "bcnn", "--kr", "4", "4", "4"]
    tail = ["--norm", "bn", "--lr", "0.005"]
    small = ["--ch", "1", "6", "10", "15"]
    return (
        PaperRun("sequential", f"MNIST then USPS, channels {'-'.join(channels)}, m = 1.2",
                 "mnist_usps", tuple(common[:2] + ["--ch", *channels] + common[2:]
                                     + ["--decay", "1e-8"] + tail
                                     + ["--meta", "1.2", "--epochs-per-task", "240",
                                        "--task-sequence", "MNIST", "USPS"])),
        PaperRun("usps-alone", "USPS alone, channels 1-6-10-15", "mnist_usps",
                 tuple(common[:2] + small + common[2:] + tail
                       + ["--meta", "0.0", "--epochs-per-task", "240", "--task-sequence",
                          "USPS"])),
        PaperRun("mnist-alone", "MNIST alone, channels 1-6-10-15", "mnist_usps",
                 tuple(common[:2] + small + common[2:] + tail
                       + ["--meta", "0.0", "--epochs-per-task", "240", "--task-sequence",
                          "MNIST"])),
    )


_FEATURES = "CIFAR features"   # cifar_features/generate_features.py: CIFAR + ResNet-18 weights


def _cifar_features(name: str, label: str, hidden: Sequence[int], out: int, meta: str,
                    epochs: int, tasks: Sequence[str], norm: str, extra: Sequence[str]
                    ) -> PaperRun:
    flags = ["--net", "bnn", "--norm", norm, *extra, "--in-size", "512", "--hidden-layers",
             *map(str, hidden), "--out-size", str(out), "--lr", "0.005", "--meta", meta,
             "--epochs-per-task", str(epochs), "--task-sequence", *tasks]
    return PaperRun(name, label, "cifar_features", tuple(flags), needs=_FEATURES)


def _stream_fmnist() -> tuple[PaperRun, ...]:
    return tuple(
        PaperRun(f"{'parts60' if n == 60 else 'whole'}-m{m}",
                 f"{'60 parts' if n == 60 else 'whole set'}, m = {m}", "stream_fmnist",
                 ("--task", "FMNIST", "--hidden-layers", "1024", "1024", "--lr", "0.005",
                  "--decay", "1e-7", "--meta", m, "--epochs-per-task", "20", "--nb-subset",
                  str(n)))
        for n in (1, 60) for m in ("2.5", "0.0"))


def _stream_cifar10() -> tuple[PaperRun, ...]:
    return tuple(
        PaperRun(f"{'parts20' if n == 20 else 'whole'}-m{m}",
                 f"{'20 parts' if n == 20 else 'whole set'}, m = {m}", "stream_cifar10",
                 ("--lr", "0.0001", "--mbs", "64", "--source", "keras", "--nb-subset", str(n),
                  "--epochs-per-task", "200", "--meta", m, "--init", "gauss", "--init-width",
                  "0.007"),
                 needs="CIFAR-10 and a GPU")
        for m in ("0.0", "13.0") for n in (1, 20))


FIGURES: tuple[Figure, ...] = (
    Figure("fig1a", "Fig. 1(a): MNIST then Fashion-MNIST without metaplasticity", "two-task", 1,
           (_continual("m0.0", "MNIST then FMNIST, m = 0", epochs=50, tasks=["MNIST", "FMNIST"]),),
           claim="learning FMNIST erases MNIST (catastrophic forgetting)", task1_course=True),
    Figure("fig2", "Fig. 2(a-f): six permuted-MNIST tasks, BNN and DNN, m = 0 to 1.35",
           "accuracy", 3, _fig2(),
           claim="with m = 0 the BNN forgets earlier tasks; as m grows it keeps more of them; "
                 "the full-precision DNN gains little from the rule"),
    Figure("fig2-bn", "Fig. 2(a) protocol, BatchNorm question: running statistics with gamma = 1 "
           "(the 2023 head's gamma, v1.0.0's statistics), m = 0 and 1.35", "accuracy", 3,
           tuple(_continual(f"bnn-m{m}-running-gamma1",
                            f"BNN, m = {m}, running statistics, gamma = 1", meta=m,
                            tasks=["pMNIST"] * 6,
                            extra=("--bn-stats", "running", "--bn-gamma-init", "ones"))
                 for m in ("0.0", "1.35")),
           claim="not a figure of the paper: with fig2 (2023 head) and fig2_v1.0.0 it tells "
                 "which BatchNorm choice of v1.0.0 moves the forgetting of Fig. 2(a) "
                 "(docs/REPRODUCTION.md, the two published versions)"),
    Figure("fig2gh", "Fig. 2(g, h): hidden-weight histograms after each task (--save)",
           "histograms", 1,
           tuple(_continual(f"bnn-m{m}", f"BNN, m = {m}, hidden weights saved", meta=m,
                            tasks=["pMNIST"] * 6, extra=("--save",)) for m in ("0.0", "1.35")),
           claim="with metaplasticity the hidden weights spread out task after task"),
    Figure("table1", "Table 1: metaplasticity against EWC and random consolidation, six "
           "permuted-MNIST tasks", "accuracy", 3,
           (_continual("bnn-m0.0", "BNN, m = 0", tasks=["pMNIST"] * 6),
            _continual("bnn-m1.35", "BNN, m = 1.35", meta="1.35", tasks=["pMNIST"] * 6),
            _continual("ewc", "EWC (lambda 5000)", tasks=["pMNIST"] * 6,
                       extra=("--ewc", "--ewc-lambda", "5000.0")),
            _continual("random", "random consolidation (lambda 5000)", tasks=["pMNIST"] * 6,
                       extra=("--ewc", "--ewc-lambda", "5000.0", "--rnd-consolidation"))),
           claim="metaplasticity keeps earlier tasks nearly as well as EWC, without its "
                 "task-boundary computation; shuffled (random) consolidation does not",
           note="the published command has no --ewc (it was switched on by editing the "
                "script); the EWC rows carry it here"),
    Figure("fig3", "Fig. 3(a-d): ten permuted-MNIST tasks, hidden sizes 512-4096; metaplastic, "
           "EWC, interleaved m = 0 and m = 1.35", "hidden-size", 3, _fig3(),
           claim="the number of tasks kept grows with the hidden size; interleaved training "
                 "(all data at once) is the upper reference; EWC is comparable"),
    Figure("fig4ab", "Fig. 4(a, b): MNIST then Fashion-MNIST, m = 0 and m = 1.5", "two-task", 3,
           _two_task("MNIST", "FMNIST"),
           claim="with m = 1.5 MNIST is kept while FMNIST is learned", task1_course=True),
    Figure("supp6", "Supp. Fig. 6(c, d): Fashion-MNIST then MNIST, m = 0 and m = 1.5",
           "two-task", 3, _two_task("FMNIST", "MNIST"),
           claim="the same in the reverse order", task1_course=True),
    Figure("fig4c", "Fig. 4(c): MNIST then USPS, conv BNN 1-12-20-30", "two-task", 3,
           _mnist_usps(["1", "12", "20", "30"]),
           claim="the metaplastic network learns USPS and keeps MNIST"),
    Figure("fig4d", "Fig. 4(d): MNIST then USPS, conv BNN 1-10-15-20", "two-task", 3,
           _mnist_usps(["1", "10", "15", "20"])),
    Figure("fig4ef", "Fig. 4(e, f): CIFAR-10 features, vehicles then animals, m = 0 and 1.8",
           "two-task", 3,
           tuple(_cifar_features(f"m{m}", f"vehicles then animals, m = {m}", [2048], 10, m, 10,
                                 ["vehicles", "animals"], "bn", ["--decay", "1e-8"])
                 for m in ("0.0", "1.8")),
           claim="metaplasticity keeps the first CIFAR-10 subset"),
    Figure("fig4gh", "Fig. 4(g, h): CIFAR-100 features in two subsets, m = 0 and 1.3",
           "accuracy", 3,
           tuple(_cifar_features(f"m{m}", f"CIFAR-100 in 2 subsets, m = {m}", [2048, 2048],
                                 100, m, 20, ["cifar100-2"], "in", ["--scenario", "domain"])
                 for m in ("0.0", "1.3")),
           claim="the same on CIFAR-100, one normalization for both subsets"),
    Figure("stream-fmnist", "Fig. 4 stream: Fashion-MNIST in 60 parts vs the whole set",
           "stream", 3, _stream_fmnist(),
           claim="learned part by part with m = 2.5, the network nears the accuracy of "
                 "learning the whole set; with m = 0 it does not"),
    Figure("stream-cifar10", "Fig. 4 stream: CIFAR-10 in 20 parts vs the whole set, binary VGG",
           "stream", 1, _stream_cifar10(),
           claim="the same with a binary VGG on CIFAR-10 (m = 13)"),
    Figure("fig5ce", "Fig. 5(c-e): loss increase of sign switches against hidden-weight "
           "magnitude", "sign-switch", 1,
           (_continual("sign-switch", "BNN 1024-1024, m = 1.35, MNIST", hidden=(1024, 1024),
                       meta="1.35", tasks=["MNIST"], extra=("--sign-switch",)),),
           claim="flipping a weight with a larger hidden magnitude costs more loss"),
)

#: Fig. 5(a, b) is the quadratic binary task notebook, not a training run
NOTEBOOK_COMMAND = ("jupyter nbconvert --to notebook --execute --output /tmp/qbt.ipynb "
                    "quadratic_binary_task/quadratic_binary_task.ipynb")


def figure(figure_id: str) -> Figure:
    for f in FIGURES:
        if f.id == figure_id:
            return f
    raise KeyError(figure_id)


#: the experiments whose published versions differ (metaplastic.method.published): their runs carry
#: --published-version when another version than the default is asked for
VERSIONED_EXPERIMENTS = ("continual_learning", "cifar_features", "stream_cifar10")


def in_version(figure: Figure, version: str) -> Figure:
    """``figure`` under the published ``version``: the default version's is ``figure`` itself;
    another's runs carry ``--published-version VERSION`` (so their folders differ) and its id
    is ``<id>_<version>``. A figure whose experiments do not differ between the versions is
    returned unchanged."""
    if version not in published.VERSIONS:
        raise ValueError(f"unknown published version {version!r}")
    if version == published.DEFAULT_VERSION or not any(
            r.experiment in VERSIONED_EXPERIMENTS for r in figure.runs):
        return figure
    runs = tuple(replace(r, flags=r.flags + ("--published-version", version))
                 if r.experiment in VERSIONED_EXPERIMENTS else r for r in figure.runs)
    return replace(figure, id=f"{figure.id}_{version}",
                   title=f"{figure.title} [published version {version}]", runs=runs)


def versioned_figure(figure_id: str) -> Figure:
    """A figure by id, ``<id>_<version>`` included (:func:`in_version`)."""
    for f in FIGURES:
        for version in published.VERSIONS:
            candidate = in_version(f, version)
            if candidate.id == figure_id:
                return candidate
    raise KeyError(figure_id)


def _flag_values(flags: Sequence[str]) -> list[tuple[str, list[str]]]:
    """[(flag, its values)] in order."""
    out: list[tuple[str, list[str]]] = []
    for token in flags:
        if token.startswith("--"):
            out.append((token, []))
        else:
            out[-1][1].append(token)
    return out


def _join(pairs: list[tuple[str, list[str]]]) -> tuple[str, ...]:
    return tuple(t for flag, values in pairs for t in (flag, *values))


def scaled(run: PaperRun, scale: str) -> tuple[str, ...]:
    """``run``'s flags at ``scale`` (paper: as published; cpu: hidden layers at most 512 wide;
    smoke: 16-wide hidden layers, one epoch per task, short analyses, the plain implementation)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if scale == "paper":
        return run.flags
    pairs = _flag_values(run.flags)
    for flag, values in pairs:
        if flag == "--hidden-layers":
            cap = CPU_MAX_WIDTH if scale == "cpu" else SMOKE_WIDTH
            values[:] = [str(min(int(v), cap)) for v in values]
        if scale == "smoke" and flag == "--epochs-per-task":
            values[:] = ["1"]
        if scale == "smoke" and flag == "--ch":
            values[:] = [values[0]] + ["4"] * (len(values) - 1)
    if scale == "smoke":
        names = {flag for flag, _ in pairs}
        if "--sign-switch" in names:
            pairs += [("--sign-switch-runs", ["2"]), ("--sign-switch-train-samples", ["1000"])]
        if "--nb-subset" in names:
            pairs = [(f, ["3"] if f == "--nb-subset" and v != ["1"] else v) for f, v in pairs]
        if run.experiment == "stream_cifar10":
            pairs += [("--no-augment", [])]
        pairs += [("--impl", ["reference"])]
    return _join(pairs)


def scaled_label(run: PaperRun, scale: str) -> str:
    """``run``'s label as run at ``scale``: a width the label names (Fig. 3's "..., 4096") is
    the width actually run (e.g. "..., 16" at smoke scale)."""
    published = dict(_flag_values(run.flags)).get("--hidden-layers")
    actual = dict(_flag_values(scaled(run, scale))).get("--hidden-layers")
    if not published or published == actual:
        return run.label
    label = run.label
    for old, new in sorted(set(zip(published, actual)), key=lambda p: -len(p[0])):
        label = re.sub(rf"(?<![\d.]){re.escape(old)}(?![\d.])", new, label)
    return label


def run_id(run: PaperRun, scale: str) -> str:
    """A folder name derived from the configuration only: readable parts + a hash of the flags.

    Two figures that share a configuration (Fig. 2(d) and Table 1's m = 1.35 row) share it."""
    flags = scaled(run, scale)
    digest = hashlib.sha256(" ".join((run.experiment,) + flags).encode()).hexdigest()[:10]
    parts = []
    for flag, values in _flag_values(flags):
        key = flag[2:]
        if key in ("net", "task", "source"):
            parts.append(values[0])
        elif key in ("hidden-layers", "ch"):
            parts.append("x".join(values))
        elif key == "meta":
            parts.append("m" + "-".join(values))
        elif key in ("ewc", "interleaved", "save", "rnd-consolidation", "sign-switch"):
            parts.append(key.split("-")[0])
        elif key == "epochs-per-task":
            parts.append(values[0] + "ep")
        elif key == "nb-subset":
            parts.append(values[0] + "parts")
        elif key == "published-version":
            parts.append(values[0])
        elif key == "task-sequence":
            tasks = values
            parts.append(f"{len(tasks)}x{tasks[0]}" if len(set(tasks)) == 1 and len(tasks) > 1
                         else "-".join(tasks))
    slug = re.sub(r"[^A-Za-z0-9.\-]+", "_", "_".join(parts))[:80]
    return f"{slug}_{digest}"


def configuration_folder(out, run: PaperRun, scale: str, seed: int | None = None) -> Path:
    """``OUT/<experiment>/<run id>``, the folder of ``run``'s seeds at ``scale`` (and the folder of
    one seed below it), named by :func:`metaplastic.runs.folders.run_folder`."""
    return run_folder(out, run.experiment, run_id(run, scale), seed)


def command(run: PaperRun, scale: str = "paper", python: str = "python") -> str:
    """The shell command of ``run`` at ``scale``."""
    import shlex

    return " ".join([python, f"{run.experiment}/main.py", *map(shlex.quote, scaled(run, scale))])


def width(run: PaperRun, scale: str) -> int | None:
    flags = dict(_flag_values(scaled(run, scale)))
    hidden = flags.get("--hidden-layers")
    return max(map(int, hidden)) if hidden else None


def _value(run: PaperRun, scale: str, flag: str, default=None):
    values = dict(_flag_values(scaled(run, scale))).get(flag)
    return values if values is not None else default


def expected_cpu_seconds(run: PaperRun, scale: str) -> float | None:
    """Rough wall time of one seed on a 2-core CPU with one thread (None: not estimated)."""
    if run.experiment == "mnist_usps":
        return _mnist_usps_seconds(run, scale)
    if run.experiment == "stream_fmnist":
        return _stream_seconds(run, scale)
    if run.experiment != "continual_learning":
        return None
    h = width(run, scale) or 16
    per_epoch = _interpolate(CPU_EPOCH_SECONDS, h)
    tasks = len(_value(run, scale, "--task-sequence", ["MNIST"]))
    epochs = int(_value(run, scale, "--epochs-per-task", ["5"])[0])
    flags = scaled(run, scale)
    per_epoch *= 1 + 0.03 * max(tasks - 2, 0)   # every test set is evaluated: 0.18 s per task
    if "--ewc" in flags:
        per_epoch *= 1.3
    # --interleaved: one task with every task's data, the same samples in all
    analysis = 0.0
    if "--sign-switch" in flags:
        repeats = int(_value(run, scale, "--sign-switch-runs", ["100"])[0])
        samples = int(_value(run, scale, "--sign-switch-train-samples", ["0"])[0]) or 60000
        analysis = (_interpolate(CPU_EPOCH_SECONDS, h) * SIGN_SWITCH_EPOCHS
                    * repeats / 100 * min(samples, 60000) / 60000)
    return STARTUP_SECONDS + per_epoch * tasks * epochs + analysis


def _mnist_usps_seconds(run: PaperRun, scale: str) -> float:
    """mnist_usps, measured in docs/reproduction (one thread): an epoch is 0.7 s (2000 MNIST or
    1800 USPS samples, USPS test set), plus 2.5 s where MNIST's 10,000 test images are evaluated."""
    tasks = _value(run, scale, "--task-sequence", ["MNIST", "USPS"])
    epochs = int(_value(run, scale, "--epochs-per-task", ["240"])[0])
    per_epoch = 0.7 + (2.5 if "MNIST" in tasks else 0.0)
    return STARTUP_SECONDS + per_epoch * len(tasks) * epochs


def _stream_seconds(run: PaperRun, scale: str) -> float:
    """stream_fmnist: ``--nb-subset`` parts, each learned for ``--epochs-per-task`` epochs on its
    1/N of the training set, each epoch followed by an evaluation of the whole training and
    test sets (:data:`STREAM_EVAL_SHARE` of a whole-set epoch)."""
    per_epoch = _interpolate(CPU_EPOCH_SECONDS, width(run, scale) or 16)
    parts = int(_value(run, scale, "--nb-subset", ["1"])[0])   # stream_fmnist's default
    epochs = int(_value(run, scale, "--epochs-per-task", ["20"])[0])
    return STARTUP_SECONDS + parts * epochs * per_epoch * (1 / parts + STREAM_EVAL_SHARE)


def _interpolate(table: dict[int, float], h: int) -> float:
    keys = sorted(table)
    if h <= keys[0]:
        return table[keys[0]]
    for lo, hi in zip(keys, keys[1:]):
        if h <= hi:
            return table[lo] + (table[hi] - table[lo]) * (h - lo) / (hi - lo)
    return table[keys[-1]] * h / keys[-1]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- the README

EXPERIMENTS = ("continual_learning", "mnist_usps", "cifar_features", "stream_fmnist",
               "stream_cifar10")


def readme_commands(experiment: str) -> str:
    """The published commands of ``experiment``, figure by figure (a README code block)."""
    lines, seen = ["```bash"], {}
    for fig in FIGURES:
        runs = [r for r in fig.runs if r.experiment == experiment]
        if not runs:
            continue
        lines.append(f"# {fig.title}" + (f" ({fig.note})" if fig.note else ""))
        for r in runs:
            key = r.flags
            if key in seen:
                lines.append(f"#   {r.label}: the run above for {seen[key]}")
                continue
            seen[key] = f"{fig.id} {r.name}"
            lines.append(command(r, "paper", python=".venv/bin/python"))
    lines.append("```")
    return "\n".join(lines)


def readme_table() -> str:
    """The README's "Reproducing the paper" table: one line per figure."""
    lines = ["| figure | command | runs x seeds | one seed of every run, one CPU thread: paper / cpu scale "
             "| GPU |",
             "|---|---|---|---|---|"]
    for fig in FIGURES:
        runs = {run_id(r, "paper"): r for r in fig.runs}.values()
        times = []
        for scale in ("paper", "cpu"):
            unique = {run_id(r, scale): r for r in fig.runs}.values()
            seconds = [expected_cpu_seconds(r, scale) for r in unique]
            times.append("n/a" if None in seconds else format_duration(sum(seconds)))
        needs = sorted({r.needs for r in fig.runs if r.needs})
        note = f" (needs {needs[0]})" if needs else ""
        lines.append(f"| {fig.title.split(':')[0]}{note} | `.venv/bin/python reproduce.py run "
                     f"{fig.id}` | {len(runs)} x {fig.seeds} | {times[0]} / {times[1]} | "
                     "not measured |")
    lines.append("| Fig. 5(a, b) | `" + NOTEBOOK_COMMAND.replace("jupyter", ".venv/bin/jupyter")
                 + "` | notebook | 10 s | – |")
    return "\n".join(lines)


def figure_kinds_table() -> str:
    """The figure kinds of ``plot_figures.py`` (the registry :data:`metaplastic.plots.FIGURE_KINDS`)
    as a Markdown table."""
    from metaplastic.plots import FIGURE_KINDS

    def drawn_from(kind) -> str:
        if kind.over_seeds:
            return "one run or its seeds"
        return "one run" if kind.one_run else "one or more runs"

    rows = [f"| `{kind.name}` | {drawn_from(kind)} | {kind.description} |"
            for kind in FIGURE_KINDS.values()]
    return "\n".join(["| kind | drawn from | what it shows |", "|---|---|---|", *rows])


def readme_blocks() -> dict[str, str]:
    """Marker name -> the text a document holds between ``<!-- name:begin/end -->``."""
    blocks = {"reproduce-table": readme_table(), "figure-kinds": figure_kinds_table()}
    for experiment in EXPERIMENTS:
        blocks[f"paper-commands:{experiment}"] = readme_commands(experiment)
    return blocks


#: the documents that hold generated blocks (each block in exactly one of them)
GENERATED_DOCUMENTS = ("README.md", "docs/EXPERIMENTS.md")


def write_readme(root) -> None:
    """Replace every generated block in the documents of :data:`GENERATED_DOCUMENTS` under the
    clone ``root``."""

    texts = {name: (Path(root) / name).read_text() for name in GENERATED_DOCUMENTS}
    for name, block in readme_blocks().items():
        begin, end = f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->"
        holders = [doc for doc, text in texts.items() if begin in text and end in text]
        if len(holders) != 1:
            raise SystemExit(f"{begin.strip()} ... {end} must be in exactly one of "
                             f"{', '.join(GENERATED_DOCUMENTS)} (found in {holders or 'none'})")
        head, rest = texts[holders[0]].split(begin, 1)
        texts[holders[0]] = head + begin + block + "\n" + end + rest.split(end, 1)[1]
    for name, text in texts.items():
        (Path(root) / name).write_text(text)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--write-readme"]:
        raise SystemExit("usage: python -m metaplastic.paper --write-readme")
    write_readme(Path(__file__).resolve().parents[1])
