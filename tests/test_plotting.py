"""Figures from synthetic result files: every figure renders to a valid PNG (and PDF), seeds
of one configuration are grouped, bad inputs are refused with a clear message."""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

import plot_figures
from metaplastic import plots
from metaplastic.data.tasks import positional_names
from metaplastic.errors import MetaplasticError
from metaplastic.runs.records import (
    HIDDEN_HIST_COLUMNS,
    HIDDEN_HIST_FILE,
    METRICS_FILE,
    SIGN_SWITCH_COLUMNS,
    SIGN_SWITCH_FILE,
    STREAM_CIFAR10_COLUMNS,
    STREAM_FMNIST_COLUMNS,
    CsvRecorder,
    RecordError,
    continual_columns,
    read_records,
    meta_mapping,
    save_config,
    write_rows,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- synthetic runs


def _config(**over):
    config = {
        "experiment": "continual_learning", "net": "bnn", "hidden_layers": [512, 512],
        "meta": 1.35, "interleaved": False, "ewc": False, "si": False,
        "rnd_consolidation": False, "scenario": "task", "seed": 0, "epochs_per_task": 3,
        "task_sequence": ["pMNIST", "pMNIST"], "out_dir": "x", "device": "cpu",
        "result_neutral": ["out_dir", "device"],   # as every config.json marks them
    }
    config.update(over)
    return config


def make_continual_run(run_dir: Path, *, meta=1.35, seed=0, tasks=("pMNIST", "pMNIST"),
                       epochs=3, hidden=(512, 512), interleaved=False, ewc=False,
                       epoch0=False, started=None) -> Path:
    """A continual-learning run: task k rises while learned and decays after unless meta>0."""
    rng = np.random.default_rng(seed + int(10 * meta) + 1000 * hidden[0])
    n = len(tasks)
    cols = continual_columns(n)
    rec = CsvRecorder(run_dir / METRICS_FILE, cols)
    arch = "-".join(str(h) for h in hidden)
    quality = 80 + 4 * math.log2(hidden[0] / 64)
    keep = 0.99 if interleaved else 0.92 if ewc else 0.97 if meta > 0 else 0.80

    def row(tsk, ep, accs):
        r = {"net": "bnn", "scenario": "task", "arch": arch, "norm": "bn", "lr": 0.005,
             "meta": meta_mapping([meta] * (len(hidden) + 1)), "ewc": 5000.0 if ewc else 0.0,
             "SI": 0.0, "task_order": tsk, "tsk": positional_names(list(tasks))[tsk - 1],
             "epoch": ep, "acc_tr": float(accs[tsk - 1]), "loss_tr": 0.3}
        for k in range(n):
            r[f"acc_test_tsk_{k + 1}"] = round(float(accs[k]), 2)
            r[f"loss_test_tsk_{k + 1}"] = round(2.3 * (1 - accs[k] / 100), 4)
        return r

    accs = np.full(n, 10.0)
    if epoch0:
        rec.write(row(1, 0, accs))
    for t in range(1, n + 1):
        for ep in range(1, epochs + 1):
            accs[t - 1] = quality - 30 * 0.4 ** ep + rng.normal(0, 0.6)
            for k in range(t - 1):
                accs[k] = max(10.0, accs[k] * keep + rng.normal(0, 0.4))
            rec.write(row(t, ep, accs))
    cfg = _config(meta=meta, seed=seed, task_sequence=list(tasks), epochs_per_task=epochs,
                  hidden_layers=list(hidden), interleaved=interleaved, ewc=ewc,
                  out_dir=str(run_dir))
    if started is not None:
        cfg["start_time"] = started
    save_config(run_dir, cfg)
    return run_dir


def make_hist_run(run_dir: Path, n_tasks=3, layers=(1, 2, 3)) -> Path:
    rows = []
    edges = np.linspace(-0.5, 0.5, 31)
    centres = (edges[:-1] + edges[1:]) / 2
    for t in range(1, n_tasks + 1):
        for layer in layers:
            width = 0.05 + 0.05 * t
            counts = np.round(5000 * np.exp(-centres ** 2 / (2 * width ** 2))) + 1
            for i in range(len(centres)):
                rows.append({"task": t, "layer": layer, "bin_low": float(edges[i]),
                             "bin_high": float(edges[i + 1]), "count": int(counts[i])})
    write_rows(run_dir / HIDDEN_HIST_FILE, HIDDEN_HIST_COLUMNS, rows)
    make_continual_run(run_dir, tasks=("pMNIST",) * n_tasks, epochs=2)
    return run_dir


def make_sign_switch(path: Path) -> Path:
    rows = []
    for layer, sample in ((1, 1000), (2, 2000), (3, 100)):
        for b in range(15):
            mag = (b + 0.5) / 15
            rows.append({"layer": layer, "bin": b, "magnitude_mean": mag,
                         "loss_increase_mean": 1e-5 * layer * (0.2 + mag ** 2),
                         "loss_increase_std": 2e-6 * layer, "n_weights": 10000 - 600 * b,
                         "sample": sample, "runs": 100})
    write_rows(path, SIGN_SWITCH_COLUMNS, rows)
    return path


def make_stream_fmnist(run_dir: Path, meta: float, seed=0, n_sub=4, epochs=3) -> Path:
    rows = []
    for t in range(1, n_sub + 1):
        for ep in range(1, epochs + 1):
            base = 70 + 3 * t + 3 * meta + seed * 0.8
            rows.append({"net": "bnn", "arch": "1024-1024", "init": 0.1, "meta": meta,
                         "task_order": t, "tsk": f"sub_FMNIST_{t}/{n_sub}",
                         "epoch": ep, "lr": 0.005, "acc_tr_sub": base + 10,
                         "acc_1st_sub": base - 2 * t * (meta == 0), "acc_tr": base + 2,
                         "acc_test": base + ep * 0.5})
    write_rows(run_dir / METRICS_FILE, STREAM_FMNIST_COLUMNS, rows)
    save_config(run_dir, {"experiment": "stream_fmnist", "meta": meta, "seed": seed,
                          "nb_subset": n_sub, "epochs_per_task": epochs})
    return run_dir


def make_stream_cifar(run_dir: Path, meta: float, n_sub=3, epochs=2) -> Path:
    rows = []
    for t in range(1, n_sub + 1):
        for ep in range(1, epochs + 1):
            base = 55 + 5 * t + (5 if meta > 0 else 0)
            rows.append({"lr": 1e-4, "mbs": 64, "meta": meta, "task_order": t,
                         "tsk": f"CIFAR10_{t}/{n_sub}", "epoch": ep, "acc_tr_sub": base + 15, "acc_tr": base + 3,
                         "acc_test": base + ep})
    write_rows(run_dir / METRICS_FILE, STREAM_CIFAR10_COLUMNS, rows)
    save_config(run_dir, {"experiment": "stream_cifar10", "meta": meta, "seed": 0})
    return run_dir


def assert_png(path: Path, min_px=(300, 200)):
    import matplotlib.image as mpimg

    path = Path(path)
    assert path.is_file() and path.stat().st_size > 1000, path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] >= min_px[1] and img.shape[1] >= min_px[0]
    assert img.std() > 0.01  # not a blank canvas


