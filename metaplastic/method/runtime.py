"""Process-wide runtime setup: device choice, seeding, exact float32 maths, subnormal flushing,
allocator tuning."""
from __future__ import annotations

import ctypes
import os
import platform
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from metaplastic.errors import ConfigError

_ALLOCATOR_TUNED = False


def tune_allocator() -> bool:
    """Keep freed memory in the process heap instead of returning it to the OS (glibc only).

    PyTorch allocates a fresh buffer for every large temporary (a 4096x4096 gradient is 64 MB);
    glibc serves such sizes with mmap and unmaps them on free, so every step pays page faults
    on hundreds of MB. Disabling mmap for allocations (M_MMAP_MAX = 0) and trimming
    (M_TRIM_THRESHOLD) lets the heap recycle those pages: same numbers, 2x faster
    large matmuls on CPU. A no-op where glibc is absent.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_max = -1, -4
        ok = libc.mallopt(m_mmap_max, 0) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        return False
    _ALLOCATOR_TUNED = ok
    return ok


# Minimum Linux x86-64 NVIDIA driver for each CUDA major version torch may be built with
# (NVIDIA CUDA Toolkit release notes, "CUDA Toolkit and minimum driver versions": with minor
# version compatibility, any 12.x runs on >= 525.60.13, any 13.x on >= 580.65.06).
MIN_DRIVER = {"11": "450.80.02", "12": "525.60.13", "13": "580.65.06"}


def visible_gpu() -> str | None:
    """Why an NVIDIA GPU seems present on this machine, or None.

    Evidence: an NVIDIA device file, the nvidia-smi tool, or a CUDA_VISIBLE_DEVICES naming
    devices (set by SLURM and other schedulers for GPU jobs). A CUDA_VISIBLE_DEVICES that is
    empty or -1 hides the GPUs on purpose: None.
    """
    selected = os.environ.get("CUDA_VISIBLE_DEVICES")
    if selected is not None and selected.strip() in ("", "-1", "NoDevFiles"):
        return None
    if Path("/dev/nvidia0").exists():
        return "/dev/nvidia0 exists"
    if shutil.which("nvidia-smi"):
        return "nvidia-smi is installed"
    if selected is not None:
        return f"CUDA_VISIBLE_DEVICES={selected}"
    return None


def cpu_fallback_warning() -> str | None:
    """The warning for ``--device auto`` ending on the CPU while a GPU seems present, or None."""
    if torch.cuda.is_available():
        return None
    evidence = visible_gpu()
    if evidence is None:
        return None
    head = (f"warning: --device auto runs on the CPU, although an NVIDIA GPU seems present "
            f"({evidence}): ")
    cuda = torch.version.cuda
    if cuda is None:
        return head + (
            f"this torch {torch.__version__} is a CPU-only build. Install a CUDA build of torch "
            "and torchvision (on Linux x86-64 the PyPI wheels of requirements.txt are CUDA "
            "builds: pip install -r requirements.txt in a fresh environment; elsewhere see "
            "https://pytorch.org/get-started/locally/), or pass --device cpu to run on the CPU "
            "without this warning.")
    driver = MIN_DRIVER.get(cuda.split(".")[0])
    need = f" (CUDA {cuda} needs an NVIDIA driver >= {driver} on Linux)" if driver else ""
    return head + (
        f"this torch {torch.__version__} is built for CUDA {cuda} but cannot use the GPU. "
        f"Most often the NVIDIA driver is too old{need}: `nvidia-smi` shows the driver "
        "version. Update the driver, or install a torch/torchvision pair built for an older "
        "CUDA (https://pytorch.org/get-started/previous-versions/); also check that this "
        "job was given the GPU. Pass --device cpu to run on the CPU without this warning.")


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available, else CPU (with a warning on stderr when a GPU seems
    present but unusable); an integer N is the published scripts' --device: CUDA device N
    where CUDA is available, else the CPU (said on stderr); an unavailable explicit device is
    refused."""
    if name is not None and str(name).strip().isdigit():
        index = int(name)
        if not torch.cuda.is_available():
            print(f"--device {index}: no CUDA GPU here; running on the CPU (as the published "
                  "scripts do)", file=sys.stderr, flush=True)
            return torch.device("cpu")
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {index}: this machine has {torch.cuda.device_count()} "
                              "CUDA device(s), numbered from 0")
        return torch.device(f"cuda:{index}")
    if name in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        message = cpu_fallback_warning()
        if message is not None:
            print(message, file=sys.stderr, flush=True)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device name (use auto, cpu, cuda, cuda:0)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name} asked for, but no CUDA GPU is available; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--device mps asked for, but MPS is not available")
    return device


def set_precision(allow_tf32: bool = False) -> None:
    """Full float32 matmuls and convolutions unless TF32 is asked for explicitly."""
    torch.backends.cuda.matmul.allow_tf32 = allow_tf32
    torch.backends.cudnn.allow_tf32 = allow_tf32
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")


