"""Sign-switch statistics (Fig. 5c-e) on a toy network, recomputed by hand: open bins,
x = mean normalized magnitude of the flipped weights, unbiased std over runs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metaplastic.method.models import BNN
from metaplastic.method.norms import batch_statistics_groups
from metaplastic.method.sign_switch import open_bin_members, sign_switch_analysis

N_BINS = 15


def _toy(seed=0):
    torch.manual_seed(seed)
    model = BNN([6, 40, 3], norm="bn")
    with torch.no_grad():  # hidden weights on a grid with exact bin edges k/15 max present
        w = model.layers[0].hidden_weight
        values = torch.randint(-60, 61, w.shape).float() / 4.0   # multiples of 15/60 = 0.25
        values.view(-1)[0] = 15.0                                 # the maximum, an edge itself
        w.copy_(values)
    return model.eval()


def _loss(model, x, y):
    with torch.no_grad(), batch_statistics_groups(model, 100):
        return F.cross_entropy(model(x), y).item()


def test_open_bins_exclude_the_edges():
    absolute = torch.tensor([0.0, 1.0, 1.5, 2.0, 2.9, 3.0, 15.0])
    top = absolute.max()
    assert open_bin_members(absolute, top, 0, N_BINS).tolist() == []          # 0 < |w| < 1
    assert open_bin_members(absolute, top, 1, N_BINS).tolist() == [2]         # 1 < |w| < 2
    assert open_bin_members(absolute, top, 2, N_BINS).tolist() == [4]         # 2 < |w| < 3
    assert open_bin_members(absolute, top, 14, N_BINS).tolist() == []         # 15 excluded


def test_statistics_match_a_hand_computation():
    model = _toy()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(200, 6, generator=g), torch.randint(0, 3, (200,), generator=g)
    samples, runs, seed = (3, 2), 4, 7
    results = sign_switch_analysis(model, x, y, samples=samples, n_bins=N_BINS, runs=runs,
                                   batch_size=100, seed=seed)

    # by hand, with the same draws: layer by layer, bin by bin, `runs` random subsets
    generator = torch.Generator().manual_seed(seed)
    expected = []
    for layer_index, sample in enumerate(samples):
        w = model.layers[layer_index].hidden_weight
        a = w.detach().abs().view(-1).numpy().astype(np.float64)
        top = a.max()
        base = _loss(model, x, y)
        for b in range(N_BINS):
            members = np.nonzero((a > b * top / N_BINS) & (a < (b + 1) * top / N_BINS))[0]
            if len(members) < sample:
                continue
            increases, xs = [], []
            for _ in range(runs):
                chosen = members[torch.randperm(len(members), generator=generator)[:sample].numpy()]
                xs.append(np.mean(a[chosen] / top))
                with torch.no_grad():
                    w.view(-1)[torch.from_numpy(chosen)] *= -1
                increases.append((_loss(model, x, y) - base) / sample)
                with torch.no_grad():
                    w.view(-1)[torch.from_numpy(chosen)] *= -1
            expected.append((layer_index + 1, b, np.mean(xs), np.mean(increases),
                             np.std(increases, ddof=1), len(members)))
    got = [(r.layer, r.bin, r.magnitude_mean, r.loss_increase_mean, r.loss_increase_std,
            r.n_weights) for r in results]
    assert [g[:2] for g in got] == [e[:2] for e in expected] and len(got) > 10
    for g_row, e_row in zip(got, expected):
        np.testing.assert_allclose(g_row[2:], e_row[2:], rtol=1e-5, atol=1e-9)
    # layer 1: the grid puts weights exactly on the edges, and the maximum: none of them counted
    a = model.layers[0].hidden_weight.detach().abs().view(-1)
    on_edges = int(torch.isclose(a * 4 % 4, torch.zeros(())).sum())   # multiples of 1 = 15/15
    assert sum(r.n_weights for r in results if r.layer == 1) == a.numel() - on_edges
    assert any(r.loss_increase_std > 0 for r in results)


def _sign_switch_csv(folder, rows):
    from metaplastic.runs import records

    folder.mkdir()
    records.write_rows(folder / records.SIGN_SWITCH_FILE, records.SIGN_SWITCH_COLUMNS,
                       [dict(zip(("layer", "bin", "magnitude_mean", "loss_increase_mean",
                                  "loss_increase_std"), r), n_weights=5000, sample=1000, runs=100)
                        for r in rows])


def test_the_table_over_seeds_is_the_mean_and_sample_std_of_each_seeds_mean(tmp_path):
    from metaplastic.launch.sign_switch_table import sign_switch_table

    _sign_switch_csv(tmp_path / "seed-0", [(1, 0, 0.02, 1e-6, 5e-7), (1, 3, 0.25, 4e-5, 1e-6)])
    _sign_switch_csv(tmp_path / "seed-1", [(1, 0, 0.04, 3e-6, 5e-7)])
    (tmp_path / "seed-2").mkdir()                      # no analysis: left out
    lines = sign_switch_table([tmp_path / f"seed-{k}" for k in range(3)]).splitlines()
    std = float(np.std([1e-6, 3e-6], ddof=1))         # 1.41e-06
    assert lines[2] == f"| 1 | 0 | 2 | 0.030 | 2.00e-06 ± {std:.1e} |"
    assert lines[3] == "| 1 | 3 | 1 | 0.250 | 4.00e-05 ± 1.0e-06 (repeats) |"
    assert sign_switch_table([tmp_path / "seed-2"]) is None


def test_over_seeds_is_the_seeds_mean_and_sample_std_recomputed_with_numpy():
    """The one combination behind the report's table and the figure (runs/sign_switch_seeds)."""
    import pandas as pd

    from metaplastic.runs.sign_switch_seeds import COMBINED_COLUMNS, over_seeds

    rng = np.random.default_rng(3)
    frames, values = [], {}
    for seed in range(3):
        rows = []
        for layer in (1, 2):
            for b in range(4):
                if seed == 2 and b == 3:          # a bin the third seed lacks
                    continue
                x, y, s = rng.uniform(0, 1), rng.uniform(1e-6, 1e-4), rng.uniform(1e-7, 1e-6)
                values.setdefault((layer, b), []).append((x, y, s))
                rows.append({"layer": layer, "bin": b, "magnitude_mean": x,
                             "loss_increase_mean": y, "loss_increase_std": s,
                             "n_weights": 100, "sample": 10, "runs": 5})
        frames.append(pd.DataFrame(rows))
    frames.append(frames[0].iloc[:0])                   # an empty analysis counts for nothing
    combined = over_seeds(frames)
    assert tuple(combined.columns) == COMBINED_COLUMNS
    assert [(r.layer, r.bin) for r in combined.itertuples()] == sorted(values)
    for row in combined.itertuples():
        v = np.array(values[(row.layer, row.bin)])
        assert row.seeds == len(v) and row.spread_over == "seeds"
        assert row.magnitude_mean == pytest.approx(v[:, 0].mean())
        assert row.loss_increase_mean == pytest.approx(v[:, 1].mean())
        assert row.loss_increase_std == pytest.approx(np.std(v[:, 1], ddof=1))
    one = over_seeds(frames[:1])                        # one seed: its std over repeats
    assert set(one["spread_over"]) == {"repeats"}
    assert np.allclose(one["loss_increase_std"], frames[0]["loss_increase_std"])
    assert len(over_seeds([])) == 0