def assert_pdf(path: Path):
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:5] == b"%PDF-"


@pytest.fixture
def two_runs(tmp_path):
    """Demo-like pair of runs: meta 0 and meta 1.35, 2 pMNIST tasks x 3 epochs."""
    return [make_continual_run(tmp_path / "m0", meta=0.0),
            make_continual_run(tmp_path / "m135", meta=1.35)]


# --------------------------------------------------------------------------- grouping & names


def test_seed_grouping_one_group_two_members(tmp_path):
    a = make_continual_run(tmp_path / "s0", seed=0, started="2026-01-01T00:00")
    b = make_continual_run(tmp_path / "s1", seed=1, started="2026-01-02T10:00")
    c = make_continual_run(tmp_path / "other", seed=0, meta=0.0)
    groups = plots.group_runs(plots.load_runs([a, b, c]))
    assert [len(g) for g in groups] == [2, 1]
    assert {r.name for r in groups[0].runs} == {"s0", "s1"}
    assert groups[1].first.name == "other"


def test_grouping_without_config_uses_metric_columns(tmp_path):
    a = make_continual_run(tmp_path / "a", seed=0)
    b = make_continual_run(tmp_path / "b", seed=1)
    (a / "config.json").unlink()
    (b / "config.json").unlink()
    groups = plots.group_runs(plots.load_runs([a / METRICS_FILE, b / METRICS_FILE]))
    assert len(groups) == 1 and len(groups[0]) == 2


