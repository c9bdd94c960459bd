"""continual_learning/main.py as a user runs it: published commands, errors, real data."""
import csv
import shlex

import pytest
import torch
from conftest import DATA_ROOT, needs_data, run_script

from metaplastic.runs import records
from continual_learning.main import main
from metaplastic.fast import make_optimizer
from metaplastic.method.engine import NonFiniteLossError, train_epoch
from metaplastic.method.models import DNN


with_data = needs_data("MNIST", "FashionMNIST")

P6 = " ".join(["'pMNIST'"] * 6)
P10 = " ".join(["'pMNIST'"] * 10)
PUBLISHED = [
    *(f"--net 'bnn' --hidden-layers 4096 4096 --lr 0.005 --decay 1e-7 --meta {m} "
      f"--epochs-per-task 40 --task-sequence {P6}" for m in ("0.0", "0.5", "1.0", "1.35")),
    f"--net 'bnn' --hidden-layers 4096 4096 --lr 0.005 --decay 1e-7 --ewc-lambda 5000.0 "
    f"--epochs-per-task 40 --task-sequence {P6}",
    *(f"--net 'dnn' --hidden-layers 4096 4096 --lr 0.005 --decay 1e-7 --meta {m} "
      f"--epochs-per-task 40 --task-sequence {P6}" for m in ("0.0", "0.5", "1.0", "1.35")),
    *(f"--net 'bnn' --hidden-layers {h} {h} --lr 0.005 --decay 1e-8 --meta 1.35 "
      f"--epochs-per-task 40 --task-sequence {P10}" for h in (512, 1024, 2048, 4096)),
    *(f"--net 'bnn' --hidden-layers {h} {h} --lr 0.005 --decay 1e-8 --ewc --ewc-lambda 5e3 "
      f"--meta 0.0 --epochs-per-task 40 --task-sequence {P10}" for h in (512, 1024, 2048, 4096)),
    *(f"--net 'bnn' --interleaved --hidden-layers {h} {h} --lr 0.005 --decay 1e-8 --meta {m} "
      f"--epochs-per-task 40 --task-sequence {P10}" for m in ("0.0", "1.35")
      for h in (512, 1024, 2048, 4096)),
    *(f"--net 'bnn' --hidden-layers 4096 4096 --lr 0.005 --decay 1e-7 --meta {m} "
      f"--epochs-per-task 50 --task-sequence {seq}" for seq in ("MNIST FMNIST", "FMNIST MNIST")
      for m in ("0.0", "1.5")),
    "--net 'bnn' --hidden-layers 1024 1024 --decay 1e-7 --meta 1.35 --lr 0.005 "
    "--epochs-per-task 40 --task-sequence MNIST",
]


def run_cli(args):
    return run_script("continual_learning/main.py", *args)


@with_data
@pytest.mark.parametrize("command", PUBLISHED)
def test_published_commands_accepted(command, capsys):
    argv = shlex.split(command) + ["--dry-run", "--data-root", str(DATA_ROOT)]
    assert main(argv) == 0
    assert "dry run: flags and data OK" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--net", "cnn"], "invalid choice"),
    (["--lr", "-1"], "must be a finite number > 0"),
    (["--hidden-layers", "0"], "positive integer"),
    (["--hidden-layers", "8", "8", "--meta", "1", "2"],
     "--meta takes 1 value or one per layer (3)"),
    (["--si", "--meta", "1.35"], "use --meta 0"),
    (["--task-sequence", "animals"], "run it with cifar_features/main.py"),
    (["--task-sequence", "CIFAR"], "unknown task 'CIFAR'"),
    (["--rnd-consolidation"], "add --ewc"),
    (["--ewc-fisher-mean"], "is an option of EWC: add --ewc"),
    (["--in-size", "512"], "MNIST-type tasks have 784 inputs"),
    (["--resume"], "--resume needs --out-dir"),
])
def test_bad_flags_exit_2_with_a_message(args, message, capsys):
    try:
        code = main(args + ["--dry-run"])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_bad_flag_in_a_real_process_exits_2_without_traceback():
    result = run_cli(["--net", "cnn", "--dry-run"])
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_data_names_files_and_the_prepare_command(tmp_path):
    result = run_cli(["--dry-run", "--data-root", str(tmp_path)])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "train-images-idx3-ubyte" in result.stderr
    assert "python -m metaplastic.data_prep" in result.stderr


