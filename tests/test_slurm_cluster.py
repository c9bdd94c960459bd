"""`reproduce.py run --executor slurm` against a real single-node SLURM cluster (Debian's
slurm-wlm and munge, started by scripts/local_slurm.sh in a temporary folder and stopped by
process id afterwards; docs/SLURM.md). Selected with ``-m slurm``; skipped, with the reason,
where slurm-wlm is not installed or the tests do not run as root, except under CI (``CI=true``),
where .ci/run installs it and a skip would hide a broken cluster: there they fail.

What is checked: an array of a smoke figure over two seeds ends with every run finished and
CSVs identical to the local executor's; the thread count of --cpus-per-task reaches the run; a
run requeued while it trains (``scontrol requeue``) and one sent submitit's time-limit signal
(USR2) resume from their checkpoints to the uninterrupted CSV; a second launch while the array
is queued submits nothing again; a submission the controller refuses is one line and leaves no
job files; ``summarize`` gives the same tables from both outputs."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA_ROOT, REPO, needs_data

pytestmark = [pytest.mark.slurm, pytest.mark.slow, needs_data("MNIST", "FashionMNIST")]

SCRIPT = REPO / "scripts" / "local_slurm.sh"
SMOKE = ["fig4ab", "--scale", "smoke", "--data-root", str(DATA_ROOT)]


def _unavailable() -> str | None:
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        return "slurm-wlm and munge are not installed (scripts/local_slurm.sh install, as root)"
    if os.geteuid() != 0:
        return "the local SLURM cluster runs as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node cluster: the environment its clients need (SLURM_CONF)."""
    reason = _unavailable()
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the SLURM tests: {reason}")
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    ports = {_free_port()}
    while len(ports) < 2:
        ports.add(_free_port())
    ctld_port, slurmd_port = sorted(ports)
    env = dict(os.environ, METAPLASTIC_SLURMCTLD_PORT=str(ctld_port),
               METAPLASTIC_SLURMD_PORT=str(slurmd_port))
    try:
        started = subprocess.run(["bash", str(SCRIPT), "start", str(folder)],
                                 capture_output=True, text=True, env=env, timeout=120)
        assert started.returncode == 0, started.stderr
        pids = [int((folder / name).read_text()) for name in
                ("slurmctld.pid", "slurmd.pid", "munge/munged.pid")]
        yield dict(os.environ, SLURM_CONF=str(folder / "slurm.conf"), PYTHONPATH=str(REPO))
    finally:
        # stop cancels the cluster's jobs first, then the three daemons by process id
        subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True,
                       env=env, timeout=120)
    left = [pid for pid in pids if _alive(pid)]
    assert not left, f"SLURM or munge processes left running: {left}"


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a container's PID 1 may not reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def reproduce(env, *args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "reproduce.py"), *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def squeue(env, job: str) -> list[str]:
    listed = subprocess.run(["squeue", "--noheader", "--array", "--format=%i %T",
                             f"--jobs={job.split('_')[0]}"], capture_output=True, text=True,
                            env=env, timeout=60)
    return [line for line in listed.stdout.splitlines() if line.split()[0].startswith(job)]


def wait_until_gone(env, job: str, timeout: float = 240) -> None:
    """Wait until SLURM no longer lists ``job`` (or every task of the array ``job``)."""
    deadline = time.time() + timeout
    while squeue(env, job):
        assert time.time() < deadline, f"job {job} still queued: {squeue(env, job)}"
        time.sleep(1)


def submitted_ids(stdout: str) -> dict[str, str]:
    """run folder -> job id, from the launcher's 'submitted NAME as slurm job ID -> DIR' lines."""
    ids = {}
    for line in stdout.splitlines():
        if line.startswith("submitted "):
            ids[line.split(" -> ")[1]] = line.split(" as slurm job ")[1].split()[0]
    return ids


def csvs(out: Path) -> dict[str, str]:
    return {str(p.parent.relative_to(out)): p.read_text()
            for p in sorted(out.rglob("metrics.csv"))}


