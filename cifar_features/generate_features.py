"""Generate the CIFAR-10 / CIFAR-100 features of Fig. 4(e-h): ImageNet-pretrained ResNet-18
without its final layer (512-d global-average-pool output).

Transforms (as published, done batch-wise on tensors):
- training set, --train-passes passes (default 10): resize to 220, random crop 200, random
  horizontal flip (p = 0.5); every pass draws new crops and flips;
- test set, one pass: resize to 220, centre crop 200;
- pixels scaled to [0, 1] (pixel / 255), no ImageNet mean/std normalization.

ResNet mode (--resnet-mode):
- ``train`` (default, as published): the published notebook never switched the ResNet-18 to
  evaluation mode, so its BatchNorm layers run in TRAINING mode and every feature is computed
  with the mean and variance of its own batch of 500 images. Batches are taken in data-set (file)
  order, never shuffled, for the test set and for every training pass alike; the last batch of a
  set is whatever remains. The features therefore depend on the batch composition, and the batch
  size is fixed at 500 (--batch-size other than 500 is refused). Running the network in training
  mode also updates its BatchNorm running statistics; nothing reads them (training-mode BatchNorm
  only uses batch statistics, and the network is discarded after the run), and no gradient is
  ever computed (torch.no_grad).
- ``eval``: the BatchNorm layers use their running ImageNet statistics, so each feature depends
  on its image only and --batch-size (default 128) is a speed setting.
The mode is recorded in the features' info (``resnet_mode``, and per split in
``resnet_mode_per_split``); cifar_features/main.py refuses features of another mode than the one
it expects (--features-resnet-mode, default train) and files that do not record it.

The resize reproduces torchvision's ``Resize(220)`` on PIL images (PIL's bilinear filter, two
passes in 8-bit fixed point) bit for bit, as a pair of matrix products with PIL's own
coefficients; see :func:`resize_like_pil`. Crop offsets and flips come from a CPU generator
seeded by --seed, drawn for a whole pass at once, so the random draws do not depend on the batch
size or the device; in eval mode neither do the features (up to the network's floating-point
arithmetic).

Output (written atomically): ``<out>/<dataset>_features.pt``, a dict with
train_x (N * passes x 512, float32; rows p*N .. (p+1)*N - 1 are pass p over the training set
in file order), train_y (int64), test_x (N_test x 512), test_y, info (a dict), and
``<out>/<dataset>_features.json`` holding the same info: dataset, weights file and its
SHA-256, ResNet mode, batch size, transforms, passes, seed, versions, date. Default <out>: <data-root>/features, where
cifar_features/main.py looks for them.

Inputs: CIFAR in torchvision's layout under --data-root (cifar-10-batches-py/ or
cifar-100-python/; --download lets torchvision fetch it where there is internet) and a ResNet-18
ImageNet state dict (--weights PATH; without it, resnet18-f37072fd.pth or resnet18-5c106cde.pth
in <data-root>/models/ or torch's hub cache; --download-weights lets torchvision fetch it).
A missing input ends with a message naming it and how to obtain it (exit status 2).

Examples:
    python cifar_features/generate_features.py --dataset cifar10 --weights resnet18-f37072fd.pth
    python cifar_features/generate_features.py --dataset cifar100 --weights resnet18-f37072fd.pth
    python cifar_features/generate_features.py --dataset cifar10 --resnet-mode eval --weights ...
    python cifar_features/generate_features.py --dataset cifar10 --dry-run   # check inputs only
"""
from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from cifar_features.data_utils import (DATASETS, default_features_dir, features_file,
                                       info_file, load_cifar_images)
from cifar_features.model_utils import (DEFAULT_WEIGHTS_FILE, FEATURE_SIZE, HOW_TO_GET_WEIGHTS,
                                        KNOWN_WEIGHTS, feature_extractor, identify_weights,
                                        load_state_dict_file, sha256_of)
from cifar_features.transforms import (CROP, RESIZE, centre_crop, resized_size,
                                       train_augmentation, transform_batch)
from metaplastic.errors import ConfigError, DataError, import_torchvision
from metaplastic.flag_types import positive_int
from metaplastic.method import runtime
from metaplastic.runs.checkpoint import save_atomic
from metaplastic.runs.cli import ArgumentParser
from metaplastic.runs.faults import main_guard
from metaplastic.runs.records import write_atomic_text

