"""Fig. 2(g, h) in numbers: the hidden weights' spread from hidden_weight_hist.csv, recomputed
with NumPy from the weights that made the histogram (metaplastic/runs/hidden_spread.py)."""
import numpy as np
import pytest
import torch

from metaplastic.experiments.sequence import _save_hidden_weights
from metaplastic.runs import records
from metaplastic.runs.hidden_spread import hidden_weight_spread


class _Layer(torch.nn.Module):
    def __init__(self, w):
        super().__init__()
        self.weight = torch.nn.Parameter(w)


def _histograms(tmp_path, weights_per_task, monkeypatch):
    """hidden_weight_hist.csv as a --save run writes it (experiments.sequence)."""
    from metaplastic.experiments import sequence

    monkeypatch.setattr(sequence, "weight_layers", list)     # the toy model's layers: its items
    hist = records.CsvRecorder(tmp_path / records.HIDDEN_HIST_FILE, records.HIDDEN_HIST_COLUMNS)
    for t, weights in enumerate(weights_per_task):
        _save_hidden_weights(torch.nn.Sequential(*[_Layer(w) for w in weights]), t, tmp_path, hist)
    return tmp_path / records.HIDDEN_HIST_FILE


def test_the_spread_is_the_std_of_the_weights_at_their_bin_midpoints(tmp_path, monkeypatch):
    gen = torch.Generator().manual_seed(0)
    weights = [[torch.randn(40, 30, generator=gen) * s for s in (0.5, 1.0 + t)] for t in range(3)]
    path = _histograms(tmp_path, weights, monkeypatch)
    spread = hidden_weight_spread(path)
    assert sorted(spread) == [(t, l) for t in (1, 2, 3) for l in (1, 2)]
    frame = records.read_records(path, records.HIDDEN_HIST_COLUMNS)
    for t, layers in enumerate(weights, start=1):
        for l, w in enumerate(layers, start=1):
            rows = frame[(frame["task"] == t) & (frame["layer"] == l)]
            mid = ((rows["bin_low"] + rows["bin_high"]) / 2).to_numpy()
            at_midpoints = np.repeat(mid, rows["count"].to_numpy().astype(int))
            assert len(at_midpoints) == w.numel()
            assert spread[(t, l)] == pytest.approx(at_midpoints.std(), rel=1e-9)
            # the weights themselves: each moved by e ~ U(-w/2, w/2) to its midpoint, so the
            # variance gains w^2/12 (Sheppard) plus 2 mean(x e), of std 2 sd(x) w / sqrt(12 N)
            x = w.numpy().ravel().astype(np.float64)
            width = (x.max() - x.min()) / 100
            noise = 2 * x.std() * width / np.sqrt(12 * x.size)
            assert spread[(t, l)] ** 2 == pytest.approx(x.var() + width ** 2 / 12,
                                                        abs=4 * noise)


def test_a_damaged_histogram_is_refused(tmp_path):
    path = tmp_path / records.HIDDEN_HIST_FILE
    records.write_rows(path, records.HIDDEN_HIST_COLUMNS,
                       [{"task": 1, "layer": 1, "bin_low": 0.0, "bin_high": 1.0, "count": -3}])
    with pytest.raises(records.RecordError, match="negative count"):
        hidden_weight_spread(path)
    path.write_text("task,layer,bin_low,bin_high,count\n1,1,0.0,1.0,many\n")
    with pytest.raises(records.RecordError, match=r"column count .* \(row 2 of"):
        hidden_weight_spread(path)
    path.write_text("task,layer,bin_low,bin_high,count\n1,1,0.0,1.0,\n")
    with pytest.raises(records.RecordError, match="not a number"):
        hidden_weight_spread(path)
    path.write_text("task,layer,bin_low,bin_high,count\n")
    with pytest.raises(records.RecordError, match="no rows"):
        hidden_weight_spread(path)
