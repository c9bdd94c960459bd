"""Stream learning: subsets, accuracies, models, command lines, records and --resume."""
from __future__ import annotations

import csv
import io
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATA_ROOT, idx_arrays, needs_data, write_cifar_folder, write_idx_dataset
from torch import nn

from metaplastic.errors import ConfigError, MetaplasticError
from metaplastic.experiments.runner import RunSettings, SimulatedCrash
from metaplastic.experiments.stream import (StreamData, StreamSettings, run_stream,
                                            stream_accuracies, subset_indices)
from metaplastic.method.flips import flip_columns
from metaplastic.method.layers import BinarizedConv2d, BinarizedLinear
from metaplastic.method.models import weight_layers
from metaplastic.runs import records
from metaplastic.runs.checkpoint import CHECKPOINT_FILE
from stream_cifar10 import main as cifar_main
from stream_cifar10.model_utils import BinaryVGG, build_model as build_vgg
from stream_fmnist import main as fmnist_main
from stream_fmnist.data_utils import pixels
from metaplastic.fast.evaluator import IntegerEvaluator
from metaplastic.method.runtime import int8_products_work
from stream_fmnist.model_utils import build_model as build_bnn


FMNIST_PUBLISHED = [
    f"--task FMNIST --hidden-layers 1024 1024 --lr 0.005 --decay 1e-7 --meta {m} "
    f"--epochs-per-task 20 --nb-subset {n}"
    for n in (1, 60) for m in ("2.5", "0.0")
]
CIFAR_PUBLISHED = [
    f"--lr 0.0001 --mbs 64 --source keras --nb-subset {n} --epochs-per-task 200 --meta {m} "
    f"--init gauss --init-width 0.007"
    for m in ("0.0", "13.0") for n in (1, 20)
]


pytestmark = pytest.mark.usefixtures("fresh_caches")  # conftest: empty caches around each test


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy machine OpenMP threads that wait
    for each other make them 10-100x slower; one thread keeps these tests short everywhere."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def xavier_std(weight: torch.Tensor) -> float:
    """Standard deviation of Xavier-normal initialisation for ``weight`` (its definition)."""
    fan_in = weight.shape[1] * math.prod(weight.shape[2:])
    fan_out = weight.shape[0] * math.prod(weight.shape[2:])
    return math.sqrt(2.0 / (fan_in + fan_out))


