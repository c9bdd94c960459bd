"""The value types of the command-line flags (argparse ``type=``): each refuses a bad value with
argparse's one-line usage error."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _bounded_int(text: str, low: int, high: int | None, meaning: str) -> int:
    """An integer ``low <= value < high`` (``high`` None: no upper bound)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {meaning}, got {text!r}") from None
    if value < low or (high is not None and value >= high):
        raise argparse.ArgumentTypeError(f"must be {meaning}, got {text}")
    return value


def seed_int(text: str) -> int:
    """A seed torch and NumPy accept: an integer in [0, 2**63)."""
    return _bounded_int(text, 0, 2 ** 63, "an integer in [0, 2**63)")


def non_negative_int(text: str) -> int:
    return _bounded_int(text, 0, None, "an integer >= 0")


def published_bool(text: str) -> bool:
    """The published scripts' ``type=bool`` flags: Python's bool(text), so every non-empty
    value is true ('--save False' too) and only an empty string is false."""
    return bool(text)
