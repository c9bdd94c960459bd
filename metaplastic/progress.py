"""What a run prints while it works: per-batch bars on a terminal, one line per epoch always.

Progress bars (tqdm, :func:`metaplastic.method.engine.progress_bar`) redraw themselves with carriage
returns; in a SLURM log or a redirected file that is thousands of partial lines, so they are
drawn only when stderr is a terminal. Every epoch ends with one log line on stdout that carries
the elapsed time of the run and an ETA for the whole run (:class:`RunClock`).
"""
from __future__ import annotations

import re
import sys
import time
from typing import Callable


def interactive(stream=None) -> bool:
    """True when ``stream`` (default: stderr) is a terminal, where progress bars belong."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def duration(seconds: float) -> str:
    """``42s``, ``12m05s``, ``3h07m``, ``2d04h``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def epoch_timing(train: float, evaluate: float, end: float) -> str:
    """The timing part of an epoch's log line: total seconds, then their parts (training,
    evaluation, phase end and checkpoint); :func:`epoch_seconds` reads it back."""
    return (f"{train + evaluate + end:.1f}s (train {train:.1f}, eval {evaluate:.1f}, "
            f"phase end + checkpoint {end:.1f})")


_EPOCH_TIMING = re.compile(r"\| (\d+(?:\.\d+)?)s \(train (\d+(?:\.\d+)?), eval ")


def epoch_seconds(line: str) -> tuple[float, float] | None:
    """(total, training) seconds of the epoch a log line reports, or None for another line."""
    match = _EPOCH_TIMING.search(line)
    return (float(match.group(1)), float(match.group(2))) if match else None


class RunClock:
    """Elapsed time and an ETA for the whole run, updated once per epoch.

    ETA = epochs left x mean epoch time (training, evaluation, checkpoint). The first epoch of
    a process includes one-time work (torch.compile compiling the training step and the
    optimizer, warm-up of caches and of the GPU), so once other epochs are timed it is left
    out of the mean; after the first epoch alone the ETA is marked as an overestimate.
    A resumed run counts the epochs already done before the restart.
    """

    def __init__(self, total_epochs: int, done_epochs: int = 0,
                 clock: Callable[[], float] = time.perf_counter):
        self.total = int(total_epochs)
        self.done = int(done_epochs)
        self.clock = clock
        self.started = clock()
        self.durations: list[float] = []

    @property
    def remaining(self) -> int:
        return max(self.total - self.done, 0)

    def mean_epoch(self) -> float | None:
        """Mean epoch time in seconds, without the first epoch once there are others."""
        if not self.durations:
            return None
        timed = self.durations[1:] if len(self.durations) > 1 else self.durations
        return sum(timed) / len(timed)

    def epoch_done(self, seconds: float) -> str:
        """Record one finished epoch of ``seconds``; the text for its log line."""
        self.durations.append(float(seconds))
        self.done += 1
        elapsed = duration(self.clock() - self.started)
        left = self.remaining
        if left == 0:
            text = f"elapsed {elapsed}, ETA 0s (run complete)"
        else:
            eta = duration(left * self.mean_epoch())
            text = (f"elapsed {elapsed}, ETA {eta} for the {left} epoch"
                    f"{'s' if left != 1 else ''} left")
        if len(self.durations) == 1:
            text += (" (first epoch: includes one-time compilation (torch.compile) and warm-up"
                     + ("; ETA overestimated)" if left else ")"))
        return text
