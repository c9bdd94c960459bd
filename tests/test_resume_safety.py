"""Runs that cannot be corrupted, as a user meets them (continual and stream experiments, run as
subprocesses): SIGKILL mid-epoch then --resume gives the CSV of an uninterrupted run; a run
killed in its first epoch is completed by --resume; --resume with another --lr is refused and
changes nothing; a checkpoint that would run code, or with changed bytes, is refused; an
unwritable --out-dir and a network too big for memory end with a message, not a traceback."""
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("METAPLASTIC_DATA", REPO / "data"))
HAVE_DATA = all((DATA_ROOT / d / "raw" / "train-images-idx3-ubyte").is_file()
                for d in ("MNIST", "FashionMNIST"))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not HAVE_DATA, reason="run `python -m metaplastic.data_prep` first")]

EXPERIMENTS = {
    "continual": ["continual_learning/main.py", "--hidden-layers", "16", "--epochs-per-task", "2",
                  "--task-sequence", "pMNIST", "pMNIST", "--meta", "1.35", "--seed", "4"],
    "stream": ["stream_fmnist/main.py", "--hidden-layers", "16", "--epochs-per-task", "1",
               "--nb-subset", "4", "--meta", "1.35", "--seed", "4"],
}
ROWS = {"continual": 4, "stream": 4}


def command(kind, out, *extra):
    script, *args = EXPERIMENTS[kind]
    return [sys.executable, str(REPO / script), *args, "--data-root", str(DATA_ROOT),
            "--out-dir", str(out), "--no-progress", *extra]


def run(kind, out, *extra):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run(command(kind, out, *extra), capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=600)


def data_rows(out):
    metrics = out / "metrics.csv"
    return max(0, len(metrics.read_text().splitlines()) - 1) if metrics.is_file() else 0


def kill_when(kind, out, ready):
    """Start a run and SIGKILL it as soon as ``ready(out)`` holds."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command(kind, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    deadline = time.time() + 300
    try:
        while not ready(out):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    runs = {}
    for kind in EXPERIMENTS:
        out = tmp_path_factory.mktemp("full") / kind
        result = run(kind, out)
        assert result.returncode == 0, result.stderr
        assert data_rows(out) == ROWS[kind]
        runs[kind] = out
    return runs


def same_metrics(a, b):
    return (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()


@pytest.mark.parametrize("kind", list(EXPERIMENTS))
def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_csv(kind, uninterrupted, tmp_path):
    out = tmp_path / "killed"
    kill_when(kind, out, lambda o: data_rows(o) >= 2)   # killed during the third epoch
    assert data_rows(out) < ROWS[kind]
    result = run(kind, out, "--resume")
    assert result.returncode == 0, result.stderr
    assert same_metrics(out, uninterrupted[kind])


@pytest.mark.parametrize("kind", list(EXPERIMENTS))
def test_run_killed_in_its_first_epoch_is_completed_by_resume(kind, uninterrupted, tmp_path):
    out = tmp_path / "early"
    kill_when(kind, out, lambda o: (o / "config.json").is_file())
    assert not (out / "checkpoint.pt").exists()
    again = run(kind, out)   # a plain rerun is refused: the folder holds a run
    assert again.returncode == 2 and "--resume" in again.stderr
    result = run(kind, out, "--resume")
    assert result.returncode == 0, result.stderr
    assert "starting it from the beginning" in result.stdout
    assert same_metrics(out, uninterrupted[kind])


@pytest.mark.parametrize("kind", list(EXPERIMENTS))
def test_resume_with_another_lr_is_refused_and_changes_nothing(kind, uninterrupted, tmp_path):
    out = uninterrupted[kind]
    before = {name: (out / name).read_bytes() for name in ("config.json", "metrics.csv")}
    result = run(kind, out, "--resume", "--lr", "0.01")
    assert result.returncode == 2
    assert "other settings" in result.stderr and "lr: 0.005 -> 0.01" in result.stderr
    assert "Traceback" not in result.stderr
    assert {name: (out / name).read_bytes() for name in before} == before


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", list(EXPERIMENTS))
def test_tampered_checkpoints_are_refused(kind, uninterrupted, tmp_path):
    import shutil

    from metaplastic.errors import MetaplasticError
    from metaplastic.fileio import sha256_file
    from metaplastic.runs.checkpoint import load_checkpoint

    out = tmp_path / "copy"
    shutil.copytree(uninterrupted[kind], out)
    checkpoint, sidecar = out / "checkpoint.pt", out / "checkpoint.pt.sha256"
    original = checkpoint.read_bytes()
    # four bytes changed: refused by the recorded SHA-256
    changed = bytearray(original)
    changed[len(changed) // 2:len(changed) // 2 + 4] = bytes(4 - i for i in range(4))
    checkpoint.write_bytes(bytes(changed))
    result = run(kind, out, "--resume")
    assert result.returncode == 2 and "has changed since it was written" in result.stderr
    # a pickle that would run code, even with its own digest recorded: never run (written with
    # protocol 2, torch.save's own, so that torch.load adds no protocol warning to the output)
    marker = tmp_path / "code-ran"
    payload = _RunsCode()
    payload.marker = marker
    checkpoint.write_bytes(pickle.dumps(payload, protocol=2))
    result = run(kind, out, "--resume")
    assert result.returncode == 2 and not marker.exists()
    sidecar.write_text('{"sha256": "%s", "previous": null}\n' % sha256_file(checkpoint))
    with pytest.raises(MetaplasticError, match="not a checkpoint of this project"):
        load_checkpoint(checkpoint)
    result = run(kind, out, "--resume")
    assert result.returncode == 2 and "not a checkpoint of this project" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("kind", list(EXPERIMENTS))
def test_environment_faults_end_with_a_message(kind, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run(kind, blocker / "run")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "a-file" in result.stderr
    huge = run(kind, tmp_path / "huge", "--hidden-layers", "200000", "200000")
    assert huge.returncode != 0 and "Traceback" not in huge.stderr
    assert "out of memory" in huge.stderr
    debug = run(kind, blocker / "run", "--debug")
    assert debug.returncode != 0 and "Traceback" in debug.stderr
