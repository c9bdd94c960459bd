"""Checkpoints written atomically, so a crash never leaves a half-written file behind."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from metaplastic.errors import MetaplasticError

CHECKPOINT_FILE = "checkpoint.pt"


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint onto the CPU; a clear error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise MetaplasticError(f"--resume: no checkpoint at {path}; start the run without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise MetaplasticError(f"--resume: {path} is not a readable checkpoint ({exc})") from None
