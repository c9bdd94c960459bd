"""Tests of the MNIST/USPS experiment (Fig. 4c,d): the binarized conv net, the USPS reader, the
training windows, the command line, and short runs on tiny synthetic and on the real data."""
from __future__ import annotations

import bz2
import csv
import hashlib
import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import DATA_ROOT, idx_arrays, needs_data, write_idx_dataset

from metaplastic import fileio
from metaplastic.data import datasets, registry
from metaplastic.data import usps
from metaplastic.data.usps import load_usps, read_usps
from metaplastic.errors import ConfigError, DataError
from metaplastic.experiments.runner import SimulatedCrash
from metaplastic.fast import make_optimizer
from metaplastic.method.engine import evaluate
from metaplastic.method.flips import flip_columns
from metaplastic.method.layers import BinarizedConv2d, BinarizedLinear
from metaplastic.method.models import layer_weight, weight_layers
from metaplastic.runs import records
from mnist_usps.data_utils import build_tasks, draw_windows, window_start
from mnist_usps.main import build_parser, config_from_args, main, run
from mnist_usps.model_utils import ConvBNN, spatial_size, spatial_sizes

REAL_USPS_SHA256 = "734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36"

PUBLISHED_COMMANDS = [
    "python mnist_usps/main.py --net 'bcnn' --ch 1 12 20 30 --kr 4 4 4 --decay 1e-8 --norm 'bn' "
    "--lr 0.005 --meta 1.2 --epochs-per-task 240 --task-sequence 'MNIST' 'USPS'",
    "python mnist_usps/main.py --net 'bcnn' --ch 1 6 10 15 --kr 4 4 4 --norm 'bn' --lr 0.005 "
    "--meta 0.0 --epochs-per-task 240 --task-sequence 'USPS'",
    "python mnist_usps/main.py --net 'bcnn' --ch 1 6 10 15 --kr 4 4 4 --norm 'bn' --lr 0.005 "
    "--meta 0.0 --epochs-per-task 240 --task-sequence 'MNIST'",
    "python mnist_usps/main.py --net 'bcnn' --ch 1 10 15 20 --kr 4 4 4 --decay 1e-8 --norm 'bn' "
    "--lr 0.005 --meta 1.2 --epochs-per-task 240 --task-sequence 'MNIST' 'USPS'",
]


needs_real_data = needs_data("MNIST", "USPS")


@pytest.fixture(autouse=True)
def fresh_usps_cache(fresh_caches):
    """The dataset caches (conftest) and the USPS cache empty around each test."""
    usps._usps_cache.clear()
    yield
    usps._usps_cache.clear()


# --------------------------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------------------------


def synthetic_usps_values(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Integers k in -1000..1000 (x = k / 1000), every k present when n * 256 allows, and labels."""
    rng = np.random.default_rng(seed)
    k = rng.integers(-1000, 1001, size=n * 256)
    k[:min(2001, k.size)] = np.arange(-1000, 1001)[:min(2001, k.size)]
    return k.reshape(n, 256), rng.integers(0, 10, size=n)


def write_usps_h5(root: Path, monkeypatch, n_train: int = 12, n_test: int = 5, seed: int = 0) -> dict:
    """A tiny usps.h5 in the published layout (v = (x + 1) / 2 as float32), hash registered."""
    import h5py

    splits = {"train": synthetic_usps_values(n_train, seed),
              "test": synthetic_usps_values(n_test, seed + 1)}
    path = root / "USPS" / "usps.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for split, (k, labels) in splits.items():
            g = f.create_group(split)
            g.create_dataset("data", data=((k / 1000 + 1) / 2).astype(np.float32))
            g.create_dataset("target", data=labels.astype(np.int32))
    monkeypatch.setitem(registry.SHA256, "USPS/usps.h5", fileio.sha256_file(path))
    return splits


def write_usps_bz2(root: Path, splits: dict, monkeypatch) -> None:
    """torchvision's LIBSVM pair (labels digit + 1), values written in varied decimal forms."""
    for split, rel in usps.USPS_BZ2.items():
        k, labels = splits[split]
        lines = []
        for row, label in zip(k, labels):
            # str() gives '-1.0', '0.5', '-0.999': other texts for the same three-decimal values
            items = " ".join(f"{i + 1}:{v / 1000}" for i, v in enumerate(row))
            lines.append(f"{label + 1} {items}\n")
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bz2.compress("".join(lines).encode()))
        monkeypatch.setitem(usps.USPS_BZ2_MD5, rel, hashlib.md5(path.read_bytes()).hexdigest())


