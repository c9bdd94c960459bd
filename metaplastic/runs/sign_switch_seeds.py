"""Fig. 5(c-e) over seeds: the seeds' sign-switch analyses combined per layer and magnitude bin.

Each seed's ``sign_switch.csv`` (:mod:`metaplastic.method.sign_switch`) holds, per layer and
bin of |W_h| / max|W_h| with enough weights, the mean normalised magnitude x of the flipped
weights and the loss increase per switched weight: its mean y over the seed's repeats and their
std. Over S seeds having the bin: x = mean of the seeds' x, y = mean of the seeds' y, spread =
the sample (S - 1) std of the seeds' y; one seed keeps its own std over repeats
(``spread_over = "repeats"``). The report's table (:mod:`metaplastic.launch.sign_switch_table`)
and the figure (:mod:`metaplastic.plots.sign_switch`) both read this one combination.
"""
from __future__ import annotations

from typing import Sequence

#: the combined frame's columns: the analysis' own (the std now over seeds when there are
#: several) plus how many seeds have the bin and what the std is over
COMBINED_COLUMNS = ("layer", "bin", "seeds", "magnitude_mean", "loss_increase_mean",
                    "loss_increase_std", "spread_over", "sample", "runs")


def over_seeds(frames: Sequence):
    """A pandas DataFrame, one row per (layer, bin) present in any of ``frames`` (each a seed's
    sign-switch records, :data:`metaplastic.runs.records.SIGN_SWITCH_COLUMNS`), sorted by layer
    and bin, with :data:`COMBINED_COLUMNS`."""
    import pandas as pd

    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=list(COMBINED_COLUMNS))
    stacked = pd.concat(frames, ignore_index=True)
    rows = []
    for (layer, b), group in stacked.groupby(["layer", "bin"], sort=True):
        several = len(group) > 1
        rows.append({
            "layer": layer, "bin": int(b), "seeds": len(group),
            "magnitude_mean": float(group["magnitude_mean"].mean()),
            "loss_increase_mean": float(group["loss_increase_mean"].mean()),
            "loss_increase_std": float(group["loss_increase_mean"].std(ddof=1) if several
                                       else group["loss_increase_std"].iloc[0]),
            "spread_over": "seeds" if several else "repeats",
            "sample": int(group["sample"].iloc[0]), "runs": int(group["runs"].iloc[0]),
        })
    return pd.DataFrame(rows, columns=list(COMBINED_COLUMNS))
