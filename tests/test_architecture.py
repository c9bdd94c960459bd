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
    assert "2 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("errors.py", "import metaplastic.rule", "Layers"),      # the base imports a layer above it
    ("fast/products.py", "import metaplastic.fast.layers", "cycles"),  # a cycle inside fast/
])
def test_a_broken_contract_is_reported(tmp_path, module, line, broken):
    shutil.copytree(REPO / "metaplastic", tmp_path / "metaplastic",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "metaplastic" / module
    target.write_text(target.read_text() + f"\n{line}  # injected by the test\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    summary = " ".join(result.stdout.split())      # contract names are wrapped over lines
    assert "1 kept, 1 broken" in summary, summary[-2000:]
    broken_name = summary.split(" BROKEN")[0].rsplit(" KEPT", 1)[-1]
    assert broken in broken_name, summary[-2000:]
