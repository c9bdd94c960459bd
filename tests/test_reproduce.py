"""The paper as data (metaplastic.paper), its launcher (reproduce.py, metaplastic.launch.local,
metaplastic.launch.slurm) and its summaries (metaplastic.launch.summary)."""
from __future__ import annotations

import csv
import dataclasses
import importlib
import json
import shutil
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DATA_ROOT, REPO, needs_data
from metaplastic import paper, plots
from metaplastic.errors import ConfigError
from metaplastic.launch import local as launch, summary
from metaplastic.runs import rundir


def flag_values(flags, name):
    return dict(paper._flag_values(flags)).get(name)


# --------------------------------------------------------------------------- the data


def test_every_figure_of_the_paper_is_listed_with_its_runs():
    ids = [f.id for f in paper.FIGURES]
    assert ids == ["fig1a", "fig2", "fig2-bn", "fig2gh", "table1", "fig3", "fig4ab", "supp6", "fig4c",
                   "fig4d", "fig4ef", "fig4gh", "stream-fmnist", "stream-cifar10", "fig5ce"]
    assert len(paper.figure("fig2").runs) == 8                    # BNN and DNN, four m each
    # the BatchNorm question: Fig. 2's BNN runs at m = 0 and 1.35 with v1.0.0's statistics only
    for m in ("0.0", "1.35"):
        question = paper.figure("fig2-bn").run(f"bnn-m{m}-running-gamma1").flags
        assert question == paper.figure("fig2").run(f"bnn-m{m}").flags[:-7] + (
            "--bn-stats", "running", "--bn-gamma-init", "ones") + ("--task-sequence",) + (
            "pMNIST",) * 6
    fig3 = paper.figure("fig3")
    assert len(fig3.runs) == 16                                    # four widths x four methods
    assert {flag_values(r.flags, "--hidden-layers")[0] for r in fig3.runs} == {
        "512", "1024", "2048", "4096"}
    assert all(len(flag_values(r.flags, "--task-sequence")) == 10 for r in fig3.runs)
    table1 = {r.name: r for r in paper.figure("table1").runs}
    assert "--ewc" in table1["ewc"].flags and "--ewc" in table1["random"].flags
    assert "--rnd-consolidation" in table1["random"].flags
    assert "--ewc" not in table1["bnn-m1.35"].flags
    assert all(len({r.name for r in f.runs}) == len(f.runs) for f in paper.FIGURES)
    # every run names an experiment folder with a main.py
    assert all((REPO / r.experiment / "main.py").is_file() for f in paper.FIGURES for r in f.runs)


def test_scales_keep_or_shrink_the_published_flags():
    run = paper.figure("fig2").run("bnn-m1.35")
    assert paper.scaled(run, "paper") == run.flags
    cpu = paper.scaled(run, "cpu")
    assert flag_values(cpu, "--hidden-layers") == ["512", "512"]
    assert flag_values(cpu, "--epochs-per-task") == ["40"]           # published length
    assert flag_values(cpu, "--meta") == ["1.35"]
    smoke = paper.scaled(run, "smoke")
    assert flag_values(smoke, "--hidden-layers") == ["16", "16"]
    assert flag_values(smoke, "--epochs-per-task") == ["1"]
    assert flag_values(smoke, "--impl") == ["reference"]
    stream = paper.scaled(paper.figure("stream-fmnist").run("parts60-m2.5"), "smoke")
    assert flag_values(stream, "--nb-subset") == ["3"]
    with pytest.raises(ValueError):
        paper.scaled(run, "huge")


def test_run_folders_come_from_the_configuration_only():
    fig2, table1 = paper.figure("fig2"), paper.figure("table1")
    same = paper.run_id(fig2.run("bnn-m1.35"), "paper")
    assert same == paper.run_id(table1.run("bnn-m1.35"), "paper")   # one run for both
    assert same == paper.run_id(fig2.run("bnn-m1.35"), "paper")     # deterministic
    ids = {paper.run_id(r, "paper") for f in paper.FIGURES for r in f.runs}
    distinct = {(r.experiment, r.flags) for f in paper.FIGURES for r in f.runs}
    assert len(ids) == len(distinct)
    assert paper.run_id(fig2.run("bnn-m1.35"), "cpu") != same
    assert same.startswith("bnn_4096x4096_m1.35_40ep_6xpMNIST_")


