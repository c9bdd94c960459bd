"""The paper's runs on a SLURM cluster, through submitit (an optional dependency).

Every (configuration, seed) is one task of a SLURM job array. A task runs its experiment's
main.py to the end, continuing the run in its folder when there is one (``--resume``), and
marks it finished; on pre-emption or time-out submitit calls :meth:`SeedRun.checkpoint`,
which requeues the same task, and the requeued task resumes from the run's last checkpoint.
submitit's ``local`` and ``debug`` executors run the same tasks on this machine (tests).
"""
from __future__ import annotations

import contextlib
import io
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.launch.local import LOG_FILE, Job, mark_finished, start

CLUSTERS = ("slurm", "local", "debug")

#: how long a task waits for its run folder's lock (an earlier attempt of the same task, killed
#: by a requeue, may still be writing its last lines)
LOCK_WAIT_SECONDS = 120


class SeedRun:
    """The callable submitit pickles and runs for one job (one seed of one configuration)."""

    def __init__(self, threads: int, data_root: str | None = None):
        self.threads, self.data_root = threads, data_root

    def __call__(self, job: Job) -> str:
        if job.state() == "done":
            return f"{job.name}: finished before"
        started_at = time.monotonic()
        started = start(job, self.threads, self.data_root)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while started is None and job.state() != "done" and time.monotonic() < deadline:
            # a requeued task can start while its earlier attempt's run is still stopping
            time.sleep(1.0)
            started = start(job, self.threads, self.data_root)
        if started is None and job.state() == "done":
            return f"{job.name}: finished by another process"
        if started is None:
            raise MetaplasticError(f"{job.name}: another process is running {job.run_dir}")
        proc, handle = started
        try:
            code = proc.wait()
            if code != 0:
                raise MetaplasticError(f"{job.name} failed (exit {code}); see "
                                       f"{job.run_dir / LOG_FILE}")
            mark_finished(job, time.monotonic() - started_at, "--resume" in proc.args)
        finally:
            handle.close()     # after finished.json: a waiting launch then sees the run done
        return f"{job.name}: finished"

    def checkpoint(self, job: Job):
        """Pre-empted or timed out: requeue the same job (it resumes from its checkpoint)."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, job)


@dataclass
class SlurmOptions:
    """What the job array asks of the cluster (``reproduce.py run --executor slurm``)."""

    partition: str | None = None
    time_min: int = 720
    cpus_per_task: int = 2
    gpus_per_node: int = 0
    mem_gb: int | None = None
    account: str | None = None
    qos: str | None = None
    array_parallelism: int = 64
    setup: Sequence[str] = field(default_factory=list)   # shell lines before the run

    def parameters(self, cluster: str) -> dict:
        params = {"timeout_min": self.time_min, "name": "metaplastic",
                  "cpus_per_task": self.cpus_per_task}
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        if cluster == "slurm":
            params |= {"slurm_array_parallelism": self.array_parallelism,
                       "gpus_per_node": self.gpus_per_node}
            params |= {f"slurm_{k}": v for k, v in (("partition", self.partition),
                                                     ("account", self.account),
                                                     ("qos", self.qos)) if v}
            if self.setup:
                params["slurm_setup"] = list(self.setup)
        return params


def _submitit():
    try:
        import submitit
    except ImportError:
        raise ConfigError("--executor slurm needs submitit: .venv/bin/pip install submitit "
                          "(or pip install -e '.[slurm]')") from None
    return submitit


def submit(jobs: Sequence[Job], folder: Path, options: SlurmOptions, cluster: str = "slurm",
           data_root: str | None = None, wait: bool = False, log=print) -> list:
    """Submit the jobs not finished yet as one array; with ``wait``, wait for their results."""
    submitit = _submitit()
    if cluster not in CLUSTERS:
        raise ConfigError(f"cluster must be one of {CLUSTERS}, got {cluster!r}")
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--executor slurm: sbatch is not on this machine's PATH (run "
                          "reproduce.py on the cluster's login node)")
    todo = [j for j in jobs if j.state() != "done"]
    if len(todo) < len(jobs):
        log(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished: skipped")
    folder = Path(folder)
    queued = still_queued(folder) if cluster == "slurm" else {}
    for job in [j for j in todo if str(j.run_dir) in queued]:
        log(f"{job.name}: already queued as job {queued[str(job.run_dir)]}: not submitted again")
    todo = [j for j in todo if str(j.run_dir) not in queued]
    if not todo:
        return []
    existed = _submission_files(folder)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    executor.update_parameters(**options.parameters(cluster))
    try:
        with contextlib.redirect_stderr(io.StringIO()):   # submitit echoes sbatch's stderr
            submitted = executor.map_array(SeedRun(options.cpus_per_task, data_root), todo)
    except (submitit.core.utils.FailedJobError, OSError) as exc:
        _remove_new_files(folder, existed)
        raise MetaplasticError(f"--executor {cluster}: the submission was refused "
                               f"({_decisive_line(str(exc))}); nothing was submitted and its job files "
                               "were removed") from None
    for job, sub in zip(todo, submitted):
        log(f"submitted {job.name} as {cluster} job {sub.job_id} -> {job.run_dir}")
    if cluster == "slurm":
        _record_queued(folder, queued | {str(j.run_dir): str(s.job_id)
                                         for j, s in zip(todo, submitted)})
    if wait:
        for sub in submitted:
            log(sub.result())
    return submitted


#: the jobs this launcher submitted, run folder -> SLURM job id (under the --out's slurm folder)
QUEUED_FILE = "queued.json"


def still_queued(folder: Path) -> dict[str, str]:
    """The recorded submissions whose job is still pending or running (squeue knows it): a
    second launch of the same figure does not submit them again. Array tasks are listed one per
    line (``squeue --array``); a job that squeue no longer shows has ended."""
    import json
    import subprocess

    try:
        recorded = json.loads((folder / QUEUED_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(recorded, dict) or not recorded:
        return {}
    arrays = sorted({str(job_id).split("_")[0] for job_id in recorded.values()})
    unknown = MetaplasticError("squeue failed: cannot tell which runs are still queued, so "
                               "nothing was submitted; try again")
    alive: set[str] = set()
    for array in arrays:   # one by one: squeue refuses a whole list with one ended job in it
        try:
            listed = subprocess.run(["squeue", "--noheader", "--array", "--format=%i",
                                     f"--jobs={array}"], capture_output=True, text=True,
                                    timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            raise MetaplasticError(f"{unknown} ({exc})") from None
        if listed.returncode == 0:
            alive |= set(listed.stdout.split())
        elif "invalid job id" not in listed.stderr.lower():   # else: the array has ended
            raise MetaplasticError(f"{unknown} ({_decisive_line(listed.stderr)})")
    return {run: job_id for run, job_id in recorded.items() if str(job_id) in alive}


def _record_queued(folder: Path, queued: dict[str, str]) -> None:
    import json

    from metaplastic.fileio import write_atomic

    write_atomic(folder / QUEUED_FILE, json.dumps(queued, indent=1, sort_keys=True) + "\n")


def _submission_files(folder: Path) -> set[Path]:
    """The files a submission writes in ``folder`` itself: submitit's pickled jobs
    (``<uuid>.pkl``) and its sbatch file (``.submission_file_<uuid>.sh``); never the task
    folders below, where running tasks of earlier arrays write their logs and results."""
    if not folder.is_dir():
        return set()
    return {p for p in folder.iterdir() if p.is_file() and not p.is_symlink()
            and (p.suffix == ".pkl" or p.name.startswith(".submission_file_"))}


def _remove_new_files(folder: Path, existed: set[Path]) -> None:
    """Remove what a failed submission wrote in ``folder`` (see :func:`_submission_files`),
    and the folder itself if that leaves it empty."""
    for path in _submission_files(folder) - existed:
        path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _decisive_line(text: str) -> str:
    """The most telling line of a failed sbatch or squeue: its 'fatal' or last 'error' line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for marker in ("fatal", "error"):
        picked = [ln for ln in lines if marker in ln.lower()]
        if picked:
            return picked[-1][:300]
    return lines[-1][:300] if lines else "no message"


def job_script(n_jobs: int, folder: Path, options: SlurmOptions) -> str:
    """The sbatch script submitit writes for an array of ``n_jobs`` (shown, not submitted)."""
    import shlex
    import sys

    _submitit()
    from submitit.slurm.slurm import _make_sbatch_string

    folder = Path(folder) / "%j"
    params = {k[len("slurm_"):] if k.startswith("slurm_") else k: v
              for k, v in options.parameters("slurm").items()}
    params["time"] = params.pop("timeout_min")
    params["job_name"] = params.pop("name")
    if "mem_gb" in params:
        params["mem"] = f"{params.pop('mem_gb')}GB"
    # submitit's own layout: the array's folder and the command it runs in every task
    folder = Path(str(folder).replace("%j", "%A_%a")).absolute()
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit",
                        shlex.quote(str(folder))])
    return _make_sbatch_string(command=command, folder=folder, map_count=n_jobs, **params)
