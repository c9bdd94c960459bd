"""The image transforms of the feature generation, batch-wise on tensors (as published):
resize to 220 (bit-for-bit PIL's bilinear filter, as a pair of matrix products with PIL's own
fixed-point coefficients), random crop 200 + horizontal flip (training passes) or centre crop 200
(test set); crop offsets and flips drawn for a whole pass from a seeded CPU generator."""
from __future__ import annotations

import functools

import numpy as np
import torch

RESIZE = 220
CROP = 200

PIL_PRECISION_BITS = 22  # Pillow's fixed-point precision for 8-bit resampling


# --------------------------------------------------------------------------------------------
# Transforms
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def pil_bilinear_coefficients(in_size: int, out_size: int) -> torch.Tensor:
    """(out_size x in_size) matrix of PIL's fixed-point bilinear coefficients (integers, float64).

    Pillow's resampling: for output pixel xx, centre = (xx + 0.5) * scale with scale =
    in/out; support = max(scale, 1); taps x in [int(centre - support + 0.5),
    int(centre + support + 0.5)) clipped to the image, weight tent((x + 0.5 - centre) /
    max(scale, 1)), normalized to sum 1, then rounded to integers in units of 2^-22.
    """
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    k = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        taps = np.arange(xmin, xmax, dtype=np.float64)
        w = np.clip(1.0 - np.abs((taps + 0.5 - center) / filterscale), 0.0, None)
        total = w.sum()
        if total != 0.0:
            w = w / total
        k[xx, xmin:xmax] = np.trunc(w * (1 << PIL_PRECISION_BITS) + np.where(w < 0, -0.5, 0.5))
    return torch.from_numpy(k)


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision's Resize(size) output (h, w): the shorter edge becomes ``size``."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def resize_like_pil(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images (B x C x H x W) resized like torchvision's ``Resize(size)`` on PIL images.

    PIL resamples horizontally, rounds to 8 bits, then vertically, rounding again, with
    coefficients in 22-bit fixed point; doing the same with float64 matrix products (all
    values are integers below 2^53, so exact) gives PIL's pixels exactly. Returns float32
    holding integer values in 0..255.
    """
    height, width = images.shape[-2:]
    out_h, out_w = resized_size(height, width, size)
    device = images.device
    half, one = float(1 << (PIL_PRECISION_BITS - 1)), float(1 << PIL_PRECISION_BITS)
    x = images.to(torch.float64)
    if out_w != width:
        kw = pil_bilinear_coefficients(width, out_w).to(device)
        x = torch.floor((x @ kw.T + half) / one).clamp_(0, 255)
    if out_h != height:
        kh = pil_bilinear_coefficients(height, out_h).to(device)
        x = torch.floor((kh @ x + half) / one).clamp_(0, 255)
    return x.to(torch.float32)


def crop_flip(images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor,
              size: int) -> torch.Tensor:
    """Per-sample crops ``images[b, :, top:top+size, left:left+size]``, mirrored where ``flip``.

    One gather for the whole batch (no Python loop over samples).
    """
    b, c = images.shape[:2]
    device = images.device
    steps = torch.arange(size, device=device)
    rows = top.to(device)[:, None] + steps                                    # B x size
    cols = left.to(device)[:, None] + torch.where(flip.to(device)[:, None], size - 1 - steps, steps)
    return images[torch.arange(b, device=device)[:, None, None, None],
                  torch.arange(c, device=device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def train_augmentation(n: int, height: int, width: int, size: int,
                       generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass of RandomCrop(size) + RandomHorizontalFlip(0.5): top, left, flip for n images."""
    top = torch.randint(0, height - size + 1, (n,), generator=generator)
    left = torch.randint(0, width - size + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    return top, left, flip


def centre_crop(n: int, height: int, width: int, size: int):
    """CenterCrop(size) offsets (torchvision's: round((H - size) / 2)), no flip."""
    top = torch.full((n,), int(round((height - size) / 2.0)), dtype=torch.long)
    left = torch.full((n,), int(round((width - size) / 2.0)), dtype=torch.long)
    return top, left, torch.zeros(n, dtype=torch.bool)


def transform_batch(images: torch.Tensor, top, left, flip, resize: int = RESIZE,
                    crop: int = CROP) -> torch.Tensor:
    """uint8 images -> resized, cropped, flipped float32 images in [0, 1]."""
    return crop_flip(resize_like_pil(images, resize), top, left, flip, crop).div_(255.0)