def test_plan_derives_folders_from_configuration_and_seed(tmp_path):
    jobs = launch.plan(["fig2", "table1"], 2, "paper", tmp_path)
    # table1's m = 0 and m = 1.35 rows are fig2's runs: 8 + 2 configurations, 2 seeds
    assert len(jobs) == (8 + 2) * 2
    assert len({j.run_dir for j in jobs}) == len(jobs)
    job = jobs[0]
    assert job.run_dir == tmp_path / "continual_learning" / paper.run_id(job.run, "paper") / "seed-0"
    assert launch.plan(["fig2", "table1"], 2, "paper", tmp_path)[5].run_dir == jobs[5].run_dir
    assert len(launch.plan(["fig3"], 1, "cpu", tmp_path)) == 4       # widths capped: 4 configs
    only = launch.plan(["fig2"], None, "paper", tmp_path, only=["bnn-m0.0"])
    assert [j.seed for j in only] == [0, 1, 2]
    with pytest.raises(ConfigError, match="unknown figure"):
        launch.plan(["fig9"], 1, "paper", tmp_path)
    with pytest.raises(ConfigError, match="no run"):
        launch.plan(["fig2"], 1, "paper", tmp_path, only=["nope"])


def test_job_state_decides_skip_resume_or_start(tmp_path):
    job = launch.plan(["fig1a"], 1, "smoke", tmp_path)[0]
    assert job.state() == "new" and "--resume" not in job.argv()
    argv = job.argv()
    assert argv[argv.index("--out-dir") + 1] == str(job.run_dir) and "--no-progress" in argv
    job.run_dir.mkdir(parents=True)
    (job.run_dir / launch.LOG_FILE).write_text("a log alone is not a run\n")
    assert job.state() == "new"
    (job.run_dir / "config.json").write_text("{}")
    assert job.state() == "started" and job.argv()[-1] == "--resume"
    launch.mark_finished(job, 12.0)
    assert job.state() == "done"
    record = json.loads((job.run_dir / launch.FINISHED_FILE).read_text())
    assert record["seed"] == 0 and record["scale"] == "smoke" and record["seconds"] == 12.0
    assert record["resumed"] is False
    launch.mark_finished(job, 3.0, resumed=True)    # the last part of a run: said so
    assert json.loads((job.run_dir / launch.FINISHED_FILE).read_text())["resumed"] is True
    argv = job.argv(data_root="/d")
    assert argv[argv.index("--seed") + 1] == "0" and argv[argv.index("--data-root") + 1] == "/d"


def test_a_started_run_is_expected_to_take_only_its_share_left(tmp_path):
    job = launch.plan(["fig4ab"], 1, "cpu", tmp_path)[0]    # 2 tasks x 50 epochs: 100 rows
    whole = job.expected_seconds()
    assert whole and job.seconds_left() == whole               # nothing there: the whole run
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "config.json").write_text(json.dumps(
        {"experiment": "continual_learning", "epochs_per_task": 50,
         "task_sequence": ["MNIST", "FMNIST"]}))
    (job.run_dir / "metrics.csv").write_text("h\n" + "r\n" * 60)
    assert job.seconds_left() == whole                          # no checkpoint: starts again
    (job.run_dir / "checkpoint.pt").write_bytes(b"state")
    assert job.seconds_left() == pytest.approx(whole * 0.4)   # 60 of 100 rows written
    (job.run_dir / "config.json").write_text("[not a config")
    assert job.seconds_left() == whole                          # unreadable: counted as new


def test_time_left_scales_the_expected_times_by_whole_runs_only():
    class Known:
        def seconds_left(self):
            return 100.0

    class Unknown:
        def seconds_left(self):
            return None

    assert launch.time_left([], [(50.0, 100.0, False)], 2) is None
    assert launch.time_left([Known()] * 4, [], 2) == 200.0           # no measurement yet
    # two whole runs took half their expected time: the rest will too
    whole_runs = [(40.0, 100.0, False), (60.0, 100.0, False)]
    assert launch.time_left([Known()] * 4, whole_runs, 2) == 100.0
    # a resumed run's 36 s is the end of a run, not a run: it does not shrink the estimate
    assert launch.time_left([Known()] * 3, [(36.0, 100.0, True)], 2) == 150.0
    assert launch.time_left([Unknown()] * 2, [(30.0, None, False)], 1) == 60.0
    assert launch.time_left([Unknown()], [(30.0, None, True)], 1) is None


def test_a_locked_folder_is_not_run_twice(tmp_path):
    assert not launch.is_running(tmp_path / "run")
    first = launch._lock(tmp_path / "run")
    assert first is not None
    assert launch._lock(tmp_path / "run") is None
    assert launch.is_running(tmp_path / "run")
    first.close()
    assert not launch.is_running(tmp_path / "run")
    again = launch._lock(tmp_path / "run")
    assert again is not None
    again.close()


