"""The one tensor layout the engine uses, (1, 3, H, W) RGB floats in [0, 1], and back to 8-bit RGB.

Photos and video frames come through :func:`prepare` alike.
"""

from __future__ import annotations

import numpy as np
import torch

from nstpipe.engine.resize import resize_long_side


def prepare(rgb: np.ndarray, long_side: int | None = None) -> torch.Tensor:
    """HxWx3 uint8 or float RGB array -> (1, 3, H, W) float tensor, resized to ``long_side``."""
    if rgb.dtype == np.uint8:
        array = rgb.astype(np.float32) / 255.0
    else:
        array = rgb.astype(np.float32)
    # contiguous(): the permuted view is channels-last in memory, and when no resize follows
    # (the input is already ``long_side``) it would reach the optimizer that way; L-BFGS
    # then fails on ``grad.view(-1)``.
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).unsqueeze(0).contiguous()
    return resize_long_side(tensor, long_side) if long_side else tensor


def to_rgb8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> HxWx3 uint8 RGB array."""
    if image.dim() == 4:
        image = image[0]
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(1, 2, 0).cpu().numpy()
