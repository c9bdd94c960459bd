"""Numbers unchanged: run a fixed set of short configurations with the code of one checkout and
compare their CSVs with those recorded from another (e.g. before and after a restructuring).

    python scripts/check_numbers.py run  --repo /path/to/checkout --out /tmp/numbers-old
    python scripts/check_numbers.py run  --repo . --out /tmp/numbers-new
    python scripts/check_numbers.py compare /tmp/numbers-old /tmp/numbers-new

Configurations (each a few epochs on real MNIST / Fashion-MNIST / USPS, and synthetic CIFAR-10
features): continual m = 1.35, EWC, SI, interleaved, mnist_usps, stream_fmnist, cifar_features.
Each run is a subprocess of the checkout's own main.py with one thread; `compare` diffs every
metrics.csv (and sign-switch / histogram CSVs) byte for byte and prints what differs.
Runs use the data root of $METAPLASTIC_DATA (or ./data).
"""
from __future__ import annotations

import argparse
import difflib
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

COMMON = ["--seed", "3", "--no-progress"]
PMNIST2 = ["--task-sequence", "pMNIST", "pMNIST", "--epochs-per-task", "1"]
CONFIGURATIONS = {
    "continual_meta": ["continual_learning/main.py", "--hidden-layers", "32", "32", "--meta",
                       "1.35", "--decay", "1e-7", *PMNIST2],
    "continual_ewc": ["continual_learning/main.py", "--hidden-layers", "32", "32", "--ewc",
                      "--ewc-lambda", "5000", "--decay", "1e-8", *PMNIST2],
    "continual_si": ["continual_learning/main.py", "--hidden-layers", "32", "32", "--si",
                     "--si-lambda", "1.0", *PMNIST2],
    "continual_interleaved": ["continual_learning/main.py", "--hidden-layers", "32", "32",
                              "--interleaved", "--meta", "1.35", *PMNIST2],
    "mnist_usps": ["mnist_usps/main.py", "--ch", "1", "4", "6", "--kr", "4", "4", "--meta", "1.2",
                   "--epochs-per-task", "2", "--mnist-train-samples", "400",
                   "--usps-train-samples", "300"],
    "stream_fmnist": ["stream_fmnist/main.py", "--hidden-layers", "32", "32", "--meta", "2.5",
                      "--nb-subset", "3", "--epochs-per-task", "1"],
    "cifar_features": ["cifar_features/main.py", "--net", "bnn", "--in-size", "512",
                       "--hidden-layers", "64", "--out-size", "10", "--meta", "1.8",
                       "--epochs-per-task", "2", "--task-sequence", "vehicles", "animals"],
}


def write_synthetic_features(folder: Path) -> None:
    """Random CIFAR-10 'features' in the generator's format (train-mode provenance)."""
    g = torch.Generator().manual_seed(0)
    data = {"train_x": torch.randn(2000, 512, generator=g) * 3 + 1,
            "train_y": torch.arange(2000) % 10,
            "test_x": torch.randn(500, 512, generator=g) * 3 + 1,
            "test_y": torch.arange(500) % 10,
            "info": {"dataset": "cifar10", "train_passes": 1, "resnet_mode": "train",
                     "resnet_mode_per_split": {"train": "train", "test": "train"}}}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(data, folder / "cifar10_features.pt")


def run(repo: Path, out: Path, only: list[str] | None) -> int:
    data_root = Path(os.environ.get("METAPLASTIC_DATA", "data")).resolve()
    env = dict(os.environ, PYTHONPATH=str(repo), OMP_NUM_THREADS="1")
    features = out / "_features"
    write_synthetic_features(features)
    failed = 0
    for name, (script, *args) in CONFIGURATIONS.items():
        if only and name not in only:
            continue
        extra = ["--features-dir", str(features)] if name == "cifar_features" else []
        cmd = [sys.executable, str(repo / script), *args, *COMMON, *extra,
               "--data-root", str(data_root), "--out-dir", str(out / name)]
        start = time.perf_counter()
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=repo)
        status = "ok" if result.returncode == 0 else f"FAILED ({result.returncode})"
        print(f"{name:24s} {status:12s} {time.perf_counter() - start:6.1f} s")
        if result.returncode != 0:
            failed += 1
            print(result.stderr[-2000:])
    return 1 if failed else 0


def compare(old: Path, new: Path) -> int:
    differences = 0
    for name in CONFIGURATIONS:
        files = sorted(p.name for p in (old / name).glob("*.csv")) if (old / name).is_dir() else []
        if not files:
            print(f"{name:24s} missing in {old}")
            differences += 1
            continue
        for file in files:
            a, b = old / name / file, new / name / file
            if not b.is_file():
                print(f"{name}/{file}: missing in {new}")
                differences += 1
            elif a.read_bytes() != b.read_bytes():
                differences += 1
                print(f"{name}/{file}: DIFFERS")
                diff = difflib.unified_diff(a.read_text().splitlines(), b.read_text().splitlines(),
                                            str(a), str(b), lineterm="", n=0)
                print("\n".join(list(diff)[:12]))
            else:
                print(f"{name}/{file}: identical")
    print("numbers unchanged" if differences == 0 else f"{differences} difference(s)")
    return 1 if differences else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the configurations with one checkout's code")
    r.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1],
                   help="the checkout whose main.py scripts run (default: this one)")
    r.add_argument("--out", type=Path, required=True, help="folder for the runs (must be new)")
    r.add_argument("--only", nargs="+", choices=sorted(CONFIGURATIONS), default=None,
                   help="run only these configurations (default: all)")
    c = sub.add_parser("compare", help="compare the CSVs of two such folders")
    c.add_argument("old", type=Path)
    c.add_argument("new", type=Path)
    args = p.parse_args(argv)
    if args.command == "run":
        return run(args.repo.resolve(), args.out.resolve(), args.only)
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
