"""The epoch benchmark: its GEMM inventory and a tiny end-to-end run (no timing asserted)."""
import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "benchmark_epoch.py"
spec = importlib.util.spec_from_file_location("benchmark_epoch", SCRIPT)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def test_gemm_inventory_counts_every_product_of_an_epoch():
    dims = [784, 512, 512, 10]
    gemms = bench.epoch_gemms(dims, n_test_sets=2)
    flops = sum(2.0 * c * m * k * n for c, m, k, n in gemms)
    per_sample_fwd = 784 * 512 + 512 * 512 + 512 * 10
    training = 60000 * (2 * per_sample_fwd + (512 * 512 + 512 * 10))  # fwd, dW, dX (not layer 1)
    evaluation = (60000 + 2 * 10000) * per_sample_fwd
    assert flops == 2.0 * (training + evaluation)


@pytest.mark.slow
def test_tiny_benchmark_runs(capsys):
    torch.manual_seed(0)
    assert bench.main(["--hidden", "16", "--steps", "3", "--repeats", "1", "--epoch-repeats", "1",
                       "--impl", "reference"]) == 0
    out = capsys.readouterr().out
    assert "784-16-16-10" in out and "ratio to floor" in out and "scaled to 600" in out
