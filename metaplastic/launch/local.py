"""Launching the paper's runs: one job per (configuration, seed), in folders derived from both.

A job's folder is ``OUT/<experiment>/<run id>/seed-<k>`` (:func:`metaplastic.paper.run_id`:
the configuration, never the clock). Its state is read from the folder: ``finished.json``
(done: skipped), a run started (config.json or checkpoint: continued with ``--resume``), or
nothing (started afresh). The local executor runs ``--jobs`` at once, each with its share of
the CPU threads; a folder being run is locked (``.lock``) so that two launches never write
into one run. The SLURM executor submits the same jobs through submitit.
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

from metaplastic import paper
from metaplastic.data.root import PACKAGE_PARENT
from metaplastic.errors import ConfigError
from metaplastic.fileio import open_append
from metaplastic.method import published
from metaplastic.runs import records, rundir, runlock
from metaplastic.runs.checkpoint import CHECKPOINT_FILE
from metaplastic.runs.folders import FINISHED_FILE, SEED_PREFIX

LOG_FILE = "log.txt"
LOCK_FILE = runlock.LOCK_FILE
REPO_ROOT = PACKAGE_PARENT  # where the experiment folders are


@dataclass(frozen=True)
class Job:
    """One seed of one configuration."""

    figure: str
    run: paper.PaperRun
    seed: int
    scale: str
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{self.figure}/{self.run.name}/{SEED_PREFIX}{self.seed}"

    def state(self) -> str:
        """'done', 'started' (to resume) or 'new'."""
        if (self.run_dir / FINISHED_FILE).is_file():
            return "done"
        if (self.run_dir / "config.json").is_file() or (self.run_dir / "checkpoint.pt").is_file():
            return "started"
        return "new"

    def argv(self, python: str = sys.executable, data_root: str | None = None,
             resume: bool | None = None) -> list[str]:
        """The main.py command line; ``--resume`` when the folder holds a started run (or as
        ``resume`` says)."""
        args = [python, str(REPO_ROOT / self.run.experiment / "main.py"),
                *paper.scaled(self.run, self.scale), "--seed", str(self.seed),
                "--out-dir", str(self.run_dir), "--no-progress"]
        if data_root:
            args += ["--data-root", str(data_root)]
        if self.state() == "started" if resume is None else resume:
            args.append("--resume")
        return args

    def expected_seconds(self) -> float | None:
        """The figure data's rough time for the whole run (:func:`paper.expected_cpu_seconds`)."""
        return paper.expected_cpu_seconds(self.run, self.scale)

    def seconds_left(self) -> float | None:
        """:meth:`expected_seconds` times the share of the run's CSV rows still to write (a run
        to resume is partly done; a folder without a checkpoint or a readable configuration
        counts as new: its rows are set aside and the run starts again)."""
        whole = self.expected_seconds()
        if whole is None or not (self.run_dir / CHECKPOINT_FILE).is_file():
            return whole
        try:
            rows = rundir.expected_rows(records.load_config(self.run_dir))
        except records.RecordError:
            rows = None
        if not rows:
            return whole
        done = min(rundir.data_rows(self.run_dir / "metrics.csv"), rows)
        return whole * (rows - done) / rows


