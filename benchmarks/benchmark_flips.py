"""Cost of the flip statistics (metaplastic.method.flips) against the training epoch they describe.

Times, in one process and alternating, one pMNIST training epoch (600 steps of batch 100 on
random 8-bit pixels, metaplastic Adam) of a 784-H-H-10 BNN with and without the per-epoch flip
statistics, keeping the best of --repeats timings of each, and times the statistics alone
(start + end of an epoch) the same way. Prints both and their ratio to the epoch: the
statistics must cost under 2 % of an epoch.
Example:
    python benchmarks/benchmark_flips.py                  # 784-512-512-10
    python benchmarks/benchmark_flips.py --hidden 4096 --steps 60
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from metaplastic import fast
from metaplastic.fast import make_optimizer
from metaplastic.method import runtime
from metaplastic.method.engine import train_epoch
from metaplastic.method.flips import FlipStatistics
from metaplastic.method.models import BNN

STEPS_PER_EPOCH, BATCH = 600, 100


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, default=512, help="hidden width H (default 512)")
    p.add_argument("--steps", type=int, default=STEPS_PER_EPOCH,
                   help="training steps timed, scaled to an epoch of 600 (default 600)")
    p.add_argument("--repeats", type=int, default=3, help="timings kept the best of (default 3)")
    p.add_argument("--device", default="auto")
    p.add_argument("--impl", default="auto", choices=fast.CHOICES,
                   help="as the experiments' --impl (default auto)")
    args = p.parse_args(argv)
    device = runtime.setup(args.device, 0, False, False)
    g = torch.Generator().manual_seed(0)
    n = args.steps * BATCH
    x = (torch.randint(0, 256, (n, 784), generator=g).float() / 255).to(device)
    y = torch.randint(0, 10, (n,), generator=g).to(device)
    torch.manual_seed(0)
    model = BNN([784, args.hidden, args.hidden, 10]).to(device)
    print(f"implementation: {fast.enable(model, device, args.impl, input_levels=255)}")
    optimizer = make_optimizer(model, 0.005, 1.35, 1e-7)
    flips = FlipStatistics(model, [1.35] * 3)
    batches = torch.Generator().manual_seed(1)
    scale = STEPS_PER_EPOCH / args.steps

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def epoch(with_flips: bool) -> float:
        sync()
        start = time.perf_counter()
        if with_flips:
            flips.start_epoch()
        train_epoch(model, optimizer, x, y, BATCH, batches)
        if with_flips:
            flips.end_epoch()
        sync()
        return time.perf_counter() - start

    def statistics_alone() -> float:
        sync()
        start = time.perf_counter()
        flips.start_epoch()
        flips.end_epoch()
        sync()
        return time.perf_counter() - start

    epoch(False)  # compilation, warm-up
    plain, with_stats, alone = [], [], []
    for _ in range(args.repeats):
        plain.append(epoch(False))
        with_stats.append(epoch(True))
        alone.append(statistics_alone())
    t_plain, t_flips = min(plain) * scale, min(with_stats) * scale
    t_alone = min(alone)
    print(f"784-{args.hidden}-{args.hidden}-10 on {device}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats} (training scaled from {args.steps} to {STEPS_PER_EPOCH} steps)")
    print(f"  training epoch without flip statistics: {t_plain:8.3f} s")
    print(f"  training epoch with flip statistics:    {t_flips:8.3f} s  "
          f"(ratio {t_flips / t_plain:.3f})")
    print(f"  flip statistics alone (start + end):    {t_alone * 1e3:8.2f} ms  "
          f"= {100 * t_alone / t_plain:.2f} % of the epoch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
