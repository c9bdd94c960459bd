"""Synaptic metaplasticity in binarized neural networks (Laborieux et al., Nat. Commun. 12,
2549, 2021): a reimplementation of the paper's experiments."""

__version__ = "0.1.0"

# The public API, imported on first use (``import metaplastic`` stays light):
# (docs/API.md documents each)
_EXPORTS = {
    # the method
    "MetaplasticAdam": "metaplastic.optim", "make_optimizer": "metaplastic.fast",
    "BinarizedLinear": "metaplastic.layers", "BinarizedConv2d": "metaplastic.layers",
    "SignActivation": "metaplastic.layers", "BNN": "metaplastic.models", "DNN": "metaplastic.models",
    "EWC": "metaplastic.consolidation", "SynapticIntelligence": "metaplastic.consolidation",
    # data, training and evaluation
    "load_image_dataset": "metaplastic.datasets", "draw_permutations": "metaplastic.tasks",
    "train_epoch": "metaplastic.engine", "evaluate": "metaplastic.engine",
    # results
    "load_run": "metaplastic.plots.runs", "accuracy_matrix": "metaplastic.forgetting",
    "sequence_metrics": "metaplastic.forgetting",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metaplastic' has no attribute {name!r}")
