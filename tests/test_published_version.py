"""The two published versions (metaplastic/method/published.py): v1.0.0's BatchNorm (gamma ~ U(0, 1),
running statistics in the continual-learning BNN) against the 2023 head's, selected by one
switch, recorded in config.json and the CSV, kept apart by reproduce.py."""
import argparse
import csv
import json

import pytest
import torch
import torch.nn.functional as F
from conftest import DATA_ROOT, needs_data

from metaplastic import paper
from metaplastic.errors import ConfigError
from metaplastic.experiments.continual import build_model
from metaplastic.launch.local import plan
from metaplastic.method import published
from metaplastic.method.consolidation import empirical_fisher
from metaplastic.method.models import BNN
from metaplastic.runs import records


def _args(**given):
    p = argparse.ArgumentParser()
    published.add_arguments(p, bn_stats=True)
    argv = []
    for k, v in given.items():
        argv += [f"--{k.replace('_', '-')}", v]
    return p.parse_args(argv)


@pytest.mark.parametrize("given, net, expected", [
    ({}, "bnn", ("2023", "ones", "batch")),
    ({"published_version": "v1.0.0"}, "bnn", ("v1.0.0", "uniform", "running")),
    ({"published_version": "v1.0.0", "bn_gamma_init": "ones"}, "bnn", ("v1.0.0", "ones", "running")),
    ({"bn_stats": "running"}, "bnn", ("2023", "ones", "running")),
    ({}, "dnn", ("2023", "ones", "running")),          # the DNN tracks running stats in both
    ({"published_version": "v1.0.0"}, "dnn", ("v1.0.0", "uniform", "running")),
])
def test_a_version_sets_both_choices_and_explicit_flags_override(given, net, expected):
    got = published.resolve(_args(**given), net)
    assert (got["published_version"], got["bn_gamma_init"], got["bn_stats"]) == expected


def test_the_dnn_refuses_batch_statistics():
    with pytest.raises(ConfigError, match="running statistics in both versions"):
        published.resolve(_args(bn_stats="batch"), "dnn")


def test_v1_model_has_uniform_gamma_and_running_statistics_and_the_same_weights():
    torch.manual_seed(3)
    old = build_model("bnn", 784, [64, 32], 10, "bn", "uniform", 0.1, "running", "uniform")
    torch.manual_seed(3)
    new = build_model("bnn", 784, [64, 32], 10, "bn", "uniform", 0.1, "batch", "ones")
    for a, b in zip(old.layers, new.layers):   # gamma is drawn after the hidden weights
        assert torch.equal(a.hidden_weight, b.hidden_weight)
    gammas = torch.cat([n.weight.detach() for n in old.norms])
    assert gammas.min() >= 0 and gammas.max() < 1 and gammas.std() > 0.2   # U(0, 1)
    assert all(n.track_running_stats for n in old.norms)
    assert all(torch.equal(n.weight, torch.ones_like(n.weight)) for n in new.norms)
    assert not any(n.track_running_stats for n in new.norms)
    # the draw is PyTorch < 1.2's: U(0, 1) from the global generator, module by module
    torch.manual_seed(3)
    build_model("bnn", 784, [64, 32], 10, "bn", "uniform", 0.1, "batch", "ones")
    expected = torch.cat([torch.rand(64), torch.rand(32), torch.rand(10)])
    assert torch.equal(gammas, expected)


def test_running_statistics_evaluate_each_sample_alone():
    """With v1.0.0's running statistics a prediction no longer depends on its batch (and a
    batch of one can be evaluated); with batch statistics it does."""
    torch.manual_seed(0)
    model = build_model("bnn", 20, [16], 3, "bn", "uniform", 0.1, "running", "uniform")
    x = torch.randn(50, 20)
    model.train()
    for _ in range(5):
        model(x)                      # running statistics move
    model.eval()
    whole = model(x)
    alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
    torch.testing.assert_close(whole, alone)


def test_ewc_fisher_of_a_running_statistics_bnn_is_the_published_per_sample_loop():
    """v1.0.0's estimate_fisher: eval mode, batches of one, running statistics; ours sums the
    per-sample squares in one pass. Reference: the loop itself, through the model's modules."""
    torch.manual_seed(1)
    model = BNN([6, 5, 4, 3], norm="bn", norm_running_stats=True)
    with torch.no_grad():
        for norm in model.norms:
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
    x, y = torch.randn(30, 6), torch.randint(0, 3, (30,))
    model.eval()
    expected = [torch.zeros_like(l.hidden_weight) for l in model.layers]
    for n in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[n:n + 1]), y[n:n + 1]).backward()
        for e, layer in zip(expected, model.layers):
            e += layer.hidden_weight.grad ** 2
    got = empirical_fisher(model, x, y, chunk=7)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g * len(x), e, rtol=1e-4, atol=1e-7)


