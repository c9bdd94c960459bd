"""Seconds per pMNIST epoch (training + the per-epoch evaluations) against a matmul floor.

One epoch of continual_learning on pMNIST = 600 training steps of batch 100, then evaluation of
the current task's training set (60000 samples, batches of 100) and of every task's test set
(10000 samples, batches of 1000). The floor is the time this device needs for the epoch's matrix
products alone: every GEMM of the epoch (forward, input gradient, weight gradient) is timed at its
exact shape in this same process and summed, i.e. FLOPs / the device's GEMM throughput on those
shapes. ratio = epoch time / floor; 1.0 would mean everything but the matmuls is free.

Training is timed over --steps steps and scaled to the 600 steps of an epoch (said in the output);
evaluations are timed in full; each part is timed --epoch-repeats times and the best kept, as the
floor keeps the best of its GEMM timings (this machine's timings vary by 10-20 % from run to
run). Data are random 8-bit pixels of MNIST's shape (byte / 255, as the datasets give them).
Example:
    python benchmarks/benchmark_epoch.py                 # 784-512-512-10 and 784-4096-4096-10
    python benchmarks/benchmark_epoch.py --hidden 4096 --steps 100 --device cuda
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from metaplastic import fast
from metaplastic.data.datasets import IMAGE_LEVELS
from metaplastic.fast import make_optimizer
from metaplastic.method import runtime
from metaplastic.method.engine import EVAL_CHUNK_SAMPLES, evaluate, train_epoch
from metaplastic.method.models import BNN

TRAIN_SAMPLES, TEST_SAMPLES, BATCH, TEST_BATCH = 60_000, 10_000, 100, 1000


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def epoch_gemms(dims: list[int], n_test_sets: int) -> list[tuple[int, int, int, int]]:
    """(count, M, K, N) of every matrix product C[M,N] = A[M,K] B[K,N] in one epoch."""
    steps = TRAIN_SAMPLES // BATCH
    gemms = []
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        gemms.append((steps, BATCH, fan_in, fan_out))          # forward
        gemms.append((steps, fan_out, BATCH, fan_in))          # weight gradient
        if i > 0:
            gemms.append((steps, BATCH, fan_out, fan_in))      # input gradient
        chunk = (EVAL_CHUNK_SAMPLES // BATCH) * BATCH
        gemms.append((TRAIN_SAMPLES // chunk, chunk, fan_in, fan_out))      # train-set eval
        test_chunk = (EVAL_CHUNK_SAMPLES // TEST_BATCH) * TEST_BATCH
        gemms.append((n_test_sets * TEST_SAMPLES // test_chunk, test_chunk, fan_in, fan_out))
    return gemms


def gemm_floor(gemms, device: torch.device, repeats: int) -> tuple[float, float]:
    """(seconds, FLOPs) of the epoch's matrix products, each timed at its own shape."""
    total_time = total_flops = 0.0
    for count, m, k, n in gemms:
        a = torch.rand(m, k, device=device)
        b = torch.rand(k, n, device=device)
        out = torch.empty(m, n, device=device)
        torch.mm(a, b, out=out)  # warm-up
        per_call = min(timed(lambda: [torch.mm(a, b, out=out) for _ in range(repeats)], device)
                       for _ in range(3)) / repeats
        total_time += count * per_call
        total_flops += count * 2.0 * m * k * n
    return total_time, total_flops


def square_gemm_throughput(device: torch.device, size: int = 2048) -> float:
    a, b = torch.rand(size, size, device=device), torch.rand(size, size, device=device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)
    dt = min(timed(lambda: [torch.mm(a, b, out=out) for _ in range(5)], device) for _ in range(3))
    return 5 * 2.0 * size ** 3 / dt


def random_images(n: int, size: int, device: torch.device) -> torch.Tensor:
    """Random 8-bit pixels as the datasets give them: byte / 255."""
    return torch.randint(0, 256, (n, size), device=device).float() / IMAGE_LEVELS


