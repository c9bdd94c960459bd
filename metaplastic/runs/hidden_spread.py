"""Fig. 2(g, h) in numbers: how far each layer's hidden weights spread after each task.

A run saved with ``--save`` writes ``hidden_weight_hist.csv`` (metaplastic/experiments/
sequence.py): per task t and layer l, the counts c_b of W_h in equal bins between the layer's
smallest and largest hidden weight. With every weight at its bin's midpoint m_b and
N = sum_b c_b, the spread is the standard deviation

    sd(t, l) = sqrt( sum_b c_b m_b^2 / N - (sum_b c_b m_b / N)^2 ),

which differs from the weights' own by about (bin width)^2 / 12 in the variance (Sheppard's
correction, not applied). With metaplasticity the paper expects it to grow task after task
(Fig. 2(g, h); docs/METRICS.md).
"""
from __future__ import annotations

import math
from pathlib import Path

from metaplastic.runs import records


def hidden_weight_spread(path: Path) -> dict[tuple[int, int], float]:
    """{(task, layer): sd} of the histogram file ``path`` (tasks and layers numbered from 1).
    RecordError where the file has other columns, no rows, a cell that is not a number or a
    negative count."""
    frame = records.read_records(path, records.HIDDEN_HIST_COLUMNS)
    if not len(frame):
        raise records.RecordError(f"{path} has a header but no rows (one row per task, layer "
                                  "and bin expected)")
    frame = records.numbers_in(frame, path, records.HIDDEN_HIST_COLUMNS)
    if (frame["count"] < 0).any():
        raise records.RecordError(f"{path} holds a negative count")
    spread = {}
    for (task, layer), group in frame.groupby(["task", "layer"], sort=True):
        mid = (group["bin_low"].to_numpy(float) + group["bin_high"].to_numpy(float)) / 2
        counts = group["count"].to_numpy(float)
        n = counts.sum()
        if n <= 0:
            continue
        mean = (counts * mid).sum() / n
        spread[(int(task), int(layer))] = math.sqrt(max((counts * mid ** 2).sum() / n
                                                        - mean ** 2, 0.0))
    return spread