DEFAULT_TRAIN_PASSES = 10
DEFAULT_BATCH_SIZE = 128            # eval mode: images per forward pass (a speed setting)
RESNET_MODES = ("train", "eval")
DEFAULT_RESNET_MODE = "train"       # published: BatchNorm in training mode (batch statistics)
TRAIN_MODE_BATCH_SIZE = 500         # published: batches of 500 images, in data-set order
MODE_DESCRIPTIONS = {
    "train": "BatchNorm in training mode: each feature normalized with the statistics of its "
             "batch of {batch} images, batches in data-set order, as published",
    "eval": "BatchNorm in evaluation mode: running ImageNet statistics; features independent of "
            "the batch ({batch} images per forward pass)",
}

# --------------------------------------------------------------------------------------------
# Feature extraction
# --------------------------------------------------------------------------------------------


def resolve_batch_size(resnet_mode: str, batch_size: int | None) -> int:
    """Images per forward pass: TRAIN_MODE_BATCH_SIZE (500) in train mode, where it defines the
    BatchNorm statistics and nothing else is accepted; ``batch_size`` (default 128) in eval mode."""
    if resnet_mode not in RESNET_MODES:
        raise ConfigError(f"--resnet-mode {resnet_mode!r}: use one of {', '.join(RESNET_MODES)}")
    if resnet_mode == "eval":
        return DEFAULT_BATCH_SIZE if batch_size is None else int(batch_size)
    if batch_size is not None and int(batch_size) != TRAIN_MODE_BATCH_SIZE:
        raise ConfigError(
            f"--batch-size {batch_size} with --resnet-mode train: in train mode (published) the "
            f"ResNet's BatchNorm normalizes every batch with its own statistics, so the features "
            f"depend on the batch, and the published batches are {TRAIN_MODE_BATCH_SIZE} images in "
            f"data-set order; leave --batch-size out (or give {TRAIN_MODE_BATCH_SIZE}), or use "
            f"--resnet-mode eval, where the batch size is only a speed setting")
    return TRAIN_MODE_BATCH_SIZE


def set_resnet_mode(model: torch.nn.Module, resnet_mode: str) -> torch.nn.Module:
    """``model.train()`` for 'train' (BatchNorm on batch statistics), ``model.eval()`` for 'eval'."""
    if resnet_mode not in RESNET_MODES:
        raise ConfigError(f"--resnet-mode {resnet_mode!r}: use one of {', '.join(RESNET_MODES)}")
    return model.train(resnet_mode == "train")


@torch.no_grad()
def extract(model: torch.nn.Module, images: torch.Tensor, top, left, flip, batch_size: int,
            device: torch.device, bar=None) -> torch.Tensor:
    """Features (len(images) x 512, float32, on the CPU) of the transformed images.

    Consecutive batches of ``batch_size`` images in the order of ``images`` (the last one holds
    what remains): with the model in training mode (--resnet-mode train) each batch is normalized
    by its own BatchNorm statistics.
    """
    out = torch.empty(len(images), FEATURE_SIZE, dtype=torch.float32)
    for start in range(0, len(images), batch_size):
        end = min(start + batch_size, len(images))
        x = transform_batch(images[start:end].to(device), top[start:end], left[start:end],
                            flip[start:end])
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        out[start:end] = model(x).float().cpu()
        if bar is not None:
            bar.update(end - start)
    return out


def resolve_weights(weights: Path | None, download: bool, data_root: Path) -> Path:
    """The weights file: --weights, or torchvision's download, or a known file in the usual places."""
    if weights is not None and download:
        raise ConfigError("give either --weights PATH or --download-weights, not both")
    if weights is not None:
        if not Path(weights).is_file():
            raise DataError(f"ResNet-18 weights file not found: {weights}. {HOW_TO_GET_WEIGHTS}")
        return Path(weights)
    if download:
        return download_weights()
    candidates = weight_candidates(data_root)
    for path in candidates:
        if path.is_file():
            return path
    raise DataError("no ResNet-18 weights given and none found at "
                    + ", ".join(str(p) for p in candidates) + f". {HOW_TO_GET_WEIGHTS}")


def weight_candidates(data_root: Path) -> list[Path]:
    """Where the weights are looked for without --weights: <data-root>/models/ and torch's hub cache."""
    names = [v[0] for v in KNOWN_WEIGHTS.values()]
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [data_root / "models" / n for n in names] + [hub / n for n in names]


