"""The machines-and-times table of the summaries (metaplastic/launch/run_times.py), read from a
run folder's config.json launches and log.txt epoch lines."""
from __future__ import annotations

import json
import statistics

from metaplastic.launch import run_times
from metaplastic.progress import epoch_seconds, epoch_timing
from metaplastic.runs.provenance import cpu_model, environment_summary
from metaplastic.runs.rundir import LAUNCH_KEYS


def test_the_epoch_timing_is_read_back_from_its_log_line():
    line = ("task 1 (MNIST) epoch   3 | train  97.14% loss 0.0932 | test per task:  96.25   7.76 | "
            + epoch_timing(48.25, 3.8, 0.6) + " | elapsed 2m48s, ETA 1h31m for the 97 epochs left")
    assert "52.6s (train 48.2, eval 3.8, phase end + checkpoint 0.6)" in line
    assert epoch_seconds(line) == (52.6, 48.2)
    assert epoch_seconds("phase 1/2 (MNIST): epochs 1..50 of 50, 60000 training samples") is None


def test_each_launch_records_the_cpu_it_ran_on():
    assert cpu_model().endswith(" cores)")
    assert "cpu" in LAUNCH_KEYS and environment_summary()["cpu"] == cpu_model()


def _epoch_line(epoch: int, seconds: float) -> str:
    return (f"task 1 (MNIST) epoch {epoch:3d} | train  90.00% loss 0.3 | test per task:  90.00 | "
            + epoch_timing(seconds - 1.0, 0.5, 0.5) + " | elapsed 1s, ETA 0s (run complete)")


def test_a_run_resumed_on_another_machine_lists_both(tmp_path):
    run = tmp_path / "seed-3"
    run.mkdir()
    first = {"device": "cpu", "cpu": "Xeon A (2 cores)", "threads": 2, "implementation": "fast"}
    second = {"device": "cuda", "cuda": "NVIDIA H100", "threads": 16, "implementation": "fast"}
    (run / "config.json").write_text(json.dumps({"seed": 3, "launches": [first, second]}))
    seconds = [50.0, 61.5, 40.0, 2.5, 3.0]
    log = ["# 2026-12-05T23:46:24 main.py ...", "implementation: fast"]
    log += [_epoch_line(e, s) for e, s in enumerate(seconds[:3], start=1)]
    log += ["# 2026-12-06T03:00:00 main.py ... --resume", "resumed from checkpoint.pt"]
    log += [_epoch_line(e, s) for e, s in enumerate(seconds[3:], start=4)]
    (run / "log.txt").write_text("\n".join(log) + "\n")

    times = run_times.run_times("m = 1.5", run)
    assert times.seed == 3 and times.launches == 2
    assert times.machines == ["Xeon A (2 cores)", "GPU: NVIDIA H100"]
    assert times.implementations == ["fast"] and times.threads == [2, 16]
    assert times.epoch_seconds == seconds
    assert times.median == statistics.median(seconds) and times.fastest == 2.5
    assert times.total == sum(seconds)
    row = run_times.markdown_table([times]).splitlines()[2]
    assert row == ("| m = 1.5 | 3 | Xeon A (2 cores) / GPU: NVIDIA H100 | fast | 2 / 16 | 5 | "
                   "40.0 (2.5) | 2m37s | 2 |")


def test_a_run_from_before_the_cpu_was_recorded_says_so(tmp_path):
    run = tmp_path / "seed-0"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"seed": 0, "environment": {"threads": 1, "implementation": "reference", "cuda": None}}))
    times = run_times.run_times("m = 0", run)            # no log.txt: no epoch timed
    # saved before config.json counted its launches: one or several, it cannot say
    assert times.machines == [run_times.NOT_RECORDED] and times.launches is None
    assert times.epoch_seconds == [] and times.median is None
    assert run_times.markdown_table([times]).splitlines()[2] == (
        "| m = 0 | 0 | not recorded | reference | 1 | 0 | – | – | not recorded |")
    # finished.json: the launch that finished it did not resume, so it was the only one
    (run / "finished.json").write_text(json.dumps({"seconds": 60.0, "resumed": False}))
    assert run_times.run_times("m = 0", run).launches == 1
    (run / "finished.json").write_text(json.dumps({"seconds": 60.0, "resumed": True}))
    assert run_times.run_times("m = 0", run).launches is None     # two or more
    (run / "finished.json").write_text("{not json")
    assert run_times.run_times("m = 0", run).launches is None


def test_a_cpu_run_on_a_machine_with_a_gpu_is_not_called_a_gpu_run(tmp_path):
    run = tmp_path / "seed-1"
    run.mkdir()
    environment = {"threads": 4, "implementation": "reference", "cuda": "NVIDIA H100"}
    (run / "config.json").write_text(json.dumps({"device": "cuda", "environment": environment}))
    assert run_times.run_times("x", run).machines == ["GPU: NVIDIA H100"]
    (run / "config.json").write_text(json.dumps({"device": "cpu", "environment": environment}))
    times = run_times.run_times("x", run)
    assert times.machines == [run_times.NOT_RECORDED] and times.seed == 1