def test_aggregate_mean_and_std(tmp_path):
    a = make_continual_run(tmp_path / "s0", seed=0)
    b = make_continual_run(tmp_path / "s1", seed=1)
    (group,) = plots.group_runs(plots.load_runs([a, b]))
    keys, mean, std = plots.runs.aggregate(group, ["acc_test_tsk_1"])
    fa, fb = group.runs[0].frame, group.runs[1].frame
    assert len(keys) == 6
    np.testing.assert_allclose(mean["acc_test_tsk_1"], (fa["acc_test_tsk_1"] +
                                                        fb["acc_test_tsk_1"]) / 2)
    assert (std["acc_test_tsk_1"] >= 0).all() and std["acc_test_tsk_1"].max() > 0


def test_cumulative_x_and_boundaries():
    x, b = plots.runs.cumulative_x([1, 1, 1, 2, 2, 2], [1, 2, 3, 1, 2, 3])
    assert list(x) == [1, 2, 3, 4, 5, 6] and b == [3.0]
    x, b = plots.runs.cumulative_x([1, 1, 2, 2], [0, 1, 1, 2])  # mnist_usps epoch-0 row
    assert list(x) == [0, 1, 2, 3] and b == [1.0]


def test_task_names(tmp_path):
    runs = plots.load_runs([
        make_continual_run(tmp_path / "p", tasks=("pMNIST",) * 3),
        make_continual_run(tmp_path / "mf", tasks=("MNIST", "FMNIST")),
        make_continual_run(tmp_path / "mm", tasks=("MNIST", "MNIST")),
        make_continual_run(tmp_path / "mp", tasks=("MNIST", "pMNIST", "MNIST", "pMNIST")),
    ])
    assert plots.task_names(runs[0]) == ["pMNIST1", "pMNIST2", "pMNIST3"]
    assert plots.task_names(runs[1]) == ["MNIST", "FMNIST"]
    assert plots.task_names(runs[2]) == ["MNIST1", "MNIST2"]
    # pMNIST by its position, as the tsk column names it (tests/test_sequence.py)
    assert plots.task_names(runs[3]) == ["MNIST1", "pMNIST2", "MNIST2", "pMNIST4"]
    runs[0].config.clear()  # falls back on the task_order column
    assert plots.task_names(runs[0]) == ["pMNIST1", "pMNIST2", "pMNIST3"]


def test_task_names_cifar100_expansion(tmp_path):
    run = plots.load_run(make_continual_run(tmp_path / "c", tasks=("a", "b", "c", "d")))
    run.config["task_sequence"] = ["cifar100-4"]
    assert plots.task_names(run) == [f"CIFAR-100 {i}/4" for i in range(1, 5)]
    run.config.clear()  # without config.json: the published tsk names of the rows
    run.frame["tsk"] = [f"cifar100-{t}" for t in run.frame["task_order"]]
    assert plots.task_names(run) == [f"cifar100-{i}" for i in range(1, 5)]


# --------------------------------------------------------------------------- every figure


def test_accuracy_figure(two_runs, tmp_path):
    written = plots.plot_task_accuracies(two_runs, tmp_path / "fig" / "acc.png")
    assert written == [tmp_path / "fig" / "acc.png"]
    assert_png(written[0], min_px=(800, 300))


def test_accuracy_figure_seeds_labels_pdf(tmp_path):
    runs = [make_continual_run(tmp_path / f"s{s}", seed=s, tasks=("pMNIST",) * 6)
            for s in range(2)] + [make_continual_run(tmp_path / "m0", meta=0.0,
                                                     tasks=("pMNIST",) * 6)]
    written = plots.plot_task_accuracies(runs, tmp_path / "acc", labels=["meta", "plain"],
                                         pdf=True)
    assert [p.suffix for p in written] == [".png", ".pdf"]
    assert_png(written[0])
    assert_pdf(written[1])


def test_accuracy_figure_from_csv_path(tmp_path):
    run = make_continual_run(tmp_path / "r")
    (written,) = plots.plot_task_accuracies(run / METRICS_FILE, tmp_path / "a.png")
    assert_png(written)


