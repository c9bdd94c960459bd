"""What a run records about its code and machine: the git commit (and whether tracked files
differ from it), the package versions, the platform and the process settings (config.json's
"environment"; --version)."""
from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from metaplastic.data.root import PACKAGE_PARENT

REPO_ROOT = PACKAGE_PARENT  # the clone (git state) or site-packages


def git_state(root: Path | None = None) -> dict:
    """The git commit of the code and whether tracked files differ from it.

    ``{"git_commit": sha or None, "git_modified": bool or None}``: None when the code is not a
    git checkout (e.g. an unpacked archive), git is missing, or git fails (e.g. a repository
    owned by another user). Untracked files (data, results) do not count as modifications.
    """
    import subprocess

    root = Path(root) if root is not None else REPO_ROOT
    unknown = {"git_commit": None, "git_modified": None}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=True, timeout=20,
                              env=dict(os.environ, GIT_OPTIONAL_LOCKS="0")).stdout.strip()

    try:
        top = git("rev-parse", "--show-toplevel")
        if Path(top).resolve() != root.resolve():
            return unknown  # the code lies inside some other repository
        commit = git("rev-parse", "HEAD")
        modified = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return unknown
    return {"git_commit": commit, "git_modified": modified}


def code_version() -> str:
    """``<package version> (git <commit>[, modified])``, or the package version alone."""
    from metaplastic import __version__

    state = git_state()
    if state["git_commit"] is None:
        return __version__
    return (f"{__version__} (git {state['git_commit'][:12]}"
            + (", with uncommitted changes)" if state["git_modified"] else ")"))


def package_version(name: str) -> str | None:
    """The installed version of a distribution (without importing it), or None."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    """The processor's name and the logical cores this process may use, e.g. "Intel(R) Xeon(R)
    ... (2 cores)": the machine a run's times were measured on (Linux: /proc/cpuinfo;
    elsewhere: platform)."""
    import platform

    name = ""
    try:
        with open("/proc/cpuinfo") as f:
            name = next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), "")
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count())   # those this process may use (a SLURM allocation's)
    return f"{name} ({cores} cores)"


def environment_summary() -> dict:
    """What config.json records about the code and the machine (key "environment"; cpu:
    :func:`cpu_model`), with the process settings of :mod:`metaplastic.method.runtime`
    (cpu_int8_products: whether int8 products beat float32 on this CPU, null where not
    measured; implementation: what --impl chose)."""
    import platform

    import torch

    from metaplastic import __version__
    from metaplastic.method import runtime

    return {"code_version": __version__, **git_state(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torchvision": package_version("torchvision"), "numpy": package_version("numpy"),
            "torch_cuda_build": torch.version.cuda,
            "platform": platform.platform(), "cpu": cpu_model(),
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "cpu_int8_products": None, "implementation": None,
            **runtime.recorded_settings(),
            "started": datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:])}
