"""Models of continual_learning: the core's BNN and DNN MLPs (metaplastic.models), built by
metaplastic.continual.build_model from --net, --in-size, --hidden-layers, --out-size, --norm."""
from metaplastic.continual import build_model  # noqa: F401
from metaplastic.models import BNN, DNN  # noqa: F401