def test_csv_columns_and_an_older_file_without_them(tmp_path):
    columns = records.continual_columns(2) + records.VERSION_COLUMNS
    assert records.matches_schema(columns, records.continual_columns(2))
    assert records.matches_schema(records.STREAM_CIFAR10_COLUMNS + ("bn_gamma_init",),
                                  records.STREAM_CIFAR10_COLUMNS)
    assert not records.matches_schema(records.continual_columns(2) + ("bn_stats", "bn_gamma_init"),
                                      records.continual_columns(2))
    # a run written before the columns existed keeps its header when resumed
    path = tmp_path / "metrics.csv"
    older = records.continual_columns(2)
    records.CsvRecorder(path, older).write({c: 1 for c in older})
    recorder = records.CsvRecorder(path, columns, added_later=records.VERSION_COLUMNS)
    assert recorder.columns == older
    recorder.write({c: 2 for c in columns})
    rows = list(csv.reader(path.open()))
    assert rows[0] == list(older) and len(rows) == 3 and len(rows[2]) == len(older)
    # a file with other columns is still refused
    other = tmp_path / "other.csv"
    records.CsvRecorder(other, older[:-1]).write({c: 1 for c in older[:-1]})
    with pytest.raises(records.RecordError):
        records.CsvRecorder(other, columns, added_later=records.VERSION_COLUMNS)


def test_older_configs_read_as_the_2023_head():
    assert published.older_run_defaults({"experiment": "continual_learning", "net": "bnn"}) == {
        "published_version": "2023", "bn_gamma_init": "ones", "bn_stats": "batch"}
    assert published.older_run_defaults({"experiment": "cifar_features", "net": "dnn"})[
        "bn_stats"] == "running"
    assert "bn_stats" not in published.older_run_defaults({"experiment": "stream_cifar10"})


def test_reproduce_keeps_the_versions_apart(tmp_path):
    fig = paper.figure("fig4ab")
    old = paper.in_version(fig, "v1.0.0")
    assert paper.in_version(fig, "2023") is fig
    assert old.id == "fig4ab_v1.0.0"
    for a, b in zip(fig.runs, old.runs):
        assert b.flags == a.flags + ("--published-version", "v1.0.0")
        assert paper.configuration_folder(tmp_path, a, "cpu") != paper.configuration_folder(tmp_path, b, "cpu")
        assert "v1.0.0" in paper.run_id(b, "cpu")
    # the default version's folders are those of every run made before the option existed
    assert paper.run_id(fig.runs[0], "cpu") == "bnn_512x512_m0.0_50ep_MNIST-FMNIST_936c1b2834"
    jobs = plan(["fig4ab"], 1, "smoke", tmp_path, version="v1.0.0")
    assert all(j.figure == "fig4ab_v1.0.0" and "--published-version" in j.argv() for j in jobs)
    # mnist_usps is the same code in both versions: one folder
    usps = paper.figure("fig4c")
    assert paper.in_version(usps, "v1.0.0") is usps


@needs_data("MNIST")
@pytest.mark.slow
def test_a_v1_run_records_its_choices(tmp_path):
    from continual_learning.main import main

    out = tmp_path / "run"
    assert main(["--hidden-layers", "16", "--epochs-per-task", "1", "--task-sequence", "MNIST",
                 "--published-version", "v1.0.0", "--impl", "reference", "--out-dir", str(out),
                 "--data-root", str(DATA_ROOT), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["published_version"], config["bn_gamma_init"], config["bn_stats"]) == (
        "v1.0.0", "uniform", "running")
    row = next(csv.DictReader((out / "metrics.csv").open()))
    assert (row["bn_gamma_init"], row["bn_stats"]) == ("uniform", "running")
    assert float(row["acc_test_tsk_1"]) > 50


def test_published_bool_and_integer_device(capsys):
    from metaplastic.flag_types import published_bool
    from metaplastic.method.runtime import resolve_device

    assert published_bool("False") is True and published_bool("0") is True
    assert published_bool("") is False
    if not torch.cuda.is_available():
        assert resolve_device("0") == torch.device("cpu")
        assert "no CUDA GPU here; running on the CPU" in capsys.readouterr().err
