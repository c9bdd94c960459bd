"""Tests of cifar_features (Fig. 4e-h) on tiny synthetic CIFAR folders and a random ResNet-18.

The real CIFAR files and ImageNet weights cannot be obtained offline: the tests write CIFAR-10 /
CIFAR-100 in torchvision's pickle layout (dicts with bytes keys, protocol 2) and save a randomly
initialised torchvision ResNet-18 state dict. ResNet-18 at 200x200 costs ~0.1-0.3 s per image on
a small CPU, so every generation here uses a handful of images. The published train-mode batches
of 500 are exercised on fewer images (one batch per set) and, for batch boundaries, with the
batch size patched down to 3.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import pickle_dump, run_script

from cifar_features import data_utils, generate_features
from cifar_features import main as cifar_main
from cifar_features.data_utils import (CIFAR10_RELABEL, FEATURES_DIR_ENV,
                                       build_tasks, check_task_names, cifar100_subsets,
                                       process_features, relabel_cifar10, train_batch_size)
from cifar_features.generate_features import generate
from cifar_features.model_utils import identify_weights
from cifar_features.transforms import (CROP, RESIZE, centre_crop, crop_flip, resize_like_pil,
                                       train_augmentation, transform_batch)
from metaplastic.errors import ConfigError, DataError
from metaplastic.runs import records

PUBLISHED = [
    "--net bnn --norm bn --decay 1e-8 --in-size 512 --hidden-layers 2048 --out-size 10 --lr 0.005 "
    "--meta 0.0 --epochs-per-task 10 --task-sequence vehicles animals",
    "--net bnn --norm bn --decay 1e-8 --in-size 512 --hidden-layers 2048 --out-size 10 --lr 0.005 "
    "--meta 1.8 --epochs-per-task 10 --task-sequence vehicles animals",
    "--net bnn --norm in --scenario domain --in-size 512 --hidden-layers 2048 2048 --out-size 100 "
    "--lr 0.005 --meta 0.0 --epochs-per-task 20 --task-sequence cifar100-2",
    "--net bnn --norm in --scenario domain --in-size 512 --hidden-layers 2048 2048 --out-size 100 "
    "--lr 0.005 --meta 1.3 --epochs-per-task 20 --task-sequence cifar100-2",
]


# --------------------------------------------------------------------------------------------
# Synthetic inputs
# --------------------------------------------------------------------------------------------


def write_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> dict:
    """cifar-10-batches-py/ with data_batch_1..5 (training images split in order), test_batch,
    batches.meta; returns the arrays written."""
    rng = np.random.default_rng(seed)
    # labels chosen so that both 'vehicles' and 'animals' have training and test examples
    arrays = {"train_x": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8),
              "train_y": np.resize([0, 2, 1, 3, 7, 5, 9, 6, 8, 4], n_train),
              "test_x": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
              "test_y": np.resize([8, 4, 9, 5, 0, 6, 1, 2, 3, 7], n_test)}
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i, idx in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        pickle_dump(folder / f"data_batch_{i}", {b"batch_label": b"training batch", b"data": arrays["train_x"][idx],
                                           b"labels": [int(v) for v in arrays["train_y"][idx]],
                                           b"filenames": [b"x.png"] * len(idx)})
    pickle_dump(folder / "test_batch", {b"batch_label": b"testing batch", b"data": arrays["test_x"],
                                  b"labels": [int(v) for v in arrays["test_y"]],
                                  b"filenames": [b"t.png"] * n_test})
    pickle_dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)],
                                    b"num_cases_per_batch": n_train, b"num_vis": 3072})
    return arrays


def write_cifar100(root: Path, n_train: int, n_test: int, seed: int = 1) -> dict:
    """cifar-100-python/ with train, test, meta (fine and coarse labels)."""
    rng = np.random.default_rng(seed)
    # labels 0, 53, 6, 59, ...: both halves of the classes (cifar100-2) get examples
    arrays = {"train_x": rng.integers(0, 256, (n_train, 3072), dtype=np.uint8),
              "train_y": np.arange(n_train) * 53 % 100,
              "test_x": rng.integers(0, 256, (n_test, 3072), dtype=np.uint8),
              "test_y": np.arange(n_test) * 53 % 100}
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train", "test"):
        fine = [int(v) for v in arrays[f"{name}_y"]]
        pickle_dump(folder / name, {b"batch_label": name.encode(), b"data": arrays[f"{name}_x"],
                              b"fine_labels": fine, b"coarse_labels": [v // 5 for v in fine],
                              b"filenames": [b"x.png"] * len(fine)})
    pickle_dump(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                            b"coarse_label_names": [f"k{i}".encode() for i in range(20)]})
    return arrays


def write_weights(path: Path) -> Path:
    """A randomly initialised torchvision ResNet-18 state dict (fixed seed)."""
    from torchvision.models import resnet18

    torch.manual_seed(0)
    torch.save(resnet18(weights=None).state_dict(), path)
    return path


def write_fake_features(folder: Path, dataset: str, n_train: int, n_test: int, seed: int = 0,
                        info: dict | None = None) -> dict:
    """A features file with random vectors and labels covering every class (for task tests);
    its info records train-mode features unless ``info`` replaces it."""
    n_classes = 10 if dataset == "cifar10" else 100
    g = torch.Generator().manual_seed(seed)
    data = {"train_x": torch.randn(n_train, 512, generator=g) * 3 + 1,
            "train_y": torch.arange(n_train) % n_classes,
            "test_x": torch.randn(n_test, 512, generator=g) * 3 + 1,
            "test_y": torch.arange(n_test) % n_classes,
            "info": info if info is not None else
            {"dataset": dataset, "train_passes": 1, "resnet_mode": "train",
             "resnet_mode_per_split": {"train": "train", "test": "train"}}}
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(data, folder / f"{dataset}_features.pt")
    return data


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv(FEATURES_DIR_ENV, raising=False)
    monkeypatch.delenv("METAPLASTIC_DATA", raising=False)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict:
    """CIFAR-10 (5 train, 4 test) and CIFAR-100 (4 train, 2 test) folders, weights, and the
    CIFAR-10 features generated once with 2 passes (published train mode, batches of 500)."""
    root = tmp_path_factory.mktemp("cifar")
    c10 = write_cifar10(root, 5, 4)
    c100 = write_cifar100(root, 4, 2)
    weights = write_weights(root / "random_resnet18.pth")
    out = root / "features"
    path = generate("cifar10", root, weights, out, train_passes=2, seed=0,
                    device=torch.device("cpu"), progress=False)
    return {"root": root, "c10": c10, "c100": c100, "weights": weights, "out": out,
            "c10_features": torch.load(path, weights_only=True)}


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------


def _pil_images(n: int, size: int = 32, seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    arrays = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return arrays, [Image.fromarray(a) for a in arrays]


def test_resize_matches_torchvision_on_pil_images_exactly() -> None:
    pytest.importorskip("PIL")
    import torchvision.transforms as T

    for size in (32, 17, 240):  # upsampling (CIFAR), odd size, downsampling
        arrays, images = _pil_images(3, size, seed=size)
        expected = np.stack([np.asarray(T.Resize(RESIZE)(im)) for im in images]).transpose(0, 3, 1, 2)
        ours = resize_like_pil(torch.from_numpy(arrays).permute(0, 3, 1, 2), RESIZE)
        assert ours.shape == (3, 3, RESIZE, RESIZE)
        assert torch.equal(ours, torch.from_numpy(expected.astype(np.float32)))


def test_test_and_train_transforms_match_torchvision_exactly() -> None:
    pytest.importorskip("PIL")
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF

    arrays, images = _pil_images(4)
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).contiguous()
    test_t = T.Compose([T.Resize(RESIZE), T.CenterCrop(CROP), T.ToTensor()])
    ours = transform_batch(x, *centre_crop(4, RESIZE, RESIZE, CROP))
    assert torch.equal(ours, torch.stack([test_t(im) for im in images]))

    top, left, flip = torch.tensor([0, 20, 7, 13]), torch.tensor([20, 0, 3, 9]), torch.tensor([True, False, True, False])
    ours = transform_batch(x, top, left, flip)
    expected = []
    for im, t, l, f in zip(images, top.tolist(), left.tolist(), flip.tolist()):
        im = TF.crop(T.Resize(RESIZE)(im), t, l, CROP, CROP)
        expected.append(TF.to_tensor(TF.hflip(im) if f else im))
    assert torch.equal(ours, torch.stack(expected))
    assert float(ours.min()) >= 0.0 and float(ours.max()) <= 1.0


def test_crop_flip_is_a_vectorised_per_sample_crop() -> None:
    images = torch.arange(2 * 1 * 5 * 5, dtype=torch.float32).reshape(2, 1, 5, 5)
    out = crop_flip(images, torch.tensor([0, 2]), torch.tensor([1, 0]), torch.tensor([False, True]), 3)
    assert torch.equal(out[0, 0], images[0, 0, 0:3, 1:4])
    assert torch.equal(out[1, 0], images[1, 0, 2:5, 0:3].flip(-1))


def test_train_augmentation_is_seeded_and_in_range() -> None:
    a = train_augmentation(1000, RESIZE, RESIZE, CROP, torch.Generator().manual_seed(3))
    b = train_augmentation(1000, RESIZE, RESIZE, CROP, torch.Generator().manual_seed(3))
    for u, v in zip(a, b):
        assert torch.equal(u, v)
    top, left, flip = a
    assert int(top.min()) == 0 and int(top.max()) == RESIZE - CROP
    assert int(left.min()) == 0 and int(left.max()) == RESIZE - CROP
    assert 0.4 < flip.float().mean() < 0.6
    top, left, _ = centre_crop(2, RESIZE, RESIZE, CROP)
    assert top.tolist() == [10, 10] and left.tolist() == [10, 10]


# --------------------------------------------------------------------------------------------
# Feature generation
# --------------------------------------------------------------------------------------------


def test_generated_features_shapes_labels_and_info(synthetic) -> None:
    data = synthetic["c10_features"]
    c10 = synthetic["c10"]
    assert data["train_x"].shape == (5 * 2, 512) and data["train_x"].dtype == torch.float32
    assert data["test_x"].shape == (4, 512)
    assert torch.equal(data["train_y"], torch.from_numpy(np.tile(c10["train_y"], 2)))
    assert torch.equal(data["test_y"], torch.from_numpy(c10["test_y"]))
    assert torch.isfinite(data["train_x"]).all() and (data["train_x"] >= 0).all()  # after ReLU + pool
    # the two passes draw different crops: the same image gives different features
    assert not torch.allclose(data["train_x"][:5], data["train_x"][5:])
    import json

    info = json.loads((synthetic["out"] / "cifar10_features.json").read_text())
    assert info["dataset"] == "cifar10" and info["train_passes"] == 2 and info["seed"] == 0
    from cifar_features.model_utils import sha256_of

    assert info["weights_sha256"] == sha256_of(synthetic["weights"])
    assert info["weights_identified_as"] is None
    assert info["transforms"]["imagenet_normalization"] is False
    assert info["resnet_mode"] == "train" and info["batch_size"] == 500
    assert info["resnet_mode_per_split"] == {"train": "train", "test": "train"}
    assert "train mode" in info["network"] and "500" in info["batchnorm"]
    assert data["info"] == info


def test_ten_passes_shape(tmp_path) -> None:
    write_cifar100(tmp_path, 2, 1)
    weights = write_weights(tmp_path / "w.pth")
    path = generate("cifar100", tmp_path, weights, tmp_path / "f", train_passes=10, seed=0,
                    device=torch.device("cpu"), progress=False)
    data = torch.load(path, weights_only=True)
    assert data["train_x"].shape == (2 * 10, 512) and data["test_x"].shape == (1, 512)
    assert data["train_y"].shape == (20,) and data["test_y"].shape == (1,)


def test_generation_is_deterministic(synthetic, tmp_path) -> None:
    """Eval mode. Same seed: identical features; other seed (and batch size): the same test
    features up to float rounding, different training features."""
    def features(seed: int, batch_size: int, out: str) -> dict:
        path = generate("cifar100", synthetic["root"], synthetic["weights"], tmp_path / out,
                        train_passes=1, seed=seed, device=torch.device("cpu"),
                        batch_size=batch_size, progress=False, resnet_mode="eval")
        return torch.load(path, weights_only=True)

    first, again, other = features(0, 8, "a"), features(0, 8, "b"), features(1, 3, "c")
    assert first["info"]["resnet_mode"] == "eval" and first["info"]["batch_size"] == 8
    assert torch.equal(again["test_x"], first["test_x"])
    assert torch.equal(again["train_x"], first["train_x"])
    torch.testing.assert_close(other["test_x"], first["test_x"], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(other["train_x"], first["train_x"])


def _pil_cifar(arrays: np.ndarray) -> list:
    """PIL images of CIFAR rows (3072 bytes: the R, G, B planes of a 32x32 image)."""
    from PIL import Image

    return [Image.fromarray(np.ascontiguousarray(a.reshape(3, 32, 32).transpose(1, 2, 0)))
            for a in arrays]


def _hand_features(weights: Path, images: list, crops: list, batch: int, train_mode: bool = True):
    """The reference: torchvision's ResNet-18 (fc = identity) in training mode, fed consecutive
    batches of ``batch`` images in order, each image transformed by torchvision on PIL:
    Resize(220), crop (top, left) of 200 or CenterCrop(200) when None, flip, ToTensor."""
    import torchvision.transforms as T
    import torchvision.transforms.functional as TF
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.fc = torch.nn.Identity()
    state = torch.load(weights, weights_only=True)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    net.train(train_mode)

    def tensor(im, crop):
        im = T.Resize(220)(im)
        if crop is None:
            return TF.to_tensor(T.CenterCrop(200)(im))
        top, left, flip = crop
        im = TF.crop(im, top, left, 200, 200)
        return TF.to_tensor(TF.hflip(im) if flip else im)

    out = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.stack([tensor(im, c) for im, c in zip(images[start:start + batch],
                                                           crops[start:start + batch])])
            out.append(net(x))
    return torch.cat(out)


def _hand_train_crops(n: int, passes: int, seed: int) -> list[list]:
    """Per pass, (top, left, flip) per image: a CPU generator seeded with ``seed`` draws, per
    pass, n tops, n lefts (randint 0..20) and n flips (rand < 0.5)."""
    g = torch.Generator().manual_seed(seed)
    crops = []
    for _ in range(passes):
        top = torch.randint(0, 21, (n,), generator=g).tolist()
        left = torch.randint(0, 21, (n,), generator=g).tolist()
        flip = (torch.rand(n, generator=g) < 0.5).tolist()
        crops.append(list(zip(top, left, flip)))
    return crops


def _hand_all(synthetic, passes: int, batch: int, train_mode: bool = True):
    c10 = synthetic["c10"]
    train_images, test_images = _pil_cifar(c10["train_x"]), _pil_cifar(c10["test_x"])
    test = _hand_features(synthetic["weights"], test_images, [None] * len(test_images), batch,
                          train_mode)
    train = [_hand_features(synthetic["weights"], train_images, crops, batch, train_mode)
             for crops in _hand_train_crops(len(train_images), passes, 0)]
    train = torch.cat(train) if train else torch.empty(0, 512)
    return train, test


def test_train_mode_features_equal_a_hand_loop_over_batches_of_500(synthetic) -> None:
    """Published default: BatchNorm in training mode, batches of 500 in data-set order (here each
    set fits in one batch: 4 test images, 5 training images per pass)."""
    pytest.importorskip("PIL")
    data = synthetic["c10_features"]
    train, test = _hand_all(synthetic, passes=2, batch=500)
    torch.testing.assert_close(data["test_x"], test, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(data["train_x"], train, rtol=1e-5, atol=1e-6)
    # not the eval-mode features: the batch statistics matter
    _, test_eval = _hand_all(synthetic, passes=0, batch=500, train_mode=False)
    assert not torch.allclose(data["test_x"], test_eval, rtol=1e-3, atol=1e-4)


def test_train_mode_batches_are_consecutive_in_data_set_order(synthetic, tmp_path, monkeypatch) -> None:
    """With the train-mode batch patched to 3: batches [0:3], [3:5] of each training pass and
    [0:3], [3:4] of the test set, each normalized with its own statistics."""
    pytest.importorskip("PIL")
    monkeypatch.setattr(generate_features, "TRAIN_MODE_BATCH_SIZE", 3)
    path = generate("cifar10", synthetic["root"], synthetic["weights"], tmp_path / "f3",
                    train_passes=2, seed=0, device=torch.device("cpu"), progress=False)
    data = torch.load(path, weights_only=True)
    assert data["info"]["batch_size"] == 3 and data["info"]["resnet_mode"] == "train"
    train, test = _hand_all(synthetic, passes=2, batch=3)
    torch.testing.assert_close(data["test_x"], test, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(data["train_x"], train, rtol=1e-5, atol=1e-6)
    # the features depend on the batch composition: batches of 3 differ from the one batch of 500
    whole = synthetic["c10_features"]
    assert not torch.allclose(data["test_x"], whole["test_x"], rtol=1e-3, atol=1e-4)
    assert not torch.allclose(data["train_x"][:5], whole["train_x"][:5], rtol=1e-3, atol=1e-4)
    with pytest.raises(ConfigError, match="--batch-size 500"):
        generate("cifar10", synthetic["root"], synthetic["weights"], tmp_path / "bad",
                 train_passes=1, seed=0, device=torch.device("cpu"), batch_size=500,
                 progress=False)


def test_resnet_mode_on_the_command_line(synthetic, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        generate_features.build_parser().parse_args(["--help"])
    help_text = capsys.readouterr().out
    assert "--resnet-mode" in help_text and "{train,eval}" in help_text and "500" in help_text
    assert generate_features.build_parser().parse_args([]).resnet_mode == "train"
    common = ["--data-root", str(synthetic["root"]), "--weights", str(synthetic["weights"]),
              "--out", str(tmp_path / "f"), "--dry-run", "--device", "cpu"]
    # train mode: batches of 500, nothing else
    assert generate_features.main(common + ["--batch-size", "128"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size 128" in err and "--resnet-mode eval" in err and "Traceback" not in err
    assert generate_features.main(common + ["--resnet-mode", "train", "--batch-size", "500"]) == 0
    assert "train mode" in capsys.readouterr().out
    assert generate_features.main(common + ["--resnet-mode", "eval", "--batch-size", "3"]) == 0
    assert "eval mode" in capsys.readouterr().out
    assert not (tmp_path / "f").exists()


def test_features_of_another_or_unrecorded_resnet_mode_are_refused(tmp_path, capsys) -> None:
    folder = tmp_path / "features"
    base = {"dataset": "cifar10", "train_passes": 1}
    write_fake_features(folder, "cifar10", 40, 20, info=base)       # made before the option
    with pytest.raises(DataError, match="does not record the ResNet mode"):
        build_tasks(["animals"], tmp_path, torch.device("cpu"), 0)
    write_fake_features(folder, "cifar10", 40, 20, info=base | {
        "resnet_mode": "train", "resnet_mode_per_split": {"train": "train", "test": "eval"}})
    with pytest.raises(DataError, match="mixes features made with different ResNet modes"):
        build_tasks(["animals"], tmp_path, torch.device("cpu"), 0)
    write_fake_features(folder, "cifar10", 40, 20, info=base | {"resnet_mode": "batch"})
    with pytest.raises(DataError, match="unknown ResNet mode"):
        build_tasks(["animals"], tmp_path, torch.device("cpu"), 0)
    eval_info = base | {"resnet_mode": "eval", "resnet_mode_per_split": {"train": "eval", "test": "eval"}}
    write_fake_features(folder, "cifar10", 40, 20, info=eval_info)
    with pytest.raises(DataError, match="--features-resnet-mode eval"):
        build_tasks(["animals"], tmp_path, torch.device("cpu"), 0)       # expects train (published)
    # through the command line: exit 2 without a traceback; accepted when eval is expected
    argv = PUBLISHED[0].split() + ["--data-root", str(tmp_path), "--dry-run", "--device", "cpu",
                                   "--out-dir", str(tmp_path / "run")]
    assert cifar_main.main(argv) == 2
    err = capsys.readouterr().err
    assert "eval mode" in err and "expects train mode" in err and "Traceback" not in err
    assert cifar_main.main(argv + ["--features-resnet-mode", "eval"]) == 0
    # and the reverse: train-mode features when eval ones are expected
    write_fake_features(folder, "cifar10", 40, 20)
    assert cifar_main.main(argv + ["--features-resnet-mode", "eval"]) == 2
    assert "expects eval mode" in capsys.readouterr().err
    assert cifar_main.main(argv) == 0


def test_missing_eval_features_name_the_eval_command(tmp_path) -> None:
    with pytest.raises(DataError, match="generate_features.py --dataset cifar10 --resnet-mode eval"):
        data_utils.load_features("cifar10", tmp_path, "cpu", resnet_mode="eval")
    with pytest.raises(DataError) as info:
        data_utils.load_features("cifar10", tmp_path, "cpu")
    assert "--resnet-mode" not in str(info.value)


def test_generate_dry_run_checks_and_writes_nothing(synthetic, tmp_path, capsys) -> None:
    code = generate_features.main(["--data-root", str(synthetic["root"]), "--weights",
                                   str(synthetic["weights"]), "--out", str(tmp_path / "f"),
                                   "--dry-run", "--device", "cpu"])
    assert code == 0
    assert "dry run" in capsys.readouterr().out
    assert not (tmp_path / "f").exists()


def test_without_torchvision_generation_exits_2_in_one_line(synthetic, tmp_path, capsys,
                                                           monkeypatch) -> None:
    """torchvision is an optional extra (docs/INSTALL.md): the feature script names it."""
    monkeypatch.setitem(sys.modules, "torchvision", None)
    code = generate_features.main(["--data-root", str(synthetic["root"]), "--weights",
                                   str(synthetic["weights"]), "--out", str(tmp_path / "f"),
                                   "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "needs torchvision" in err and "metaplastic-bnn[vision]" in err
    assert not (tmp_path / "f").exists()


def test_missing_cifar_exits_2_naming_files(synthetic, tmp_path, capsys) -> None:
    code = generate_features.main(["--data-root", str(tmp_path), "--weights", str(synthetic["weights"]),
                                   "--dataset", "cifar100", "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cifar-100-python" in err and "train" in err and "Traceback" not in err
    (tmp_path / "cifar-10-batches-py").mkdir()
    code = generate_features.main(["--data-root", str(tmp_path), "--weights", str(synthetic["weights"]),
                                   "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "data_batch_1" in err and "test_batch" in err


@pytest.mark.slow
def test_missing_weights_exits_2_without_traceback(synthetic, tmp_path) -> None:
    """Through the real script: a message naming the file and where to get it, exit status 2."""
    proc = run_script("cifar_features/generate_features.py", "--data-root", synthetic["root"],
                      "--weights", tmp_path / "resnet18-f37072fd.pth", "--dry-run", cwd=tmp_path,
                      timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "resnet18-f37072fd.pth" in proc.stderr and "resnet18-5c106cde.pth" in proc.stderr
    assert "download.pytorch.org" in proc.stderr


def test_weights_problems_are_data_errors(synthetic, tmp_path, monkeypatch, capsys) -> None:
    # no --weights: looked for in <data-root>/models and torch's hub cache, each named
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    code = generate_features.main(["--data-root", str(synthetic["root"]), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "models/resnet18-f37072fd.pth" in err and "hub" in err
    # found in <data-root>/models without --weights
    models = tmp_path / "root" / "models"
    models.mkdir(parents=True)
    (models / "resnet18-5c106cde.pth").write_bytes(synthetic["weights"].read_bytes())
    assert generate_features.resolve_weights(None, False, tmp_path / "root") == models / "resnet18-5c106cde.pth"
    # a file that is not a ResNet-18 state dict
    torch.save({"layer.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    code = generate_features.main(["--data-root", str(synthetic["root"]), "--weights",
                                   str(tmp_path / "bad.pth"), "--dry-run", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "not a torchvision ResNet-18 state dict" in err
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a readable"):
        from cifar_features.model_utils import load_state_dict_file

        load_state_dict_file(tmp_path / "junk.pth")
    code = generate_features.main(["--weights", str(synthetic["weights"]), "--download-weights"])
    assert code == 2 and "not both" in capsys.readouterr().err


def test_identify_weights_by_hash_prefix() -> None:
    assert "resnet18-f37072fd.pth" in identify_weights("f37072fd" + "0" * 56)
    assert "resnet18-5c106cde.pth" in identify_weights("5c106cde" + "0" * 56)
    assert identify_weights("0" * 64) is None


# --------------------------------------------------------------------------------------------
# Processing, labels, tasks
# --------------------------------------------------------------------------------------------


def test_processing_formula_against_numpy() -> None:
    x = np.random.default_rng(0).normal(2.0, 3.0, (7, 512)).astype(np.float32)
    # the published line, NumPy's var (divisor n)
    expected = (x - x.mean(axis=1, keepdims=True)) / x.var(axis=1, keepdims=True)
    np.testing.assert_allclose(process_features(torch.from_numpy(x.copy())).numpy(), expected,
                               rtol=1e-5, atol=1e-6)
    expected_std = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    np.testing.assert_allclose(process_features(torch.from_numpy(x.copy()), "std", chunk=3).numpy(),
                               expected_std, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError):
        process_features(torch.from_numpy(x), "l2")


def test_feature_scale_flag_reaches_the_processing(tmp_path) -> None:
    data = write_fake_features(tmp_path / "features", "cifar10", 40, 20)
    config = SimpleNamespace(out_size=10, feature_scale="std")
    (vehicles,) = build_tasks(["vehicles"], tmp_path, torch.device("cpu"), 0, config)
    rows = torch.isin(data["train_y"], torch.tensor([0, 1, 7, 8, 9]))
    expected = process_features(data["train_x"][rows].clone(), "std")
    torch.testing.assert_close(vehicles.train_x, expected)


def test_relabel_map_and_animal_vehicle_split(tmp_path, monkeypatch) -> None:
    assert relabel_cifar10(torch.arange(10)).tolist() == [5, 6, 0, 1, 2, 3, 4, 7, 8, 9]
    assert list(CIFAR10_RELABEL) == [5, 6, 0, 1, 2, 3, 4, 7, 8, 9]
    data = write_fake_features(tmp_path / "features", "cifar10", 40, 20)
    tasks = build_tasks(["vehicles", "animals"], tmp_path, torch.device("cpu"), 0)
    vehicles, animals = tasks
    assert vehicles.name == "vehicles" and animals.name == "animals"
    # original classes: vehicles = airplane 0, automobile 1, horse 7, ship 8, truck 9
    original = data["train_y"]
    for task, old_classes, new_classes in ((vehicles, [0, 1, 7, 8, 9], [5, 6, 7, 8, 9]),
                                           (animals, [2, 3, 4, 5, 6], [0, 1, 2, 3, 4])):
        assert sorted(set(task.train_y.tolist())) == new_classes
        assert sorted(set(task.test_y.tolist())) == new_classes
        rows = torch.isin(original, torch.tensor(old_classes))
        assert len(task.train_x) == int(rows.sum())
        expected = process_features(data["train_x"][rows].clone())
        torch.testing.assert_close(task.train_x, expected)
        assert task.test_batch_size == 100 and task.train_eval_batch_size == 100
    assert train_batch_size(["vehicles", "animals"]) == 100


def test_cifar100_subsets_partition_the_classes(tmp_path) -> None:
    for k in (1, 2, 4, 5, 10, 20, 25, 50, 100):
        subsets = cifar100_subsets(k)
        assert len(subsets) == k
        flat = [c for s in subsets for c in s]
        assert flat == list(range(100))          # covering, disjoint, successive
        assert all(len(s) == 100 // k for s in subsets)
    for k in (0, 3, 7, 200):
        with pytest.raises(ConfigError):
            cifar100_subsets(k)
    write_fake_features(tmp_path / "features", "cifar100", 300, 200)
    tasks = build_tasks(["cifar100-4"], tmp_path, torch.device("cpu"), 0)
    assert len(tasks) == 4
    for i, task in enumerate(tasks):
        assert set(task.train_y.tolist()) == set(range(25 * i, 25 * (i + 1)))
        assert set(task.test_y.tolist()) == set(range(25 * i, 25 * (i + 1)))
        # trained and evaluated (training and test sets) in batches of 20, as published
        assert task.test_batch_size == 20 and task.train_eval_batch_size == 20
    assert sum(len(t.train_x) for t in tasks) == 300 and sum(len(t.test_x) for t in tasks) == 200
    assert train_batch_size(["cifar100-4"]) == 20


def test_task_names_are_checked() -> None:
    check_task_names(["vehicles", "animals", "vehicles"])
    check_task_names(["cifar100-2"])
    for names, text in ((["pMNIST"], "continual_learning"), (["USPS"], "mnist_usps"),
                        (["cars"], "unknown task"), (["cifar100-3"], "divide"),
                        (["animals", "cifar100-2"], "not both")):
        with pytest.raises(ConfigError, match=text):
            check_task_names(names)


def test_out_size_must_cover_the_labels(tmp_path, capsys) -> None:
    write_fake_features(tmp_path / "features", "cifar100", 200, 100)
    argv = PUBLISHED[2].split() + ["--out-size", "50", "--data-root", str(tmp_path), "--dry-run",
                                   "--device", "cpu", "--out-dir", str(tmp_path / "run")]
    assert cifar_main.main(argv) == 2
    assert "--out-size 100" in capsys.readouterr().err


def test_features_folder_from_environment(tmp_path, monkeypatch) -> None:
    write_fake_features(tmp_path / "elsewhere", "cifar10", 20, 10)
    monkeypatch.setenv(FEATURES_DIR_ENV, str(tmp_path / "elsewhere"))
    tasks = build_tasks(["animals"], tmp_path / "no-data", torch.device("cpu"), 0)
    assert len(tasks) == 1 and len(tasks[0].train_x) == 10


@pytest.mark.slow
def test_missing_features_tell_the_generate_command(tmp_path) -> None:
    """Through the real script: exit 2, no traceback, the exact command to run."""
    proc = run_script("cifar_features/main.py", *PUBLISHED[0].split(), "--data-root", tmp_path,
                      "--dry-run", "--device", "cpu", cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert str(tmp_path / "features" / "cifar10_features.pt") in proc.stderr
    assert (f"python cifar_features/generate_features.py --dataset cifar10 --data-root {tmp_path}"
            in proc.stderr)


def test_wrong_features_file_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "features").mkdir()
    torch.save({"train_x": torch.zeros(4, 100)}, tmp_path / "features" / "cifar10_features.pt")
    with pytest.raises(DataError, match="must hold tensors"):
        build_tasks(["animals"], tmp_path, torch.device("cpu"), 0)
    write_fake_features(tmp_path / "features", "cifar100", 10, 10)
    (tmp_path / "features" / "cifar100_features.pt").rename(tmp_path / "features" / "cifar10_features.pt")
    with pytest.raises(DataError, match="holds cifar100 features"):
        build_tasks(["animals"], tmp_path, torch.device("cpu"), 0)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.__setitem__("train_x", d["train_x"].long()),
     "train_x is a torch.int64 tensor, not floating-point"),
    (lambda d: d.__setitem__("test_y", d["test_y"].float()),
     "test_y is a torch.float32 tensor, not integer"),
    (lambda d: d.__setitem__("train_y", d["train_y"] > 0), "train_y is a torch.bool tensor"),
    (lambda d: d.__setitem__("info", "train"), "its 'info' is a str, not a dict"),
    (lambda d: d.update(train_x=d["train_x"][:0], train_y=d["train_y"][:0]),
     "the train set is empty"),
    (lambda d: d.update(train_y=torch.zeros_like(d["train_y"])),
     "task animals has no training features"),
])
def test_features_of_wrong_types_or_empty_sets_are_refused_in_one_line(tmp_path, capsys, change,
                                                                      message) -> None:
    """Issue 21, case 8: through main(): exit 2, one line naming the file, no run folder."""
    data = write_fake_features(tmp_path / "features", "cifar10", 40, 20)
    change(data)
    torch.save(data, tmp_path / "features" / "cifar10_features.pt")
    argv = ("--net bnn --norm bn --in-size 512 --hidden-layers 16 --out-size 10 --epochs-per-task "
            "1 --task-sequence animals --device cpu").split() + [
        "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "run")]
    assert cifar_main.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "cifar10_features.pt" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", PUBLISHED)
def test_published_commands_accepted_dry_run(command, tmp_path, capsys) -> None:
    write_fake_features(tmp_path / "features", "cifar10", 40, 20)
    write_fake_features(tmp_path / "features", "cifar100", 200, 100)
    argv = command.split() + ["--data-root", str(tmp_path), "--dry-run", "--device", "cpu",
                              "--out-dir", str(tmp_path / "run")]
    assert cifar_main.main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "dry run" in out
    assert not (tmp_path / "run").exists()


def _read_metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / records.METRICS_FILE, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_generate_then_train_end_to_end(synthetic, tmp_path, monkeypatch) -> None:
    """Features generated from the synthetic CIFAR-10, then vehicles -> animals, 1 epoch each."""
    monkeypatch.setenv(FEATURES_DIR_ENV, str(synthetic["out"]))
    seen = {}
    original = cifar_main.run_sequence

    def spy(model, tasks, settings, *args, **kwargs):
        seen["batch"], seen["tasks"] = settings.loop.batch_size, [t.name for t in tasks]
        return original(model, tasks, settings, *args, **kwargs)

    monkeypatch.setattr(cifar_main, "run_sequence", spy)
    argv = ("--net bnn --norm bn --decay 1e-8 --in-size 512 --hidden-layers 16 --out-size 10 "
            "--lr 0.005 --meta 1.8 --epochs-per-task 1 --task-sequence vehicles animals").split()
    run_dir = tmp_path / "run"
    assert cifar_main.main(argv + ["--data-root", str(synthetic["root"]), "--out-dir",
                                   str(run_dir), "--device", "cpu", "--no-progress",
                                   "--impl", "reference"]) == 0
    assert seen == {"batch": 100, "tasks": ["vehicles", "animals"]}
    rows = _read_metrics(run_dir)
    assert len(rows) == 2
    assert records.matches_schema(tuple(rows[0]), records.continual_columns(2))
    assert [(r["task_order"], r["tsk"], r["epoch"]) for r in rows] == [
        ("1", "vehicles", "1"), ("2", "animals", "1")]
    assert rows[0]["arch"] == "16" and rows[0]["meta"] == "{'l1': 1.8, 'l2': 1.8}"
    for r in rows:
        for k in ("acc_tr", "acc_test_tsk_1", "acc_test_tsk_2"):
            assert 0.0 <= float(r[k]) <= 100.0
    assert (run_dir / records.CONFIG_FILE).is_file()


@pytest.mark.slow
def test_generate_then_train_cifar100_domain(synthetic, tmp_path, monkeypatch) -> None:
    """CIFAR-100 features made through the command line, then cifar100-2 with batch 20."""
    out = tmp_path / "features"
    assert generate_features.main(["--dataset", "cifar100", "--data-root", str(synthetic["root"]),
                                   "--weights", str(synthetic["weights"]), "--out", str(out),
                                   "--train-passes", "1", "--device", "cpu", "--no-progress"]) == 0
    monkeypatch.setenv(FEATURES_DIR_ENV, str(out))
    seen = {}
    original = cifar_main.run_sequence

    def spy(model, tasks, settings, *args, **kwargs):
        seen["batch"], seen["n"] = settings.loop.batch_size, len(tasks)
        return original(model, tasks, settings, *args, **kwargs)

    monkeypatch.setattr(cifar_main, "run_sequence", spy)
    argv = ("--net bnn --norm in --scenario domain --in-size 512 --hidden-layers 8 8 --out-size 100 "
            "--lr 0.005 --meta 1.3 --epochs-per-task 1 --task-sequence cifar100-2").split()
    run_dir = tmp_path / "run"
    assert cifar_main.main(argv + ["--data-root", str(synthetic["root"]), "--out-dir",
                                   str(run_dir), "--device", "cpu", "--no-progress",
                                   "--impl", "reference"]) == 0
    assert seen == {"batch": 20, "n": 2}
    rows = _read_metrics(run_dir)
    assert len(rows) == 2 and records.matches_schema(tuple(rows[0]), records.continual_columns(2))
    assert rows[0]["scenario"] == "domain"
    assert [(r["task_order"], r["tsk"]) for r in rows] == [("1", "cifar100-1"), ("2", "cifar100-2")]


def test_feature_flags_are_recorded_in_the_config() -> None:
    from cifar_features.main import build_parser, config_from_args

    args = build_parser().parse_args(
        ["--in-size", "512", "--feature-scale", "std", "--features-dir", "/tmp/f"])
    config = config_from_args(args)
    assert (config.features_dir, config.feature_scale, config.features_resnet_mode) == (
        "/tmp/f", "std", "train")
    assert config.experiment == "cifar_features"
    default = config_from_args(build_parser().parse_args(["--in-size", "512"]))
    assert (default.features_dir, default.feature_scale, default.features_resnet_mode) == (
        "", "variance", "train")
    args = build_parser().parse_args(["--in-size", "512", "--features-resnet-mode", "eval"])
    assert config_from_args(args).features_resnet_mode == "eval"
