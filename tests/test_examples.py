"""The Python API as docs/API.md shows it: the example script runs, its snippet runs, and every
public name exists."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from conftest import DATA_ROOT, REPO, needs_data

import metaplastic


def test_every_public_name_is_importable_and_documented():
    api = (REPO / "docs" / "API.md").read_text()
    for name in metaplastic.__all__:
        if name != "__version__":
            assert getattr(metaplastic, name) is not None
            assert f"mp.{name}" in api, f"{name} is not in docs/API.md"


def test_the_snippet_of_api_md_runs():
    api = (REPO / "docs" / "API.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", api, re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, "docs/API.md", "exec"), namespace)
    model, optimizer = namespace["model"], namespace["optimizer"]
    assert [g["meta"] for g in optimizer.param_groups] == [1.35, 1.35, 0.0]
    assert optimizer.param_groups[0]["params"][0] is model[0].hidden_weight


@pytest.mark.slow
@needs_data("MNIST")
def test_the_two_task_example_runs_and_reports_forgetting():
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "two_permuted_mnist_tasks.py"),
                           "--hidden", "64", "--meta", "0", "--data-root", str(DATA_ROOT)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("after task 1: task 1") and lines[1].startswith("after task 2")
    first = float(re.search(r"task 1 +(\d+\.\d+)", lines[0]).group(1))
    later = float(re.search(r"task 1 +(\d+\.\d+)", lines[1]).group(1))
    match = re.search(r"backward transfer ([-+]\d+\.\d+), forgetting (\d+\.\d+)", lines[2])
    assert match and float(match.group(1)) == pytest.approx(later - first, abs=0.011)
    assert first > 80          # the first permuted MNIST is learned in one epoch