class _QuickJob(launch.Job):
    """A job whose main.py is a line of Python that leaves a mark in its folder."""

    def argv(self, python: str = sys.executable, data_root: str | None = None,
             resume: bool | None = None) -> list[str]:
        return [python, "-c", f"open({str(self.run_dir / 'ran')!r}, 'a').write('x')"]


def test_a_folder_held_by_another_process_is_waited_for_not_dropped(tmp_path):
    job, other = (_QuickJob(j.figure, j.run, j.seed, j.scale, j.run_dir)
                  for j in launch.plan(["fig1a"], 2, "smoke", tmp_path))
    holder = launch._lock(job.run_dir)       # e.g. a run of a launch just killed, still exiting
    released = []

    def log(line):
        if line.startswith("busy") and not released:
            time.sleep(0.5)
            holder.close()                   # it exits without finishing: ours runs it
            released.append(line)

    failed = launch.LocalExecutor(1, 1, log=log).run([job, other])
    assert failed == [] and released
    assert (job.run_dir / "ran").read_text() == "x" and job.state() == "done"
    assert (other.run_dir / "ran").read_text() == "x"

    # the holder finishes the run itself: ours counts it done and does not run it again
    (job.run_dir / launch.FINISHED_FILE).unlink()
    holder = launch._lock(job.run_dir)
    lines = []

    def finish_elsewhere(line):
        lines.append(line)
        if line.startswith("busy") and not job.state() == "done":
            launch.mark_finished(job, 1.0)
            holder.close()

    assert launch.LocalExecutor(1, 1, log=finish_elsewhere).run([job]) == []
    assert (job.run_dir / "ran").read_text() == "x"
    assert any("by another launch" in line for line in lines)
    # read under the lock: a run finished by the holder is not started, and the lock is let go
    assert launch.start(job, 1) is None and not launch.is_running(job.run_dir)


# --------------------------------------------------------------------------- summaries