def test_histogram_figure(tmp_path):
    run = make_hist_run(tmp_path / "h")
    assert_png(plots.plot_hidden_weight_histograms(run, tmp_path / "h.png")[0])
    (p,) = plots.plot_hidden_weight_histograms(run / HIDDEN_HIST_FILE, tmp_path / "hl.png",
                                               log_y=True, density=True)
    assert_png(p)


def test_hidden_size_figure(tmp_path):
    runs = []
    for h in (64, 128, 256, 512):
        for seed in (0, 1):
            runs.append(make_continual_run(tmp_path / f"seq{h}_{seed}", hidden=(h, h),
                                           seed=seed))
        runs.append(make_continual_run(tmp_path / f"seq0_{h}", hidden=(h, h), meta=0.0))
        runs.append(make_continual_run(tmp_path / f"int{h}", hidden=(h, h), meta=0.0,
                                       interleaved=True))
        runs.append(make_continual_run(tmp_path / f"ewc{h}", hidden=(h, h), meta=0.0,
                                       ewc=True))
    (p,) = plots.plot_hidden_size(runs, tmp_path / "hs.png")
    assert_png(p)


def test_two_task_figure(tmp_path):
    runs = [make_continual_run(tmp_path / "mf", tasks=("MNIST", "FMNIST"), epochs=5),
            make_continual_run(tmp_path / "mu", tasks=("MNIST", "USPS"), epochs=4,
                               epoch0=True),
            make_continual_run(tmp_path / "av0", tasks=("animals", "vehicles"), seed=0),
            make_continual_run(tmp_path / "av1", tasks=("animals", "vehicles"), seed=1)]
    (p,) = plots.plot_two_task(runs, tmp_path / "tt.png")
    assert_png(p)


def test_stream_figure(tmp_path):
    runs = [make_stream_fmnist(tmp_path / f"f{m}_{s}", meta=m, seed=s)
            for m in (0.0, 0.5, 1.35) for s in (0, 1)]
    runs += [make_stream_cifar(tmp_path / f"c{m}", meta=m) for m in (0.0, 1.35)]
    loaded = plots.load_runs(runs)
    assert {r.kind for r in loaded} == {"stream_fmnist", "stream_cifar10"}
    assert [len(g) for g in plots.group_runs(loaded)] == [2, 2, 2, 1, 1]
    (p,) = plots.plot_stream(runs, tmp_path / "st.png")
    assert_png(p)
    (p,) = plots.plot_stream(runs[-1], tmp_path / "st1.png")
    assert_png(p)


def test_sign_switch_figure(tmp_path):
    csv_path = make_sign_switch(tmp_path / "run" / SIGN_SWITCH_FILE)
    assert_png(plots.plot_sign_switch(csv_path, tmp_path / "ss.png")[0])
    written = plots.plot_sign_switch(tmp_path / "run", tmp_path / "ss2.png", pdf=True)
    assert_png(written[0])
    assert_pdf(written[1])


def test_sign_switch_figure_over_the_seeds_of_one_configuration(tmp_path, monkeypatch):
    import json

    import metaplastic.plots.sign_switch as module

    seeds = []
    for seed in (0, 1):
        csv_path = make_sign_switch(tmp_path / f"seed-{seed}" / SIGN_SWITCH_FILE)
        frame = read_records(csv_path, SIGN_SWITCH_COLUMNS)
        frame["loss_increase_mean"] *= 1 + 2 * seed           # seed 1: three times seed 0
        frame.to_csv(csv_path, index=False)
        (csv_path.parent / "config.json").write_text(json.dumps({"meta": 1.35, "seed": seed}))
        seeds.append(csv_path.parent)
    figures = []
    monkeypatch.setattr(module, "save", lambda fig, out, pdf: figures.append(fig) or [])
    plots.plot_sign_switch(seeds, tmp_path / "ss.png")
    seed0 = read_records(seeds[0] / SIGN_SWITCH_FILE, SIGN_SWITCH_COLUMNS)
    layer1 = seed0[seed0["layer"] == 1].sort_values("magnitude_mean")
    drawn = figures[0].axes[0].lines[0].get_ydata()             # layer 1's means
    assert np.allclose(drawn, 2 * layer1["loss_increase_mean"])  # (y + 3y) / 2
    assert "over 2 seeds" in figures[0]._suptitle.get_text()
    monkeypatch.undo()
    assert_png(plots.plot_sign_switch(seeds, tmp_path / "ss.png")[0])

    refused = {"mixed": seeds + [make_sign_switch(tmp_path / "other" / SIGN_SWITCH_FILE).parent],
               "twice": [seeds[0], seeds[0] / SIGN_SWITCH_FILE]}
    (tmp_path / "other" / "config.json").write_text(json.dumps({"meta": 0.0, "seed": 2}))
    bare = make_sign_switch(tmp_path / "bare.csv")
    for case, match in (("mixed", "one configuration.*meta"), ("twice", "twice"),
                        ("bare", "no config.json")):
        paths = refused.get(case, [seeds[0], bare])
        with pytest.raises(MetaplasticError, match=match):
            plots.plot_sign_switch(paths, tmp_path / f"{case}.png")
        assert not (tmp_path / f"{case}.png").exists()


