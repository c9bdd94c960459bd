"""The dataset registry (metaplastic.data.registry): every name, file, checksum, source, preparer
and loader is read from it, and a dataset added as one entry (here, in this file alone) is
prepared, checked, explained and loaded by the same code as the paper's datasets."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from metaplastic import data_prep
from metaplastic.data import datasets, registry, usps
from metaplastic.data.registry import DATASETS, DataFile, Dataset
from metaplastic.data.sources import torchvision_download
from metaplastic.errors import ConfigError, DataError


def test_every_loader_and_preparer_resolves() -> None:
    for dataset in DATASETS.values():
        assert callable(registry._resolve(dataset.loader)), dataset.name
        if dataset.preparer:
            assert callable(dataset.prepare_offline()), dataset.name
        assert dataset.folder and all(p.startswith(dataset.folder + "/") for p in dataset.paths)
    assert [d for d in DATASETS.values() if d.preparer is None] == [DATASETS["CIFAR10"], DATASETS["CIFAR100"]]


def test_names_and_aliases_come_from_the_registry() -> None:
    spellings = [s for d in DATASETS.values() for s in (d.name.lower(), *d.aliases)]
    assert len(spellings) == len(set(spellings))           # no spelling names two datasets
    assert registry.canonical_dataset_name(" fmnist ") == "FashionMNIST"
    assert registry.canonical_dataset_name("CIFAR-10") == "CIFAR10"
    assert datasets.canonical_image_dataset("FMNIST") == "FashionMNIST"
    with pytest.raises(ConfigError, match="unknown image dataset 'USPS'"):
        datasets.canonical_image_dataset("USPS")           # a dataset, but not one of 28x28 IDX images
    assert datasets.IMAGE_DATASETS == ("MNIST", "FashionMNIST")
    assert registry.default_datasets() == ("MNIST", "FashionMNIST", "USPS")


def test_readers_and_downloader_take_their_files_from_the_registry() -> None:
    assert (usps.USPS_H5, *usps.USPS_BZ2.values()) == (*DATASETS["USPS"].paths, *DATASETS["USPS"].other_form_paths)
    assert torchvision_download.DOWNLOADABLE["USPS"] == DATASETS["USPS"].other_form_paths
    assert torchvision_download.DOWNLOADABLE["MNIST"] == DATASETS["MNIST"].paths
    from metaplastic.data import cifar

    assert cifar._layout("cifar100") == ("cifar-100-python", ("train", "test", "meta"))


# --------------------------------------------------------------------------------------------
# A dataset added in this file alone
# --------------------------------------------------------------------------------------------

TOY_VALUES = bytes(range(16))
CALLS: list[str] = []


def prepare_toy(root: Path, log=print) -> list[Path]:
    """The toy's offline preparer: writes its one file."""
    CALLS.append("prepare")
    path = root / "Toy" / "values.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(TOY_VALUES)
    log("  Toy/values.bin: written")
    return [path]


def load_toy(root, device="cpu") -> torch.Tensor:
    """The toy's loader: its file, checked against the registry, as a tensor."""
    datasets.verify_files(root, DATASETS["Toy"].paths)
    return torch.frombuffer(bytearray((Path(root) / "Toy/values.bin").read_bytes()), dtype=torch.uint8).to(device)


@pytest.fixture
def toy_registered(monkeypatch):
    toy = Dataset("Toy", aliases=("toy-set",), loader=f"{__name__}:load_toy", preparer=f"{__name__}:prepare_toy",
                  files=(DataFile("Toy/values.bin", "sixteen bytes", 16, hashlib.sha256(TOY_VALUES).hexdigest()),),
                  offline_ways=(("prepare it offline (from this test)", "--datasets Toy"),))
    monkeypatch.setitem(DATASETS, "Toy", toy)
    monkeypatch.setitem(registry.SHA256, "Toy/values.bin", toy.files[0].sha256)  # done at import for a real entry
    CALLS.clear()
    return toy


def test_an_added_dataset_is_prepared_checked_explained_and_loaded(toy_registered, tmp_path) -> None:
    written = data_prep.prepare(tmp_path, ["TOY-SET"], log=lambda line: None)
    assert written == {"Toy": [tmp_path / "Toy/values.bin"]} and CALLS == ["prepare"]
    assert data_prep.prepare(tmp_path, ["toy"], log=lambda line: None) == {"Toy": [tmp_path / "Toy/values.bin"]}
    assert torch.equal(toy_registered.load(tmp_path), torch.arange(16, dtype=torch.uint8))
    (tmp_path / "Toy/values.bin").write_bytes(b"\0" * 16)
    with pytest.raises(DataError) as error:
        toy_registered.load(tmp_path)
    message = str(error.value)
    assert "corrupt (SHA-256 mismatch): Toy/values.bin" in message
    assert "prepare it offline (from this test) with:" in message
    assert f"--data-root {tmp_path} --datasets Toy" in message and "--datasets Toy --download" in message


def test_unknown_names_list_the_registry(toy_registered) -> None:
    with pytest.raises(ConfigError, match="choose from MNIST, FashionMNIST, USPS, CIFAR10, CIFAR100, Toy"):
        registry.canonical_dataset_name("nope")