def _write_run(run_dir: Path, run, scale: str, finals: list[float], finished: bool = True,
               rows: int | None = None, phases: bool = False) -> None:
    """A seed folder of ``run`` as a finished run leaves it: the config.json its command line
    makes, the rows that configuration makes (the last one holding ``finals``), finished.json.
    ``phases``: rows numbered by task and epoch in the task (else one task_order 0)."""
    from metaplastic.runs import records

    seed = int(run_dir.name.split("-")[1])
    config, _, _ = summary.expected_config(run, scale, seed)
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    n = rundir.expected_rows(config) if rows is None else rows
    columns = records.continual_columns(len(finals))
    with open(run_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for epoch in range(1, n + 1):
            row = dict.fromkeys(columns, "0")
            row.update({f"acc_test_tsk_{i + 1}": f"{v * epoch / n:.2f}"
                        for i, v in enumerate(finals)})
            row["epoch"] = str(epoch)
            if phases:
                per_task = config["epochs_per_task"]
                row["task_order"], row["epoch"] = divmod(epoch - 1, per_task)
                row["task_order"] += 1
                row["epoch"] += 1
            writer.writerow(row)
    if finished:
        (run_dir / launch.FINISHED_FILE).write_text("{}")


def test_summary_is_mean_and_sample_std_over_finished_seeds(tmp_path):
    fig = paper.figure("fig4ab")
    m0, m15 = fig.run("m0.0"), fig.run("m1.5")
    base0 = tmp_path / "continual_learning" / paper.run_id(m0, "cpu")
    _write_run(base0 / "seed-0", m0, "cpu", [20.0, 90.0])
    _write_run(base0 / "seed-1", m0, "cpu", [30.0, 88.0])
    _write_run(base0 / "seed-2", m0, "cpu", [99.0, 99.0], finished=False)   # not in the statistics
    base15 = tmp_path / "continual_learning" / paper.run_id(m15, "cpu")
    _write_run(base15 / "seed-0", m15, "cpu", [95.0, 80.0])
    rows = summary.figure_rows(fig, tmp_path, "cpu")
    assert [r.run_name for r in rows] == ["m0.0", "m1.5"]
    assert rows[0].columns == ["task 1", "task 2", "mean"]
    assert rows[0].seeds == 2 and rows[0].unfinished == 1
    table = summary.markdown_table(rows)
    # task 1: 20, 30 -> 25 ± 7.07; task 2: 90, 88 -> 89 ± 1.41; mean: 55, 59 -> 57 ± 2.83
    assert "| 25.00 ± 7.07 | 89.00 ± 1.41 | 57.00 ± 2.83 |" in table
    assert "| MNIST then FMNIST, m = 0.0 | 512-512 | 2 (+1 unfinished) |" in table
    assert "| 95.00 | 80.00 | 87.50 |" in table
    parsed = list(csv.DictReader(summary.csv_table(rows).splitlines()))
    assert math.isclose(float(parsed[0]["task 1 std"]), math.sqrt(50), rel_tol=1e-4)
    assert parsed[1]["task 1 std"] == "nan"
    assert summary.figure_rows(fig, tmp_path, "paper") == []


def test_summarize_writes_tables_and_the_figure(tmp_path):
    fig = paper.figure("fig4ab")
    for run in fig.runs:
        for seed in (0, 1):
            d = tmp_path / "continual_learning" / paper.run_id(run, "smoke") / f"seed-{seed}"
            _write_run(d, run, "smoke", [50.0 + seed, 60.0], phases=True)
    messages = []
    written = summary.summarize(tmp_path, ["fig4ab"], log=messages.append)
    names = sorted(p.name for p in written)
    assert names == ["fig4ab_smoke.csv", "fig4ab_smoke.md", "fig4ab_smoke.png",
                     "fig4ab_smoke_course.md", "fig4ab_smoke_times.md"]
    course = (tmp_path / "summary" / "fig4ab_smoke_course.md").read_text()
    assert [line.split(" | ")[:2] for line in course.splitlines() if line.startswith("| MNIST")] == [
        ["| MNIST then FMNIST, m = 0.0", "2"], ["| MNIST then FMNIST, m = 1.5", "2"]]
    for run in fig.runs:                  # the runs become one phase each: no course any more
        for seed in (0, 1):
            d = tmp_path / "continual_learning" / paper.run_id(run, "smoke") / f"seed-{seed}"
            shutil.rmtree(d)
            _write_run(d, run, "smoke", [50.0 + seed, 60.0])
    written = summary.summarize(tmp_path, ["fig4ab"], log=messages.append)
    assert not (tmp_path / "summary" / "fig4ab_smoke_course.md").exists()
    assert "50.50 ± 0.71" in (tmp_path / "summary" / "fig4ab_smoke.md").read_text()
    assert any("50.50 ± 0.71" in m for m in messages)
    times = (tmp_path / "summary" / "fig4ab_smoke_times.md").read_text()
    assert [line.split(" | ")[:2] for line in times.splitlines() if line.startswith("| MNIST")] == [
        ["| MNIST then FMNIST, m = 0.0", "0"], ["| MNIST then FMNIST, m = 0.0", "1"],
        ["| MNIST then FMNIST, m = 1.5", "0"], ["| MNIST then FMNIST, m = 1.5", "1"]]


def test_a_sign_switch_summary_tabulates_and_draws_the_analysis_over_seeds(tmp_path, monkeypatch):
    from metaplastic.runs import records

    fig = paper.figure("fig5ce")
    run = fig.runs[0]
    for seed in (0, 1):
        d = tmp_path / "continual_learning" / paper.run_id(run, "smoke") / f"seed-{seed}"
        _write_run(d, run, "smoke", [90.0])
        records.write_rows(d / records.SIGN_SWITCH_FILE, records.SIGN_SWITCH_COLUMNS,
                           [{"layer": 1, "bin": 2, "magnitude_mean": 0.1 + seed,
                             "loss_increase_mean": 1e-5 * (seed + 1), "loss_increase_std": 1e-6,
                             "n_weights": 3000, "sample": 1000, "runs": 2}])
    drawn = []
    kind = plots.FIGURE_KINDS["sign-switch"]
    monkeypatch.setitem(plots.FIGURE_KINDS, "sign-switch", dataclasses.replace(
        kind, draw=lambda runs, out: drawn.append(runs) or kind.draw(runs, out)))
    written = summary.summarize(tmp_path, ["fig5ce"], log=lambda _: None)
    assert "fig5ce_smoke_sign_switch.md" in [p.name for p in written]
    assert f"fig5ce_smoke_{paper.run_id(run, 'smoke')}.png" in [p.name for p in written]
    assert [[d.name for d in runs] for runs in drawn] == [["seed-0", "seed-1"]]   # one figure
    table = (tmp_path / "summary" / "fig5ce_smoke_sign_switch.md").read_text()
    assert "| 1 | 2 | 2 | 0.600 | 1.50e-05 ± 7.1e-06 |" in table
    bad = d / records.SIGN_SWITCH_FILE                   # seed 1's analysis damaged: listed,
    bad.write_text(bad.read_text().replace("1000", "many"))   # no table nor figure from it
    logged = []
    with pytest.raises(summary.SummaryExclusions):
        summary.summarize(tmp_path, ["fig5ce"], log=logged.append)
    assert any("excluded from the figure" in line and "not a number" in line for line in logged)
    assert not (tmp_path / "summary" / "fig5ce_smoke_sign_switch.md").exists()


def test_a_histogram_summary_draws_seed_0_and_tabulates_the_hidden_weights_spread(tmp_path,
                                                                                  monkeypatch):
    fig = next(f for f in paper.FIGURES if f.plot == "histograms")
    for seed in (0, 1):
        for run in fig.runs:
            _write_run(tmp_path / "continual_learning" / paper.run_id(run, "smoke")
                       / f"seed-{seed}", run, "smoke", [90.0] * 6)   # six tasks
    drawn = []
    kind = plots.FIGURE_KINDS["histograms"]
    monkeypatch.setitem(plots.FIGURE_KINDS, "histograms", dataclasses.replace(
        kind, draw=lambda run, out: drawn.append(run) or []))
    from metaplastic.runs import records

    saved = tmp_path / "continual_learning" / paper.run_id(fig.runs[1], "smoke") / "seed-0"
    records.write_rows(saved / records.HIDDEN_HIST_FILE, records.HIDDEN_HIST_COLUMNS, [
        {"task": 1, "layer": 1, "bin_low": lo, "bin_high": lo + 1, "count": 1} for lo in (-1, 0)])
    summary.summarize(tmp_path, [fig.id], log=lambda _: None)
    assert sorted(str(d.relative_to(tmp_path)) for d in drawn) == sorted(
        f"continual_learning/{paper.run_id(run, 'smoke')}/seed-0" for run in fig.runs)
    spread = (tmp_path / "summary" / f"{fig.id}_smoke_hidden_spread.md").read_text()
    assert spread.splitlines()[-3:] == [   # midpoints -0.5 and 0.5: sd 0.5; one seed has it
        "| configuration | layer | seeds | after task 1 |", "|---|---|---|---|",
        f"| {paper.scaled_label(fig.runs[1], 'smoke')} | 1 | 1 | 0.50 |"]


def test_fig3_summary_draws_the_hidden_size_plot_and_each_methods_tasks(tmp_path):
    fig = paper.figure("fig3")
    for run in fig.runs:
        d = tmp_path / "continual_learning" / paper.run_id(run, "smoke") / "seed-0"
        if d.exists():      # smoke: every width is 16, four methods remain
            continue
        _write_run(d, run, "smoke", [50.0 + i for i in range(10)])
    written = summary.summarize(tmp_path, ["fig3"], log=lambda _: None)
    assert sorted(p.name for p in written) == ["fig3_smoke.csv", "fig3_smoke.md", "fig3_smoke.png",
                                               "fig3_smoke_tasks.png", "fig3_smoke_times.md"]
    assert (tmp_path / "summary" / "fig3_smoke.md").read_text().count("| 54.50 |") == 4


@pytest.mark.parametrize("fault, reason", [
    ("truncated", "metrics.csv has 1 rows, the configuration makes 100"),
    ("copied", "config.json is another run's: meta"),
    ("nan", "NaN or infinite"),
    ("symlink", "symbolic link: metrics.csv"),
    ("broken config", "not a readable config.json"),
])
def test_summaries_leave_out_runs_that_are_not_what_they_claim(tmp_path, fault, reason):
    """Copying, truncating or linking files in a run folder never changes a table silently:
    the run is left out, named with the reason, and summarize exits with an error."""
    fig = paper.figure("fig4ab")
    m0, m15 = fig.run("m0.0"), fig.run("m1.5")
    good = tmp_path / "continual_learning" / paper.run_id(m0, "cpu") / "seed-0"
    _write_run(good, m0, "cpu", [20.0, 90.0])
    bad = tmp_path / "continual_learning" / paper.run_id(m0, "cpu") / "seed-1"
    if fault == "truncated":
        _write_run(bad, m0, "cpu", [30.0, 88.0], rows=1)
    elif fault == "copied":     # a folder copied from m = 1.5 into the m = 0 runs
        _write_run(tmp_path / "m15" / "seed-1", m15, "cpu", [95.0, 80.0])
        shutil.copytree(tmp_path / "m15" / "seed-1", bad)
    else:
        _write_run(bad, m0, "cpu", [30.0, 88.0])
        if fault == "nan":
            text = (bad / "metrics.csv").read_text().rsplit("\n", 2)
            (bad / "metrics.csv").write_text(text[0] + "\n" + text[1].replace("30.00", "nan")
                                             + "\n")
        elif fault == "symlink":
            (bad / "metrics.csv").rename(tmp_path / "elsewhere.csv")
            (bad / "metrics.csv").symlink_to(tmp_path / "elsewhere.csv")
        else:
            (bad / "config.json").write_text("{bad")
    messages = []
    with pytest.raises(summary.SummaryExclusions, match="1 finished run"):
        summary.summarize(tmp_path, ["fig4ab"], log=messages.append)
    said = "\n".join(messages)
    assert f"excluded: {bad}" in said and reason in said
    table = (tmp_path / "summary" / "fig4ab_cpu.md").read_text()
    assert "| MNIST then FMNIST, m = 0.0 | 512-512 | 1 (+1 excluded) | 20.00 | 90.00 | 55.00 |" in table
    assert "- excluded:" in table


def test_summarize_refuses_unknown_figures_and_empty_folders(tmp_path):
    with pytest.raises(ConfigError, match="unknown figure fig99"):
        summary.summarize(tmp_path, ["fig99"])
    with pytest.raises(ConfigError, match="no finished runs"):
        summary.summarize(tmp_path, ["fig4ab"])


def test_scales_sharing_run_folders_are_summarized_once(tmp_path):
    fig3 = paper.figure("fig3")
    meta_512 = next(r for r in fig3.runs if r.name == "meta-512")
    # Fig. 3 at cpu scale: every width capped to 512, so its runs are paper's 512-wide ones
    assert paper.run_id(meta_512, "cpu") == paper.run_id(meta_512, "paper")
    (tmp_path / "continual_learning" / paper.run_id(meta_512, "cpu") / "seed-0").mkdir(parents=True)
    assert summary.scales_present(fig3, tmp_path) == ["cpu"]   # 1 of 4 folders, not 1 of 16
    for run in fig3.runs:
        if run.name.endswith("-4096"):
            (tmp_path / "continual_learning" / paper.run_id(run, "paper") / "seed-0").mkdir(
                parents=True, exist_ok=True)
    # with the 4096-wide runs, paper's table (512 and 4096: 5 of 16) holds cpu's run too
    assert summary.scales_present(fig3, tmp_path) == ["paper"]
    fig4c = paper.figure("fig4c")     # no hidden layer to cap: cpu = paper, named paper
    for run in fig4c.runs:
        (tmp_path / run.experiment / paper.run_id(run, "cpu") / "seed-0").mkdir(parents=True)
    assert summary.scales_present(fig4c, tmp_path) == ["paper"]
    assert summary.scales_present(paper.figure("fig2"), tmp_path) == []


# --------------------------------------------------------------------------- commands


def _unique_runs(scales=paper.SCALES):
    seen = {}
    for scale in scales:
        for fig in paper.FIGURES:
            for run in fig.runs:
                seen.setdefault((run.experiment, paper.scaled(run, scale)), (fig, run, scale))
    return list(seen.values())


def _available(run) -> bool:
    if run.needs:
        return False
    flags = run.flags
    wanted = {"MNIST"} | ({"FashionMNIST"} if "FMNIST" in flags else set()) | (
        {"USPS"} if "USPS" in flags else set())
    return all((DATA_ROOT / name).is_dir() for name in wanted)


def test_report_tables_are_refilled_from_the_summaries(tmp_path):
    (tmp_path / "fig9_cpu.md").write_text("## title\n\ntext\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    report = "# R\n\n<!-- summary:fig9_cpu -->\n| a | b |\n|---|---|\n| 0 | 0 |\n\nmore\n"
    filled = summary.fill_report(report, tmp_path)
    assert filled == "# R\n\n<!-- summary:fig9_cpu -->\n| a | b |\n|---|---|\n| 1 | 2 |\n\nmore\n"
    assert summary.fill_report(filled, tmp_path) == filled
    # a marker with no table under it yet gets one
    assert summary.fill_report("<!-- summary:fig9_cpu -->\n\nx\n", tmp_path) == (
        "<!-- summary:fig9_cpu -->\n| a | b |\n|---|---|\n| 1 | 2 |\n\nx\n")
    with pytest.raises(ConfigError, match="fig8_cpu"):
        summary.fill_report("<!-- summary:fig8_cpu -->\n", tmp_path)


def test_the_reproduction_report_shows_the_committed_summaries():
    """docs/REPRODUCTION.md's tables are those of docs/reproduction/summary (refill them with
    `reproduce.py summarize docs/reproduction --to docs/reproduction/summary --report
    docs/REPRODUCTION.md`)."""
    report = (REPO / "docs" / "REPRODUCTION.md").read_text()
    assert summary.REPORT_MARKER.search(report)
    assert summary.fill_report(report, REPO / "docs" / "reproduction" / "summary") == report


@pytest.mark.slow
def test_every_listed_command_is_accepted_by_its_main_dry_run(tmp_path, capsys):
    checked = dry = 0
    for i, (fig, run, scale) in enumerate(_unique_runs()):
        module = importlib.import_module(f"{run.experiment}.main")
        argv = list(paper.scaled(run, scale))
        args = module.build_parser().parse_args(argv)                # flags accepted
        checked += 1
        if _available(run):
            out = tmp_path / f"run{i}"
            code = module.main(argv + ["--dry-run", "--impl", "reference", "--out-dir", str(out),
                                       "--data-root", str(DATA_ROOT)])
            assert code == 0, (fig.id, run.name, scale, capsys.readouterr().err)
            dry += 1
        else:
            from metaplastic.experiments import continual

            build = getattr(module, "config_from_args", continual.config_from_args)
            build(args)                                               # the config is valid
    assert checked >= 50 and dry >= 20


def test_list_shows_every_run_with_its_command(capsys):
    import reproduce

    assert reproduce.main(["list"]) == 0
    out = capsys.readouterr().out
    for fig in paper.FIGURES:
        assert f"\n{fig.id}: " in out
        for run in fig.runs:
            assert paper.command(run, "paper") in out
    assert paper.NOTEBOOK_COMMAND in out
    assert reproduce.main(["list", "nope"]) == 2


def test_readme_reproduction_section_and_commands_are_generated_from_the_data():
    texts = {name: (REPO / name).read_text() for name in paper.GENERATED_DOCUMENTS}
    for name, text in paper.readme_blocks().items():
        begin, end = f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"
        holders = [doc for doc, t in texts.items() if begin in t]
        assert len(holders) == 1, (name, holders)
        doc = texts[holders[0]]
        assert doc[doc.index(begin) + len(begin):doc.index(end)] == text, (
            f"block {name} of {holders[0]} differs from metaplastic.paper: run "
            "`python -m metaplastic.paper --write-readme`")
    assert "<!-- reproduce-table:begin -->" in texts["README.md"]


# --------------------------------------------------------------------------- launching


def _reproduce(*args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(REPO / "reproduce.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=REPO, start_new_session=True, **kwargs)


def _metrics(out: Path) -> dict:
    return {p.relative_to(out).as_posix(): p.read_text()
            for p in sorted(out.rglob("metrics.csv"))}


@pytest.mark.slow
@needs_data("MNIST", "FashionMNIST")
def test_a_killed_launch_rerun_completes_only_what_is_missing(tmp_path):
    common = ["run", "fig4ab", "--scale", "smoke", "--seeds", "2", "--jobs", "2",
              "--data-root", DATA_ROOT]
    whole = tmp_path / "whole"
    proc = _reproduce(*common, "--out", whole)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert len(list(whole.rglob(launch.FINISHED_FILE))) == 4

    killed = tmp_path / "killed"
    proc = _reproduce(*common, "--out", killed)
    deadline = time.monotonic() + 600
    while not list(killed.rglob(launch.FINISHED_FILE)) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)             # the launcher dies; its runs follow it
    proc.communicate(timeout=60)
    finished_before = len(list(killed.rglob(launch.FINISHED_FILE)))
    assert 1 <= finished_before < 4

    proc = _reproduce(*common, "--out", killed)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert f"{finished_before} of 4 runs already finished: skipped" in out
    assert out.count("done     ") == 4 - finished_before
    assert _metrics(killed) == _metrics(whole)

    proc = _reproduce("summarize", killed)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "±" in out and (killed / "summary" / "fig4ab_smoke.md").is_file()


@pytest.mark.slow
@needs_data("MNIST", "FashionMNIST")
def test_the_slurm_path_runs_through_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    local = tmp_path / "local"
    proc = _reproduce("run", "fig1a", "--scale", "smoke", "--seeds", "1", "--out", local,
                      "--data-root", DATA_ROOT, "--threads", "1")   # as --cpus-per-task 1
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    cluster = tmp_path / "cluster"
    proc = _reproduce("run", "fig1a", "--scale", "smoke", "--seeds", "1", "--out", cluster,
                      "--data-root", DATA_ROOT, "--executor", "slurm", "--submitit-cluster",
                      "local", "--cpus-per-task", "1")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out
    assert "submitted fig1a/m0.0/seed-0 as local job" in out
    assert len(list(cluster.rglob(launch.FINISHED_FILE))) == 1
    assert _metrics(cluster) == _metrics(local)
    proc = _reproduce("run", "fig1a", "--scale", "smoke", "--seeds", "1", "--out", cluster,
                      "--executor", "slurm", "--submitit-cluster", "local")
    out, _ = proc.communicate(timeout=300)
    assert "1 of 1 runs already finished: skipped" in out


def test_a_preempted_slurm_job_is_requeued_with_the_same_run(tmp_path):
    pytest.importorskip("submitit")
    from metaplastic.launch import slurm

    job = launch.plan(["fig1a"], 1, "smoke", tmp_path)[0]
    task = slurm.SeedRun(threads=1)
    delayed = task.checkpoint(job)
    assert delayed.function is task and delayed.args == (job,)


def test_the_slurm_job_script_is_an_array_with_the_requested_resources(tmp_path):
    pytest.importorskip("submitit")
    from metaplastic.launch import slurm

    options = slurm.SlurmOptions(partition="gpu", time_min=600, cpus_per_task=4,
                                 gpus_per_node=1, mem_gb=16, array_parallelism=8,
                                 setup=["module load cuda"])
    script = slurm.job_script(12, tmp_path, options)
    for line in ("#SBATCH --array=0-11%8", "#SBATCH --partition=gpu", "#SBATCH --time=600",
                 "#SBATCH --cpus-per-task=4", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --mem=16GB", "module load cuda", "submitit.core._submit"):
        assert line in script, (line, script)


def test_default_run_folders_of_two_runs_started_in_one_second_differ(monkeypatch):
    from datetime import datetime as real_datetime

    from metaplastic.runs import folders

    class FrozenClock(real_datetime):
        @classmethod
        def now(cls, tz=None):
            return real_datetime(2026, 11, 28, 12, 0, 0)

    monkeypatch.setattr(folders, "datetime", FrozenClock)
    monkeypatch.setattr(folders.os, "getpid", lambda: 1234)
    first = folders.chosen_run_folder(None, "continual_learning", resume=False)
    monkeypatch.setattr(folders.os, "getpid", lambda: 1235)
    second = folders.chosen_run_folder(None, "continual_learning", resume=False)
    assert first == Path("results/continual_learning/20261128-120000-1234")
    assert second != first


def test_gpu_check_script_says_when_there_is_no_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run benchmarks/gpu_check.sh itself")
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"))
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no CUDA GPU is visible" in done.stderr


def test_labels_name_the_width_actually_run():
    """A label that names a width (Fig. 3's) shows the scaled one; others are unchanged."""
    fig3 = paper.figure("fig3")
    run = fig3.run("ewc-4096")
    assert run.label == "EWC, 4096"
    assert paper.scaled_label(run, "paper") == "EWC, 4096"
    assert paper.scaled_label(run, "cpu") == "EWC, 512"
    assert paper.scaled_label(run, "smoke") == "EWC, 16"
    fig2 = paper.figure("fig2").run("bnn-m1.35")
    assert paper.scaled_label(fig2, "smoke") == fig2.label == "BNN, m = 1.35"


def test_a_stream_runs_final_accuracies_are_its_last_rows_test_and_first_part(tmp_path):
    from metaplastic.runs import records

    path = tmp_path / "metrics.csv"
    records.write_rows(path, records.STREAM_FMNIST_COLUMNS, [
        dict.fromkeys(records.STREAM_FMNIST_COLUMNS, 0) | {"acc_test": a, "acc_1st_sub": b}
        for a, b in ((50.0, 60.0), (81.25, 77.5))])
    assert summary.final_accuracies(path) == (
        ["test set", "first part (training samples)"], [81.25, 77.5])


def test_a_sign_switch_runs_estimate_adds_the_analysis_after_training():
    run = paper.figure("fig5ce").runs[0]
    plain = dataclasses.replace(run, flags=tuple(f for f in run.flags if f != "--sign-switch"))
    epoch = paper.CPU_EPOCH_SECONDS[512]
    assert paper.expected_cpu_seconds(run, "cpu") == pytest.approx(
        paper.expected_cpu_seconds(plain, "cpu") + paper.SIGN_SWITCH_EPOCHS * epoch)


def test_a_stream_runs_estimate_counts_every_parts_epochs_and_their_evaluations():
    fig = paper.figure("stream-fmnist")
    whole, parts = fig.run("whole-m2.5"), fig.run("parts60-m2.5")
    epoch, share = paper.CPU_EPOCH_SECONDS[512], paper.STREAM_EVAL_SHARE
    # 20 epochs of the whole set; 60 parts x 20 epochs of 1000 samples, each epoch evaluated
    assert paper.expected_cpu_seconds(whole, "cpu") == pytest.approx(
        paper.STARTUP_SECONDS + 20 * epoch * (1 + share))
    assert paper.expected_cpu_seconds(parts, "cpu") == pytest.approx(
        paper.STARTUP_SECONDS + 20 * epoch + 1200 * epoch * share)
