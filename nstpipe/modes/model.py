"""What every painter loads: VGG19 with the settings' weights, and the pictures it reads."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from nstpipe.config import Settings

if TYPE_CHECKING:
    import torch

    from nstpipe.engine.vgg import VGGFeatures


def encoder(settings: Settings, layers: Sequence[str], pooling: str | None = None, device: torch.device | None = None) -> VGGFeatures:
    """VGG19 with the weights of ``settings``, answering ``layers``, on ``device`` (the settings' by default)."""
    from nstpipe.engine.device import resolve_device
    from nstpipe.engine.vgg import VGGFeatures, load_weights

    where = device if device is not None else resolve_device(settings.device)
    return VGGFeatures(load_weights(settings.weights), layers, pooling or settings.engine.pooling).to(where)


def pictures(settings: Settings, paths: Sequence[Path]) -> list[torch.Tensor]:
    """The paintings (or a guide) at full size: the engine resizes them for each output size."""
    from nstpipe.media.imaging import read_image

    return [read_image(path, max_pixels=settings.max_pixels) for path in paths]
