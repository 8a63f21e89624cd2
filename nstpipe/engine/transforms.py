"""Small random transformations of a picture before the encoder sees it (as in Lucid's
feature visualization): a picture that keeps a channel high under all of them has no
reason to be made of pixel-exact high-frequency patterns that only one alignment excites."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


class Jitter:
    """Each call rolls the pictures by up to ``pixels`` in x and y and, where ``scale`` or
    ``degrees`` is above 0, scales them by a factor in [1 - scale, 1 + scale] and turns them
    by an angle in [-degrees, degrees]. One draw per call, shared by the batch, from a
    generator of its own seeded with ``seed``: the same run draws the same sequence, and a
    picture of a batch sees what it would see alone. The caller's tensor is not modified.
    """

    def __init__(self, pixels: int = 0, scale: float = 0.0, degrees: float = 0.0, seed: int = 0) -> None:
        self.pixels = pixels
        self.scale = scale
        self.degrees = degrees
        self.generator = torch.Generator().manual_seed(seed)

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=self.generator))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.pixels > 0:
            dy, dx = (int(v) for v in torch.randint(-self.pixels, self.pixels + 1, (2,), generator=self.generator))
            x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        if self.scale > 0 or self.degrees > 0:
            x = scaled_and_turned(x, self._uniform(1 - self.scale, 1 + self.scale), self._uniform(-self.degrees, self.degrees))
        return x


def scaled_and_turned(x: torch.Tensor, scale: float, degrees: float) -> torch.Tensor:
    """``x`` scaled by ``scale`` and turned by ``degrees`` about its centre, at its own size."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(x.shape[0], 2, 3), list(x.shape), align_corners=False)
    # Reflection: a turned corner shows the picture's own pixels, not a black wedge that
    # the channel would learn to work around.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
