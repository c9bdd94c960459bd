"""The two published versions of the authors' scripts, and the choices in which they differ.

- ``v1.0.0``: the repository's tag of January 2021, run under PyTorch 1.1.0 (its README's
  pin); it drew the paper's figures.
- ``2023``: the repository's head (commit 5351570, August 2023), run under current PyTorch.

Two choices differ between them, both about BatchNorm:

- the initial scale gamma of every affine BatchNorm: PyTorch < 1.2 drew gamma ~ U(0, 1) when
  the layer was built; PyTorch >= 1.2 sets gamma = 1 (``--bn-gamma-init uniform | ones``);
- the statistics of the continual-learning BNN's BatchNorm1d layers (continual_learning and
  cifar_features with ``--norm bn``): v1.0.0 tracked running statistics and evaluated with
  them; the 2023 head uses the statistics of each batch, in training and evaluation alike
  (``--bn-stats running | batch``). The DNN, stream FMNIST and stream CIFAR-10 networks track
  running statistics in both versions; mnist_usps uses batch statistics in both.

``--published-version`` selects both choices of a version at once; ``--bn-gamma-init`` and
``--bn-stats`` given explicitly override it (e.g. running statistics with gamma = 1). The
default is the 2023 head, the version the project has reproduced since its start
(docs/REPRODUCTION.md compares the two).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from metaplastic.errors import ConfigError


@dataclass(frozen=True)
class PublishedVersion:
    name: str
    bn_gamma_init: str      # "uniform" (gamma ~ U(0, 1), PyTorch < 1.2) or "ones"
    bn_stats: str           # the continual-learning BNN's BatchNorm: "running" or "batch"
    description: str


VERSIONS = {
    "v1.0.0": PublishedVersion("v1.0.0", "uniform", "running",
                               "tag v1.0.0 under PyTorch 1.1.0, which drew the paper's figures"),
    "2023": PublishedVersion("2023", "ones", "batch",
                             "the 2023 head (batch statistics) under current PyTorch"),
}
DEFAULT_VERSION = "2023"
GAMMA_INITS = ("ones", "uniform")
BN_STATS = ("batch", "running")


def add_arguments(parser: argparse.ArgumentParser, bn_stats: bool) -> None:
    """--published-version, --bn-gamma-init and (where the versions differ in it) --bn-stats."""
    g = parser.add_argument_group("published version (BatchNorm)")
    g.add_argument("--published-version", choices=tuple(VERSIONS), default=DEFAULT_VERSION,
                   help="the authors' code to reproduce: v1.0.0 (the paper's figures: BatchNorm "
                        "gamma ~ U(0, 1)" + (", running statistics" if bn_stats else "")
                        + ") or 2023 (gamma = 1" + (", batch statistics" if bn_stats else "")
                        + ")")
    g.add_argument("--bn-gamma-init", choices=GAMMA_INITS, default=None,
                   help="initial BatchNorm scale: ones, or uniform in [0, 1) as PyTorch < 1.2 "
                        "(default: the published version's)")
    if bn_stats:
        g.add_argument("--bn-stats", choices=BN_STATS, default=None,
                       help="the BNN's BatchNorm statistics at evaluation: batch (each batch's "
                            "own) or running (tracked during training) (default: the published "
                            "version's; a DNN always tracks running statistics)")


def resolve(args, net: str = "bnn") -> dict:
    """The config fields of the chosen version: published_version, bn_gamma_init and, where
    the parser has --bn-stats, bn_stats (a DNN: always 'running', as published)."""
    version = VERSIONS[args.published_version]
    out = {"published_version": version.name,
           "bn_gamma_init": args.bn_gamma_init or version.bn_gamma_init}
    if hasattr(args, "bn_stats"):
        if net == "dnn":
            if args.bn_stats == "batch":
                raise ConfigError("--bn-stats batch: the published DNN tracks running "
                                  "statistics in both versions (the flag is the BNN's)")
            out["bn_stats"] = "running"
        else:
            out["bn_stats"] = args.bn_stats or version.bn_stats
    return out


#: the experiments whose BNN's BatchNorm statistics differ between the versions (--bn-stats)
BN_STATS_EXPERIMENTS = ("continual_learning", "cifar_features")


def older_run_defaults(saved: dict) -> dict:
    """What a config.json saved before these options existed meant by their absence: the 2023
    head's choices (gamma = 1; batch statistics for a BNN of the continual-learning
    experiments, running ones for its DNN); stream CIFAR-10's training accuracies on clean
    images (--train-eval came later)."""
    out = {"published_version": DEFAULT_VERSION, "bn_gamma_init": "ones"}
    if saved.get("experiment") in BN_STATS_EXPERIMENTS:
        out["bn_stats"] = "running" if saved.get("net") == "dnn" else "batch"
    if saved.get("experiment") == "stream_cifar10":   # before --train-eval: clean images
        out["train_eval"] = "clean"
    return out
