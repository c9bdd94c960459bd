"""Fig. 5(c-e) over seeds as a Markdown table: per layer and magnitude bin, the loss increase
of a sign switch combined over the seeds by :func:`metaplastic.runs.sign_switch_seeds.over_seeds`
(mean ± sample std of the seeds' means; one seed: its mean ± the std over its repeats, marked
"repeats", or none where its bin held no more weights than the sample).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from metaplastic.runs import records
from metaplastic.runs.sign_switch_seeds import checked, over_seeds


def _cell(mean: float, std: float, spread_over: str, whole_bin: bool) -> str:
    if whole_bin:
        return f"{mean:.2e} (each repeat flipped the bin's same weights)"
    if not math.isfinite(std):
        return f"{mean:.2e}"
    return f"{mean:.2e} ± {std:.1e}" + (" (repeats)" if spread_over == "repeats" else "")


def sign_switch_table(seed_dirs: Sequence[Path]) -> str | None:
    """The Markdown table over the seeds in ``seed_dirs`` (None: none has a sign_switch.csv).
    A file with other columns or values that are not numbers, or seeds analysed with other
    sample sizes, raise :class:`metaplastic.runs.records.RecordError`."""
    paths = [Path(d) / records.SIGN_SWITCH_FILE for d in seed_dirs]
    combined = over_seeds([checked(records.read_records(p, records.SIGN_SWITCH_COLUMNS), p)
                           for p in paths if p.is_file()])
    if not len(combined):
        return None
    lines = ["| layer | bin | seeds | mean \\|W_h\\| / max | loss increase per switched weight |",
             "|---|---|---|---|---|"]
    for row in combined.itertuples(index=False):
        lines.append(f"| {row.layer} | {row.bin} | {row.seeds} | {row.magnitude_mean:.3f} | "
                     f"{_cell(row.loss_increase_mean, row.loss_increase_std, row.spread_over, row.whole_bin)}"
                     " |")
    return "\n".join(lines) + "\n"