# --------------------------------------------------------------------------- bad inputs


def _bad_inputs(tmp_path):
    wrong = tmp_path / "wrong.csv"
    write_rows(wrong, ("a", "b"), [{"a": 1, "b": 2}])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header_only" / METRICS_FILE
    CsvRecorder(header_only, continual_columns(2))
    return {"wrong columns": wrong, "missing": tmp_path / "nope" / METRICS_FILE,
            "empty": empty, "header only": header_only, "empty dir": _mkdir(tmp_path / "d")}


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


@pytest.mark.parametrize("case", ["wrong columns", "missing", "empty", "header only",
                                  "empty dir"])
@pytest.mark.parametrize("func", [plots.plot_task_accuracies, plots.plot_hidden_size,
                                  plots.plot_two_task, plots.plot_stream,
                                  plots.plot_hidden_weight_histograms,
                                  plots.plot_sign_switch])
def test_bad_input_refused(tmp_path, func, case):
    path = _bad_inputs(tmp_path)[case]
    with pytest.raises(RecordError) as info:
        func(path, tmp_path / "out.png")
    message = str(info.value)
    assert str(path) in message or str(path.parent) in message
    assert not (tmp_path / "out.png").exists()


def test_wrong_columns_message_says_what_was_expected(tmp_path):
    path = _bad_inputs(tmp_path)["wrong columns"]
    with pytest.raises(RecordError, match="acc_test_tsk_1"):
        plots.plot_task_accuracies(path, tmp_path / "o.png")
    with pytest.raises(RecordError, match="magnitude_mean"):
        plots.plot_sign_switch(path, tmp_path / "o.png")
    with pytest.raises(RecordError, match="bin_low"):
        plots.plot_hidden_weight_histograms(path, tmp_path / "o.png")


def test_schema_mismatch_between_figures(tmp_path):
    stream = make_stream_fmnist(tmp_path / "s", meta=1.0)
    cont = make_continual_run(tmp_path / "c")
    with pytest.raises(RecordError, match="stream"):
        plots.plot_task_accuracies(stream, tmp_path / "o.png")
    with pytest.raises(RecordError, match="continual-learning"):
        plots.plot_stream(cont, tmp_path / "o.png")


def test_bad_labels_and_output(two_runs, tmp_path):
    with pytest.raises(MetaplasticError, match="2 configurations"):
        plots.plot_task_accuracies(two_runs, tmp_path / "o.png", labels=["only one"])
    with pytest.raises(MetaplasticError, match=".png"):
        plots.plot_task_accuracies(two_runs, tmp_path / "o.jpg")


def test_malformed_config_refused(tmp_path):
    run = make_continual_run(tmp_path / "r")
    (run / "config.json").write_text("{not json")
    with pytest.raises(RecordError, match="config.json"):
        plots.plot_task_accuracies(run, tmp_path / "o.png")


# --------------------------------------------------------------------------- command line