@pytest.mark.slow
def test_corrupt_data_is_refused(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"\x00\x00\x08\x03not mnist")
    result = run_cli(["--dry-run", "--data-root", str(tmp_path)])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "corrupt" in result.stderr or "SHA-256" in result.stderr


def test_nan_loss_is_refused():
    model = DNN([4, 3, 2])
    opt = make_optimizer(model, 0.01, 0.0, implementation="eager")
    x = torch.full((8, 4), float("nan"))
    with pytest.raises(NonFiniteLossError, match="NaN"):
        train_epoch(model, opt, x, torch.zeros(8, dtype=torch.long), 4, torch.Generator())


@with_data
@pytest.mark.slow
def test_short_real_run_and_resume_refusal(tmp_path):
    out = tmp_path / "run"
    args = ["--hidden-layers", "64", "64", "--epochs-per-task", "1", "--meta", "1.35",
            "--task-sequence", "pMNIST", "pMNIST", "--data-root", str(DATA_ROOT),
            "--out-dir", str(out), "--no-progress", "--save", "--seed", "3"]
    result = run_cli(args)
    assert result.returncode == 0, result.stderr
    frame = records.read_records(out / records.METRICS_FILE)
    assert len(frame) == 2
    assert frame.acc_test_tsk_1.iloc[0] > 80 and frame.acc_test_tsk_2.iloc[1] > 80
    assert frame.acc_test_tsk_2.iloc[0] < 30  # task 2 not learned yet: its permutation differs
    config = records.load_config(out)
    assert config["meta"] == [1.35] and config["seed"] == 3
    assert (out / "hidden_weights_task2.pt").is_file() and (out / "model_final.pt").is_file()
    again = run_cli(args)  # the same folder again: refused, nothing overwritten
    assert again.returncode == 2 and "--resume" in again.stderr


def test_image_tasks_declare_8bit_inputs_to_the_model():
    from metaplastic.data.tasks import TaskData
    from metaplastic.experiments.continual import image_levels

    pixels = torch.randint(0, 256, (50, 784)).float() / 255
    labels = torch.zeros(50, dtype=torch.long)
    tasks = [TaskData(f"pMNIST{i}", pixels, labels, pixels, labels) for i in (1, 2)]
    assert image_levels(["pMNIST", "pMNIST"], tasks) == 255
    assert image_levels(["MNIST", "FMNIST"], tasks) == 255
    # not byte / 255 (e.g. normalised inputs): the first layer keeps the float product
    other = [TaskData("MNIST", pixels * 0.5, labels, pixels, labels)]
    assert image_levels(["MNIST"], other) is None
    assert image_levels(["animals"], tasks) is None


