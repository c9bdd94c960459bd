"""Every remaining difference from the published scripts, in one place.

The table of docs/FAITHFULNESS.md and the epilog of each command line's -h are generated from
:data:`DIFFERENCES` (a test checks that docs/FAITHFULNESS.md holds :func:`markdown_table`
verbatim).
Two published versions exist (metaplastic/method/published.py): tag v1.0.0, which drew the paper's
figures, and the 2023 head; the defaults follow the 2023 head and ``--published-version v1.0.0``
selects the other. Everything not listed here follows the published scripts, quirks included;
a test (tests/test_published_commands.py) runs every command line of the published README
through the matching parser.
"""
from __future__ import annotations

from dataclasses import dataclass

ALL = ("continual_learning", "cifar_features", "mnist_usps", "stream_fmnist", "stream_cifar10")
MLP_EXPERIMENTS = ("continual_learning", "cifar_features", "stream_fmnist")


@dataclass(frozen=True)
class Difference:
    what: str
    published: str
    ours: str
    option: str            # the flag that changes it, or "-" where there is no alternative
    experiments: tuple = ALL


DIFFERENCES = (
    Difference("BatchNorm of the published version",
               "v1.0.0 (the paper's figures, PyTorch 1.1.0): every affine BatchNorm starts with "
               "gamma ~ U(0, 1), and the continual-learning BNN tracks running statistics and "
               "evaluates with them; the 2023 head: gamma = 1 (PyTorch >= 1.2) and batch "
               "statistics in training and evaluation",
               "the 2023 head's choices (docs/REPRODUCTION.md measures both)",
               "--published-version v1.0.0; --bn-gamma-init, --bn-stats one at a time",
               ("continual_learning", "cifar_features", "stream_cifar10")),
    Difference("EWC Fisher information",
               "one sample at a time in evaluation mode (current PyTorch refuses a batch of one "
               "with batch-statistics BatchNorm)",
               "per-sample gradients with the BatchNorm statistics of the 5000 Fisher samples "
               "frozen (running statistics, v1.0.0's BNN and the DNN: those, as published), "
               "summed exactly as (G∘G)ᵀ(X∘X); divided as published by the loop index at exit: "
               "5000, or n - 1 for a task of n < 5000 samples",
               "--ewc-fisher-mean divides by n; --ewc-samples sets the count",
               ("continual_learning", "cifar_features")),
    Difference("Benna-Fusi beaker optimizer (--beaker)",
               "continual learning: Adam on the first vessel of a chain (--n-bk, --ratios, "
               "--areas, --fb; the metaplastic factor on the last vessel), plotting beaker "
               "levels and saving its state every 600 steps; --si replaces it silently; "
               "stream FMNIST: called without --areas, which fails for --n-bk > 1",
               "the same equations (metaplastic/method/beaker.py), no plots or state dumps; --beaker "
               "with --si refused; stream FMNIST: --beaker refused with a message",
               "-", ("continual_learning", "cifar_features", "stream_fmnist")),
    Difference("Published flags of mnist_usps",
               "the script declares the continual-learning parser's --scenario, --in-size, "
               "--hidden-layers, --out-size, --gamma, --ewc, --ewc-lambda, "
               "--rnd-consolidation, --si, --si-lambda, --bin-path, --interleaved and the "
               "beaker flags; no published command uses them",
               "not accepted (argparse names the flag); --des and --save are",
               "-", ("mnist_usps",)),
    Difference("--save",
               "type=bool, default True: writes the results at the end; any non-empty value "
               "('False' too) is true",
               "results are always written, row by row; --save [VALUE] parses VALUE as the "
               "published bool and (continual_learning) adds the per-task hidden weights of "
               "Fig. 2(g, h) and the final model, whose published lines are commented out "
               "behind the same switch; stream_fmnist: the final model",
               "-"),
    Difference("CSV identity columns",
               "stream FMNIST and stream CIFAR-10 CSVs start with net, arch (CIFAR-10: "
               "'BinaryCNN', 'VGG'); mnist_usps writes arch ''",
               "the published columns in the published order, then ours: stream FMNIST's "
               "net, arch after them, none for stream CIFAR-10; mnist_usps's arch names the "
               "channels and kernels (e.g. ch1-12-20-30_kr4-4-4); continual CSVs add "
               "bn_gamma_init, bn_stats, then flip statistics (--no-flip-stats)",
               "-"),
    Difference("Random draws",
               "global torch / NumPy random state (DataLoader shuffling, permutations)",
               "one seeded torch.Generator per purpose: same distributions, not the same numbers",
               "--seed"),
    Difference("Metaplastic factor arithmetic",
               "1 - tanh²(m|W|) in float32 (loses its digits where tanh(m|W|) rounds near 1)",
               "the same function written 4a/(1+a)², a = e^(-2m|W|) (metaplastic/method/rule.py), in "
               "every implementation: a few float32 steps of relative precision everywhere; "
               "changes the numbers by rounding only",
               "-"),
    Difference("Metaplastic Adam arithmetic",
               "eager PyTorch operations",
               "one compiled kernel for all tensors (equal to float32 rounding)",
               "--impl reference"),
    Difference("Training step on CPU (MLPs)",
               "module by module",
               "forward and backward as one torch.compile graph (equal to float32 rounding)",
               "--impl reference", MLP_EXPERIMENTS),
    Difference("Binary products on CPU",
               "float32 matrix products",
               "int8 products with int32 sums where inputs are signs (bit-identical) or 8-bit "
               "pixels (the exact product, rounded once); with --impl auto only where measured "
               "faster than float32 on this CPU",
               "--impl reference (GPU: float32)", MLP_EXPERIMENTS),
    Difference("Subnormal floats on CPU",
               "kept (IEEE)",
               "flushed to zero (values below 1.2e-38; x86 arithmetic on them is tens of times "
               "slower)",
               "--keep-denormals"),
    Difference("TF32 on NVIDIA GPUs",
               "PyTorch's defaults (TF32 convolutions allowed)",
               "off for matrix products and convolutions",
               "--allow-tf32"),
    Difference("Evaluation passes",
               "one forward pass per evaluation batch",
               "10,000 samples per pass, each batch of 100 (or 1000) still normalized with its "
               "own statistics: the same numbers",
               "-"),
    Difference("Stream FMNIST evaluation on CPU",
               "float32 forward",
               "exact integer arithmetic (sign decisions exact; no disagreement measured on "
               "FMNIST); with --impl auto only where int8 products beat float32 on this CPU",
               "--impl reference", ("stream_fmnist",)),
    Difference("mnist_usps epoch-0 row",
               "first row written before training",
               "a real evaluation of the untrained network with the protocol of every other "
               "row (acc_tr on the shuffled training loader, batch 20)",
               "-", ("mnist_usps",)),
    Difference("A last training batch of one sample",
               "stops the run (BatchNorm1d: 'Expected more than 1 value per channel')",
               "skipped in that epoch, as a drop_last loader would (the sample is seen in the "
               "other epochs' shuffles); only with BatchNorm1d",
               "-"),
    Difference("Task names animals, vehicles, cifar100-K",
               "accepted by the continual-learning script",
               "learned with cifar_features/main.py (CIFAR features, the same flags); "
               "continual_learning refuses them, naming that script",
               "-", ("continual_learning",)),
    Difference("--si with --meta or --gamma",
               "ignored (SI trains with one plain Adam at a constant lr)",
               "refused with a message",
               "-", ("continual_learning", "cifar_features")),
    Difference("Interleaved training's tsk column",
               "-",
               "'interleaved' (one concatenated task, task_order 1)",
               "-", ("continual_learning",)),
    Difference("Extra runs' files",
               "-",
               "config.json, checkpoint.pt (exact --resume), optional hidden-weight and "
               "sign-switch CSVs beside metrics.csv",
               "--out-dir"),
)


def for_experiment(experiment: str) -> list[Difference]:
    return [d for d in DIFFERENCES if experiment in d.experiments]


def markdown_table() -> str:
    """The table of docs/FAITHFULNESS.md (what, published, ours, option, where)."""
    lines = ["| what | published scripts | this implementation | option | experiments |",
             "|---|---|---|---|---|"]
    for d in DIFFERENCES:
        where = "all" if d.experiments == ALL else ", ".join(d.experiments)
        lines.append(f"| {d.what} | {d.published} | {d.ours} | {d.option} | {where} |")
    return "\n".join(lines)


def epilog(experiment: str) -> str:
    """The -h epilog of an experiment: its differences from the published script."""
    import textwrap

    rows = []
    for d in for_experiment(experiment):
        text = (f"{d.what}: " + ("" if d.published == "-" else f"published {d.published}; ")
                + f"here {d.ours}" + ("" if d.option.startswith("-") else f" [{d.option}]"))
        rows.append(textwrap.fill(text, width=96, initial_indent="- ", subsequent_indent="  "))
    return ("Differences from the published scripts (defaults otherwise reproduce them; "
            "docs/FAITHFULNESS.md):\n" + "\n".join(rows))
