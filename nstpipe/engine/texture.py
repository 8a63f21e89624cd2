"""Texture synthesis (Gatys, Ecker and Bethge 2015): pictures made of a painting's Gram
matrices alone, from noise, coarse to fine. No photo: a run needs only a size."""

from __future__ import annotations

from typing import Sequence

import torch

from nstpipe.config import EngineConfig
from nstpipe.engine.features import Encoder, FeaturePass
from nstpipe.engine.modes import texture
from nstpipe.engine.stylize import Painter, Result
from nstpipe.engine.targets import StyleTargets
from nstpipe.events import EventSink


class Texturer:
    """The encoder and the paintings; the blended Gram targets are computed once per size.

    ``tileable``: the pictures wrap around: the encoder's wrapped copy (``encoder.wrapped()``,
    circular padding) reads them, and its replicated copy (``encoder.replicated()``, the edge
    repeated) reads the paintings. A painting does not wrap: seen as a torus, the jump from
    each edge to the opposite one enters its Grams as straight seams, which the texture then
    paints in straight lines across itself. Zero padding
    gives the paintings' Grams black-border features that a picture without edges cannot
    have. Replicated, the edges continue as the painting ends.
    """

    def __init__(self, encoder: Encoder, styles: Sequence[torch.Tensor], config: EngineConfig,
                 device: torch.device | str = "cpu", tileable: bool = False) -> None:
        self.config = config
        self.device = torch.device(device)
        self.mode = texture(config, tileable)
        self.features = FeaturePass(padded(encoder, "wrapped") if tileable else encoder, self.device, config)
        readers = FeaturePass(padded(encoder, "replicated"), self.device, config) if tileable else self.features
        self.targets = StyleTargets(styles, readers, config, self.mode.min_side, self.device)

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what ``auto`` chose on this device."""
        return self.features.precision

    def run(self, size: tuple[int, int], count: int = 1, callback: EventSink | None = None) -> Result:
        """``count`` textures of ``size`` (height, width), (count, 3, H, W) RGB in [0, 1]; picture
        k starts from the noise of seed + k, so it is the same made alone with that seed."""
        painter = Painter(self.features, self.mode, self.config, self.device, self.targets)
        return painter.run(size=size, count=count, callback=callback)


def padded(encoder: Encoder, kind: str) -> Encoder:
    """The encoder's copy that pads circularly (``wrapped``) or by repeating the edge (``replicated``);
    see :meth:`nstpipe.engine.vgg.VGGFeatures.wrapped`."""
    make = getattr(encoder, kind, None)
    if make is None:
        raise ValueError(f"a tileable texture needs an encoder with a {kind}() copy (circular and edge padding)")
    copy: Encoder = make()
    return copy
