"""Batch-wise image augmentation on the run's device (stream CIFAR-10).

The published pipeline, per image: horizontal flip with probability 0.5, then ONE of (chosen
with probability 1/2 each)
  - a rotation by an angle drawn uniformly in [-10, 10] degrees about the image centre
    (nearest-neighbour sampling, zero fill: torchvision's ``RandomRotation`` defaults), or
  - a random 32x32 crop of the image padded by 4 pixels in edge (replicate) mode
    (offsets drawn uniformly in 0..8 on each axis, like ``RandomCrop(32, 4, padding_mode='edge')``).

Here the whole batch is processed at once: random draws for every sample come from one
``torch.Generator`` on the batch's device (a fixed number of draws per call, so a run is
reproducible from the generator's state), rotations use ``affine_grid``/``grid_sample`` and crops
``F.pad(mode='replicate')`` plus a gather. Inputs are float images N x C x H x W (pixels in
[0, 1] before any normalization, so the zero fill of a rotation is a black pixel, as with
PIL images); outputs have the same shape, dtype and value range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentSettings:
    """What the augmentation does; the defaults are the published ones."""

    enabled: bool = True
    flip_p: float = 0.5
    choice_p: float = 0.5          # probability of the rotation (else the crop)
    max_degrees: float = 10.0
    crop_padding: int = 4
    rotation_mode: str = "nearest"  # torchvision's RandomRotation default; 'bilinear' possible
    rotation_fill: float = 0.0


def device_generator(device: torch.device | str, seed: int) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def hflip(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images of ``x`` where ``mask`` is true mirrored left-right."""
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)


def rotate(x: torch.Tensor, degrees: torch.Tensor, mode: str = "nearest",
           fill: float = 0.0) -> torch.Tensor:
    """Each image rotated counter-clockwise by its angle (degrees) about its centre.

    Output pixel centres are mapped back into the input (align_corners=False, the pixel-centre
    convention); samples falling outside the image take ``fill``.
    """
    n, _, h, w = x.shape
    rad = degrees.to(torch.float32) * (math.pi / 180.0)
    cos, sin = torch.cos(rad), torch.sin(rad)
    # In normalized coordinates (x right, y down), the output point p samples the input at
    # R(-angle) p; on non-square images the aspect ratio is accounted for.
    aspect = w / h
    theta = torch.zeros(n, 2, 3, dtype=torch.float32, device=x.device)
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin / aspect
    theta[:, 1, 0] = sin * aspect
    theta[:, 1, 1] = cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    if fill != 0.0:
        ones = torch.ones_like(work[:, :1])
        inside = F.grid_sample(ones, grid.to(work.dtype), mode=mode, padding_mode="zeros",
                               align_corners=False)
        out = F.grid_sample(work, grid.to(work.dtype), mode=mode, padding_mode="zeros",
                            align_corners=False)
        out = out + (1.0 - inside) * fill
    else:
        out = F.grid_sample(work, grid.to(work.dtype), mode=mode, padding_mode="zeros",
                            align_corners=False)
    return out.to(x.dtype)


def pad_crop(x: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Crops of the replicate-padded images: image i starts at ``offsets[i] = (row, col)`` of
    its padded version (0 .. 2 * padding), output size = input size."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding), mode="replicate")
    rows = offsets[:, 0:1] + torch.arange(h, device=x.device)       # n x h
    cols = offsets[:, 1:2] + torch.arange(w, device=x.device)       # n x w
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


class BatchAugment:
    """Callable batch augmentation drawing from its own generator (state saved for --resume)."""

    def __init__(self, settings: AugmentSettings | None = None,
                 generator: torch.Generator | None = None):
        self.settings = settings or AugmentSettings()
        self.generator = generator

    def draw(self, n: int, device: torch.device) -> dict[str, torch.Tensor]:
        """Every random quantity for a batch of ``n`` images (always the same draws)."""
        s, g = self.settings, self.generator
        return {
            "flip": torch.rand(n, generator=g, device=device) < s.flip_p,
            "rotate": torch.rand(n, generator=g, device=device) < s.choice_p,
            "degrees": (torch.rand(n, generator=g, device=device) * 2.0 - 1.0) * s.max_degrees,
            "offsets": torch.randint(0, 2 * s.crop_padding + 1, (n, 2), generator=g,
                                     device=device),
        }

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        s = self.settings
        if not s.enabled:
            return x
        d = self.draw(x.shape[0], x.device)
        x = hflip(x, d["flip"])
        rotated = rotate(x, d["degrees"], s.rotation_mode, s.rotation_fill)
        cropped = pad_crop(x, d["offsets"], s.crop_padding)
        return torch.where(d["rotate"].view(-1, 1, 1, 1), rotated, cropped)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state() if self.generator is not None else None}

    def load_state_dict(self, state: dict) -> None:
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"])
