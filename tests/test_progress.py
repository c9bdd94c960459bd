"""Logs: progress bars only on a terminal; one line per epoch with elapsed time and an ETA."""
import io
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import DATA_ROOT, REPO, needs_data

from metaplastic.method.engine import progress_bar
from metaplastic.progress import RunClock, duration, interactive


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_duration():
    assert [duration(s) for s in (0, 42.4, 65, 3600 * 3 + 7 * 60, 3600 * 52)] == \
        ["0s", "42s", "1m05s", "3h07m", "2d04h"]


def test_eta_leaves_out_the_first_epoch_once_others_are_timed():
    clock = FakeClock()
    run = RunClock(total_epochs=5, clock=clock)
    clock.now = 100.0
    first = run.epoch_done(100.0)               # includes compilation
    assert "ETA 6m40s for the 4 epochs left" in first  # 4 x 100 s: an overestimate, and says so
    assert "compilation" in first and "overestimated" in first
    clock.now = 110.0
    second = run.epoch_done(10.0)
    assert "elapsed 1m50s, ETA 30s for the 3 epochs left" in second  # 3 x 10 s, not 3 x 55 s
    assert "compilation" not in second
    clock.now = 122.0
    assert "ETA 22s for the 2 epochs left" in run.epoch_done(12.0)  # 2 x mean(10, 12)
    run.epoch_done(11.0)
    assert "ETA 0s" in run.epoch_done(11.0)


def test_resumed_run_counts_the_epochs_done_before():
    run = RunClock(total_epochs=10, done_epochs=7, clock=FakeClock())
    assert run.remaining == 3
    assert "2 epochs left" in run.epoch_done(5.0)


def test_progress_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not interactive()
    assert progress_bar(True, 10, "x") is None
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert interactive()
    bar = progress_bar(True, 10, "x")
    assert bar is not None
    bar.close()
    assert progress_bar(False, 10, "x") is None


SYNTHETIC_RUNS = textwrap.dedent("""
    import torch
    from metaplastic.data.tasks import TaskData
    from metaplastic.experiments.runner import RunSettings
    from metaplastic.experiments.sequence import SequenceSettings, run_sequence
    from metaplastic.experiments.stream import StreamData, StreamSettings, run_stream, subset_indices
    from metaplastic.method.models import BNN

    g = torch.Generator().manual_seed(0)
    def data(n):
        return torch.randn(n, 20, generator=g), torch.randint(0, 4, (n,), generator=g)
    tasks = [TaskData(name, *data(200), *data(100), test_batch_size=50, train_eval_batch_size=50)
             for name in ("A", "B")]
    settings = SequenceSettings(RunSettings(epochs_per_task=3, batch_size=20, meta_per_layer=[1.0, 1.0],
                                            progress=True), lr=0.01, weight_decay=0.0)
    prefix = {"net": "bnn", "scenario": "task", "arch": "16", "norm": "bn", "lr": 0.01,
              "meta": 1.0, "ewc": 0.0, "SI": 0.0, "task_order": "A-B"}
    run_sequence(BNN([20, 16, 4]), tasks, settings, OUT + "/continual", prefix)

    x, y = data(300)
    stream = StreamData("S", x, y, *data(100))
    settings = StreamSettings(RunSettings(epochs_per_task=2, batch_size=30, meta_per_layer=[0.0, 0.0],
                                          progress=True), lr=0.01, weight_decay=0.0)
    columns = ["tsk", "epoch", "acc_tr_sub", "acc_1st_sub", "acc_tr", "acc_test"]
    run_stream(BNN([20, 16, 4]), stream, subset_indices(300, 3, True, 0), settings,
               OUT + "/stream", {}, columns)
""")


@pytest.mark.slow
def test_redirected_runs_write_one_line_per_epoch_and_no_carriage_return(tmp_path):
    log = tmp_path / "run.log"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    with open(log, "w") as out:  # stdout and stderr into one file, as a SLURM job's log
        subprocess.run([sys.executable, "-c", f"OUT = {str(tmp_path)!r}\n" + SYNTHETIC_RUNS],
                       stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, check=True,
                       timeout=600)
    text = log.read_text()
    assert "\r" not in text
    lines = text.splitlines()
    continual = [l for l in lines if l.startswith("task ") and " epoch " in l]
    stream = [l for l in lines if l.startswith("subset ") and " epoch " in l]
    assert len(continual) == 6 and len(stream) == 6, text
    for epoch_lines in (continual, stream):
        assert all("elapsed" in l and "ETA" in l for l in epoch_lines), text
        assert "compilation" in epoch_lines[0]
        assert not any("compilation" in l for l in epoch_lines[1:])
        assert "ETA 0s" in epoch_lines[-1]
    # one line at the start of each phase: 2 tasks, then 3 parts
    starts = [l for l in lines if l.startswith("phase ") and "training samples" in l]
    assert [l.split(":")[0] for l in starts] == [
        "phase 1/2 (A)", "phase 2/2 (B)", "phase 1/3 (sub_S_1/3)", "phase 2/3 (sub_S_2/3)",
        "phase 3/3 (sub_S_3/3)"], starts


@pytest.mark.slow
@needs_data("MNIST")
def test_command_line_run_redirected_to_a_file(tmp_path):
    log = tmp_path / "slurm.out"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, str(REPO / "continual_learning" / "main.py"), "--hidden-layers", "16",
             "--epochs-per-task", "2", "--task-sequence", "MNIST", "--data-root", str(DATA_ROOT),
             "--out-dir", str(tmp_path / "run"), "--device", "cpu"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, timeout=900)
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text
    epoch_lines = [l for l in text.splitlines() if l.startswith("task 1 (MNIST) epoch")]
    assert len(epoch_lines) == 2 and all("ETA" in l for l in epoch_lines), text
    assert "compilation" in epoch_lines[0]