def write_mnist(root: Path, monkeypatch, n_train: int = 60, n_test: int = 30, seed: int = 0) -> dict:
    """Tiny MNIST IDX files with learnable structure (class-dependent blobs), hashes registered."""
    rng = np.random.default_rng(seed)

    def images(labels):
        x = rng.integers(0, 60, size=(len(labels), 28, 28))
        for i, y in enumerate(labels):
            r, c = 3 + 2 * (y % 5), 3 + 10 * (y // 5)
            x[i, r:r + 8, c:c + 10] = 255
        return x.astype(np.uint8)

    train_y = rng.integers(0, 10, size=n_train).astype(np.uint8)
    test_y = rng.integers(0, 10, size=n_test).astype(np.uint8)
    write_idx_dataset(root, "MNIST", idx_arrays(images(train_y), train_y, images(test_y), test_y),
                      monkeypatch)
    return {"train_y": train_y, "test_y": test_y}


def expected_pixels(k: np.ndarray) -> np.ndarray:
    """torchvision's formula on x parsed from text as float32."""
    x = np.asarray([f"{v / 1000:.3f}" for v in k.ravel()], dtype=np.float32).reshape(k.shape)
    return ((x + 1) / 2 * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ch, kr, sides", [
    ([1, 12, 20, 30], [4, 4, 4], [28, 13, 6, 2]),
    ([1, 6, 10, 15], [4, 4, 4], [28, 13, 6, 2]),
    ([1, 10, 15, 20], [4, 4, 4], [28, 13, 6, 2]),
    ([1, 8, 8], [3, 5], [28, 14, 6]),
    ([1, 4], [2], [28, 14]),
])
def test_spatial_sizes_and_output_shapes(ch, kr, sides) -> None:
    assert spatial_sizes(ch, kr) == sides
    assert spatial_size(ch, kr) == sides[-1]
    # The formula, step by step: s <- s + 3 - k, then s <- floor((s - 2) / 2) + 1.
    s = 28
    for k in kr:
        s = (s + 3 - k - 2) // 2 + 1
    assert s == sides[-1]
    torch.manual_seed(0)
    model = ConvBNN(ch, kr)
    assert model.classifier.in_features == sides[-1] ** 2 * ch[-1]
    seen = []
    for norm in model.norms:
        norm.register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape)))
    x = torch.rand(7, 784)
    out = model(x)
    assert out.shape == (7, 10)
    assert seen == [(7, c, s, s) for c, s in zip(ch[1:], sides[1:])]
    assert torch.equal(model(x.reshape(7, 1, 28, 28)), out)


def test_bad_kernels_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="one kernel size per conv"):
        spatial_sizes([1, 6, 10], [4, 4, 4])
    with pytest.raises(ConfigError, match="too small"):
        spatial_sizes([1, 6, 6, 6, 6, 6], [4, 4, 4, 4, 4])


def test_every_layer_binarizes_its_input() -> None:
    torch.manual_seed(0)
    model = ConvBNN([1, 6, 10, 15], [4, 4, 4])
    layers = weight_layers(model)
    assert all(layer.binarize_input for layer in layers)
    # Raw pixels in [0, 1] with exact zeros: the first conv sees 0 / 1, so the output equals
    # the output on the explicitly binarized image.
    x = torch.rand(50, 784)
    x[x < 0.4] = 0.0
    out = model(x)
    assert torch.equal(out, model((x > 0).float()))
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model((x > 0).float()))
        model.train()
    # The test is sensitive: without input binarization the output changes.
    model.convs[0].binarize_input = False
    assert not torch.allclose(model(x), out)
    model.convs[0].binarize_input = True
    # Later layers receive sign outputs: values in {-1, 0, 1}.
    inputs = {}
    for i, layer in enumerate(layers):
        layer.register_forward_pre_hook(lambda m, args, i=i: inputs.__setitem__(i, args[0]))
    model(x)
    for i in range(1, len(layers)):
        assert set(inputs[i].unique().tolist()) <= {-1.0, 0.0, 1.0}
    # The binarized conv computes conv2d(sign(input), sign(W_h)) exactly.
    conv = model.convs[0]
    img = x[:3].reshape(3, 1, 28, 28)
    ref = torch.nn.functional.conv2d(torch.sign(img), torch.sign(conv.hidden_weight), padding=1)
    assert torch.equal(conv(img), ref)