def plan(figure_ids: Sequence[str], seeds: int | None, scale: str, out: Path,
         only: Sequence[str] = (), version: str = published.DEFAULT_VERSION) -> list[Job]:
    """The jobs of the figures (``all`` = every figure), seeds 0..N-1 (default: the figure's),
    under the published ``version`` (:func:`metaplastic.paper.in_version`), one per distinct
    folder (a configuration shared by two figures runs once)."""
    out = Path(out).absolute()   # main.py runs from the repository root: one folder for both
    ids = [f.id for f in paper.FIGURES] if list(figure_ids) == ["all"] else list(figure_ids)
    unknown = [i for i in ids if i not in {f.id for f in paper.FIGURES}]
    if unknown:
        raise ConfigError(f"unknown figure {', '.join(unknown)}; `reproduce.py list` shows them: "
                          + ", ".join(f.id for f in paper.FIGURES))
    jobs, seen = [], set()
    for fid in ids:
        fig = paper.in_version(paper.figure(fid), version)
        runs = fig.runs
        if only:
            missing = [n for n in only if n not in {r.name for r in fig.runs}]
            if missing and len(ids) == 1:
                raise ConfigError(f"{fid} has no run {', '.join(missing)} (runs: "
                                  + ", ".join(r.name for r in fig.runs) + ")")
            runs = tuple(r for r in fig.runs if r.name in only)
        for run in runs:
            for seed in range(seeds if seeds is not None else fig.seeds):
                run_dir = paper.configuration_folder(out, run, scale, seed)
                if run_dir not in seen:
                    seen.add(run_dir)
                    jobs.append(Job(fig.id, run, seed, scale, run_dir))
    if only and not jobs:
        raise ConfigError(f"--only {' '.join(only)}: no such run in {', '.join(ids)}; "
                          "`reproduce.py list` names them")
    return jobs


def mark_finished(job: Job, seconds: float, resumed: bool = False) -> None:
    """Write ``finished.json``: when, the wall ``seconds`` of the launch that finished the run
    and whether that launch ``resumed`` an earlier one (then it is the run's last part only)."""
    from metaplastic.fileio import write_atomic

    write_atomic(job.run_dir / FINISHED_FILE, json.dumps(
        {"finished": datetime.now().isoformat(timespec="seconds"), "seconds": round(seconds, 1),
         "resumed": resumed,
         "figure": job.figure, "run": job.run.name, "seed": job.seed, "scale": job.scale,
         # the run's own command (a resumed launch's --resume is recorded by "resumed")
         "command": shlex.join(job.argv(python="python", resume=False))}, indent=1) + "\n")


def _lock(run_dir: Path):
    """The run folder's lock (:func:`metaplastic.runs.runlock.try_acquire`), or None if another
    process holds it."""
    return runlock.try_acquire(run_dir, command="reproduce.py (launching main.py)")


def is_running(run_dir: Path) -> bool:
    """Whether some process holds the run folder's lock now (a launch or a main.py runs it)."""
    return runlock.is_held(run_dir)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when the launcher dies (even by SIGKILL), so no orphan
    keeps writing into a run folder that a later launch continues."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def child_environment(threads: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(job: Job, threads: int, data_root: str | None = None):
    """Start ``job``'s main.py (``threads`` CPU threads, output appended to its log.txt) while
    holding its folder's lock; returns (process, lock handle), or None if the folder is busy or
    the run was finished by the process that held it (its state is read under the lock).
    The child keeps the lock while it runs and dies with the process that started it."""
    handle = _lock(job.run_dir)
    if handle is None:
        return None
    if job.state() == "done":
        handle.close()
        return None
    argv = job.argv(data_root=data_root)
    with open_append(job.run_dir / LOG_FILE) as log_file:
        log_file.write(f"\n# {datetime.now().isoformat(timespec='seconds')} {shlex.join(argv)}\n")
        log_file.flush()
        env = child_environment(threads) | {runlock.LOCK_FD_ENV: str(handle.fileno())}
        proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, env=env,
                                cwd=REPO_ROOT, pass_fds=(handle.fileno(),),
                                preexec_fn=_die_with_parent)
    return proc, handle


