"""Bad input ends with one clear line and exit status 2, no traceback, nothing written
(docs/RELIABILITY.md, cases 8 and 9); an interrupted run says how to continue it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import DATA_ROOT, REPO, needs_data

from metaplastic.launch import local as launch
from metaplastic.runs import faults


def _run(script, *args, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / script), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))


@pytest.mark.parametrize("script, args, message", [
    ("continual_learning/main.py", ["--seed", "99999999999999999999"], "must be an integer in [0, 2**63)"),
    ("continual_learning/main.py", ["--seed", "-1"], "must be an integer in [0, 2**63)"),
    ("mnist_usps/main.py", ["--train-batch-size", "1"], "cannot normalize a batch of one"),
    ("mnist_usps/main.py", ["--mnist-train-samples", "21"], "would end with a batch of one"),
    ("reproduce.py", ["run", "fig4ab", "fig2", "--only", "nothing", "--dry-run"],
     "--only nothing: no such run"),
    ("reproduce.py", ["run", "fig4ab", "--executor", "slurm", "--gpus", "-1",
                      "--print-job-script"], "must be an integer >= 0"),
    ("reproduce.py", ["summarize", ".", "fig99"], "unknown figure fig99"),
    ("stream_fmnist/main.py", ["--beaker"], "--beaker: the published stream script"),
])
@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(tmp_path, script, args, message):
    out = tmp_path / "out"
    extra = [] if script == "reproduce.py" else ["--dry-run", "--out-dir", str(out)]
    proc = _run(script, *args, *extra, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


def test_finished_json_records_the_runs_own_command(tmp_path):
    job = launch.plan(["fig4ab"], 1, "smoke", tmp_path)[0]
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "config.json").write_text("{}")        # a started run: resumed by a launch
    assert "--resume" in job.argv()
    launch.mark_finished(job, 12.0, resumed=True)
    record = json.loads((job.run_dir / launch.FINISHED_FILE).read_text())
    assert record["resumed"] is True and "--resume" not in record["command"]


def test_the_interrupted_hint_names_the_folder_and_the_command(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", ["continual_learning/main.py"])
    monkeypatch.setattr(faults, "RUN_FOLDER", [])
    assert "before the run started" in faults.interrupted_hint(["--lr", "0.1"])
    faults.RUN_FOLDER.append(tmp_path / "run")
    hint = faults.interrupted_hint(["--lr", "0.1", "--out-dir", "old", "--resume"])
    assert str(tmp_path / "run") in hint
    assert hint.endswith(f"continual_learning/main.py --lr 0.1 --out-dir {tmp_path / 'run'} "
                         "--resume")
    monkeypatch.setattr(sys, "argv", ["reproduce.py"])
    assert "rerun the same reproduce.py command" in faults.interrupted_hint(["run", "fig2"])


@needs_data("MNIST")
@pytest.mark.slow
def test_sigterm_ends_a_run_with_the_command_that_continues_it(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "continual_learning" / "main.py"), "--hidden-layers", "8",
         "--epochs-per-task", "50", "--task-sequence", "MNIST", "--impl", "reference",
         "--no-progress", "--data-root", str(DATA_ROOT), "--out-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
    deadline = time.time() + 240
    while not (out / "checkpoint.pt").is_file():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == faults.EXIT_INTERRUPTED
    assert "continue with:\n  python " in err and f"--out-dir {out} --resume" in err


@pytest.mark.parametrize("cell, message", [
    ("abc", "acc_test_tsk_1, row 2 holds 'abc', not a number"),
    ("nan", "acc_test_tsk_1, row 2 holds nan, not a finite accuracy"),
    ("inf", "acc_test_tsk_1, row 2 holds inf, not a finite accuracy"),
])
def test_a_bad_accuracy_cell_is_named_not_plotted(tmp_path, cell, message):
    """A non-numeric, NaN or infinite accuracy: plot_figures.py names the cell, draws nothing."""
    from metaplastic.runs import records

    columns = records.continual_columns(1)
    run = tmp_path / "run"
    run.mkdir()
    rows = [",".join(columns)] + [",".join(["bnn", "task", "8", "bn", "0.005", "m", "0", "0",
                                            "1", "MNIST", str(e), "90", "0.3",
                                            cell if e == 2 else "91", "0.2"])
                                  for e in (1, 2)]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    if cell == "abc":
        with pytest.raises(records.RecordError, match="row 2 holds 'abc'"):
            records.read_records(run / "metrics.csv")
    proc = _run("plot_figures.py", "accuracy", str(run), "--out", str(tmp_path / "a.png"))
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "a.png").exists()


def test_a_refused_slurm_submission_is_one_line_and_leaves_no_job_files(tmp_path):
    """Case 8: sbatch is there but the controller refuses (here a stand-in sbatch that fails
    as a cluster without a controller does; tests/test_slurm_cluster.py refuses for real)."""
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: fetch_config: DNS SRV lookup failed' >&2\n"
                      "echo 'sbatch: fatal: Could not establish a configuration source' >&2\n"
                      "exit 1\n")
    sbatch.chmod(0o755)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "reproduce.py"), "run", "fig4ab", "--scale", "smoke",
         "--seeds", "1", "--executor", "slurm", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{bin_dir}:{os.environ['PATH']}"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: --executor slurm: the submission was refused (sbatch: fatal: Could not "
        "establish a configuration source); nothing was submitted and its job files were "
        "removed"]
    assert not (out / "slurm").exists()
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
    # files of an earlier array's running tasks, below the slurm folder, are never touched
    task_log = out / "slurm" / "7_0" / "7_0_0_log.out"
    task_log.parent.mkdir(parents=True)
    task_log.write_text("an earlier array's task\n")
    again = subprocess.run(
        [sys.executable, str(REPO / "reproduce.py"), "run", "fig4ab", "--scale", "smoke",
         "--seeds", "1", "--executor", "slurm", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO), PATH=f"{bin_dir}:{os.environ['PATH']}"))
    assert again.returncode == 2 and task_log.read_text() == "an earlier array's task\n"
    assert sorted(p.name for p in (out / "slurm").iterdir()) == ["7_0"]


def test_a_listing_piped_into_head_ends_without_a_message(tmp_path):
    """`reproduce.py list | head -1`: stdout's reader leaves; no "error:" line, exit 141."""
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, str(REPO / "reproduce.py"), "list"],
                            stdout=write_end, stderr=subprocess.PIPE, cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    os.close(write_end)
    os.close(read_end)                      # the reader is gone before the first line
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == faults.EXIT_BROKEN_PIPE
    assert err.decode() == ""


@needs_data("MNIST")
@pytest.mark.slow
def test_a_run_whose_stdout_reader_leaves_says_how_to_continue(tmp_path):
    out = tmp_path / "run"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "continual_learning" / "main.py"), "--hidden-layers", "8",
         "--epochs-per-task", "2", "--task-sequence", "MNIST", "--impl", "reference",
         "--data-root", str(DATA_ROOT), "--out-dir", str(out)],
        stdout=write_end, stderr=subprocess.PIPE, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"))
    os.close(write_end)
    os.read(read_end, 1)                     # the run has started printing
    os.close(read_end)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == faults.EXIT_BROKEN_PIPE
    assert "Traceback" not in err.decode()
    assert f"--out-dir {out} --resume" in err.decode()      # its folder exists before it prints