def set_denormals(keep: bool = False) -> bool:
    """Flush subnormal float results and inputs (|x| < 1.2e-38) to zero on CPU, unless ``keep``.

    Subnormals appear in training (e.g. softmax probabilities of confident predictions, and the
    gradients they feed) and make x86 arithmetic on them tens of times slower: flushing halves
    the epoch time of a trained 784-512-512-10 BNN. Only values below 1.2e-38 change (to 0), far
    below anything that moves a weight. The setting is per thread: it is applied to the calling
    thread and to every thread of PyTorch's OpenMP pool. Returns whether the CPU supports it.
    """
    supported = torch.set_flush_denormal(not keep)
    _on_every_openmp_thread(lambda: torch.set_flush_denormal(not keep))
    return supported


def _on_every_openmp_thread(fn) -> bool:
    """Run ``fn()`` once on each thread of the OpenMP team PyTorch uses (libgomp builds only)."""
    from pathlib import Path

    candidates = sorted((Path(torch.__file__).parent / "lib").glob("libgomp*.so*"))
    if platform.system() != "Linux" or not candidates:
        return False
    try:
        libgomp = ctypes.CDLL(str(candidates[0]))
        callback_type = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
        callback = callback_type(lambda _: fn())
        libgomp.GOMP_parallel.argtypes = [callback_type, ctypes.c_void_p, ctypes.c_uint,
                                          ctypes.c_uint]
        libgomp.GOMP_parallel(callback, None, torch.get_num_threads(), 0)
    except (OSError, AttributeError):
        return False
    return True


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


# What this process has set up or measured, recorded in config.json ("environment"): the
# results of tune_allocator, set_denormals and the measurements below, and the implementation
# metaplastic.fast.enable chose.
SETTINGS: dict = {}


def setup(device: str = "auto", seed: int | None = None, allow_tf32: bool = False,
          keep_denormals: bool = False) -> torch.device:
    """The one call every experiment makes before building anything."""
    SETTINGS["allocator_tuned"] = tune_allocator()
    set_precision(allow_tf32)
    SETTINGS["denormals_flushed"] = set_denormals(keep_denormals) and not keep_denormals
    if seed is not None:
        seed_everything(seed)
    resolved = resolve_device(device)
    SETTINGS["device"] = resolved.type   # the run's device (recorded per launch)
    return resolved


def recorded_settings() -> dict:
    """The process settings and measurements so far (for config.json)."""
    return dict(SETTINGS)


_MEASURED: dict[str, bool] = {}


def int8_products_work() -> bool:
    """Whether exact int8 matrix products (torch._int_mm, int32 sums) run on this CPU."""
    if "int8_works" not in _MEASURED:
        works = False
        if hasattr(torch, "_int_mm"):
            try:
                a = torch.randint(-1, 2, (32, 64), generator=torch.Generator().manual_seed(0),
                                  dtype=torch.int8)
                works = torch.equal(torch._int_mm(a, a.t().contiguous()).float(),
                                    a.float() @ a.float().t())
            except (RuntimeError, NotImplementedError):
                works = False
        _MEASURED["int8_works"] = works
    return _MEASURED["int8_works"]


def int8_products_pay_off(rows: int = 1000, inner: int = 784, cols: int = 512) -> bool:
    """Whether exact int8 products run on this CPU AND beat float32 at a training shape:
    measured once per process (best of 3 timings of each), then cached. CPUs without int8
    dot-product instructions (VNNI / AMX) run torch._int_mm tens of times slower than float32."""
    if "cpu_int8_products" not in _MEASURED:
        import time

        pays_off = False
        if int8_products_work():
            g = torch.Generator().manual_seed(0)
            a8 = torch.randint(-1, 2, (rows, inner), generator=g, dtype=torch.int8)
            b8 = torch.randint(-1, 2, (cols, inner), generator=g, dtype=torch.int8)
            a32, b32 = a8.float(), b8.float()

            def best(fn) -> float:
                times = []
                for _ in range(3):
                    start = time.perf_counter()
                    fn()
                    times.append(time.perf_counter() - start)
                return min(times)

            pays_off = best(lambda: torch._int_mm(a8, b8.t())) < best(lambda: a32 @ b32.t())
        _MEASURED["cpu_int8_products"] = pays_off
        SETTINGS["cpu_int8_products"] = pays_off
    return _MEASURED["cpu_int8_products"]


_COMPILED: dict = {}


def compiled(fn):
    """torch.compile(fn, dynamic=False), made once per process (its graphs are cached per shape),
    the C++ extension builder's messages silenced."""
    if fn not in _COMPILED:
        import logging

        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        _COMPILED[fn] = torch.compile(fn, dynamic=False)
    return _COMPILED[fn]


def torch_compile_works(device: torch.device) -> str | None:
    """None when torch.compile runs a small graph on ``device`` (once per process and device
    type), else why not (no C++ compiler for the CPU, no Triton for the GPU, ...)."""
    key = f"compile_{torch.device(device).type}"
    if key not in _MEASURED:
        import logging

        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
        try:
            x = torch.linspace(-1, 1, 8, device=device)
            got = torch.compile(lambda t: torch.sign(t * 2.0 + 0.5), dynamic=False)(x)
            _MEASURED[key] = None if torch.equal(got, torch.sign(x * 2.0 + 0.5)) else "wrong result"
        except Exception as exc:  # compiler missing, unsupported backend, ...
            text = str(exc).splitlines()[0][:200] if str(exc) else ""
            _MEASURED[key] = f"{type(exc).__name__}: {text}"
    return _MEASURED[key]