@pytest.fixture(scope="module")
def local_out(tmp_path_factory):
    """The same runs with the local executor, one thread each (the reference CSVs)."""
    out = tmp_path_factory.mktemp("local") / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = reproduce(env, "run", *SMOKE, "--seeds", "2", "--jobs", "2", "--threads", "1",
                     "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def test_an_array_equals_the_local_executor_and_is_not_submitted_twice(cluster, local_out,
                                                                       tmp_path):
    out = tmp_path / "out"
    first = reproduce(cluster, "run", *SMOKE, "--seeds", "2", "--executor", "slurm",
                      "--cpus-per-task", "1", "--time", "10", "--out", str(out))
    assert first.returncode == 0, first.stderr
    ids = submitted_ids(first.stdout)
    assert len(ids) == 4
    # a second launch while the array is queued or running submits nothing
    second = reproduce(cluster, "run", *SMOKE, "--seeds", "2", "--executor", "slurm",
                       "--cpus-per-task", "1", "--time", "10", "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert not submitted_ids(second.stdout)
    assert second.stdout.count("not submitted again") + second.stdout.count(
        "already finished") >= 1
    wait_until_gone(cluster, next(iter(ids.values())).split("_")[0])
    for run_dir in ids:
        assert (Path(run_dir) / "finished.json").is_file(), (Path(run_dir) / "log.txt").read_text()
        launches = json.loads((Path(run_dir) / "config.json").read_text())["launches"]
        assert [launch["threads"] for launch in launches] == [1]     # --cpus-per-task 1
    assert csvs(out) == csvs(local_out)
    # summaries of both outputs: the same tables
    tables = []
    for folder in (out, local_out):
        summary = reproduce(cluster, "summarize", str(folder), "fig4ab", "--to",
                            str(tmp_path / f"summary-{folder.parent.name}"))
        assert summary.returncode == 0, summary.stderr
        tables.append((tmp_path / f"summary-{folder.parent.name}" / "fig4ab_smoke.md").read_text())
    assert tables[0] == tables[1]


@pytest.mark.parametrize("interruption", ["scontrol requeue", "time-limit signal USR2"])
def test_an_interrupted_task_is_requeued_and_resumes_to_the_uninterrupted_csv(
        cluster, local_out, tmp_path, interruption):
    out = tmp_path / "out"
    launched = reproduce(cluster, "run", *SMOKE, "--seeds", "1", "--only", "m0.0",
                         "--executor", "slurm", "--cpus-per-task", "1", "--time", "10",
                         "--out", str(out))
    assert launched.returncode == 0, launched.stderr
    (run_dir, job), = submitted_ids(launched.stdout).items()
    metrics = Path(run_dir) / "metrics.csv"
    checkpoint = Path(run_dir) / "checkpoint.pt"
    deadline = time.time() + 180
    while not (checkpoint.is_file() and len(metrics.read_text().splitlines()) >= 2):
        assert time.time() < deadline and squeue(cluster, job), "no first checkpoint"
        time.sleep(0.1)
    if interruption == "scontrol requeue":
        command = ["scontrol", "requeue", job]
    else:   # what SLURM sends before a time limit (submitit's --signal=USR2@90)
        command = ["scancel", "--signal=USR2", job]
    subprocess.run(command, check=True, env=cluster, timeout=60)
    # SLURM may hold a requeued job for about two minutes (its BeginTime): whenever the job is
    # pending, start it now; wait until it has left the queue
    deadline = time.time() + 240
    while listed := squeue(cluster, job):
        assert time.time() < deadline, f"job {job} still queued: {listed}"
        if "PENDING" in " ".join(listed):
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"],
                           capture_output=True, env=cluster, timeout=60)
        time.sleep(0.5)
    assert (Path(run_dir) / "finished.json").is_file(), (Path(run_dir) / "log.txt").read_text()
    launches = json.loads((Path(run_dir) / "config.json").read_text())["launches"]
    assert len(launches) == 2                         # the first task and its requeued one
    reference = local_out / Path(run_dir).relative_to(out) / "metrics.csv"
    assert metrics.read_text() == reference.read_text()


def test_a_submission_the_controller_refuses_is_one_line_and_leaves_no_job_files(cluster,
                                                                                  tmp_path):
    out = tmp_path / "out"
    refused = reproduce(cluster, "run", *SMOKE, "--seeds", "1", "--executor", "slurm",
                        "--partition", "no-such-partition", "--out", str(out))
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "the submission was refused" in lines[0]
    assert "invalid partition" in lines[0].lower()
    assert not (out / "slurm").exists()
