"""Tasks of the cifar_features experiment (Fig. 4e-h): ResNet-18 features of CIFAR-10 / CIFAR-100.

Task names:
- 'animals', 'vehicles': CIFAR-10 features, labels remapped by CIFAR10_RELABEL
  [5, 6, 0, 1, 2, 3, 4, 7, 8, 9] (old label i -> CIFAR10_RELABEL[i]); 'animals' = new labels
  0-4 (bird, cat, deer, dog, frog), 'vehicles' = new labels 5-9 (airplane, automobile, horse,
  ship, truck: the published split, horse included). Labels stay 0-9 (--out-size 10).
- 'cifar100-K': K tasks, task k (from 0) holding CIFAR-100 fine classes
  [k * 100/K, (k+1) * 100/K) with their own labels 0-99 (--out-size 100). K must divide 100.
  One name stands for K tasks (K columns in metrics.csv).
A sequence uses either CIFAR-10 or CIFAR-100 tasks (their batch sizes differ).

Features: made by cifar_features/generate_features.py, read from
``<features dir>/cifar10_features.pt`` / ``cifar100_features.pt`` where the features dir is
$METAPLASTIC_CIFAR_FEATURES if set, else ``<data-root>/features`` (data root: --data-root,
$METAPLASTIC_DATA, or the clone's data/). Loaded once onto the run's device and processed there, per
example over its 512 features: (x - mean(x)) / var(x), as published (NumPy's var: the divisor
is n = 512, no Bessel correction); --feature-scale std divides by the standard deviation
instead. With --net bnn the first layer binarizes its input, so sign(x - mean(x)) is all that
reaches it and the divisor makes no difference; it matters for --net dnn.

ResNet mode: generate_features.py records in the features' info whether the ResNet ran with its
BatchNorm in training mode ('train', published: statistics of each batch of 500 images) or in
evaluation mode ('eval'), for the file and for each of its train and test parts. Features of the
two modes are not interchangeable, so the loader refuses (exit status 2) a file that does not
record its mode (files made before the option existed were made in eval mode: regenerate them),
whose train and test parts disagree, or whose mode differs from the one the run expects:
--features-resnet-mode (default 'train', the published features; recorded in config.json).
Only one features file is used per run (a sequence never mixes CIFAR-10 and CIFAR-100 tasks).

Batches: training 100 for CIFAR-10 tasks and 20 for CIFAR-100 tasks; evaluation (test sets and
the current task's training set) 100 for CIFAR-10 and 20 for CIFAR-100 tasks.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import torch

from cifar_features.model_utils import FEATURE_SIZE
from metaplastic.data.tasks import TASK_NAMES, TaskData, check_task_names as check_experiment_tasks
from metaplastic.errors import ConfigError, DataError
from metaplastic.experiments.continual import ContinualConfig
from metaplastic.runs.run_config import neutral

DATASETS = ("cifar10", "cifar100")
CIFAR10_RELABEL = (5, 6, 0, 1, 2, 3, 4, 7, 8, 9)
CIFAR10_TASKS = {"animals": (0, 5), "vehicles": (5, 10)}   # new-label ranges [lo, hi)
CIFAR100_CLASSES = 100
CIFAR100_PATTERN = re.compile(r"cifar100-(\d+)")
CIFAR10_BATCH = 100    # training and evaluation batches of CIFAR-10 tasks
CIFAR100_BATCH = 20

FEATURES_DIR_ENV = "METAPLASTIC_CIFAR_FEATURES"
FEATURE_SCALES = ("variance", "std")
DEFAULT_FEATURE_SCALE = "variance"      # published: divide by the variance
VARIANCE_CORRECTION = 0                 # published: NumPy's var, divide by n = 512

RESNET_MODES = ("train", "eval")        # generate_features.py --resnet-mode
DEFAULT_RESNET_MODE = "train"           # published features: BatchNorm in training mode



# --------------------------------------------------------------------------------------------
# CIFAR images (for generate_features.py)
# --------------------------------------------------------------------------------------------


def load_cifar_images(dataset: str, data_root: Path | None, device="cpu"):
    """(train_x, train_y, test_x, test_y): uint8 images N x 3 x 32 x 32 and int64 labels (fine
    labels for CIFAR-100), read by metaplastic.data.cifar from torchvision's layout under
    ``data_root``; a DataError names missing files and how to get them."""
    from metaplastic.data import cifar

    if dataset == "cifar10":
        return tuple(cifar.load_cifar10(data_root, device))
    if dataset == "cifar100":
        return tuple(cifar.load_cifar100(data_root, device))
    raise ConfigError(f"unknown dataset {dataset!r} ({', '.join(DATASETS)})")


# --------------------------------------------------------------------------------------------
# Feature files
# --------------------------------------------------------------------------------------------


def default_features_dir(data_root: Path | None) -> Path:
    """$METAPLASTIC_CIFAR_FEATURES if set, else <data-root>/features."""
    from_env = os.environ.get(FEATURES_DIR_ENV, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    if data_root is None:
        from metaplastic.data.root import default_data_root

        data_root = default_data_root()
    return Path(data_root) / "features"


def features_file(dataset: str, folder: Path) -> Path:
    return Path(folder) / f"{dataset}_features.pt"


def info_file(dataset: str, folder: Path) -> Path:
    return Path(folder) / f"{dataset}_features.json"


def generate_command(dataset: str, data_root: Path | None, folder: Path,
                     resnet_mode: str | None = None) -> str:
    """The command that makes the missing features file (in ``resnet_mode``, if not the default)."""
    parts = ["python", "cifar_features/generate_features.py", "--dataset", dataset]
    if resnet_mode is not None and resnet_mode != DEFAULT_RESNET_MODE:
        parts += ["--resnet-mode", resnet_mode]
    if data_root is not None:
        parts += ["--data-root", str(data_root)]
    if Path(folder) != default_features_dir(data_root) or os.environ.get(FEATURES_DIR_ENV):
        parts += ["--out", str(folder)]
    parts += ["--weights", "PATH/TO/resnet18-f37072fd.pth"]
    return " ".join(shlex.quote(p) for p in parts)


def load_features(dataset: str, data_root: Path | None, device,
                  folder: Path | None = None, resnet_mode: str | None = DEFAULT_RESNET_MODE) -> dict:
    """The features file of ``dataset`` (train_x, train_y, test_x, test_y, info) on ``device``,
    from ``folder`` (default :func:`default_features_dir`). The file must record its ResNet mode
    (the same for its train and test parts) and, unless ``resnet_mode`` is None, that mode must be
    ``resnet_mode``; otherwise a DataError says how to make the right file."""
    if resnet_mode is not None and resnet_mode not in RESNET_MODES:
        raise ConfigError(f"--features-resnet-mode {resnet_mode!r}: use one of {', '.join(RESNET_MODES)}")
    folder = Path(folder) if folder else default_features_dir(data_root)
    path = features_file(dataset, folder)
    name = "CIFAR-10" if dataset == "cifar10" else "CIFAR-100"
    how = (f"Make it with\n  {generate_command(dataset, data_root, folder, resnet_mode)}\n"
           f"(needs the {name} python folder under the data root and the ImageNet ResNet-18 "
           f"weights; see cifar_features/generate_features.py --help), or point "
           f"${FEATURES_DIR_ENV} at the folder holding {path.name}.")
    if not path.is_file():
        raise DataError(f"{name} features not found: {path}. {how}")
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error
        raise DataError(f"{path} is not a readable features file ({exc}). {how}") from None
    _check_features(data, dataset, path, how)
    check_resnet_mode(data.get("info") or {}, path, resnet_mode, how)
    return data


def features_resnet_mode(info: dict, path: Path | str = "features file", how: str = "") -> str:
    """The ResNet mode recorded in a features file's ``info`` ('train' or 'eval'); a DataError if
    it is missing, unknown, or differs between the file and its train and test parts."""
    tail = f" {how}" if how else ""
    mode = info.get("resnet_mode")
    if mode is None:
        raise DataError(
            f"{path} does not record the ResNet mode its features were made with (files made "
            f"before generate_features.py had --resnet-mode used eval mode; the published "
            f"features use train mode): features of different modes must not be mixed, so "
            f"regenerate it.{tail}")
    per_split = info.get("resnet_mode_per_split") or {}
    modes = {"file": mode, **{f"{k} part": v for k, v in per_split.items()}}
    if len(set(modes.values())) > 1:
        detail = ", ".join(f"{k} {v!r}" for k, v in modes.items())
        raise DataError(f"{path} mixes features made with different ResNet modes ({detail}); "
                        f"train and test features must come from the same mode.{tail}")
    if mode not in RESNET_MODES:
        raise DataError(f"{path}: unknown ResNet mode {mode!r} (expected one of "
                        f"{', '.join(RESNET_MODES)}).{tail}")
    return mode


def check_resnet_mode(info: dict, path: Path, expected: str | None, how: str = "") -> str:
    """:func:`features_resnet_mode`, and a DataError if it is not ``expected`` (None: any)."""
    mode = features_resnet_mode(info, path, how)
    if expected is not None and mode != expected:
        raise DataError(
            f"{path} holds features made with the ResNet in {mode} mode, but this run expects "
            f"{expected} mode (--features-resnet-mode {expected}"
            f"{', the published default' if expected == DEFAULT_RESNET_MODE else ''}). Pass "
            f"--features-resnet-mode {mode} to use this file, or replace it with {expected}-mode "
            f"features.{' ' + how if how else ''}")
    return mode


def _check_features(data, dataset: str, path: Path, how: str) -> None:
    keys = ("train_x", "train_y", "test_x", "test_y")
    if not isinstance(data, dict) or any(not isinstance(data.get(k), torch.Tensor) for k in keys):
        raise DataError(f"{path} must hold tensors {', '.join(keys)}. {how}")
    info = data.get("info") or {}
    if not isinstance(info, dict):
        raise DataError(f"{path}: its 'info' is a {type(info).__name__}, not a dict. {how}")
    for key in keys:
        tensor = data[key]
        wanted = "floating-point" if key.endswith("_x") else "integer"
        ok = tensor.is_floating_point() if key.endswith("_x") else (
            not tensor.is_floating_point() and not tensor.is_complex()
            and tensor.dtype != torch.bool)
        if not ok:
            raise DataError(f"{path}: {key} is a {tensor.dtype} tensor, not {wanted}. {how}")
    if info.get("dataset", dataset) != dataset:
        raise DataError(f"{path} holds {info.get('dataset')} features, not {dataset}. {how}")
    n_classes = 10 if dataset == "cifar10" else CIFAR100_CLASSES
    for split in ("train", "test"):
        x, y = data[f"{split}_x"], data[f"{split}_y"]
        if x.ndim != 2 or x.shape[1] != FEATURE_SIZE or y.shape != (x.shape[0],):
            raise DataError(f"{path}: {split}_x must be N x {FEATURE_SIZE} with N labels, found "
                            f"{tuple(x.shape)} and {tuple(y.shape)}. {how}")
        if len(y) == 0:
            raise DataError(f"{path}: the {split} set is empty (0 features). {how}")
        if int(y.min()) < 0 or int(y.max()) >= n_classes:
            raise DataError(f"{path}: {split} labels outside 0..{n_classes - 1}. {how}")


# --------------------------------------------------------------------------------------------
# Processing, labels, subsets
# --------------------------------------------------------------------------------------------


def process_features(x: torch.Tensor, scale: str = DEFAULT_FEATURE_SCALE,
                     chunk: int = 65536) -> torch.Tensor:
    """Per row: (x - mean(x)) / var(x) ('variance', published) or / std(x) ('std'), in place
    (float32), chunk by chunk to bound the extra memory. Returns ``x``."""
    if scale not in FEATURE_SCALES:
        raise ConfigError(f"feature scale {scale!r}: use one of {', '.join(FEATURE_SCALES)}")
    x = x.float()
    for start in range(0, len(x), chunk):
        part = x[start:start + chunk]
        var, mean = torch.var_mean(part, dim=1, keepdim=True, correction=VARIANCE_CORRECTION)
        part.sub_(mean).div_(var if scale == "variance" else var.sqrt())
    return x


def relabel_cifar10(y: torch.Tensor) -> torch.Tensor:
    """Old label i -> CIFAR10_RELABEL[i]."""
    return torch.tensor(CIFAR10_RELABEL, dtype=torch.long, device=y.device)[y.long()]


def cifar100_subsets(k: int) -> list[range]:
    """The K class subsets of 'cifar100-K': successive blocks of 100/K classes."""
    if k < 1 or CIFAR100_CLASSES % k:
        raise ConfigError(f"cifar100-{k}: K must divide {CIFAR100_CLASSES} (1, 2, 4, 5, 10, 20, 25, 50, 100)")
    size = CIFAR100_CLASSES // k
    return [range(i * size, (i + 1) * size) for i in range(k)]


def _cifar100_k(name: str) -> int | None:
    match = CIFAR100_PATTERN.fullmatch(name)
    return int(match.group(1)) if match else None


# --------------------------------------------------------------------------------------------
# The experiment
# --------------------------------------------------------------------------------------------


def check_task_names(names: list[str]) -> None:
    """Refuse unknown names, bad K, and sequences mixing CIFAR-10 and CIFAR-100 tasks."""
    for name in names:
        if name in CIFAR10_TASKS:
            continue
        k = _cifar100_k(name)
        if k is not None:
            cifar100_subsets(k)
            continue
        if name in TASK_NAMES:
            check_experiment_tasks([name], "cifar_features")   # says where it runs
        raise ConfigError(f"unknown task {name!r}; cifar_features accepts animals, vehicles "
                          "(CIFAR-10 features) and cifar100-K (K successive class subsets of "
                          "CIFAR-100, K dividing 100)")
    datasets = {dataset_of(n) for n in names}
    if len(datasets) > 1:
        raise ConfigError("a task sequence uses either CIFAR-10 tasks (animals, vehicles) or "
                          "CIFAR-100 tasks (cifar100-K), not both")


def dataset_of(name: str) -> str:
    return "cifar10" if name in CIFAR10_TASKS else "cifar100"


def train_batch_size(names: list[str]) -> int:
    """Training batch: 100 for CIFAR-10 tasks, 20 for CIFAR-100 tasks."""
    return CIFAR100_BATCH if any(dataset_of(n) == "cifar100" for n in names) else CIFAR10_BATCH


def cifar10_task(name: str, x_tr, y_tr, x_te, y_te) -> TaskData:
    """'animals' or 'vehicles' from processed features and remapped labels."""
    lo, hi = CIFAR10_TASKS[name]
    tr = (y_tr >= lo) & (y_tr < hi)
    te = (y_te >= lo) & (y_te < hi)
    return TaskData(name, x_tr[tr], y_tr[tr], x_te[te], y_te[te],
                    test_batch_size=CIFAR10_BATCH, train_eval_batch_size=CIFAR10_BATCH)


def cifar100_tasks(k: int, x_tr, y_tr, x_te, y_te) -> list[TaskData]:
    """The K tasks of 'cifar100-K' (labels kept 0-99)."""
    tasks = []
    for i, classes in enumerate(cifar100_subsets(k), start=1):
        tr = (y_tr >= classes.start) & (y_tr < classes.stop)
        te = (y_te >= classes.start) & (y_te < classes.stop)
        # published name; classes [start, stop); trained and evaluated in batches of 20
        tasks.append(TaskData(f"cifar100-{i}", x_tr[tr], y_tr[tr], x_te[te], y_te[te],
                              test_batch_size=CIFAR100_BATCH, train_eval_batch_size=CIFAR100_BATCH))
    return tasks


def build_tasks(names: list[str], data_root: Path | None, device: torch.device, seed: int,
                config=None) -> list[TaskData]:
    """Load the features once onto ``device``, process them, and cut the tasks in order."""
    check_task_names(names)
    if not names:
        return []
    dataset = dataset_of(names[0])
    n_classes = 10 if dataset == "cifar10" else CIFAR100_CLASSES
    out_size = getattr(config, "out_size", None)
    if out_size is not None and out_size < n_classes:
        raise ConfigError(f"--out-size {out_size}: {dataset} tasks have labels 0-{n_classes - 1}; "
                          f"use --out-size {n_classes}")
    scale = getattr(config, "feature_scale", None) or DEFAULT_FEATURE_SCALE
    expected_mode = getattr(config, "features_resnet_mode", None) or DEFAULT_RESNET_MODE
    folder = getattr(config, "features_dir", None) or default_features_dir(data_root)
    data = load_features(dataset, data_root, device, folder, expected_mode)
    x_tr = process_features(data["train_x"], scale)
    x_te = process_features(data["test_x"], scale)
    y_tr, y_te = data["train_y"].long(), data["test_y"].long()
    info = data.get("info") or {}
    print(f"{dataset} features: {len(x_tr)} training, {len(x_te)} test vectors "
          f"({info.get('train_passes', '?')} augmented passes; ResNet in "
          f"{info.get('resnet_mode')} mode; weights "
          f"{info.get('weights_identified_as') or info.get('weights_sha256', '?')}); "
          f"processing (x - mean) / {scale}")
    if dataset == "cifar10":
        y_tr, y_te = relabel_cifar10(y_tr), relabel_cifar10(y_te)
        tasks = [cifar10_task(n, x_tr, y_tr, x_te, y_te) for n in names]
    else:
        tasks = []
        for name in names:
            tasks.extend(cifar100_tasks(_cifar100_k(name), x_tr, y_tr, x_te, y_te))
    for task in tasks:   # a file whose labels miss a task's classes would train on nothing
        for split, x in (("training", task.train_x), ("test", task.test_x)):
            if len(x) == 0:
                raise DataError(f"{features_file(dataset, folder)}: task {task.name} has no {split} features (its classes are "
                                "missing from the file's labels)")
    return tasks


def add_arguments(group) -> None:
    """cifar_features' own flags (fields of :class:`CifarFeaturesConfig`)."""
    group.add_argument("--features-dir", type=Path, default=None,
                       help=f"folder of <dataset>_features.pt (default ${FEATURES_DIR_ENV} or "
                            "<data-root>/features)")
    group.add_argument("--feature-scale", choices=FEATURE_SCALES, default=DEFAULT_FEATURE_SCALE,
                       help="per-example processing: (x - mean) / variance as published, or / std")
    group.add_argument("--features-resnet-mode", choices=RESNET_MODES, default=DEFAULT_RESNET_MODE,
                       help="the ResNet mode the features must have been made with "
                            "(generate_features.py --resnet-mode): 'train' (published: "
                            "BatchNorm statistics of each batch of 500 images) or 'eval'; a file "
                            "of the other mode, or one that does not record it, is refused")


TASK_HELP = ("tasks in order: animals, vehicles (CIFAR-10 features), or cifar100-K (K tasks of "
             "100/K successive CIFAR-100 classes); features from "
             "cifar_features/generate_features.py in $METAPLASTIC_CIFAR_FEATURES or "
             "<data-root>/features")


@dataclass
class CifarFeaturesConfig(ContinualConfig):
    """A cifar_features run: the continual-learning config and where the features come from."""

    features_dir: str = neutral("")                   # default: <data-root>/features
    feature_scale: str = DEFAULT_FEATURE_SCALE       # (x - mean) / variance, as published
    features_resnet_mode: str = DEFAULT_RESNET_MODE  # the generator's --resnet-mode
    experiment: str = "cifar_features"
