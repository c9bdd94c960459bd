"""Batch-wise augmentation (metaplastic.data.augment)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from metaplastic.data.augment import (AugmentSettings, BatchAugment, device_generator, hflip, pad_crop,
                                      rotate)


def images(n=16, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_shapes_dtype_range_and_identity_when_disabled():
    x = images()
    aug = BatchAugment(AugmentSettings(), device_generator("cpu", 0))
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(x, y)
    off = BatchAugment(AugmentSettings(enabled=False), device_generator("cpu", 0))
    assert off(x) is x


def test_reproducible_from_generator_and_state():
    x = images()
    a = BatchAugment(generator=device_generator("cpu", 5))
    b = BatchAugment(generator=device_generator("cpu", 5))
    assert torch.equal(a(x), b(x))
    state = a.state_dict()
    first = a(x)
    a.load_state_dict(state)
    assert torch.equal(a(x), first)
    c = BatchAugment(generator=device_generator("cpu", 6))
    assert not torch.equal(c(x), b(x))


def test_flip_and_zero_rotation_and_centre_crop_are_exact():
    x = images(4)
    assert torch.equal(hflip(x, torch.tensor([True, False, True, False])),
                       torch.stack([x[0].flip(-1), x[1], x[2].flip(-1), x[3]]))
    assert torch.equal(rotate(x, torch.zeros(4)), x)
    assert torch.equal(pad_crop(x, torch.full((4, 2), 4), 4), x)
    # flip always, then always a rotation by 0 degrees: exactly the mirror image
    s = AugmentSettings(flip_p=1.0, choice_p=1.0, max_degrees=0.0)
    assert torch.equal(BatchAugment(s, device_generator("cpu", 0))(x), x.flip(-1))


def test_crop_is_a_window_of_the_edge_padded_image():
    x = images(3)
    offsets = torch.tensor([[0, 8], [8, 0], [2, 5]])
    out = pad_crop(x, offsets, 4)
    padded = F.pad(x, (4, 4, 4, 4), mode="replicate")
    for i, (r, c) in enumerate(offsets.tolist()):
        assert torch.equal(out[i], padded[i, :, r:r + 32, c:c + 32])
    # edge mode: the rows above and the columns right of the image repeat its border
    assert torch.equal(out[0][:, 0], out[0][:, 3]) and torch.equal(out[0][:, 3, :28], x[0][:, 0, 4:])
    assert torch.equal(out[0][..., 28], out[0][..., 31])


def test_rotation_matches_torchvision_nearest_zero_fill():
    tvf = pytest.importorskip("torchvision.transforms.functional")
    x = images(2)
    for angle in (-10.0, -3.5, 7.0):
        ours = rotate(x, torch.full((2,), angle))
        ref = tvf.rotate(x, angle, interpolation=tvf.InterpolationMode.NEAREST, fill=0)
        assert torch.equal(ours, ref)


def test_every_draw_in_range_and_both_branches_used():
    aug = BatchAugment(generator=device_generator("cpu", 1))
    d = aug.draw(2000, torch.device("cpu"))
    assert float(d["degrees"].abs().max()) <= 10.0
    assert int(d["offsets"].min()) == 0 and int(d["offsets"].max()) == 8
    assert 0.4 < d["flip"].float().mean() < 0.6 and 0.4 < d["rotate"].float().mean() < 0.6


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    x = images().cuda()
    aug = BatchAugment(generator=device_generator("cuda", 0))
    y = aug(x)
    assert y.device.type == "cuda" and y.shape == x.shape