def test_weight_layers_order_and_per_layer_meta() -> None:
    torch.manual_seed(0)
    model = ConvBNN([1, 6, 10, 15], [4, 4, 4])
    layers = weight_layers(model)
    assert layers == [*model.convs, model.classifier]
    assert [type(l) for l in layers] == [BinarizedConv2d] * 3 + [BinarizedLinear]
    assert not [p for p in model.parameters() if p.dim() < 2]  # affine-free norms
    opt = make_optimizer(model, 0.005, [0.1, 0.2, 0.3, 0.4], 1e-8, "eager")
    assert [g["meta"] for g in opt.param_groups] == [0.1, 0.2, 0.3, 0.4]
    assert [g["params"][0] for g in opt.param_groups] == [layer_weight(l) for l in layers]
    with pytest.raises(ValueError):
        make_optimizer(model, 0.005, [1.0, 2.0], 0.0, "eager")
    before = [layer_weight(l).detach().clone() for l in layers]
    loss = torch.nn.functional.cross_entropy(model(torch.rand(20, 784)), torch.randint(0, 10, (20,)))
    loss.backward()
    opt.step()
    assert all(not torch.equal(b, layer_weight(l)) for b, l in zip(before, layers))


def test_evaluation_normalizes_each_batch_of_100_on_its_own() -> None:
    torch.manual_seed(0)
    model = ConvBNN([1, 6, 10, 15], [4, 4, 4])
    x, y = torch.rand(250, 784), torch.randint(0, 10, (250,))
    ev = evaluate(model, x, y, 100)
    model.eval()
    with torch.no_grad():
        outs = torch.cat([model(x[i:i + 100]) for i in range(0, 250, 100)])
    model.train()
    loss = torch.nn.functional.cross_entropy(outs, y, reduction="sum").item() / 250
    assert ev.accuracy == round(100.0 * (outs.argmax(1) == y).sum().item() / 250, 2)
    assert ev.loss == pytest.approx(loss, rel=1e-5)


# --------------------------------------------------------------------------------------------
# USPS reader
# --------------------------------------------------------------------------------------------


def test_h5_and_libsvm_give_identical_images(tmp_path: Path, monkeypatch) -> None:
    splits = write_usps_h5(tmp_path / "h5", monkeypatch)
    write_usps_bz2(tmp_path / "bz2", splits, monkeypatch)
    from_h5 = read_usps(tmp_path / "h5")
    from_bz2 = read_usps(tmp_path / "bz2")
    assert from_h5.source.endswith("usps.h5") and "usps.bz2" in from_bz2.source
    for split in ("train", "test"):
        k, labels = splits[split]
        a, b = getattr(from_h5, f"{split}_images"), getattr(from_bz2, f"{split}_images")
        assert a.dtype == np.uint8 and a.shape == (len(k), 16, 16)
        assert np.array_equal(a, b)
        assert np.array_equal(a.reshape(len(k), 256), expected_pixels(k))
        assert np.array_equal(getattr(from_h5, f"{split}_labels"), labels)
        assert np.array_equal(getattr(from_bz2, f"{split}_labels"), labels)
    # Every three-decimal value occurs in the synthetic train split; spot-check known pixels.
    k, _ = splits["train"]
    px = from_h5.train_images.reshape(-1)
    for value, pixel in ((-1000, 0), (0, 127), (1000, 255), (-500, 63)):
        assert px[k.reshape(-1) == value][0] == pixel
    # Both sources, loaded as the model sees them, give the same tensors.
    h5_set, bz2_set = load_usps(tmp_path / "h5"), load_usps(tmp_path / "bz2")
    for name in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(h5_set, name), getattr(bz2_set, name))