class LocalExecutor:
    """Runs jobs as subprocesses, ``jobs`` at a time, each with ``threads`` CPU threads."""

    def __init__(self, jobs: int, threads: int, data_root: str | None = None,
                 log: Callable[[str], None] = print, status_every: float = 60.0):
        self.jobs, self.threads, self.data_root = jobs, threads, data_root
        self.log, self.status_every = log, status_every

    def run(self, jobs: Sequence[Job]) -> list[Job]:
        """Run what is not done; returns the jobs that failed. A job whose folder another
        process holds (another launch, or the runs of a launch just killed, still exiting) is
        waited for: started when the folder is free, counted as done if that process finished
        it."""
        todo = [j for j in jobs if j.state() != "done"]
        done_before = len(jobs) - len(todo)
        if done_before:
            self.log(f"{done_before} of {len(jobs)} runs already finished: skipped")
        pending, running, failed, finished = list(todo), {}, [], []
        busy: set[Job] = set()
        last_status, first = time.monotonic(), True
        try:
            while pending or running:
                for job in list(pending):
                    if len(running) >= self.jobs:
                        break
                    if job.state() == "done":      # finished by the process that held it
                        pending.remove(job)
                        done_before += 1
                        self.log(f"done     {job.name} by another launch")
                        continue
                    started = self._start(job, quiet=job in busy)
                    if started is None:
                        busy.add(job)              # tried again at the next turn
                        continue
                    pending.remove(job)
                    running[job] = started
                if first:
                    self._status(len(jobs), done_before, running, pending, finished)
                    first = False
                for job, (proc, t0, handle) in list(running.items()):
                    code = proc.poll()
                    if code is None:
                        continue
                    del running[job]
                    seconds = time.monotonic() - t0
                    if code == 0:
                        resumed = "--resume" in proc.args
                        mark_finished(job, seconds, resumed)   # before the folder is let go
                        handle.close()
                        finished.append((seconds, job.expected_seconds(), resumed))
                        self.log(f"done     {job.name} in {paper.format_duration(seconds)}")
                    else:
                        handle.close()
                        failed.append(job)
                        self.log(f"FAILED   {job.name} (exit {code}); its log: "
                                 f"{job.run_dir / LOG_FILE}\n" + _tail(job.run_dir / LOG_FILE))
                    self._status(len(jobs), done_before + len(finished), running, pending,
                                 finished)
                    last_status = time.monotonic()
                if running and time.monotonic() - last_status >= self.status_every:
                    self._status(len(jobs), done_before + len(finished), running, pending,
                                 finished, details=True)
                    last_status = time.monotonic()
                time.sleep(0.2)
        except KeyboardInterrupt:
            for proc, _, _ in running.values():
                proc.terminate()
            for proc, _, _ in running.values():
                proc.wait()
            self.log("interrupted: rerun the same command to continue (finished runs are "
                     "skipped, the others resume from their checkpoints)")
            raise
        return failed

    def _start(self, job: Job, quiet: bool = False):
        started = start(job, self.threads, self.data_root)
        if started is None:
            if not quiet:
                self.log(f"busy     {job.name}: another process holds {job.run_dir}; waiting "
                         "for it")
            return None
        proc, handle = started
        verb = "resume  " if "--resume" in proc.args else "start   "
        self.log(f"{verb} {job.name} -> {job.run_dir}")
        return proc, time.monotonic(), handle

    def _status(self, total, done, running, pending, finished, details=False) -> None:
        eta = time_left(list(pending) + list(running), finished, self.jobs)
        eta_text = f", about {paper.format_duration(eta)} left" if eta is not None else ""
        self.log(f"[{done}/{total} done, {len(running)} running, {len(pending)} waiting"
                 f"{eta_text}]")
        if details:
            for job in running:
                self.log(f"  {job.name}: {_last_line(job.run_dir / LOG_FILE)}")


def time_left(left: Sequence[Job], finished: Sequence[tuple], jobs: int) -> float | None:
    """Seconds until the ``left`` jobs are done, ``jobs`` at a time: their expected times left
    (figure data, less what a started run has done) scaled by measured / expected of the runs
    this launch ran from the start; without expected times, the mean measured time per run.
    ``finished``: (seconds, expected seconds, resumed) of each finished run; a resumed run's
    time says nothing about a whole run."""
    if not left:
        return None
    whole = [(seconds, expected) for seconds, expected, resumed in finished if not resumed]
    expected = [j.seconds_left() for j in left]
    if None not in expected:
        known = [(s, e) for s, e in whole if e]
        ratio = sum(s for s, _ in known) / sum(e for _, e in known) if known else 1.0
        return ratio * sum(expected) / jobs
    if whole:
        return sum(s for s, _ in whole) / len(whole) * len(left) / jobs
    return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])


def _last_line(path: Path) -> str:
    try:
        lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return lines[-1][-160:] if lines else ""
