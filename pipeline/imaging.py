"""Reading pictures into the one tensor layout the engine uses: (1, 3, H, W) RGB in [0, 1].

Photos and video frames share :func:`prepare`; files come through :func:`read_image`, which
applies EXIF orientation and turns grey, RGBA, palette, CMYK and 16-bit inputs into RGB.
Every failure becomes an :class:`InputError` naming the file and the reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.color import swap_red_blue
from pipeline.errors import OS_INPUT_ERRORS, InputError, os_reason
from pipeline.resize import resize_long_side

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


def prepare_bgr(frame: np.ndarray, long_side: int | None = None) -> torch.Tensor:
    """An OpenCV frame (HxWx3 BGR) through the same path as a photo."""
    return prepare(swap_red_blue(frame, channel_axis=2), long_side)


def to_rgb8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> HxWx3 uint8 RGB array."""
    if image.dim() == 4:
        image = image[0]
    array = image.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(1, 2, 0).cpu().numpy()


def read_image(path: Path, long_side: int | None = None) -> torch.Tensor:
    """Decode ``path`` to (1, 3, H, W) RGB in [0, 1], resized so its long side is ``long_side``."""
    return prepare(read_rgb(path, long_side), long_side)


def read_rgb(path: Path, draft_side: int | None = None) -> np.ndarray:
    """HxWx3 RGB array (uint8, or float32 for 16-bit and float inputs), EXIF-upright."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if draft_side and img.format == "JPEG":
                    # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a huge photo never
                    # reaches memory at full resolution when only a small output is wanted.
                    img.draft("RGB", (draft_side, draft_side))
                img = ImageOps.exif_transpose(img)
                return _to_rgb_array(img)
    except OS_INPUT_ERRORS as exc:
        raise InputError(path, os_reason(exc) or str(exc)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(path, f"refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        if path.exists() and path.stat().st_size == 0:
            raise InputError(path, "empty file") from None
        raise InputError(path, "not an image file PIL can read") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(path, f"corrupt or truncated image ({exc})") from None


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # High bit depth grey: keep the precision instead of PIL's clipping convert("RGB").
        grey = np.asarray(img, dtype=np.float32) / (65535.0 if img.mode.startswith("I;16") else max(1.0, float(np.asarray(img).max())))
        return np.repeat(grey[..., None], 3, axis=2).clip(0, 1)
    if img.mode == "F":
        grey = np.asarray(img, dtype=np.float32)
        lo, hi = float(grey.min()), float(grey.max())
        grey = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
        return np.repeat(grey[..., None], 3, axis=2)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent areas have no defined colour; composite them on white as viewers do.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("RGB"))
