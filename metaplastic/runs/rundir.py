"""A run folder's life: its lock, every check before anything is written, then config.json.

:func:`open_run_dir` takes the folder's lock (:mod:`metaplastic.runs.runlock`: one writer per run
folder, whoever started it), runs the checks and writes config.json only after all pass:

- a new run refuses a folder that already holds one (a config.json, readable or not, a
  checkpoint or metrics rows);
- every file of the run must be a regular file of the folder, never a symbolic link;
- ``--resume`` takes the checkpoint as the source of truth: the configuration it holds (the
  config.json of the run, embedded in every checkpoint) is compared with the flags, also where
  config.json is missing, empty or unreadable, and a config.json that disagrees with its
  checkpoint is refused; fields that change results must match (naming them);
- rows without a checkpoint are never deleted: ``--resume`` of a folder whose metrics.csv has
  rows but whose checkpoint is missing is refused (a run killed in its first epoch, with a
  header only, starts again from the beginning).
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.method import published
from metaplastic.runs import faults, records, runlock
from metaplastic.runs.checkpoint import CHECKPOINT_FILE, check_run_state, load_checkpoint
from metaplastic.runs.folders import chosen_run_folder
from metaplastic.runs.run_config import print_config

#: config.json entries written beside the config's own fields (never compared on --resume)
RECORD_KEYS = frozenset({"environment", "result_neutral", "per_seed", "launches"})
#: what each launch of a run records in config.json's "launches" (the arithmetic it ran with)
LAUNCH_KEYS = ("started", "implementation", "device", "threads", "cuda", "cpu", "platform",
               "command")


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


#: the files a run folder may hold (all must be regular files, never symbolic links)
RUN_FILES = (records.METRICS_FILE, records.CONFIG_FILE, CHECKPOINT_FILE,
             CHECKPOINT_FILE + ".sha256", records.HIDDEN_HIST_FILE, records.SIGN_SWITCH_FILE,
             "model_final.pt", "log.txt", "finished.json", runlock.LOCK_FILE)

#: the folder locks this process holds (kept for the process's life: a run resumed in the same
#: process, as tests do, keeps its lock)
_HELD: dict[Path, runlock.RunLock] = {}


def remove_dead_temporaries(run_dir: Path) -> None:
    """Delete the temporary files of atomic writes (``.<run file>.<random>.tmp``, see
    :func:`metaplastic.fileio.write_atomic`) that a killed writer left; called with the folder's
    lock held, so no living writer owns them."""
    for name in RUN_FILES:
        for leftover in run_dir.glob(f".{name}.*.tmp"):
            if leftover.is_file() and not leftover.is_symlink():
                leftover.unlink()


def lock_run_dir(run_dir: Path) -> None:
    """Hold ``run_dir``'s lock for the rest of this process, or refuse (RunFolderBusy)."""
    key = Path(run_dir).resolve()
    if key not in _HELD:
        _HELD[key] = runlock.acquire(run_dir)


def check_run_files(run_dir: Path) -> None:
    """Refuse a run folder whose files are symbolic links or not regular files."""
    for name in RUN_FILES:
        path = Path(run_dir) / name
        if path.is_symlink():
            raise runlock.UnsafeRunFile(f"{path} is a symbolic link; a run folder's files must "
                                        "be its own (copy the file in, or remove the link)")
        if path.exists() and not path.is_file():
            raise runlock.UnsafeRunFile(f"{path} is not a regular file")


def data_rows(path: Path) -> int:
    """The number of rows after the header of a CSV (0 for a missing or empty file)."""
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        lines = [line for line in f.read().split(b"\n") if line.strip()]
    return max(len(lines) - 1, 0)


def expected_rows(config: dict) -> int | None:
    """The rows of a finished run's metrics.csv, from its configuration (None: not known)."""
    experiment, epochs = config.get("experiment"), config.get("epochs_per_task")
    if not isinstance(epochs, int):
        return None
    if experiment in ("continual_learning", "cifar_features"):
        tasks = 0
        for name in config.get("task_sequence", []):
            match = re.fullmatch(r"cifar100-(\d+)", str(name))
            tasks += int(match.group(1)) if match else 1
        return epochs * (1 if config.get("interleaved") else tasks)
    if experiment == "mnist_usps":
        return epochs * len(config.get("task_sequence", [])) + 1   # + the untrained row
    if experiment in ("stream_fmnist", "stream_cifar10"):
        return epochs * int(config.get("nb_subset", 1))
    return None


