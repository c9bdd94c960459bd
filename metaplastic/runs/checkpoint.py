"""Checkpoints: written atomically with their SHA-256, verified and loaded without running code.

:func:`save_checkpoint` writes ``checkpoint.pt`` atomically and records its SHA-256 in
``checkpoint.pt.sha256`` (the new digest and the previous one, written before the checkpoint is
moved into place, so a crash between the two writes still leaves a verifiable pair);
:func:`load_checkpoint` refuses a checkpoint whose bytes match neither, and loads with
``weights_only=True`` (a checkpoint received from someone else cannot run code).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from metaplastic.errors import MetaplasticError
from metaplastic.fileio import sha256_file, write_atomic

CHECKPOINT_FILE = "checkpoint.pt"
DIGEST_SUFFIX = ".sha256"


def save_atomic(obj: object, path: str | os.PathLike) -> None:
    """torch.save ``obj`` to ``path`` atomically (see :func:`metaplastic.fileio.write_atomic`)."""
    write_atomic(path, lambda stream: torch.save(obj, stream))


def digest_path(path: Path) -> Path:
    return path.with_name(path.name + DIGEST_SUFFIX)


def _recorded_digest(sidecar: Path) -> str | None:
    try:
        return json.loads(sidecar.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """torch.save ``state`` atomically and record its SHA-256 (see the module docstring)."""
    path = Path(path)
    sidecar = digest_path(path)
    previous = _recorded_digest(sidecar) if path.is_file() else None

    def record_digest(tmp: Path) -> None:
        digests = {"sha256": sha256_file(tmp), "previous": previous}
        write_atomic(sidecar, json.dumps(digests) + "\n")

    write_atomic(path, lambda stream: torch.save(state, stream), check=record_digest)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """A verified checkpoint, loaded onto the CPU with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise MetaplasticError(f"--resume: no checkpoint at {path}")
    sidecar = digest_path(path)
    try:
        digests = json.loads(sidecar.read_text())
        accepted = {digests["sha256"], digests.get("previous")} - {None}
    except (OSError, ValueError, KeyError, TypeError):
        raise MetaplasticError(f"--resume: {sidecar} (the SHA-256 of the checkpoint) is missing "
                               "or unreadable; the checkpoint cannot be verified") from None
    if sha256_file(path) not in accepted:
        raise MetaplasticError(f"--resume: {path} has changed since it was written (its SHA-256 "
                               f"differs from {sidecar.name}); refusing to resume from it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle and torch raise many types for foreign files
        raise MetaplasticError(f"--resume: {path} is not a checkpoint of this project "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None


#: The entries of a run's checkpoint (written by :func:`metaplastic.experiments.runner.run_phases`) and the
#: types each may hold; ``config`` is absent from checkpoints written before it was embedded.
RUN_ENTRIES = {
    "model": (dict,), "optimizer": (dict, type(None)), "generator": (torch.Tensor,),
    "torch_rng": (torch.Tensor,), "position": (dict,), "state": (dict,),
    "row_prefix": (dict,), "config": (dict, type(None)),
}
OPTIONAL_ENTRIES = {"config"}
POSITION_ENTRIES = ("phase", "epoch", "rows")


def check_run_state(state: object, path: str | os.PathLike) -> dict:
    """``state`` if it holds every entry of :data:`RUN_ENTRIES` with its type and a position of
    non-negative integers; else one line naming the first bad entry (a hand-made or edited
    checkpoint whose digest was recomputed)."""
    def refuse(what: str) -> MetaplasticError:
        return MetaplasticError(f"--resume: {path} is not a usable checkpoint of a run: {what}; "
                                "nothing was changed")

    if not isinstance(state, dict):
        raise refuse(f"it holds a {type(state).__name__}, not the run's entries")
    for name, types in RUN_ENTRIES.items():
        if name not in state:
            if name in OPTIONAL_ENTRIES:
                continue
            raise refuse(f"the entry '{name}' is missing")
        if not isinstance(state[name], types):
            expected = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            raise refuse(f"the entry '{name}' is a {type(state[name]).__name__}, not {expected}")
    for name in ("generator", "torch_rng"):
        if state[name].dtype != torch.uint8:
            raise refuse(f"the entry '{name}' is a {state[name].dtype} tensor, not a random "
                         "generator's uint8 state")
    for key in POSITION_ENTRIES:
        value = state["position"].get(key)
        if type(value) is not int or value < 0:
            raise refuse(f"position['{key}'] is {value!r}, not a non-negative integer")
    return state