def write_fmnist(root: Path, monkeypatch, n_train=90, n_test=30, seed=0) -> Path:
    """A tiny Fashion-MNIST in the prepared IDX layout (hashes registered for this test)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n_train + n_test).astype(np.uint8)
    # class-dependent bright bands, so that a tiny BNN can learn something
    imgs = rng.integers(0, 60, (n_train + n_test, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        imgs[i, 2 * c:2 * c + 3] = 250
    write_idx_dataset(root, "FashionMNIST", idx_arrays(imgs[:n_train], labels[:n_train],
                                                       imgs[n_train:], labels[n_train:]),
                      monkeypatch)
    return root


def write_cifar(root: Path, n_train=40, n_test=12, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    write_cifar_folder(root, "cifar10", rng.integers(0, 256, (n_train, 3, 32, 32), dtype=np.uint8),
                             rng.integers(0, 10, n_train),
                             rng.integers(0, 256, (n_test, 3, 32, 32), dtype=np.uint8),
                             rng.integers(0, 10, n_test))
    return root


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------------------------
# Subsets
# --------------------------------------------------------------------------------------------


def test_subsets_sizes_disjoint_and_order():
    parts = subset_indices(103, 10, permute=True, seed=3)
    assert len(parts) == 10 and all(len(p) == 10 for p in parts)
    flat = torch.cat(parts)
    assert len(set(flat.tolist())) == 100                      # disjoint
    order = torch.randperm(103, generator=torch.Generator().manual_seed(3))
    assert torch.equal(flat, order[:100])                      # contiguous parts of one permutation
    assert not torch.equal(flat, torch.arange(100))
    stored = subset_indices(103, 10, permute=False, seed=3)    # --source torchvision
    assert torch.equal(stored[2], torch.arange(20, 30))


def test_subsets_reproducible_from_seed():
    a = subset_indices(60, 6, True, seed=1)
    b = subset_indices(60, 6, True, seed=1)
    c = subset_indices(60, 6, True, seed=2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    with pytest.raises(ConfigError):
        subset_indices(5, 6, True, 0)


def test_cifar_source_decides_the_permutation():
    keras = cifar_main.StreamCifarConfig(source="keras")
    tv = cifar_main.StreamCifarConfig(source="torchvision")
    assert cifar_main.permutes(keras) and not cifar_main.permutes(tv)
    assert fmnist_main.PERMUTE


# --------------------------------------------------------------------------------------------
# Accuracies on the right samples
# --------------------------------------------------------------------------------------------


class Oracle(nn.Module):
    """Predicts the class written in feature 0 of each sample."""

    def __init__(self, batch_stat_norm: bool = False):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        if batch_stat_norm:  # present, unused: forces the set-by-set evaluation path
            self.bn = nn.BatchNorm1d(3, track_running_stats=False)

    def forward(self, x):
        return F.one_hot(x[:, 0].long(), 10).float() + 0 * self.w


@pytest.mark.parametrize("batch_stat_norm", [False, True])
def test_accuracies_on_current_first_whole_and_test(batch_stat_norm):
    n = 12
    y = torch.arange(n) % 10
    parts = subset_indices(n, 3, permute=True, seed=0)
    x = torch.zeros(n, 2)
    x[:, 0] = (y + 1) % 10                  # wrong everywhere ...
    x[parts[1], 0] = y[parts[1]].float()    # ... except on part 2
    x[parts[0][:1], 0] = y[parts[0][:1]].float()  # and on 1 of the 4 samples of part 1
    test_y = torch.arange(8) % 10
    test_x = torch.zeros(8, 2)
    test_x[:, 0] = torch.where(torch.arange(8) < 2, test_y, (test_y + 1) % 10).float()
    data = StreamData("X", x, y, test_x, test_y)
    settings = StreamSettings(RunSettings(epochs_per_task=1, batch_size=100, meta_per_layer=[0.0]), lr=0.1,
                              weight_decay=0.0, eval_batch_size=5)
    acc = stream_accuracies(Oracle(batch_stat_norm), data, parts[1], parts[0], settings)
    assert acc == {"acc_tr_sub": 100.0, "acc_1st_sub": 25.0, "acc_tr": round(500 / 12, 2),
                   "acc_test": 25.0}


def test_run_stream_rows_and_one_optimizer(tmp_path):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(60, 784, generator=g), torch.randint(0, 10, (60,), generator=g)
    data = StreamData("T", x, y, x[:20], y[:20])
    model = build_bnn([16])
    parts = subset_indices(60, 3, True, 0)
    settings = StreamSettings(RunSettings(epochs_per_task=2, batch_size=10, meta_per_layer=[1.0, 1.0],
                                          progress=False), lr=0.005, weight_decay=0.0)
    prefix = {"net": "bnn", "arch": "16", "init": 0.1, "meta": 1.0, "lr": 0.005}
    rows = run_stream(model, data, parts, settings, tmp_path, prefix,
                      records.STREAM_FMNIST_COLUMNS, log=lambda s: None)
    assert [(r["task_order"], r["tsk"], r["epoch"]) for r in rows] == [
        (t, f"sub_T_{t}/3", e) for t in (1, 2, 3) for e in (1, 2)]
    assert all(r["acc_1st_sub"] == r["acc_tr_sub"] for r in rows[:2])
    assert len(read_csv(tmp_path / records.METRICS_FILE)) == 6
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    # one Adam state for the whole run: 6 epochs x 2 batches of 10 steps
    assert state["optimizer"]["state"][0]["step"] == 12
    assert state["position"] == {"phase": 3, "epoch": 0, "rows": 6}


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def test_stream_bnn_norms():
    model = build_bnn([1024, 1024])
    assert model.dims == [784, 1024, 1024, 10]
    assert all(not n.affine and n.track_running_stats for n in model.norms)
    assert not model.layers[0].binarize_input


def test_vgg_shapes_and_binarized_inputs():
    model = BinaryVGG([4, 4, 8, 8, 16, 16], fc_width=32)
    seen = {}
    model.features.register_forward_hook(lambda m, i, o: seen.update(maps=o.shape))
    out = model(torch.rand(2, 3, 32, 32))
    assert out.shape == (2, 10) and seen["maps"] == (2, 16, 3, 3)
    layers = weight_layers(model)
    assert len(layers) == 9
    assert [type(l) for l in layers] == [BinarizedConv2d] * 6 + [BinarizedLinear] * 3
    assert [l.binarize_input for l in layers] == [False] + [True] * 8
    assert layers[6].in_features == 9 * 16
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 9 and all(n.affine and n.track_running_stats for n in norms)


def test_vgg_xavier_normal_overrides_init():
    torch.manual_seed(0)
    model = build_vgg(weight_init="xavier", init="gauss", init_width=0.007)
    for layer in weight_layers(model):
        w = layer.hidden_weight.detach()
        assert abs(float(w.std()) / xavier_std(w) - 1) < 0.05, layer
        assert abs(float(w.mean())) < 0.1 * xavier_std(w)
    conv = weight_layers(model)[1]
    assert math.isclose(xavier_std(conv.hidden_weight), math.sqrt(2 / (128 * 9 + 128 * 9)))
    flags = build_vgg([4] * 6, weight_init="flags", init="gauss", init_width=0.007, fc_width=64)
    assert abs(float(weight_layers(flags)[6].hidden_weight.detach().std()) / 0.007 - 1) < 0.1


def _trained_bnn(hidden, affine=False, seed=0):
    torch.manual_seed(seed)
    model = build_bnn(hidden)
    if affine:
        from metaplastic.method.models import BNN
        model = BNN([784, *hidden, 10], norm="bn", norm_affine=True, norm_running_stats=True)
    g = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):  # running statistics (and affine parameters) away from their init
        xb = torch.randint(0, 256, (50, 784), generator=g, dtype=torch.uint8)
        loss = F.cross_entropy(model(pixels(xb)), torch.randint(0, 10, (50,), generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _exact_logits(model, k):
    """float64 reference: exact integer sums, exact signs of z - mean (z - 255 mean at layer 1)."""
    h = k.double()
    last = len(model.layers) - 1
    for i, (layer, norm) in enumerate(zip(model.layers, model.norms)):
        z = h @ torch.sign(layer.hidden_weight.detach()).double().T
        if i == last:
            return norm(z.float())
        h = torch.sign(z - norm.running_mean.double() * (255 if i == 0 else 1))


needs_int_mm = pytest.mark.skipif(not int8_products_work(),
                                  reason="no torch._int_mm on CPU")


@needs_int_mm
def test_integer_evaluation_is_exact_and_agrees_with_float_forward():
    model = _trained_bnn([64, 48])
    ev = IntegerEvaluator(model)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        grey = torch.randint(0, 256, (500, 784), generator=g, dtype=torch.uint8)
        assert torch.equal(ev(grey), _exact_logits(model, grey))
        agree = (ev(grey).argmax(1) == model(pixels(grey)).argmax(1)).float().mean()
        assert agree >= 0.99
        binary = torch.randint(0, 2, (300, 784), generator=g, dtype=torch.uint8) * 255
        assert torch.equal(ev(binary), model(pixels(binary)))   # float sums exact here too
        # weights and running statistics change: the cached constants follow
        with torch.no_grad():
            model.layers[1].hidden_weight.neg_()
            model.norms[0].running_mean.add_(0.3)
        assert torch.equal(ev(grey), _exact_logits(model, grey))


@needs_int_mm
def test_integer_evaluation_with_affine_norms_uses_the_modules():
    model = _trained_bnn([32], affine=True)
    ev = IntegerEvaluator(model)
    g = torch.Generator().manual_seed(3)
    binary = torch.randint(0, 2, (200, 784), generator=g, dtype=torch.uint8) * 255
    with torch.no_grad():
        assert torch.equal(ev(binary), model(pixels(binary)))


@pytest.mark.parametrize("choice, pays_off, integer", [
    ("reference", True, False), ("auto", False, False), ("auto", True, True),
    ("fast", False, True)])
def test_stream_fmnist_evaluates_in_integers_only_with_int8_products(monkeypatch, choice,
                                                                    pays_off, integer):
    from metaplastic import fast
    from metaplastic.method import runtime

    monkeypatch.setitem(runtime._MEASURED, "compile_cpu", None)
    monkeypatch.setitem(runtime._MEASURED, "int8_works", True)
    monkeypatch.setitem(runtime._MEASURED, "cpu_int8_products", pays_off)
    model = build_bnn([16])
    fast.enable(model, "cpu", choice)
    evaluator = fast.integer_evaluator(model)   # what stream_fmnist/main.py evaluates with
    assert isinstance(evaluator, IntegerEvaluator) is integer


# --------------------------------------------------------------------------------------------
# Command lines
# --------------------------------------------------------------------------------------------


@needs_data("FashionMNIST")
@pytest.mark.parametrize("command", FMNIST_PUBLISHED)
def test_fmnist_published_commands_dry_run(command, tmp_path, capsys):
    argv = command.split() + ["--dry-run", "--data-root", str(DATA_ROOT),
                              "--out-dir", str(tmp_path / "run")]
    assert fmnist_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "dry run: flags and data OK" in out and "60000 training samples" in out
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", CIFAR_PUBLISHED)
def test_cifar_published_commands_dry_run(command, tmp_path, capsys):
    root = write_cifar(tmp_path / "data")
    argv = command.split() + ["--dry-run", "--data-root", str(root), "--out-dir",
                              str(tmp_path / "run")]
    assert cifar_main.main(argv) == 0
    out = capsys.readouterr().out
    assert "dry run: flags and data OK" in out and "Xavier" in out


@needs_data("MNIST")
def test_fmnist_main_with_mnist_dry_run(tmp_path, capsys):
    argv = ["--task", "MNIST", "--nb-subset", "60", "--dry-run", "--data-root", str(DATA_ROOT),
            "--out-dir", str(tmp_path / "run")]
    assert fmnist_main.main(argv) == 0
    assert "MNIST: 60000 training samples in 60 parts of 1000" in capsys.readouterr().out


def test_fmnist_without_data_exits_2(tmp_path, capsys):
    assert fmnist_main.main(FMNIST_PUBLISHED[0].split() + ["--dry-run", "--data-root",
                                                          str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "FashionMNIST/raw/train-images-idx3-ubyte" in err and "data_prep" in err
    assert "Traceback" not in err


def test_cifar_dry_run_without_data_exits_2(tmp_path, capsys):
    argv = CIFAR_PUBLISHED[0].split() + ["--dry-run", "--data-root", str(tmp_path)]
    assert cifar_main.main(argv) == 2
    err = capsys.readouterr().err
    assert "cifar-10-batches-py" in err and "Traceback" not in err


def test_bad_flags_exit_2(tmp_path, capsys):
    assert fmnist_main.main(["--meta", "1", "2", "--dry-run"]) == 2   # 2 values for 3 layers
    with pytest.raises(SystemExit) as exc:
        fmnist_main.main(["--task", "CIFAR"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_short_fmnist_run_rows(tmp_path, monkeypatch, capsys):
    root = write_fmnist(tmp_path / "data", monkeypatch)
    out = tmp_path / "run"
    argv = ["--task", "FMNIST", "--hidden-layers", "64", "64", "--lr", "0.005", "--decay", "1e-7",
            "--meta", "2.5", "--epochs-per-task", "1", "--nb-subset", "3", "--data-root", str(root),
            "--out-dir", str(out), "--no-progress", "--impl", "reference"]
    assert fmnist_main.main(argv) == 0
    rows = read_csv(out / records.METRICS_FILE)
    with open(out / records.METRICS_FILE) as f:
        header = tuple(next(csv.reader(f)))
    # the published columns first (docs/METHOD.md section 6), then ours: net, arch and the flip statistics
    assert header == ("lr", "meta", "init", "task_order", "tsk", "epoch", "acc_tr_sub", "acc_tr",
                      "acc_test", "acc_1st_sub", "net", "arch") + flip_columns(3)
    # the published columns and values: init = the init width, meta = the coefficient,
    # task_order = the part's index, tsk = 'sub_FMNIST_k/N'
    assert [[r[c] for c in ("net", "arch", "lr", "meta", "init", "task_order", "tsk", "epoch")]
            for r in rows] == [["bnn", "64-64", "0.005", "2.5", "0.1", str(k), f"sub_FMNIST_{k}/3",
                                "1"] for k in (1, 2, 3)]
    assert rows[0]["acc_1st_sub"] == rows[0]["acc_tr_sub"]
    for r in rows:
        for key in ("acc_tr_sub", "acc_1st_sub", "acc_tr", "acc_test"):
            assert 0.0 <= float(r[key]) <= 100.0
    config = records.load_config(out)
    assert config["nb_subset"] == 3 and config["meta"] == [2.5] and config["task"] == "FMNIST"


@pytest.mark.slow
@needs_data("FashionMNIST")
def test_first_parts_of_a_real_fmnist_stream(tmp_path):
    """The 60-part stream on the real data, stopped after 3 parts of 1 epoch."""
    config = fmnist_main.StreamFmnistConfig(
        hidden_layers=[64, 64], meta=[2.5], nb_subset=60, epochs_per_task=1,
        data_root=str(DATA_ROOT), out_dir=str(tmp_path / "run"), impl="reference")
    with pytest.raises(SimulatedCrash):
        fmnist_main.run(config, progress=False, stop_after_epochs=3)
    rows = read_csv(tmp_path / "run" / records.METRICS_FILE)
    assert [r["tsk"] for r in rows] == ["sub_FMNIST_1/60", "sub_FMNIST_2/60", "sub_FMNIST_3/60"]
    assert rows[0]["acc_tr_sub"] == rows[0]["acc_1st_sub"]
    assert float(rows[-1]["acc_test"]) > 50.0 and float(rows[-1]["acc_tr_sub"]) > 50.0


# --------------------------------------------------------------------------------------------
# --resume
# --------------------------------------------------------------------------------------------


def _crash_then_resume(run, config, out_full: Path, out_crash: Path, crash_after: int) -> None:
    run(replace(config, out_dir=str(out_full)), progress=False)
    with pytest.raises(SimulatedCrash):
        run(replace(config, out_dir=str(out_crash)), progress=False, stop_after_epochs=crash_after)
    run(replace(config, out_dir=str(out_crash)), resume=True, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint_every", [1, 2])
def test_fmnist_resume_reproduces_the_csv(tmp_path, monkeypatch, checkpoint_every):
    root = write_fmnist(tmp_path / "data", monkeypatch)
    config = fmnist_main.StreamFmnistConfig(
        hidden_layers=[32, 32], meta=[1.5], nb_subset=3, epochs_per_task=2, mbs=10,
        data_root=str(root), impl="reference", checkpoint_every=checkpoint_every)
    full, crash = tmp_path / "full", tmp_path / "crash"
    _crash_then_resume(fmnist_main.run, config, full, crash, crash_after=3)
    text = (full / records.METRICS_FILE).read_text()
    assert len(text.splitlines()) == 7
    assert (crash / records.METRICS_FILE).read_text() == text
    a = torch.load(full / CHECKPOINT_FILE, weights_only=False)["model"]
    b = torch.load(crash / CHECKPOINT_FILE, weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cifar_resume_reproduces_the_csv(tmp_path):
    """Augmentation, dropout and batch order all continue from the checkpoint (every 2 epochs)."""
    root = write_cifar(tmp_path / "data", n_train=24, n_test=8)
    config = cifar_main.StreamCifarConfig(
        channels=[2, 2, 4, 4, 4, 4], fc_width=16, nb_subset=2, epochs_per_task=2, mbs=6,
        meta=[0.5], data_root=str(root), impl="reference", checkpoint_every=2)
    full, crash = tmp_path / "full", tmp_path / "crash"
    _crash_then_resume(cifar_main.run, config, full, crash, crash_after=3)
    text = (full / records.METRICS_FILE).read_text()
    assert len(text.splitlines()) == 5
    assert text.splitlines()[0] == ",".join(records.STREAM_CIFAR10_COLUMNS + ("bn_gamma_init",)
                                             + flip_columns(9))
    assert (crash / records.METRICS_FILE).read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["tsk"] for r in rows] == ["CIFAR10_1/2"] * 2 + ["CIFAR10_2/2"] * 2   # published
    assert {r["bn_gamma_init"] for r in rows} == {"ones"}
    final = torch.load(full / "model_final.pt", weights_only=False)
    assert set(final) == {"model", "optimizer"}


@pytest.mark.slow
def test_resume_refuses_other_settings_and_overwrites(tmp_path, monkeypatch):
    root = write_fmnist(tmp_path / "data", monkeypatch)
    out = tmp_path / "run"
    config = fmnist_main.StreamFmnistConfig(hidden_layers=[16], nb_subset=2, epochs_per_task=1,
                                            data_root=str(root), out_dir=str(out),
                                            impl="reference")
    with pytest.raises(SimulatedCrash):
        fmnist_main.run(replace(config), progress=False, stop_after_epochs=1)
    with pytest.raises(ConfigError, match="meta"):
        fmnist_main.run(replace(config, meta=[2.0]), resume=True, progress=False)
    with pytest.raises(MetaplasticError, match="already holds a run"):
        fmnist_main.run(replace(config), progress=False)


def test_stream_fmnist_schema_takes_our_columns_only_after_the_published_ones():
    published = records.STREAM_FMNIST_COLUMNS
    assert records.matches_schema(published, published)
    assert records.matches_schema(published + records.IDENTITY_COLUMNS + flip_columns(2), published)
    assert not records.matches_schema(records.IDENTITY_COLUMNS + published, published)
    assert not records.matches_schema(published + ("arch", "net"), published)


def test_training_accuracies_use_the_training_evaluation_transform():
    """Stream CIFAR-10 as published evaluates acc_tr and the parts' accuracies through the
    augmenting training transform; the test set always through the clean one."""
    from metaplastic.experiments.stream import StreamData, StreamSettings, stream_accuracies

    torch.manual_seed(0)
    x = torch.rand(40, 5)
    y = (x[:, 0] > 0.5).long()
    model = torch.nn.Sequential(torch.nn.Linear(5, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[-10.0, 0, 0, 0, 0], [10.0, 0, 0, 0, 0]]))
        model[0].bias.copy_(torch.tensor([5.0, -5.0]))
    data = StreamData("T", x, y, x.clone(), y.clone())
    parts = torch.arange(20), torch.arange(20)
    loop = RunSettings(epochs_per_task=1, batch_size=100, meta_per_layer=[0.0])
    plain = StreamSettings(loop, lr=0.1, weight_decay=0.0)
    flipped = StreamSettings(loop, lr=0.1, weight_decay=0.0,
                             train_eval_transform=lambda t: 1 - t)   # every label wrong
    clean = stream_accuracies(model, data, *parts, plain)
    augmented = stream_accuracies(model, data, *parts, flipped)
    assert clean["acc_tr"] == 100.0 and clean["acc_test"] == 100.0
    assert augmented["acc_tr"] == 0.0 and augmented["acc_tr_sub"] == 0.0
    assert augmented["acc_test"] == 100.0
