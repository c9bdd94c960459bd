"""The package as a user installs it, not editable: `python -m build` makes a wheel and an
sdist; the wheel goes into a fresh virtual environment, and from a folder outside the clone its
entry points list the paper's runs and run one smoke experiment (issue 24, point 1).

The fresh environment borrows the test environment's dependencies (torch and the rest) by a
path line in a .pth file, which does not activate the clone's editable install: `metaplastic`
is imported from the wheel, as the test checks."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import DATA_ROOT, REPO, needs_data

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("build")
    dist = tmp_path_factory.mktemp("dist")
    made = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist),
                           str(REPO)], capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr[-2000:]
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_the_wheel_holds_every_subpackage_and_the_scripts(built):
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    packages = {str(p.parent.relative_to(REPO)) for p in REPO.glob("metaplastic/**/__init__.py")}
    for package in packages | {"continual_learning", "mnist_usps", "cifar_features",
                               "stream_fmnist", "stream_cifar10", "quadratic_binary_task"}:
        assert f"{package}/__init__.py" in names, package
    assert {"reproduce.py", "plot_figures.py", "continual_learning/main.py"} <= names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(built["wheel"]).read(entry_points).decode()
    assert "metaplastic-reproduce = reproduce:main" in text
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in zipfile.ZipFile(built["wheel"]).read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    # torchvision only as an extra: as a plain dependency it would pull PyPI's CUDA torch over a
    # CPU-only one (docs/INSTALL.md, "A CPU-only install")
    assert "Requires-Dist: torch" in requires
    assert [line for line in requires if "torchvision" in line] == [
        'Requires-Dist: torchvision; extra == "vision"']


@needs_data("MNIST", "FashionMNIST")
def test_a_fresh_environment_with_the_wheel_runs_from_outside_the_clone(built, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; "
                                "print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # as in a CPU-only install without torchvision (its extra not chosen): importing it fails
    (site / "no_torchvision.pth").write_text("import sys; sys.modules['torchvision'] = None\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                                "--quiet", "--no-deps", "--no-index", str(built["wheel"])],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    bin_dir = env_dir / "bin"
    assert (bin_dir / "metaplastic-reproduce").is_file() and (bin_dir / "metaplastic-plot").is_file()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}

    def run(*argv):
        return subprocess.run([*argv], capture_output=True, text=True, cwd=outside, env=env,
                              timeout=600)

    where = run(str(python), "-c", "import metaplastic, reproduce; print(metaplastic.__file__); "
                "print(reproduce.__file__)")
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(site)) for line in where.stdout.split()), where.stdout
    # no clone around the installed package: the per-user data folder, not site-packages/data
    env["XDG_DATA_HOME"] = str(tmp_path / "share")
    env.pop("METAPLASTIC_DATA", None)
    root = run(str(python), "-c", "from metaplastic.data.root import default_data_root; "
               "print(default_data_root())")
    assert root.stdout.strip() == str(tmp_path / "share" / "metaplastic-bnn" / "data"), root
    listed = run(str(bin_dir / "metaplastic-reproduce"), "list", "fig4ab")
    assert listed.returncode == 0 and "fig4ab" in listed.stdout, listed.stderr
    smoke = run(str(bin_dir / "metaplastic-reproduce"), "run", "fig4ab", "--scale", "smoke",
                "--only", "m0.0", "--seeds", "1", "--data-root", str(DATA_ROOT), "--out",
                str(outside / "out"))
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-2000:]
    finished = list((outside / "out").rglob("finished.json"))
    assert len(finished) == 1
    command = json.loads(finished[0].read_text())["command"]
    assert str(site / "continual_learning" / "main.py") in command     # the wheel's main.py
    # what needs torchvision says so in one line
    download = run(str(bin_dir / "metaplastic-data"), "--data-root", str(outside / "data"),
                   "--datasets", "MNIST", "--download")
    assert download.returncode == 2 and "Traceback" not in download.stderr, download.stderr
    assert "--download needs torchvision" in download.stderr
    assert "metaplastic-bnn[vision]" in download.stderr