def test_over_seeds_refuses_text_repeated_bins_and_seeds_of_other_sample_sizes(tmp_path):
    import pandas as pd

    from metaplastic.runs.records import RecordError
    from metaplastic.runs.sign_switch_seeds import checked, over_seeds

    row = {"layer": 1, "bin": 0, "magnitude_mean": 0.1, "loss_increase_mean": 1e-5,
           "loss_increase_std": float("nan"), "n_weights": 10, "sample": 10, "runs": 1}
    good = checked(pd.DataFrame([row]), tmp_path / "a.csv")      # a NaN std: one repeat, kept
    with pytest.raises(RecordError, match=r"b.csv: column bin .*row 3"):
        checked(pd.DataFrame([row, row | {"bin": "two"}]), tmp_path / "b.csv")
    with pytest.raises(RecordError, match="appears twice"):
        checked(pd.DataFrame([row, row]), tmp_path / "c.csv")
    with pytest.raises(RecordError, match="layer 1 differ in sample size"):
        over_seeds([good, checked(pd.DataFrame([row | {"sample": 20}]), tmp_path / "d.csv")])
    assert over_seeds([good])["loss_increase_std"].isna().all()
    assert over_seeds([good])["whole_bin"].all()          # 10 weights, sample 10: no spread


def test_a_one_seed_bin_of_exactly_sample_weights_shows_no_spread(tmp_path):
    from metaplastic.launch.sign_switch_table import sign_switch_table
    from metaplastic.runs import records

    (tmp_path / "seed-0").mkdir()
    records.write_rows(tmp_path / "seed-0" / records.SIGN_SWITCH_FILE, records.SIGN_SWITCH_COLUMNS,
                       [{"layer": 3, "bin": b, "magnitude_mean": 0.1 * b, "loss_increase_mean": 7e-6,
                         "loss_increase_std": 1e-21, "n_weights": n, "sample": 100, "runs": 100}
                        for b, n in ((1, 100), (2, 250))])
    lines = sign_switch_table([tmp_path / "seed-0"]).splitlines()
    assert lines[2] == "| 3 | 1 | 1 | 0.100 | 7.00e-06 (each repeat flipped the bin's same weights) |"
    assert lines[3] == "| 3 | 2 | 1 | 0.200 | 7.00e-06 ± 1.0e-21 (repeats) |"