def download_weights() -> Path:
    """torchvision's ResNet18_Weights.IMAGENET1K_V1 file, downloaded (needs internet) or cached."""
    weights = import_torchvision("--download-weights").models.ResNet18_Weights
    url = weights.IMAGENET1K_V1.url
    try:
        torch.hub.load_state_dict_from_url(url, progress=True, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - URLError, hash mismatch, ...
        raise DataError(f"--download-weights: downloading {url} failed ({type(exc).__name__}: "
                        f"{exc}). {HOW_TO_GET_WEIGHTS}") from None
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def generate(dataset: str, data_root: Path, weights: Path, out_dir: Path, train_passes: int,
             seed: int, device: torch.device, batch_size: int | None = None,
             progress: bool = True, dry_run: bool = False,
             resnet_mode: str = DEFAULT_RESNET_MODE) -> Path | None:
    """Make and save the features of ``dataset``; returns the features file (None on a dry run).

    ``resnet_mode`` 'train' (published) runs the ResNet's BatchNorm on the statistics of each
    batch of TRAIN_MODE_BATCH_SIZE images in data-set order (``batch_size`` must then be None or
    that number); 'eval' uses its running statistics (``batch_size`` default 128).
    """
    started = time.perf_counter()
    batch_size = resolve_batch_size(resnet_mode, batch_size)
    train_x, train_y, test_x, test_y = load_cifar_images(dataset, data_root, "cpu")
    state = load_state_dict_file(weights)
    model = set_resnet_mode(feature_extractor(state, source=str(weights)).to(device), resnet_mode)
    digest = sha256_of(weights)
    known = identify_weights(digest)
    target = features_file(dataset, out_dir)
    height, width = resized_size(*train_x.shape[-2:], RESIZE)   # after the resize
    if min(height, width) < CROP:
        raise DataError(f"resized images of {height}x{width} cannot be cropped to {CROP}")
    n_train, n_test = len(train_x), len(test_x)
    print(f"{dataset}: {n_train} training images x {train_passes} passes, {n_test} test images; "
          f"weights {weights} (sha256 {digest[:16]}..., "
          f"{known or 'NOT one of torchvision ImageNet ResNet-18 files'}); ResNet in "
          f"{resnet_mode} mode ({MODE_DESCRIPTIONS[resnet_mode].format(batch=batch_size)}); "
          f"device {device}; output {target}")
    if known is None:
        print(f"warning: {weights} is not torchvision's ImageNet ResNet-18 ({DEFAULT_WEIGHTS_FILE} "
              "or resnet18-5c106cde.pth); the features will not match the paper's", file=sys.stderr)
    if dry_run:
        print("dry run: CIFAR files and weights OK; nothing computed")
        return None
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        model = model.to(memory_format=torch.channels_last)
    images = train_x.to(device)
    extraction_started = time.perf_counter()
    generator = torch.Generator().manual_seed(int(seed))
    bar = None
    if progress and sys.stderr.isatty():  # no carriage-return redraws in log files
        from tqdm import tqdm

        bar = tqdm(total=n_train * train_passes + n_test, desc=f"{dataset} features", unit="img",
                   file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
    try:
        # Test set first: its features do not depend on the random draws.
        test_features = extract(model, test_x.to(device), *centre_crop(n_test, height, width, CROP),
                                batch_size, device, bar)
        train_features = torch.empty(n_train * train_passes, FEATURE_SIZE, dtype=torch.float32)
        for p in range(train_passes):
            top, left, flip = train_augmentation(n_train, height, width, CROP, generator)
            train_features[p * n_train:(p + 1) * n_train] = extract(
                model, images, top, left, flip, batch_size, device, bar)
            if bar is None:
                print(f"training pass {p + 1}/{train_passes} done "
                      f"({time.perf_counter() - extraction_started:.0f}s)", flush=True)
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    extraction = time.perf_counter() - extraction_started
    n_images = n_train * train_passes + n_test
    info = {
        "dataset": dataset,
        "data_root": str(data_root),
        "n_train_images": n_train, "n_test_images": n_test,
        "train_passes": train_passes,
        "train_rows": "rows p*N .. (p+1)*N-1 of train_x are pass p over the training set, in file order",
        "feature_size": FEATURE_SIZE,
        "network": "torchvision resnet18, fc replaced by identity (global-average-pool output), "
                   f"{resnet_mode} mode",
        "resnet_mode": resnet_mode,
        "resnet_mode_per_split": {"train": resnet_mode, "test": resnet_mode},
        "batchnorm": MODE_DESCRIPTIONS[resnet_mode].format(batch=batch_size),
        "weights_file": str(Path(weights).resolve()),
        "weights_sha256": digest,
        "weights_identified_as": known,
        "transforms": {
            "train": f"Resize({RESIZE}) [PIL bilinear, exact], RandomCrop({CROP}), "
                     "RandomHorizontalFlip(0.5), pixel/255",
            "test": f"Resize({RESIZE}) [PIL bilinear, exact], CenterCrop({CROP}), pixel/255",
            "imagenet_normalization": False,
        },
        "seed": seed,
        "random_draws": "CPU torch.Generator(seed); per pass: randint tops, randint lefts, rand<0.5 flips",
        "batch_size": batch_size,
        "device": str(device),
        "torch": str(torch.__version__),
        "torchvision": _torchvision_version(),
        "date": datetime.now().isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "images_per_second": round(n_images / extraction, 2),
    }
    save_atomic({"train_x": train_features, "train_y": train_y.repeat(train_passes).clone(),
                 "test_x": test_features, "test_y": test_y.clone(), "info": info}, target)
    write_atomic_text(info_file(dataset, out_dir), json.dumps(info, indent=2) + "\n")
    print(f"wrote {target} ({len(train_features)} training and {len(test_features)} test feature "
          f"vectors) in {elapsed:.0f}s ({n_images / extraction:.1f} images/s through the network)")
    return target


def _torchvision_version() -> str:
    return str(import_torchvision("cifar_features/generate_features.py").__version__)


def build_parser() -> ArgumentParser:
    from metaplastic.data.root import default_data_root

    p = ArgumentParser(prog="cifar_features/generate_features.py",
                       description="ResNet-18 (ImageNet) features of CIFAR-10/100 for Fig. 4(e-h).")
    p.add_argument("--dataset", choices=DATASETS, default="cifar10", help="CIFAR set to encode")
    p.add_argument("--data-root", type=Path, default=None,
                   help=f"folder holding cifar-10-batches-py/ or cifar-100-python/ (default "
                        f"$METAPLASTIC_DATA, else the clone's data/; now {default_data_root()})")
    p.add_argument("--weights", type=Path, default=None,
                   help="ResNet-18 ImageNet state dict (torchvision's resnet18-f37072fd.pth; the "
                        "paper used resnet18-5c106cde.pth). Default: the first of these found in "
                        "<data-root>/models/ or torch's hub cache")
    p.add_argument("--download-weights", action="store_true",
                   help="let torchvision download its ImageNet weights (needs internet)")
    p.add_argument("--download", action="store_true",
                   help="let torchvision download CIFAR-10/100 into --data-root (needs internet)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default <data-root>/features, or $METAPLASTIC_CIFAR_FEATURES; "
                        "where cifar_features/main.py looks)")
    p.add_argument("--train-passes", type=positive_int, default=DEFAULT_TRAIN_PASSES,
                   help="augmented passes over the training set (10 as published)")
    p.add_argument("--seed", type=int, default=0, help="seed of the crops and flips")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--resnet-mode", choices=RESNET_MODES, default=DEFAULT_RESNET_MODE,
                   help="'train' (as published): the ResNet's BatchNorm layers run in "
                        "training mode, so every feature is normalized with the statistics of its "
                        f"batch of {TRAIN_MODE_BATCH_SIZE} images taken in data-set order (train "
                        "passes and test set alike); 'eval': running ImageNet statistics, each "
                        "feature depends on its image only. Recorded in the features' info")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"images per forward pass. --resnet-mode train: fixed at "
                        f"{TRAIN_MODE_BATCH_SIZE} (the published batches; any other value is "
                        f"refused). --resnet-mode eval: default {DEFAULT_BATCH_SIZE}, results do "
                        "not depend on it")
    p.add_argument("--allow-tf32", action="store_true",
                   help="allow TF32 convolutions on NVIDIA GPUs (faster, less exact)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true",
                   help="check the CIFAR files and the weights, print the plan, and exit")
    return p


@main_guard
def main(argv=None) -> int:
    from metaplastic.data.root import default_data_root

    args = build_parser().parse_args(argv)
    import_torchvision("cifar_features/generate_features.py (ResNet-18)")   # before any work
    resolve_batch_size(args.resnet_mode, args.batch_size)   # refuse a bad pair before any work
    data_root = Path(args.data_root) if args.data_root else default_data_root()
    out_dir = Path(args.out) if args.out else default_features_dir(data_root)
    device = runtime.setup(args.device, args.seed, args.allow_tf32)
    if args.download:
        from metaplastic.data.sources.torchvision_download import download_cifar

        download_cifar(data_root, args.dataset)
    weights = resolve_weights(args.weights, args.download_weights, data_root)
    generate(args.dataset, data_root, weights, out_dir, args.train_passes, args.seed, device,
             args.batch_size, progress=not args.no_progress, dry_run=args.dry_run,
             resnet_mode=args.resnet_mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
