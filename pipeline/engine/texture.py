"""Texture synthesis (Gatys, Ecker and Bethge 2015): pictures made of a painting's Gram
matrices alone, from noise, coarse to fine. No photo: a run needs only a size."""

from __future__ import annotations

from typing import Sequence

import torch

from pipeline.config import EngineConfig
from pipeline.engine.features import Encoder, FeaturePass
from pipeline.engine.modes import texture
from pipeline.engine.stylize import Painter, Result
from pipeline.engine.targets import StyleTargets
from pipeline.events import EventSink


class Texturer:
    """The encoder and the paintings; the blended Gram targets are computed once per size.

    ``tileable``: the pictures wrap around: the encoder's wrapped copy (``encoder.wrapped()``,
    circular padding) reads both the pictures and the paintings. Zero padding gives a
    painting's Grams edge features that a picture without edges cannot have: at 64 px
    (starry_night, 60 iterations) a tileable texture matched to the zero-padded Grams ended
    at a style distance of 1.69, its 2x2 tiling at 3.16 (``nstpipe metrics``' distance, zero
    padded), against 1.03 and 1.50 with the paintings seen through the wrapped copy.
    """

    def __init__(
        self,
        encoder: Encoder,
        styles: Sequence[torch.Tensor],
        config: EngineConfig,
        device: torch.device | str = "cpu",
        tileable: bool = False,
    ) -> None:
        self.config = config
        self.device = torch.device(device)
        self.mode = texture(config, tileable)
        self.features = FeaturePass(wrapped(encoder) if tileable else encoder, self.device, config)
        self.targets = StyleTargets(styles, self.features, config, self.mode.min_side, self.device)

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what ``auto`` chose on this device."""
        return self.features.precision

    def run(self, size: tuple[int, int], count: int = 1, callback: EventSink | None = None) -> Result:
        """``count`` textures of ``size`` (height, width), (count, 3, H, W) RGB in [0, 1]; picture
        k starts from the noise of seed + k, so it is the same made alone with that seed."""
        painter = Painter(self.features, self.mode, self.config, self.device, self.targets)
        return painter.run(size=size, count=count, callback=callback)


def wrapped(encoder: Encoder) -> Encoder:
    """The encoder's copy that pads circularly (see :meth:`pipeline.engine.vgg.VGGFeatures.wrapped`)."""
    make = getattr(encoder, "wrapped", None)
    if make is None:
        raise ValueError("a tileable texture needs an encoder with a wrapped() copy that pads circularly")
    copy: Encoder = make()
    return copy
