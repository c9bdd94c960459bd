"""Fig. 5(c-e) over seeds: the loss increase of a sign switch per layer and magnitude bin.

Each seed's ``sign_switch.csv`` (:mod:`metaplastic.method.sign_switch`) holds, per layer and
bin of |W_h| / max|W_h| with enough weights, the mean normalised magnitude of the flipped weights
and the mean loss increase per switched weight over its repeats. Over seeds, per (layer, bin):
the seeds that have the bin, the magnitude's mean, and the loss increase as mean ± sample std of
the seeds' means (one seed: its mean ± the std over its repeats, marked "repeats").
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Sequence

from metaplastic.runs import records


def _cell(values: Sequence[float], repeat_std: float) -> str:
    mean = statistics.fmean(values)
    if len(values) > 1:
        return f"{mean:.2e} ± {statistics.stdev(values):.1e}"
    if math.isfinite(repeat_std):
        return f"{mean:.2e} ± {repeat_std:.1e} (repeats)"
    return f"{mean:.2e}"


def sign_switch_table(seed_dirs: Sequence[Path]) -> str | None:
    """The Markdown table over the seeds in ``seed_dirs`` (None: none has a sign_switch.csv).
    A file with other columns raises :class:`metaplastic.runs.records.RecordError`."""
    cells: dict[tuple[int, int], list[tuple[float, float, float]]] = {}
    for seed_dir in seed_dirs:
        path = Path(seed_dir) / records.SIGN_SWITCH_FILE
        if not path.is_file():
            continue
        frame = records.read_records(path, records.SIGN_SWITCH_COLUMNS)
        for row in frame.itertuples(index=False):
            cells.setdefault((int(row.layer), int(row.bin)), []).append(
                (float(row.magnitude_mean), float(row.loss_increase_mean),
                 float(row.loss_increase_std)))
    if not cells:
        return None
    lines = ["| layer | bin | seeds | mean \\|W_h\\| / max | loss increase per switched weight |",
             "|---|---|---|---|---|"]
    for (layer, b), values in sorted(cells.items()):
        magnitude = statistics.fmean(v[0] for v in values)
        lines.append(f"| {layer} | {b} | {len(values)} | {magnitude:.3f} | "
                     f"{_cell([v[1] for v in values], values[0][2])} |")
    return "\n".join(lines) + "\n"
