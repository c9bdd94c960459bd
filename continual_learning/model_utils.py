"""The models of continual_learning: BNN / DNN MLPs (docs/METHOD.md section 2), trained by metaplastic Adam
(docs/METHOD.md section 3), with EWC / SI as consolidation baselines (docs/METHOD.md section 5) - the core's pieces."""
from __future__ import annotations

from metaplastic.experiments.continual import ContinualConfig, image_levels
from metaplastic.experiments.continual import build_model as build_mlp
from metaplastic.fast import make_optimizer
from metaplastic.method.consolidation import EWC, SynapticIntelligence
from metaplastic.method.layers import BinarizedLinear, SignActivation
from metaplastic.method.models import BNN, DNN, MLP
from metaplastic.method.optim import MetaplasticAdam

__all__ = ["build_model", "image_levels", "BNN", "DNN", "MLP", "BinarizedLinear",
           "SignActivation", "MetaplasticAdam", "make_optimizer", "EWC", "SynapticIntelligence"]


def build_model(config: ContinualConfig) -> MLP:
    """'bnn' -> BNN, 'dnn' -> DNN with dims [in_size, *hidden_layers, out_size]."""
    return build_mlp(config.net, config.in_size, config.hidden_layers, config.out_size,
                     config.norm, config.init, config.init_width, config.bn_stats,
                     config.bn_gamma_init)