def check_rows(path: Path, rows: int | None, checkpoint_every: int) -> None:
    """A resumed CSV must hold the checkpoint's ``rows``, and at most the rows of the epochs run
    after it (``checkpoint_every`` - 1, plus one written before a crash cut its checkpoint)."""
    if rows is None:
        return
    found = data_rows(path)
    if found < rows or found > rows + checkpoint_every:
        raise MetaplasticError(
            f"--resume: {path} has {found} rows but its checkpoint says {rows} were written"
            + (" (rows were deleted or the file replaced)" if found < rows else
               f" and at most {checkpoint_every} more can follow it")
            + "; nothing was changed")


def open_run_dir(run_dir: Path, config, resume: bool) -> bool:
    """Lock, check, then create the folder and write config.json. Returns whether to continue
    from a checkpoint (False: start from the beginning, also for a ``--resume`` of a run killed
    before its first row)."""
    from metaplastic.runs.provenance import environment_summary
    from metaplastic.runs.run_config import config_dict, config_marks

    marks = config_marks(config)
    defaults = field_defaults(config)
    config = config_dict(config)
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT_FILE
    metrics = run_dir / records.METRICS_FILE
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out-dir {run_dir} is a file, not a folder")
    lock_run_dir(run_dir)
    check_run_files(run_dir)
    config_file = run_dir / records.CONFIG_FILE
    rows = data_rows(metrics)
    started = config_file.exists() or checkpoint.is_file() or rows > 0
    if not resume and started:
        raise MetaplasticError(f"{run_dir} already holds a run; pass --resume to continue it, or "
                               "choose another --out-dir")
    if resume and not started:
        raise MetaplasticError(f"--resume: no run in {run_dir} (no config.json, no checkpoint)")
    from_checkpoint = resume and checkpoint.is_file()
    # verified (digest, entries) before anything is written
    state = check_run_state(load_checkpoint(checkpoint), checkpoint) if from_checkpoint else None
    every = int(config.get("checkpoint_every") or 1)
    if resume and not from_checkpoint and rows > every + 1:
        # more rows than can come before a first checkpoint: the checkpoint was lost
        raise MetaplasticError(
            f"--resume: {metrics} has {rows} rows but {run_dir} has no {CHECKPOINT_FILE} to "
            "continue them from; nothing was changed. To start this run over, delete "
            f"{metrics.name}, config.json and hidden_weight_hist.csv from the folder (or "
            "choose another --out-dir)")
    if state is not None:
        held_every = int(((state.get("config") or {}).get("checkpoint_every")) or 1)
        check_rows(metrics, state.get("position", {}).get("rows"), max(every, held_every))
    saved: dict = {}
    if resume:
        saved = _saved_config(config_file, state)
        if from_checkpoint and not saved:
            raise ConfigError(f"--resume: {run_dir} has neither a readable config.json nor a "
                              "checkpoint holding the configuration; the flags cannot be "
                              "checked against the run, so it is not resumed (nothing was "
                              "changed)")
        if saved:
            defaults |= published.older_run_defaults(saved)
            differing = differing_fields(saved, config, set(marks["result_neutral"]), defaults)
            if differing:
                details = "; ".join(f"{k}: {saved.get(k, defaults.get(k))!r} -> "
                                    f"{config.get(k)!r}" for k in differing)
                raise ConfigError(f"--resume with other settings than the run in {run_dir} "
                                  f"({details}); resume with the original flags or start a new "
                                  "--out-dir. Nothing was changed.")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MetaplasticError(f"cannot create the run folder {run_dir}: {exc.strerror or exc}") from None
    remove_dead_temporaries(run_dir)
    if resume and not from_checkpoint:
        # stopped before its first checkpoint: its rows (if any) are set aside, never deleted
        from datetime import datetime

        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        kept = []
        for leftover in (metrics, run_dir / records.HIDDEN_HIST_FILE):
            if leftover.is_file():
                target = leftover.with_name(f"{leftover.name}.before-first-checkpoint-{stamp}")
                leftover.rename(target)
                kept.append(target.name)
        print(f"--resume: {run_dir} has no checkpoint yet (the run stopped before its first "
              "one); starting it from the beginning"
              + (f" (the earlier rows are kept as {', '.join(kept)})" if kept else ""))
    environment = environment_summary()
    earlier = launches_of(saved)
    if from_checkpoint and earlier and not config.get("mixed_resume"):
        check_same_arithmetic(earlier[-1], environment)
    launches = (earlier if from_checkpoint else []) + [
        {k: environment.get(k) for k in LAUNCH_KEYS}]
    records.save_config(run_dir, config | marks | {"environment": environment,
                                                   "launches": launches})
    return from_checkpoint