def measure_epoch(dims, device, steps: int, n_test_sets: int, meta: float, impl: str,
                  repeats: int = 2):
    """(training s, training-set evaluation s, test-sets evaluation s, --impl description)."""
    torch.manual_seed(0)
    model = BNN(dims).to(device)
    description = fast.enable(model, device, impl, input_levels=IMAGE_LEVELS)
    optimizer = make_optimizer(model, 0.005, meta, 1e-7)
    generator = torch.Generator().manual_seed(0)
    x = random_images(TRAIN_SAMPLES, dims[0], device)
    y = torch.randint(0, dims[-1], (TRAIN_SAMPLES,), device=device)
    xt = random_images(TEST_SAMPLES, dims[0], device)
    yt = torch.randint(0, dims[-1], (TEST_SAMPLES,), device=device)
    n = steps * BATCH
    # warm-up: compiles the optimizer step, touches all buffers
    train_epoch(model, optimizer, x[:3 * BATCH], y[:3 * BATCH], BATCH, generator)
    evaluate(model, xt[:TEST_BATCH], yt[:TEST_BATCH], TEST_BATCH)
    # best of `repeats` for every part, as for the floor's GEMM timings
    train_s = min(timed(lambda: train_epoch(model, optimizer, x[:n], y[:n], BATCH, generator),
                        device) for _ in range(repeats))
    train_s *= (TRAIN_SAMPLES // BATCH) / steps
    eval_train_s = min(timed(lambda: evaluate(model, x, y, BATCH), device) for _ in range(repeats))
    eval_test_s = min(timed(lambda: [evaluate(model, xt, yt, TEST_BATCH)
                                     for _ in range(n_test_sets)], device)
                      for _ in range(repeats))
    return train_s, eval_train_s, eval_test_s, description


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[512, 4096],
                   help="hidden width(s) of the 784-h-h-10 BNN (default 512 4096)")
    p.add_argument("--steps", type=int, default=0,
                   help="training steps timed and scaled to 600 (default: 600 for h<=1024, 60 else)")
    p.add_argument("--test-sets", type=int, default=2, help="pMNIST tasks evaluated (default 2)")
    p.add_argument("--meta", type=float, default=1.35)
    p.add_argument("--device", default="auto")
    p.add_argument("--impl", default="auto", choices=fast.CHOICES,
                   help="as the experiments' --impl (default auto)")
    p.add_argument("--repeats", type=int, default=5, help="calls per GEMM shape timing")
    p.add_argument("--epoch-repeats", type=int, default=2,
                   help="timings of each epoch part; the best is kept, as for the floor (default 2)")
    args = p.parse_args(argv)
    device = runtime.setup(args.device)
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}), "
          f"torch {torch.__version__}")
    peak = square_gemm_throughput(device)
    print(f"square 2048 GEMM throughput: {peak / 1e9:.1f} GFLOP/s")
    for h in args.hidden:
        dims = [784, h, h, 10]
        steps = args.steps or (TRAIN_SAMPLES // BATCH if h <= 1024 else 60)
        train_s, ev_tr, ev_te, impl = measure_epoch(dims, device, steps, args.test_sets,
                                                    args.meta, args.impl, args.epoch_repeats)
        floor_s, flops = gemm_floor(epoch_gemms(dims, args.test_sets), device, args.repeats)
        epoch_s = train_s + ev_tr + ev_te
        print(f"\n784-{h}-{h}-10, meta {args.meta}, {args.test_sets} test sets; {impl}")
        print(f"  training   {train_s:8.2f} s  (best of {args.epoch_repeats} timings of {steps} "
              "steps, scaled to 600)")
        print(f"  eval train {ev_tr:8.2f} s  (60000 samples, batches of 100)")
        print(f"  eval tests {ev_te:8.2f} s  ({args.test_sets} x 10000 samples, batches of 1000)")
        print(f"  epoch      {epoch_s:8.2f} s")
        print(f"  floor      {floor_s:8.2f} s  ({flops / 1e12:.2f} TFLOP at "
              f"{flops / floor_s / 1e9:.1f} GFLOP/s on the epoch's own GEMM shapes)")
        print(f"  ratio to floor {epoch_s / floor_s:.2f}  "
              f"(to the square-GEMM floor {flops / peak:.2f} s: {epoch_s / (flops / peak):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
