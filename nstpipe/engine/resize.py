"""Resizing of (N, C, H, W) float tensors; shared by images, video frames and the pyramid."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_long_side(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the longer side equal to ``long_side``, aspect kept, each side >= 1."""
    scale = long_side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize (antialias matters when shrinking photos many times over)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def resize_long_side(image: torch.Tensor, long_side: int) -> torch.Tensor:
    return resize(image, fit_long_side(image.shape[-2], image.shape[-1], long_side))