def test_usps_padding_to_28x28(tmp_path: Path, monkeypatch) -> None:
    write_usps_h5(tmp_path, monkeypatch)
    usps = load_usps(tmp_path)
    raw = read_usps(tmp_path).train_images
    images = usps.train_x.reshape(-1, 28, 28)
    assert usps.train_x.shape == (12, 784) and usps.train_x.dtype == torch.float32
    assert usps.train_y.dtype == torch.int64
    border = torch.ones(28, 28, dtype=torch.bool)
    border[6:22, 6:22] = False
    assert (images[:, border] == 0).all()
    assert torch.equal(images[:, 6:22, 6:22], torch.from_numpy(raw).float() / 255)
    assert load_usps(tmp_path) is usps  # read once


def test_modified_h5_is_refused(tmp_path: Path, monkeypatch) -> None:
    write_usps_h5(tmp_path, monkeypatch)
    path = tmp_path / "USPS" / "usps.h5"
    with open(path, "ab") as f:
        f.write(b"tampered")
    with pytest.raises(DataError, match="USPS/usps.h5") as info:
        read_usps(tmp_path)
    assert "SHA-256" in str(info.value)


def test_real_usps_hash_is_the_published_one() -> None:
    # The real file's name keeps its recorded hash: only tests register synthetic ones.
    assert registry.SHA256["USPS/usps.h5"] == REAL_USPS_SHA256


def test_modified_bz2_is_refused(tmp_path: Path, monkeypatch) -> None:
    splits = write_usps_h5(tmp_path / "h5", monkeypatch)
    write_usps_bz2(tmp_path, splits, monkeypatch)
    monkeypatch.setitem(usps.USPS_BZ2_MD5, "USPS/usps.t.bz2", "0" * 32)
    with pytest.raises(DataError, match="usps.t.bz2"):
        read_usps(tmp_path)


def test_missing_usps_names_the_files_and_the_prepare_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        read_usps(tmp_path)
    message = str(info.value)
    for text in ("usps.h5", "usps.bz2", "usps.t.bz2", registry.prepare_command(tmp_path),
                 "--usps-h5", "--usps-dir", "--download"):
        assert text in message
    assert "shared" not in message
    (tmp_path / "USPS").mkdir()
    (tmp_path / "USPS" / "usps.bz2").write_bytes(b"")
    with pytest.raises(DataError, match="usps.t.bz2"):
        read_usps(tmp_path)


def test_missing_usps_through_main_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:
    write_mnist(tmp_path, monkeypatch)
    code = main(["--task-sequence", "MNIST", "USPS", "--data-root", str(tmp_path), "--dry-run",
                 "--device", "cpu"])
    assert code == 2
    assert "usps.h5" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Training windows and tasks
# --------------------------------------------------------------------------------------------


def test_windows_reproducible_contiguous_and_seed_dependent(tmp_path: Path, monkeypatch) -> None:
    totals, sizes = {"MNIST": 60000, "USPS": 7291}, {"MNIST": 2000, "USPS": 1800}
    w0 = draw_windows(0, totals, sizes)
    assert w0 == draw_windows(0, totals, sizes)
    assert w0 != draw_windows(1, totals, sizes)
    assert {n: w[1] for n, w in w0.items()} == sizes
    for seed in range(5):
        for name, (start, size) in draw_windows(seed, totals, sizes).items():
            assert 0 <= start and start + size <= totals[name]
    with pytest.raises(ConfigError):
        window_start(10, 11, torch.Generator().manual_seed(0))

    write_mnist(tmp_path, monkeypatch, n_train=80)
    write_usps_h5(tmp_path, monkeypatch, n_train=50)
    mnist = datasets.load_image_dataset("MNIST", tmp_path)
    usps = load_usps(tmp_path)
    small = {"MNIST": 20, "USPS": 15}
    tasks, windows = build_tasks(["MNIST", "USPS"], tmp_path, torch.device("cpu"), 3, small)
    assert [t.name for t in tasks] == ["MNIST", "USPS"]
    for task, full in zip(tasks, (mnist, usps)):
        start, size = windows[task.name]
        assert len(task.train_x) == size == small[task.name]
        assert torch.equal(task.train_x, full.train_x[start:start + size])  # contiguous window
        assert torch.equal(task.train_y, full.train_y[start:start + size])
        assert torch.equal(task.test_x, full.test_x)  # full test set
        assert task.test_batch_size == 100 and task.train_eval_batch_size == 20  # as published
    # Same seed, same windows whatever the order; another seed, other windows.
    _, windows_rev = build_tasks(["USPS", "MNIST"], tmp_path, torch.device("cpu"), 3, small)
    assert windows_rev == windows
    _, alone = build_tasks(["USPS"], tmp_path, torch.device("cpu"), 3, small)
    assert alone == {"USPS": windows["USPS"]}
    others = [build_tasks(["MNIST", "USPS"], tmp_path, torch.device("cpu"), s, small)[1]
              for s in (4, 5)]
    assert any(o != windows for o in others)


