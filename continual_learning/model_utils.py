"""Models of the continual_learning experiment: the BNN and DNN MLPs of the core."""
from __future__ import annotations

from metaplastic.models import BNN, DNN, MLP


def build_model(net: str, in_size: int, hidden_layers: list[int], out_size: int, norm: str,
                init: str, init_width: float) -> MLP:
    """'bnn' -> BNN, 'dnn' -> DNN with dims [in_size, *hidden_layers, out_size]."""
    dims = [in_size, *hidden_layers, out_size]
    if net == "bnn":
        return BNN(dims, norm=norm, init=init, init_width=init_width)
    return DNN(dims, norm=norm, init=init, init_width=init_width)
