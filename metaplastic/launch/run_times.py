"""Where and how long each finished run ran: one table row per seed folder.

Read from the run's own files, as committed under docs/reproduction/: config.json's
``launches`` (one entry per start or resume since the run last started afresh: device, CPU,
threads and the implementation that ``--impl`` chose; :func:`metaplastic.runs.rundir.launches_of`;
a run saved before that record existed has only its environment: one launch where its
``finished.json`` says the finishing launch did not resume, else its number is not recorded),
log.txt's epoch lines (their seconds: :func:`metaplastic.progress.epoch_seconds`). The time in
epochs is the sum of every epoch's seconds the log holds (the run's wall time less start-up,
data loading and the pauses between sittings); epochs run again after a resume (those after the
last checkpoint) count each time they ran, so "epochs timed" can exceed the CSV's rows.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from metaplastic.progress import duration, epoch_seconds
from metaplastic.runs import records
from metaplastic.runs.folders import FINISHED_FILE, SEED_PREFIX
from metaplastic.runs.rundir import launch_device, launches_of

NOT_RECORDED = "not recorded"


@dataclass
class RunTimes:
    label: str
    seed: int
    machines: list[str]           # distinct, in launch order
    implementations: list[str]    # distinct, in launch order
    threads: list[int]            # distinct, in launch order
    launches: int | None          # None: not recorded (see the module's docstring)
    epoch_seconds: list[float]    # every epoch's total, in log order

    @property
    def median(self) -> float | None:
        return statistics.median(self.epoch_seconds) if self.epoch_seconds else None

    @property
    def fastest(self) -> float | None:
        return min(self.epoch_seconds, default=None)

    @property
    def total(self) -> float:
        return sum(self.epoch_seconds)


def _distinct(values) -> list:
    return list(dict.fromkeys(v for v in values if v is not None))


def machine(launch: dict) -> str:
    """A launch's machine in words: its GPU where it ran on one, else its CPU."""
    if launch_device(launch) == "cuda":
        return f"GPU: {launch.get('cuda') or NOT_RECORDED}"
    return launch.get("cpu") or NOT_RECORDED


def log_epoch_seconds(log: Path) -> list[float]:
    """The total seconds of every epoch logged in ``log`` (none for a missing file)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [timing[0] for timing in map(epoch_seconds, lines) if timing]


def launch_count(config: dict, seed_dir: Path) -> int | None:
    """Launches since the run last started afresh: config.json's record of them; for a run
    saved before that record, 1 where finished.json says its finishing launch did not resume,
    else None (not recorded)."""
    if config.get("launches"):
        return len(config["launches"])
    try:
        finished = json.loads((seed_dir / FINISHED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return 1 if isinstance(finished, dict) and finished.get("resumed") is False else None


def run_times(label: str, seed_dir: Path) -> RunTimes:
    """The times of the run in ``seed_dir`` (its config.json and log.txt)."""
    try:
        config = records.load_config(seed_dir)
    except records.RecordError:
        config = {}
    launches = launches_of(config)
    if config.get("device") == "cpu":   # --device cpu: a GPU on the machine was not used
        launches = [launch | {"device": "cpu"} for launch in launches]
    return RunTimes(label, int(seed_dir.name.removeprefix(SEED_PREFIX)),
                    _distinct(machine(launch) for launch in launches),
                    _distinct(launch.get("implementation") for launch in launches),
                    _distinct(launch.get("threads") for launch in launches),
                    launch_count(config, seed_dir), log_epoch_seconds(seed_dir / "log.txt"))


def markdown_table(times: Sequence[RunTimes]) -> str:
    """The runs' machines and times as a Markdown table."""
    lines = ["| configuration | seed | machine | implementation (`--impl`) | threads | epochs "
             "timed | s per epoch: median (fastest) | time in epochs | launches |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in times:
        seconds = (f"{t.median:.1f} ({t.fastest:.1f})" if t.epoch_seconds else "–")
        lines.append(
            f"| {t.label} | {t.seed} | {' / '.join(t.machines) or NOT_RECORDED} | "
            f"{' / '.join(t.implementations) or NOT_RECORDED} | "
            f"{' / '.join(map(str, t.threads)) or NOT_RECORDED} | {len(t.epoch_seconds)} | "
            f"{seconds} | {duration(t.total) if t.epoch_seconds else '–'} | "
            f"{NOT_RECORDED if t.launches is None else t.launches} |")
    return "\n".join(lines) + "\n"