def launches_of(config: dict) -> list[dict]:
    """config.json's record of each launch (:data:`LAUNCH_KEYS`) since the run last started
    afresh; a run saved before "launches" existed: its environment's, as one launch."""
    if config.get("launches"):
        return list(config["launches"])
    environment = config.get("environment")
    return [{k: environment.get(k) for k in LAUNCH_KEYS}] if isinstance(environment, dict) else []


def launch_device(launch: dict) -> str:
    """'cuda' or 'cpu': where a launch ran (recorded before "device" existed: from the machine,
    a GPU there counted as used)."""
    return launch.get("device") or ("cuda" if launch.get("cuda") else "cpu")


def check_same_arithmetic(earlier: dict, now: dict) -> None:
    """A resumed run continues an uninterrupted run's CSV only with the same implementation
    (--impl's choice) and, on a CPU, the same thread count (float sums depend on it)."""
    different = [k for k in ("implementation", "threads")
                 if earlier.get(k) is not None and earlier.get(k) != now.get(k)
                 and not (k == "threads"
                          and launch_device(now) == launch_device(earlier) == "cuda")]
    if earlier.get("device") and now.get("device") and earlier["device"] != now["device"]:
        different.insert(0, "device")   # GPU and CPU sums differ whatever the threads
    if different:
        raise ConfigError(
            "--resume: this launch runs with "
            + "; ".join(f"{k} {now.get(k)!r}" for k in different) + ", the run's earlier "
            "launch with " + "; ".join(f"{k} {earlier.get(k)!r}" for k in different)
            + ": the CSV would equal no uninterrupted run. Resume with the same --impl and "
            "thread count (OMP_NUM_THREADS, reproduce.py --threads), or pass --mixed-resume "
            "to continue anyway (config.json then lists both launches); nothing was changed")


def _saved_config(config_file: Path, state: dict | None) -> dict:
    """The configuration a resumed run was started with: the checkpoint's copy where there is
    one (config.json must then agree with it in every field that changes results), else
    config.json's."""
    try:
        on_disk = records.load_config(config_file.parent)
    except records.RecordError as exc:
        if state is None or not state.get("config"):
            raise ConfigError(f"--resume: {exc}; without a checkpoint holding the "
                              "configuration the run cannot be checked") from None
        print(f"note: {exc}; the configuration is taken from the checkpoint")
        on_disk = {}
    held = (state or {}).get("config") or {}
    if held and on_disk:
        neutral = set(held.get("result_neutral", []))
        differing = differing_fields(held, on_disk, neutral)
        if differing:
            raise ConfigError(
                f"--resume: {config_file} disagrees with the checkpoint beside it in "
                f"{', '.join(differing)} (a config.json copied or edited from another run?); "
                "nothing was changed")
    return held or on_disk


def set_up_run(config, experiment: str, resume: bool, show_config: bool = True):
    """A run's set-up: the process (device, seeds, exact float32 maths, subnormals), its folder
    (--out-dir, or a new results/<experiment>/<time> one), the config printed (unless
    ``show_config`` is False: for a run that completes its config from the data first).
    Returns (device, run folder); config.out_dir is set to the folder."""
    from metaplastic.method import runtime

    device = runtime.setup(config.device, config.seed, config.allow_tf32, config.keep_denormals)
    run_dir = chosen_run_folder(config.out_dir or None, experiment, resume)
    config.out_dir = str(run_dir)
    faults.RUN_FOLDER.append(run_dir)
    if show_config:
        print_config(config)
    return device, run_dir


def start_run_folder(run_dir: Path, config, resume: bool, dry_run: bool) -> bool | None:
    """After the checks of a run: None for a dry run; otherwise open the run folder
    (:func:`open_run_dir`: every check, then config.json) and return whether to continue from
    its checkpoint."""
    if dry_run:
        print(f"dry run: flags and data OK; results would go to {run_dir}")
        return None
    return open_run_dir(run_dir, config, resume)