@pytest.mark.slow
def test_cli_every_figure(tmp_path, capsys):
    m0 = make_continual_run(tmp_path / "m0", meta=0.0)
    m1 = make_continual_run(tmp_path / "m1", meta=1.35)
    hist = make_hist_run(tmp_path / "h")
    ss = make_sign_switch(tmp_path / "ss" / SIGN_SWITCH_FILE).parent
    ss2 = make_sign_switch(tmp_path / "ss2" / SIGN_SWITCH_FILE).parent
    st = make_stream_fmnist(tmp_path / "st", meta=1.35)
    cases = [
        ["accuracy", str(m0), str(m1), "--labels", "m=0", "m=1.35"],
        ["histograms", str(hist), "--log-y", "--density"],
        ["hidden-size", str(m0), str(m1)],
        ["two-task", str(m0 / METRICS_FILE)],
        ["stream", str(st)],
        ["sign-switch", str(ss)],
        ["sign-switch", str(ss), str(ss2)],                      # seeds of one configuration
    ]
    for i, args in enumerate(cases):
        out = tmp_path / "cli" / f"fig{i}.png"
        assert plot_figures.main(args + ["--out", str(out), "--pdf"]) == 0
        captured = capsys.readouterr()
        assert f"wrote {out}" in captured.out
        assert_png(out)
        assert_pdf(out.with_suffix(".pdf"))


