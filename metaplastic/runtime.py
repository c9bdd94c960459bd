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
    present but unusable); an unavailable explicit device is refused."""
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


def setup(device: str = "auto", seed: int | None = None, allow_tf32: bool = False,
          keep_denormals: bool = False) -> torch.device:
    """The one call every experiment makes before building anything."""
    tune_allocator()
    set_precision(allow_tf32)
    set_denormals(keep_denormals)
    if seed is not None:
        seed_everything(seed)
    resolved = resolve_device(device)
    if resolved.type == "cpu":
        choose_cpu_products()
    return resolved


def choose_cpu_products() -> bool:
    """Decide once, at start, whether binary products run in exact int8 on this CPU (where it
    is faster than float32; the results are the same) and say which."""
    from metaplastic import layers

    layers.TERNARY_INT8["enabled"] = layers.int8_products_pay_off()
    if layers.TERNARY_INT8["enabled"]:
        print("CPU binary products: exact int8 (faster than float32 here)")
    else:
        print("CPU binary products: float32 (int8 products are slower on this CPU, or "
              "unsupported)")
    return layers.TERNARY_INT8["enabled"]
