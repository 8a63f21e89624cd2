"""What every painter loads: VGG19 with the settings' weights, and the pictures it reads."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from nstpipe.config import DEFAULT_MAX_PIXELS, EngineConfig, Settings, parse_memory

if TYPE_CHECKING:
    import torch

    from nstpipe.engine.vgg import VGGFeatures


def encoder(settings: Settings, layers: Sequence[str], pooling: str | None = None, device: torch.device | None = None) -> VGGFeatures:
    """VGG19 with the weights of ``settings``, answering ``layers``, on ``device`` (the settings' by default)."""
    from nstpipe.engine.device import resolve_device
    from nstpipe.engine.vgg import VGGFeatures
    from nstpipe.media.weights import load_weights

    where = device if device is not None else resolve_device(settings.device)
    return VGGFeatures(load_weights(settings.weights), layers, pooling or settings.engine.pooling).to(where)


def pictures(settings: Settings, paths: Sequence[Path]) -> list[torch.Tensor]:
    """The paintings (or a guide) at full size: the engine resizes them for each output size."""
    return [read_image(path, max_pixels=settings.max_pixels) for path in paths]


def read_image(path: Path, long_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode ``path`` to (1, 3, H, W) RGB in [0, 1], resized so its long side is ``long_side``;
    an :class:`~nstpipe.errors.InputError` names the file and the reason it cannot be read.

    The media layer decodes the file to an array and the engine turns arrays into tensors (as
    it does for video frames); they meet here, above both, so that neither imports the other.
    """
    from nstpipe.engine.tensors import prepare
    from nstpipe.media.imaging import read_rgb

    return prepare(read_rgb(path, long_side, max_pixels), long_side)


def read_photo(path: Path, long_side: int, max_pixels: int, own_size: bool = False) -> tuple[torch.Tensor, str]:
    """Decode ``path`` as a photo to paint, at ``long_side``, or with ``own_size`` at its own
    size with its long side brought down to ``long_side``; with :func:`photo_pixels`'s hash
    of what the reader gave, for the output's record."""
    from nstpipe.engine.tensors import prepare
    from nstpipe.media.imaging import pixels_hash, read_rgb

    rgb = read_rgb(path, long_side, max_pixels)
    return prepare(rgb, min(long_side, max(rgb.shape[:2])) if own_size else long_side), pixels_hash(rgb)


def photo_pixels(path: Path, long_side: int, max_pixels: int) -> str:
    """The hash of ``path`` decoded as :func:`read_photo` decodes it, without the tensor: the
    reader's array (what a reader revision may change), not the engine's resize of it."""
    from nstpipe.media.imaging import pixels_hash, read_rgb

    return pixels_hash(read_rgb(path, long_side, max_pixels))


def picture_pixels(path: Path, max_pixels: int) -> str:
    """The hash of ``path`` decoded as :func:`pictures` decodes a painting, a guide or an init image."""
    from nstpipe.media.imaging import pixels_hash, read_rgb

    return pixels_hash(read_rgb(path, max_pixels=max_pixels))


def engine_config(settings: Settings, device: torch.device) -> EngineConfig:
    """The engine's settings with ``max_memory = auto`` made a number off a CUDA GPU: a share of
    the RAM available now, which only this layer (above media) may read."""
    engine = settings.engine
    if parse_memory(engine.max_memory) is not None or device.type == "cuda":
        return engine
    from nstpipe.engine.memory import AUTO_SHARE
    from nstpipe.media.system import available_ram

    return dataclasses.replace(engine, max_memory=str(int(available_ram() * AUTO_SHARE)))
