"""Flip statistics on a toy layer: sign changes over an epoch and consolidated fractions."""

import pytest
import torch

from metaplastic.experiments.runner import RunSettings
from metaplastic.method.flips import FlipStatistics, flip_columns
from metaplastic.method.models import BNN, DNN


def test_columns_and_thresholds():
    assert flip_columns(2) == ("flips_l1", "flips_l2", "meta_below_0.5_l1", "meta_below_0.5_l2",
                               "meta_below_0.1_l1", "meta_below_0.1_l2")
    # the thresholds' inverse is metaplastic.method.rule.consolidated_magnitude (tests/test_rule.py)


def test_fractions_on_a_toy_layer():
    torch.manual_seed(0)
    model = BNN([4, 5, 2])
    w1, w2 = model.layers[0].hidden_weight, model.layers[1].hidden_weight
    with torch.no_grad():
        w1.copy_(torch.tensor([0.1, -0.2, 0.3, 0.7, -0.8, 1.0, 1.5, -2.0, 0.0, 0.05] * 2).view(5, 4))
        w2.fill_(0.5)
    stats = FlipStatistics(model, [1.0, 0.0])
    stats.start_epoch()
    with torch.no_grad():  # an epoch's learning: 3 of 20 signs change, one goes to zero
        w1.view(-1)[[0, 1, 2]] *= -1
        w1.view(-1)[3] = 0.0
        w2.view(-1)[0] = 0.5001  # moves, keeps its sign
    row = stats.end_epoch()
    assert row["flips_l1"] == 4 / 20 and row["flips_l2"] == 0.0
    # m = 1: f_meta < 0.5 <=> |W| > 0.8814, f_meta < 0.1 <=> |W| > 1.8184
    magnitudes = w1.detach().abs().view(-1)
    assert row["meta_below_0.5_l1"] == int((magnitudes > 0.8814).sum()) / 20 == 6 / 20
    assert row["meta_below_0.1_l1"] == 2 / 20
    assert row["meta_below_0.5_l2"] == 0.0 and row["meta_below_0.1_l2"] == 0.0  # m = 0
    with pytest.raises(RuntimeError):
        stats.end_epoch()  # each end needs its start


def test_a_dnn_counts_the_signs_of_its_real_weights():
    torch.manual_seed(1)
    model = DNN([3, 4, 2])
    stats = FlipStatistics(model, [2.0, 2.0])
    stats.start_epoch()
    with torch.no_grad():
        model.layers[1].weight.mul_(-1)
    row = stats.end_epoch()
    assert row["flips_l1"] == 0.0 and row["flips_l2"] == 1.0


def _tiny_run(run_dir, meta, flips=True):
    from metaplastic.data.tasks import TaskData
    from metaplastic.experiments.sequence import SequenceSettings, run_sequence
    from metaplastic.runs.records import continual_row_prefix

    g = torch.Generator().manual_seed(0)
    tasks = []
    for name in ("A", "B"):
        x, y = torch.randn(120, 10, generator=g), torch.randint(0, 3, (120,), generator=g)
        tasks.append(TaskData(name, x, y, x[:40], y[:40], 40, 40))
    torch.manual_seed(0)
    settings = SequenceSettings(RunSettings(epochs_per_task=2, batch_size=20, meta_per_layer=[meta, meta],
                                            progress=False, flip_stats=flips),
                                lr=0.05, weight_decay=0.0)
    return run_sequence(BNN([10, 12, 3]), tasks, settings, run_dir,
                        continual_row_prefix("bnn", "task", "12", "bn", [meta, meta]),
                        log=lambda s: None)


@pytest.mark.slow
def test_runner_records_flips_and_the_plot_draws_them(tmp_path):
    import plot_figures
    from metaplastic.errors import ConfigError
    from metaplastic.runs.records import read_records

    rows = _tiny_run(tmp_path / "m", meta=1.35)
    assert all(0 < r["flips_l1"] <= 1 for r in rows)       # lr 0.05 on weights ~0.05: flips
    assert rows[-1]["meta_below_0.5_l1"] > 0                # weights grew past 0.88 / 1.35
    frame = read_records(tmp_path / "m" / "metrics.csv")    # our columns accepted by the reader
    assert list(frame.columns[-6:]) == list(flip_columns(2))
    zero = _tiny_run(tmp_path / "z", meta=0.0)
    assert all(r["meta_below_0.5_l1"] == 0 and r["meta_below_0.1_l2"] == 0 for r in zero)
    assert plot_figures.main(["flips", str(tmp_path / "m"), str(tmp_path / "z"),
                              "--out", str(tmp_path / "flips.png")]) == 0
    assert (tmp_path / "flips.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    _tiny_run(tmp_path / "none", meta=1.35, flips=False)
    from metaplastic.plots import plot_flips
    with pytest.raises(ConfigError, match="--no-flip-stats"):
        plot_flips([tmp_path / "none"], tmp_path / "x.png")