@with_data
def test_pmnist_run_with_impl_fast_gives_the_bnn_an_int8_first_layer(tmp_path, monkeypatch,
                                                                      capsys):
    from continual_learning import main as continual_main
    from metaplastic.method import runtime

    if not runtime.int8_products_work():
        pytest.skip("no exact int8 products on this CPU")
    built = []
    original = continual_main.build_model

    def spy(*args, **kwargs):
        built.append(original(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(continual_main, "build_model", spy)
    argv = ["--net", "bnn", "--hidden-layers", "16", "--task-sequence", "pMNIST", "pMNIST",
            "--data-root", str(DATA_ROOT), "--out-dir", str(tmp_path / "run"), "--dry-run",
            "--impl", "fast"]
    assert main(argv) == 0
    assert built[0].layers[0].input_levels == 255 and built[0].layers[0].uses_int8()
    assert "implementation: fast (fast): " in capsys.readouterr().out


@with_data
def test_impl_fast_is_refused_at_start_where_int8_products_do_not_run(tmp_path, monkeypatch,
                                                                      capsys):
    from metaplastic.method import runtime

    monkeypatch.setitem(runtime._MEASURED, "compile_cpu", None)
    monkeypatch.setitem(runtime._MEASURED, "int8_works", False)
    argv = ["--hidden-layers", "16", "--task-sequence", "pMNIST", "--data-root", str(DATA_ROOT),
            "--out-dir", str(tmp_path / "run"), "--impl", "fast", "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--impl fast" in err and "int8 products" in err and "--impl auto" in err
    assert not (tmp_path / "run" / "metrics.csv").exists()


@with_data
def test_impl_choice_is_printed_and_recorded_in_config_json(tmp_path, monkeypatch, capsys):
    import json

    from metaplastic.method import runtime

    monkeypatch.setitem(runtime._MEASURED, "compile_cpu", "CppCompileError: no compiler")
    argv = ["--hidden-layers", "8", "--task-sequence", "MNIST", "--epochs-per-task", "1",
            "--data-root", str(DATA_ROOT), "--out-dir", str(tmp_path / "run"), "--device", "cpu",
            "--no-progress", "--no-flip-stats"]
    assert main(argv) == 0
    said = capsys.readouterr().out
    assert "implementation: reference (auto: fast paths declined" in said
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["impl"] == "auto"
    assert config["environment"]["implementation"].startswith("reference (auto: fast paths")


@with_data
@pytest.mark.slow
def test_no_model_flags_train_the_published_default_network(tmp_path):
    """Published defaults: BNN 784-10, MNIST, 5 epochs, no decay, m = 0, lr 0.005."""
    out = tmp_path / "default"
    result = run_cli(["--out-dir", str(out), "--data-root", str(DATA_ROOT), "--no-progress"])
    assert result.returncode == 0, result.stderr
    config = records.load_config(out)
    expected = {"net": "bnn", "hidden_layers": [], "in_size": 784, "out_size": 10,
                "task_sequence": ["MNIST"], "epochs_per_task": 5, "decay": 0.0, "meta": [0.0],
                "lr": 0.005, "gamma": 1.0, "norm": "bn", "init": "uniform", "init_width": 0.1,
                "ewc": False, "ewc_lambda": 0.0, "si": False, "si_lambda": 0.0,
                "scenario": "task", "interleaved": False}
    assert {k: config[k] for k in expected} == expected
    frame = records.read_records(out / records.METRICS_FILE)
    assert list(frame.epoch) == [1, 2, 3, 4, 5] and set(frame.tsk) == {"MNIST"}
    assert frame.meta.iloc[0] == "{'l1': 0.0}"
    assert frame.acc_test_tsk_1.iloc[-1] > 80   # a single binarized layer learns MNIST
    assert "[784, 10]" in result.stdout


@with_data
@pytest.mark.slow
def test_two_task_pmnist_run_writes_the_published_records(tmp_path):
    out = tmp_path / "gamma"
    result = run_cli(["--hidden-layers", "32", "32", "--epochs-per-task", "1", "--gamma", "2",
                      "--meta", "1.35", "--task-sequence", "pMNIST", "pMNIST", "--decay", "1e-7",
                      "--data-root", str(DATA_ROOT), "--out-dir", str(out), "--no-progress"])
    assert result.returncode == 0, result.stderr
    with open(out / records.METRICS_FILE, newline="") as f:
        table = list(csv.reader(f))
    published = ["net", "scenario", "arch", "norm", "lr", "meta", "ewc", "SI", "task_order",
                 "tsk", "epoch", "acc_tr", "loss_tr", "acc_test_tsk_1", "loss_test_tsk_1",
                 "acc_test_tsk_2", "loss_test_tsk_2"]
    from metaplastic.method.flips import flip_columns

    ours = ["bn_gamma_init", "bn_stats"]                     # the published version's choices
    assert table[0] == published + ours + list(flip_columns(3))   # ours after the published
    meta = "{'l1': 1.35, 'l2': 1.35, 'l3': 1.35}"
    assert [row[:11] for row in table[1:]] == [
        ["bnn", "task", "32-32", "bn", "0.005", meta, "0.0", "0.0", "1", "pMNIST1", "1"],
        ["bnn", "task", "32-32", "bn", "0.0025", meta, "0.0", "0.0", "2", "pMNIST2", "1"]]
    for row in table[1:]:
        accuracies = [float(row[i]) for i in (11, 13, 15)]
        assert all(0 <= a <= 100 and round(a, 2) == a for a in accuracies)
        assert row[17:19] == ["ones", "batch"]
        assert all(0 <= float(v) <= 1 for v in row[19:])
    # --no-flip-stats: the published header and the version's columns, the same values
    plain = tmp_path / "plain"
    result = run_cli(["--hidden-layers", "32", "32", "--epochs-per-task", "1", "--gamma", "2",
                      "--meta", "1.35", "--task-sequence", "pMNIST", "pMNIST", "--decay", "1e-7",
                      "--data-root", str(DATA_ROOT), "--out-dir", str(plain), "--no-progress",
                      "--no-flip-stats"])
    assert result.returncode == 0, result.stderr
    with open(plain / records.METRICS_FILE, newline="") as f:
        plain_table = list(csv.reader(f))
    assert plain_table[0] == published + ours
    assert [r[:11] for r in plain_table[1:]] == [r[:11] for r in table[1:]]
