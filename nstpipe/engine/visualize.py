"""Feature visualization: pictures that drive up the mean activation of one channel of a
VGG19 layer, from noise, coarse to fine, seen through a random jitter at each step."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from nstpipe.config import EngineConfig
from nstpipe.engine.features import Encoder, FeaturePass
from nstpipe.engine.modes import Mode, visualize
from nstpipe.engine.stylize import Painter, Result
from nstpipe.engine.transforms import Jitter
from nstpipe.events import EventSink


class Visualizer:
    """The encoder, the layer and its channels; picture i of a run shows channel i.

    The CUDA-graph path replays the pass recorded at a level's start, and so the jitter
    drawn then: a jittered run takes the eager pass, which draws anew at each step.
    """

    def __init__(
        self,
        encoder: Encoder,
        layer: str,
        channels: Sequence[int],
        config: EngineConfig,
        device: torch.device | str = "cpu",
        jitter: tuple[int, float, float] = (0, 0.0, 0.0),
    ) -> None:
        self.layer = layer
        self.channels = tuple(channels)
        self.jitter = jitter  # pixels, scale, degrees
        self.config = replace(config, cuda_graphs=False) if any(jitter) else config
        self.device = torch.device(device)
        self.features = FeaturePass(encoder, self.device, self.config)

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what ``auto`` chose on this device."""
        return self.features.precision

    def mode(self) -> Mode:
        """A fresh mode, its jitter generator seeded anew: every run draws the same sequence."""
        pixels, scale, degrees = self.jitter
        jitter = Jitter(pixels, scale, degrees, self.config.seed) if any(self.jitter) else None
        return visualize(self.config, self.layer, self.channels, jitter)

    def run(self, size: tuple[int, int], count: int = 0, callback: EventSink | None = None) -> Result:
        """One picture per channel, (len(channels), 3, H, W) RGB in [0, 1], of ``size`` (height,
        width); ``count``, where given, must be that number (the canvas painters' call)."""
        if count not in (0, len(self.channels)):
            raise ValueError(f"{len(self.channels)} channels make {len(self.channels)} pictures, not {count}")
        painter = Painter(self.features, self.mode(), self.config, self.device)
        return painter.run(size=size, count=len(self.channels), callback=callback)
