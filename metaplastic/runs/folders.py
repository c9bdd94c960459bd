"""Where runs live: the one function that names run folders (docs/RELIABILITY.md).

- A run started by hand: ``--out-dir``, or ``results/<experiment>/<date>-<time>-<process id>``.
- A run of the paper: ``<out>/<experiment>/<configuration id>/seed-<k>``, the id derived from the
  run's flags (:func:`metaplastic.paper.run_id`), so a rerun of the same command finds it.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from metaplastic.errors import ConfigError

#: Where runs started by hand go, relative to the working directory.
RESULTS_ROOT = Path("results")
#: The folder of seed k of a configuration is ``seed-<k>``.
SEED_PREFIX = "seed-"
#: Written into a paper run's seed folder by the launcher when the run has finished
#: (metaplastic.launch.local.mark_finished).
FINISHED_FILE = "finished.json"


def run_folder(out: str | os.PathLike[str], experiment: str, name: str, seed: int | None = None) -> Path:
    """``out/<experiment>/<name>``, and ``/seed-<seed>`` below it for one seed of a configuration."""
    folder = Path(out) / experiment / name
    return folder if seed is None else folder / f"{SEED_PREFIX}{seed}"


def seed_folders(folder: Path) -> list[Path]:
    """The seed folders of a configuration's folder, in name order (none where it is absent)."""
    return sorted(folder.glob(f"{SEED_PREFIX}*")) if folder.is_dir() else []


def chosen_run_folder(out_dir: str | os.PathLike[str] | None, experiment: str, resume: bool) -> Path:
    """A run's folder: ``--out-dir``, or a new ``results/<experiment>/<date>-<time>-<process id>``
    (two runs started in the same second on one machine get two folders)."""
    if out_dir is not None:
        return Path(out_dir)
    if resume:
        raise ConfigError("--resume needs --out-dir naming the run to continue")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return run_folder(RESULTS_ROOT, experiment, f"{stamp}-{os.getpid()}")
