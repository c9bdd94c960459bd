"""Models of cifar_features.

- The feature extractor: torchvision's ResNet-18 with its final fully connected layer replaced by
  the identity, so that its output is the 512-d global-average-pool vector. Its ImageNet weights
  come from a state-dict file (torchvision's ``resnet18-f37072fd.pth``; the paper's 2019 runs used
  the older ``resnet18-5c106cde.pth``), never from the network unless asked for explicitly.
- The learner: the core's BNN / DNN MLP, built by metaplastic.experiments.continual.build_model from --net,
  --in-size (512), --hidden-layers, --out-size, --norm. With 512 inputs the BNN's first layer
  binarizes its input (metaplastic.method.models.default_binarize_first_input), as published.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from metaplastic.errors import DataError, import_torchvision

FEATURE_SIZE = 512   # ResNet-18's pooled output: the length of every feature vector


def build_model(config):
    """The learner: the core's BNN / DNN MLP [in_size (512), *hidden_layers, out_size]."""
    from metaplastic.experiments.continual import build_model as build_mlp

    return build_mlp(config.net, config.in_size, config.hidden_layers, config.out_size,
                     config.norm, config.init, config.init_width, config.bn_stats,
                     config.bn_gamma_init)

# torchvision's file names carry the first 8 hex digits of the file's SHA-256.
KNOWN_WEIGHTS = {
    "f37072fd": ("resnet18-f37072fd.pth", "torchvision ResNet18_Weights.IMAGENET1K_V1 (current file)",
                 "https://download.pytorch.org/models/resnet18-f37072fd.pth"),
    "5c106cde": ("resnet18-5c106cde.pth", "torchvision ImageNet weights, pre-2021 file used by the paper",
                 "https://download.pytorch.org/models/resnet18-5c106cde.pth"),
}
DEFAULT_WEIGHTS_FILE = "resnet18-f37072fd.pth"

HOW_TO_GET_WEIGHTS = (
    "Get torchvision's ImageNet ResNet-18 weights on a machine with internet "
    "(https://download.pytorch.org/models/resnet18-f37072fd.pth; the paper's runs used "
    "https://download.pytorch.org/models/resnet18-5c106cde.pth, equivalent weights in an older "
    "file), copy the file here and pass --weights PATH, or put it in <data-root>/models/; on a "
    "machine with internet, --download-weights lets torchvision fetch it.")


def resnet18_trunk() -> nn.Module:
    """ResNet-18 (random weights) whose ``fc`` is the identity: images -> 512-d features."""
    resnet18 = import_torchvision("the CIFAR features' ResNet-18").models.resnet18
    model = resnet18(weights=None)
    model.fc = nn.Identity()
    return model


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identify_weights(sha256: str) -> str | None:
    """A description of the file if it is one of torchvision's ResNet-18 ImageNet files."""
    known = KNOWN_WEIGHTS.get(sha256[:8])
    return f"{known[0]}: {known[1]}" if known else None


def load_state_dict_file(path: str | Path) -> dict:
    """The ResNet-18 state dict stored in ``path`` (a plain state dict, or one under 'state_dict')."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ResNet-18 weights file not found: {path}. {HOW_TO_GET_WEIGHTS}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error
        raise DataError(f"{path} is not a readable PyTorch state dict ({exc}). "
                        f"{HOW_TO_GET_WEIGHTS}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"{path} does not hold a state dict of tensors. {HOW_TO_GET_WEIGHTS}")
    return state


def feature_extractor(state_dict: dict, source: str = "weights") -> nn.Module:
    """The ResNet-18 trunk with ``state_dict`` loaded (its ``fc.*`` entries are ignored), in eval mode."""
    model = resnet18_trunk()
    trunk_state = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    try:
        model.load_state_dict(trunk_state, strict=True)
    except RuntimeError as exc:  # missing / unexpected keys, or shape mismatch
        detail = " ".join(str(exc).split())
        if len(detail) > 400:
            detail = detail[:400] + " ..."
        raise DataError(f"{source} is not a torchvision ResNet-18 state dict ({detail}). "
                        f"{HOW_TO_GET_WEIGHTS}") from None
    return model.eval()