@pytest.mark.parametrize("case", ["wrong columns", "missing", "empty", "header only"])
def test_cli_errors_exit_2_without_traceback(tmp_path, capsys, case):
    path = _bad_inputs(tmp_path)[case]
    code = plot_figures.main(["accuracy", str(path), "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and str(path) in err and "Traceback" not in err


def test_cli_usage_errors(tmp_path, capsys):
    run = make_continual_run(tmp_path / "r")
    assert plot_figures.main(["histograms", str(run), str(run), "--out",
                              str(tmp_path / "o.png")]) == 2
    assert "takes one run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:  # argparse: unknown figure
        plot_figures.main(["nofigure", str(run), "--out", str(tmp_path / "o.png")])
    assert info.value.code == 2


@pytest.mark.slow
def test_script_entry_point(tmp_path):
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    run = make_continual_run(tmp_path / "r")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = str(root)
    ok = subprocess.run([sys.executable, str(root / "plot_figures.py"), "accuracy", str(run),
                         "--out", str(tmp_path / "o.png")], capture_output=True, text=True,
                        env=env)
    assert ok.returncode == 0, ok.stderr
    assert "wrote" in ok.stdout
    assert_png(tmp_path / "o.png")
    bad = subprocess.run([sys.executable, str(root / "plot_figures.py"), "accuracy",
                          str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2
    assert "no such run directory" in bad.stderr and "Traceback" not in bad.stderr


def test_each_figure_has_its_own_help(capsys):
    """plot_figures.py FIGURE -h: that figure's description and options only."""
    for figure, has_labels, has_log in (("histograms", False, True), ("accuracy", True, False),
                                        ("sign-switch", False, False)):
        with pytest.raises(SystemExit) as done:
            plot_figures.main([figure, "-h"])
        assert done.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: plot_figures.py {figure} ")
        assert plots.FIGURE_KINDS[figure].description.split(":")[0] in out
        assert ("--labels" in out) == has_labels and ("--log-y" in out) == has_log
    with pytest.raises(SystemExit) as done:                 # an option of another figure
        plot_figures.main(["accuracy", "run", "--out", "o.png", "--log-y"])
    assert done.value.code == 2


def test_long_panel_titles_are_wrapped():
    from metaplastic.plots.labels import TITLE_WIDTH, title_with_seeds

    class ThreeSeeds:
        def __len__(self):
            return 3

    long = "metaplastic m = 1.35, interleaved, hidden layers 4096-4096, decay 1e-8, lr 0.005"
    wrapped = title_with_seeds(long, ThreeSeeds())
    assert "(mean ± std, 3 seeds)" in wrapped.replace("\n", " ")
    assert "\n" in wrapped and all(len(line) <= TITLE_WIDTH for line in wrapped.split("\n"))
    assert wrapped.replace("\n", " ").startswith(long)


def test_the_launch_records_never_label_or_split_runs():
    """config.json's 'launches' (when, where and how each launch ran) differ between seeds;
    they are records, not settings: no panel title or grouping may use them."""
    from metaplastic.plots.runs import run_settings

    config = {"net": "bnn", "meta": [1.35], "seed": 0, "result_neutral": [],
              "launches": [{"started": "2026-12-05T18:10:55", "threads": 1}]}
    other = dict(config, seed=1, launches=[{"started": "2026-12-05T19:00:00", "threads": 1}])
    assert run_settings(config) == run_settings(other)
    assert "launches" not in run_settings(config) and run_settings(config)["meta"] == [1.35]


def test_a_run_of_one_epoch_is_drawn_with_markers(tmp_path):
    """An interleaved smoke run (one epoch, one row) is a point per task, not an empty panel."""
    import matplotlib.pyplot as plt

    from metaplastic.plots.draw import draw_task_curves
    from metaplastic.plots.runs import group_runs, load_runs, task_names

    run = make_continual_run(tmp_path / "r", tasks=("pMNIST",) * 3, epochs=1, interleaved=True)
    group = group_runs(load_runs([run]))[0]
    fig, ax = plt.subplots()
    lines = draw_task_curves(ax, group, task_names(group.first), shade_phases=False)
    assert lines and all(line.get_marker() == "o" for line in lines)
    plt.close(fig)


def test_runs_from_before_the_beaker_flags_group_with_later_ones():
    """An older config.json lacks the beaker's parameters; without --beaker they are not
    settings, so seeds written before and after they existed share one panel."""
    from metaplastic.plots.runs import run_settings

    older = {"net": "bnn", "meta": [1.5], "result_neutral": []}
    newer = older | {"beaker": False, "fb": 0.005, "n_bk": 4, "ratios": [0.01], "areas": [1.0]}
    assert run_settings(older) == run_settings(newer)
    assert run_settings(newer | {"beaker": True})["n_bk"] == 4


def test_every_figure_kind_is_registered_once_and_used_by_the_paper():
    """plots.FIGURE_KINDS is the one registry: the command line offers exactly its kinds, and
    every figure of metaplastic.paper names one of them (or none)."""
    from metaplastic import paper
    from plot_figures import build_parser

    choices = next(a for a in build_parser()._actions if a.dest == "figure").choices
    assert list(choices) == list(plots.FIGURE_KINDS)
    assert {f.plot for f in paper.FIGURES} - {""} <= set(plots.FIGURE_KINDS)
    assert all(kind.name == name for name, kind in plots.FIGURE_KINDS.items())


def test_stream_legend_names_the_number_of_subsets_once(tmp_path, monkeypatch):
    # the whole set (1 subset) beside 4 subsets: each legend entry says "N subsets" once,
    # not also as the config key "nb_subset=N"
    runs = [make_stream_fmnist(tmp_path / f"f{n}", meta=1.35, n_sub=n) for n in (1, 4)]
    drawn = []
    monkeypatch.setattr(plots.stream, "save", lambda fig, out, pdf: drawn.append(fig) or [out])
    plots.plot_stream(runs, tmp_path / "st.png")
    legend = drawn[0].axes[0].get_legend()
    texts = sorted(t.get_text() for t in legend.get_texts())
    assert texts == ["m=1.35, 1 subset", "m=1.35, 4 subsets"]
    titles = plots.labels.group_labels(plots.group_runs(plots.load_runs(runs)), None)
    assert all("nb_subset" not in t for t in titles)
    final_panel = sorted(t.get_text() for t in drawn[0].axes[1].get_legend().get_texts())
    assert final_panel == ["FMNIST, 1 subset: test", "FMNIST, 1 subset: train (whole set)",
                           "FMNIST, 4 subsets: test", "FMNIST, 4 subsets: train (whole set)"]
    # a 4-part run stopped after its first part is still told apart from the whole set, by
    # its configuration; a figure of whole-set runs only says so in the singular
    stopped = make_stream_fmnist(tmp_path / "stopped", meta=1.35, n_sub=1)
    save_config(stopped, {"experiment": "stream_fmnist", "meta": 1.35, "seed": 0,
                          "nb_subset": 4, "epochs_per_task": 3})
    drawn.clear()
    plots.plot_stream([runs[0], stopped], tmp_path / "st2.png")
    texts = sorted(t.get_text() for t in drawn[0].axes[0].get_legend().get_texts())
    assert texts == ["m=1.35, 1 subset", "m=1.35, 4 subsets"]
    drawn.clear()
    plots.plot_stream([runs[0]], tmp_path / "st3.png")
    assert "(1 subset)" in drawn[0].axes[0].get_title()
