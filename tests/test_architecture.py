"""The import contracts of .importlinter (layers, no cycles) hold, and they can fail: the same
contracts on a copy of the package with one upward import, or one cycle, are broken."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("importlinter")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(root)
    return subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import "
                           "lint_imports_command; sys.exit(lint_imports_command())",
                           str(REPO / ".importlinter"), "--no-cache"],
                          capture_output=True, text=True, cwd=root, env=env, timeout=300)


def test_the_package_keeps_its_import_contracts():
    result = lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("errors.py", "import metaplastic.method.rule", "Layers:"),      # the base imports a layer above it
    ("data/registry.py", "import metaplastic.runs.records", "Layers:"),  # data imports the run store
    ("method/rule.py", "import metaplastic.method.optim", "Inside"),  # the rule imports the optimizer
    ("fast/products.py", "import metaplastic.fast.layers", "No import cycles"),  # a cycle inside fast/
    ("runs/runlock.py", "import metaplastic.runs.rundir", "No import cycles"),  # a cycle inside runs/
])
def test_a_broken_contract_is_reported(tmp_path, module, line, broken):
    shutil.copytree(REPO / "metaplastic", tmp_path / "metaplastic",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "metaplastic" / module
    target.write_text(target.read_text() + f"\n{line}  # injected by the test\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    summary = " ".join(result.stdout.split())      # contract names are wrapped over lines
    listing = summary.split(" Contracts: ")[0].split("------------------------------------ ")[-1]
    broken_names = [part.rsplit(" KEPT", 1)[-1].strip() for part in listing.split(" BROKEN")[:-1]]
    assert any(name.startswith(broken) for name in broken_names), summary[-2000:]
