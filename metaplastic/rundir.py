"""A run folder's life: every check before anything is written, then config.json.

:func:`open_run_dir` runs the checks first and writes config.json only after all pass: a new
run refuses a folder that already holds one; ``--resume`` refuses a configuration that differs
from the saved one in any field that changes results (naming the fields), verifies the
checkpoint (:mod:`metaplastic.checkpoint`), and resumes a run killed before its first checkpoint
from the start.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from metaplastic import published, records
from metaplastic.checkpoint import CHECKPOINT_FILE, load_checkpoint
from metaplastic.errors import ConfigError, MetaplasticError

#: config.json entries written beside the config's own fields (never compared on --resume)
RECORD_KEYS = frozenset({"environment", "result_neutral", "per_seed"})


def differing_fields(saved: dict, new: dict, neutral: frozenset | set = frozenset(),
                     defaults: dict | None = None) -> list[str]:
    """Fields that change results (not in ``neutral``) and differ between two configurations.
    A field absent from ``saved`` (added to the config after that run started) counts as its
    value in ``defaults``, so a new option at its default does not block ``--resume``."""
    defaults = defaults or {}

    def saved_value(k):
        return saved[k] if k in saved else defaults.get(k)

    return sorted(k for k in set(saved) | set(new)
                  if k not in neutral and k not in RECORD_KEYS and saved_value(k) != new.get(k))


def field_defaults(config) -> dict:
    """The default of every field of a config dataclass (``default_factory`` called)."""
    out = {}
    for f in dataclasses.fields(config):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def open_run_dir(run_dir: Path, config, resume: bool) -> bool:
    """Check, then create the folder and write config.json. Returns whether to continue from a
    checkpoint (False: start from the beginning, also for a ``--resume`` of a run killed
    before its first checkpoint)."""
    from metaplastic.cli import config_dict, config_marks, environment_summary

    marks = config_marks(config)
    defaults = field_defaults(config)
    config = config_dict(config)
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT_FILE
    metrics = run_dir / records.METRICS_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out-dir {run_dir} is a file, not a folder")
    saved = records.load_config(run_dir) if (run_dir / records.CONFIG_FILE).is_file() else {}
    started = bool(saved) or checkpoint.is_file() or (metrics.is_file() and metrics.stat().st_size)
    if not resume and started:
        raise MetaplasticError(f"{run_dir} already holds a run; pass --resume to continue it, or "
                               "choose another --out-dir")
    if resume and not started:
        raise MetaplasticError(f"--resume: no run in {run_dir} (no config.json, no checkpoint)")
    if resume and saved:
        defaults |= published.older_run_defaults(saved)
        differing = differing_fields(saved, config, set(marks["result_neutral"]), defaults)
        if differing:
            details = "; ".join(f"{k}: {saved.get(k, defaults.get(k))!r} -> {config.get(k)!r}"
                                for k in differing)
            raise ConfigError(f"--resume with other settings than the run in {run_dir} "
                              f"({details}); resume with the original flags or start a new "
                              "--out-dir. Nothing was changed.")
    from_checkpoint = resume and checkpoint.is_file()
    if from_checkpoint:
        load_checkpoint(checkpoint)  # verify before writing anything
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MetaplasticError(f"cannot create the run folder {run_dir}: {exc.strerror or exc}") from None
    if resume and not from_checkpoint:
        print(f"--resume: {run_dir} has no checkpoint yet (the run stopped in its first epoch); "
              "starting it from the beginning")
        for leftover in (metrics, run_dir / records.HIDDEN_HIST_FILE):
            if leftover.is_file():
                leftover.unlink()
    records.save_config(run_dir, config | marks | {"environment": environment_summary()})
    return from_checkpoint


def set_up_run(config, experiment: str, resume: bool, show_config: bool = True):
    """A run's set-up: the process (device, seeds, exact float32 maths, subnormals), its folder
    (--out-dir, or a new results/<experiment>/<time> one), the config printed (unless
    ``show_config`` is False: for a run that completes its config from the data first).
    Returns (device, run folder); config.out_dir is set to the folder."""
    from metaplastic import runtime
    from metaplastic.cli import print_config, run_directory

    device = runtime.setup(config.device, config.seed, config.allow_tf32, config.keep_denormals)
    run_dir = run_directory(Path(config.out_dir) if config.out_dir else None, experiment, resume)
    config.out_dir = str(run_dir)
    if show_config:
        print_config(config)
    return device, run_dir


def start_run_directory(run_dir: Path, config, resume: bool, dry_run: bool) -> bool | None:
    """After the checks of a run: None for a dry run; otherwise open the run folder
    (:func:`open_run_dir`: every check, then config.json) and return whether to continue from
    its checkpoint."""
    if dry_run:
        print(f"dry run: flags and data OK; results would go to {run_dir}")
        return None
    return open_run_dir(run_dir, config, resume)
