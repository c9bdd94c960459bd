"""Fig. 5(c-e) over seeds: the seeds' sign-switch analyses combined per layer and magnitude bin.

Each seed's ``sign_switch.csv`` (:mod:`metaplastic.method.sign_switch`) holds, per layer and
bin of |W_h| / max|W_h| with enough weights, the mean normalised magnitude x of the flipped
weights and the loss increase per switched weight: its mean y over the seed's repeats and their
std. Over S seeds having the bin: x = mean of the seeds' x, y = mean of the seeds' y, spread =
the sample (S - 1) std of the seeds' y; a bin only one seed has keeps that seed's std over its
repeats (``spread_over = "repeats"``). The report's table
(:mod:`metaplastic.launch.sign_switch_table`) and the figure (:mod:`metaplastic.plots.sign_switch`)
both read this one combination.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from metaplastic.runs.records import RecordError, numbers_in

#: the combined frame's columns: the analysis' own (the std now over seeds when there are
#: several) plus how many seeds have the bin, what the std is over, and whether a one-seed bin
#: held no more weights than the sample (every repeat flipped the same weights: no spread)
COMBINED_COLUMNS = ("layer", "bin", "seeds", "magnitude_mean", "loss_increase_mean",
                    "loss_increase_std", "spread_over", "sample", "runs", "whole_bin")
#: the columns that must hold a number in every row (a bin's std is NaN with a single repeat)
NUMBER_COLUMNS = ("layer", "bin", "magnitude_mean", "loss_increase_mean", "n_weights", "sample",
                  "runs")


def checked(frame, path: Path):
    """``frame`` (a seed's sign-switch records read from ``path``) with numeric columns, or a
    RecordError naming the file where a layer, bin, magnitude, loss increase, sample or repeat
    count is not a number, or a (layer, bin) appears twice."""
    frame = numbers_in(frame, path, NUMBER_COLUMNS)
    if frame.duplicated(["layer", "bin"]).any():
        raise RecordError(f"{path}: a (layer, bin) appears twice; one row per layer and bin")
    return frame


def over_seeds(frames: Sequence):
    """A pandas DataFrame, one row per (layer, bin) present in any of ``frames`` (each a seed's
    :func:`checked` sign-switch records), sorted by layer and bin, with
    :data:`COMBINED_COLUMNS`. Seeds whose layer was analysed with another sample size or number
    of repeats are refused (RecordError): their means are not comparable."""
    import pandas as pd

    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(COMBINED_COLUMNS))
    stacked = pd.concat(frames, ignore_index=True)
    for layer, group in stacked.groupby("layer"):
        if group["sample"].nunique() > 1 or group["runs"].nunique() > 1:
            raise RecordError(f"the seeds' sign-switch analyses of layer {layer} differ in "
                              f"sample size or repeats ({sorted(set(group['sample']))}, "
                              f"{sorted(set(group['runs']))}); they cannot be averaged")
    rows = []
    for (layer, b), group in stacked.groupby(["layer", "bin"], sort=True):
        several = len(group) > 1
        rows.append({
            "layer": int(layer), "bin": int(b), "seeds": len(group),
            "magnitude_mean": float(group["magnitude_mean"].mean()),
            "loss_increase_mean": float(group["loss_increase_mean"].mean()),
            "loss_increase_std": float(group["loss_increase_mean"].std(ddof=1) if several
                                       else group["loss_increase_std"].iloc[0]),
            "spread_over": "seeds" if several else "repeats",
            "sample": int(group["sample"].iloc[0]), "runs": int(group["runs"].iloc[0]),
            "whole_bin": not several and int(group["n_weights"].iloc[0]) <= int(
                group["sample"].iloc[0]),
        })
    return pd.DataFrame(rows, columns=list(COMBINED_COLUMNS))