def test_unknown_tasks_and_bad_flags_are_refused(capsys) -> None:
    for argv, text in ((["--task-sequence", "FMNIST"], "continual_learning"),
                       (["--task-sequence", "CIFAR"], "unknown task"),
                       (["--ch", "1", "6", "10", "--kr", "4"], "--kr"),
                       (["--ch", "3", "6", "--kr", "4"], "input channels"),
                       (["--meta", "1", "2"], "one per layer")):
        assert main(argv + ["--dry-run"]) == 2
        assert text in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Command line and runs
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
@needs_real_data
@pytest.mark.parametrize("command", PUBLISHED_COMMANDS)
def test_published_commands_dry_run(command: str, tmp_path: Path, capsys) -> None:
    argv = shlex.split(command)[2:]
    assert main(argv + ["--data-root", str(DATA_ROOT), "--out-dir", str(tmp_path / "run"),
                        "--device", "cpu", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dry run: flags and data OK" in out
    assert not (tmp_path / "run").exists()
    config = config_from_args(build_parser().parse_args(argv))
    assert config.net == "bcnn" and config.norm == "bn" and config.epochs_per_task == 240
    assert config.decay == (1e-8 if "--decay" in argv else 0.0)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@needs_real_data
def test_real_data_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["--net", "bcnn", "--ch", "1", "6", "10", "15", "--kr", "4", "4", "4", "--decay", "1e-8",
            "--lr", "0.005", "--meta", "1.2", "--epochs-per-task", "1", "--task-sequence", "MNIST",
            "USPS", "--data-root", str(DATA_ROOT), "--out-dir", str(out), "--device", "cpu",
            "--impl", "reference", "--no-progress"]
    assert main(argv) == 0
    with open(out / records.METRICS_FILE, newline="") as f:
        header = next(csv.reader(f))
    assert tuple(header) == records.continual_columns(2) + flip_columns(4)
    rows = read_csv(out / records.METRICS_FILE)
    assert [(r["task_order"], r["tsk"], r["epoch"]) for r in rows] == [
        ("1", "MNIST", "0"), ("1", "MNIST", "1"), ("2", "USPS", "1")]
    assert {r["net"] for r in rows} == {"bcnn"}
    assert {r["meta"] for r in rows} == {"{'l1': 1.2, 'l2': 1.2, 'l3': 1.2, 'l4': 1.2}"}
    assert {r["arch"] for r in rows} == {"ch1-6-10-15_kr4-4-4"}
    accs = [[float(r[c]) for c in ("acc_tr", "acc_test_tsk_1", "acc_test_tsk_2")] for r in rows]
    assert all(0.0 <= a <= 100.0 for row in accs for a in row)
    assert max(accs[0]) < 50.0              # before training: near chance
    assert accs[1][1] > 60.0                # MNIST test after one MNIST epoch
    assert accs[2][2] > 40.0                # USPS test after one USPS epoch
    config = json.loads((out / records.CONFIG_FILE).read_text())
    assert config["meta"] == [1.2] and config["train_batch_size"] == 20
    assert config["train_windows"]["MNIST"][1] == 2000 and config["train_windows"]["USPS"][1] == 1800
    assert config["experiment"] == "mnist_usps"


def synthetic_argv(root: Path, out: Path) -> list[str]:
    return ["--ch", "1", "4", "6", "--kr", "4", "4", "--meta", "1.2", "--decay", "1e-8",
            "--epochs-per-task", "2", "--task-sequence", "MNIST", "USPS",
            "--mnist-train-samples", "40", "--usps-train-samples", "30", "--data-root", str(root),
            "--out-dir", str(out), "--device", "cpu", "--impl", "reference", "--no-progress"]


@pytest.mark.parametrize("crash_after", [1, 2, 3])
def test_resume_after_crash_reproduces_the_csv(tmp_path: Path, monkeypatch, crash_after) -> None:
    write_mnist(tmp_path, monkeypatch, n_train=60)
    write_usps_h5(tmp_path, monkeypatch, n_train=40, n_test=25)
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert main(synthetic_argv(tmp_path, full)) == 0
    config = config_from_args(build_parser().parse_args(synthetic_argv(tmp_path, crashed)))
    with pytest.raises(SimulatedCrash):
        run(config, progress=False, stop_after_epochs=crash_after)
    assert len(read_csv(crashed / records.METRICS_FILE)) == 1 + crash_after
    assert main(synthetic_argv(tmp_path, crashed) + ["--resume"]) == 0
    expected = (full / records.METRICS_FILE).read_text()
    assert (crashed / records.METRICS_FILE).read_text() == expected
    rows = read_csv(full / records.METRICS_FILE)
    assert [(r["task_order"], r["epoch"]) for r in rows] == [("1", "0"), ("1", "1"), ("1", "2"),
                                                             ("2", "1"), ("2", "2")]
    # USPS test set of 25: evaluated as a batch of 25 (fewer than 100), accuracies on a 1/25 grid.
    assert all(float(r["acc_test_tsk_2"]) * 25 % 100 == 0 for r in rows)


def test_existing_run_is_not_overwritten(tmp_path: Path, monkeypatch, capsys) -> None:
    write_mnist(tmp_path, monkeypatch)
    write_usps_h5(tmp_path, monkeypatch, n_train=40)
    out = tmp_path / "run"
    argv = synthetic_argv(tmp_path, out)
    argv[argv.index("--epochs-per-task") + 1] = "1"
    assert main(argv) == 0
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# USPS as a continual_learning task (docs/METHOD.md section 4's task names)
# --------------------------------------------------------------------------------------------


def test_continual_learning_learns_mnist_then_the_whole_padded_usps(tmp_path, monkeypatch):
    from continual_learning.data_utils import build_tasks as continual_tasks
    from continual_learning.main import main as continual_main

    root = tmp_path / "data"
    write_mnist(root, monkeypatch)
    splits = write_usps_h5(root, monkeypatch, n_train=40, n_test=20)
    tasks = continual_tasks(["MNIST", "USPS", "pMNIST"], root, torch.device("cpu"), seed=0)
    assert [t.name for t in tasks] == ["MNIST", "USPS", "pMNIST3"]
    usps_task = tasks[1]
    # the whole training set (no window), 16x16 digits padded by 6 to 28x28, byte / 255
    assert usps_task.train_x.shape == (40, 784) and usps_task.test_x.shape == (20, 784)
    images = usps_task.train_x.reshape(40, 28, 28)
    expected = torch.from_numpy(expected_pixels(splits["train"][0]).reshape(40, 16, 16)) / 255
    torch.testing.assert_close(images[:, 6:22, 6:22], expected, rtol=0, atol=0)
    assert images[:, :6].abs().sum() == 0 and images[:, :, 22:].abs().sum() == 0
    assert torch.equal(usps_task.train_y, torch.from_numpy(splits["train"][1]).long())
    assert usps_task.test_batch_size == 100 and usps_task.train_eval_batch_size == 100

    out = tmp_path / "run"
    assert continual_main(["--hidden-layers", "16", "--task-sequence", "MNIST", "USPS",
                           "--epochs-per-task", "1", "--data-root", str(root), "--out-dir", str(out),
                           "--no-progress", "--impl", "reference"]) == 0
    rows = records.read_records(out / "metrics.csv")
    assert list(rows["tsk"]) == ["MNIST", "USPS"]


def test_continual_learning_names_the_missing_usps_files(tmp_path, monkeypatch, capsys):
    from continual_learning.main import main as continual_main

    root = tmp_path / "data"
    write_mnist(root, monkeypatch)
    code = continual_main(["--task-sequence", "MNIST", "USPS", "--data-root", str(root),
                           "--dry-run"])
    assert code != 0
    err = capsys.readouterr().err
    assert "usps.h5" in err and "usps.bz2" in err and "Traceback" not in err
