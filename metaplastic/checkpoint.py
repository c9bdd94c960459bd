"""Checkpoints written atomically, so a crash never leaves a half-written file behind."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from metaplastic.errors import MetaplasticError
from metaplastic.fileio import write_atomic

CHECKPOINT_FILE = "checkpoint.pt"


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """torch.save ``obj`` to ``path`` atomically (see :func:`metaplastic.fileio.write_atomic`)."""
    write_atomic(path, lambda stream: torch.save(obj, stream))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint onto the CPU; a clear error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise MetaplasticError(f"--resume: no checkpoint at {path}; start the run without --resume")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise MetaplasticError(f"--resume: {path} is not a readable checkpoint ({exc})") from None
