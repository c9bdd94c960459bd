"""Synaptic metaplasticity in binarized neural networks (Laborieux et al., Nat. Commun. 12,
2549, 2021): a reimplementation of the paper's experiments.

The package's folders are its layers, each importing only from those below it (checked by the
contracts of .importlinter):

    launch/       launching the paper's runs (locally, on SLURM), summaries of finished runs
    paper.py      the paper as data: every run of every figure, with its published flags
    plots/        the figures, drawn from run folders
    experiments/  the loops: epochs, task sequences, streams, the continual-learning experiment
    runs/         the run store: folders, config, CSV records, checkpoints, the writer's lock
    data/         the dataset registry, loaders, tasks, augmentation, offline preparation
    fast/         the faster paths (one switch, ``--impl``), proven equal to the method's
    method/       layers, models, the metaplastic rule and optimizers, consolidation, statistics
    (top level)   errors, file writing, progress, flag types; ``data_prep``, the data command
"""

__version__ = "0.1.0"

# The public API, imported on first use (``import metaplastic`` stays light):
# (docs/API.md documents each)
_EXPORTS = {
    # the method
    "MetaplasticAdam": "metaplastic.method.optim", "make_optimizer": "metaplastic.fast",
    "BinarizedLinear": "metaplastic.method.layers", "BinarizedConv2d": "metaplastic.method.layers",
    "SignActivation": "metaplastic.method.layers", "BNN": "metaplastic.method.models", "DNN": "metaplastic.method.models",
    "EWC": "metaplastic.method.consolidation", "SynapticIntelligence": "metaplastic.method.consolidation",
    # data, training and evaluation
    "load_image_dataset": "metaplastic.data.datasets", "draw_permutations": "metaplastic.data.tasks",
    "train_epoch": "metaplastic.method.engine", "evaluate": "metaplastic.method.engine",
    # results
    "load_run": "metaplastic.plots.runs", "accuracy_matrix": "metaplastic.runs.forgetting",
    "sequence_metrics": "metaplastic.runs.forgetting",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metaplastic' has no attribute {name!r}")
