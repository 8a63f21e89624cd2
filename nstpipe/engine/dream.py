"""DeepDream: a photo's pixels climbed along the activations of VGG19 layers, over octaves.

The same facade as :class:`~nstpipe.engine.stylize.Stylizer` (``run`` a batch of photos,
with an ``init`` and a temporal target for a video frame; ``with_config`` for the later
frames), so that images, folders, videos, Ray workers and resume run a dream as they run
style transfer.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Sequence

import torch

from nstpipe.config import EngineConfig
from nstpipe.engine.features import Encoder, FeaturePass
from nstpipe.engine.modes import Mode, dream
from nstpipe.engine.stylize import Painter, Result
from nstpipe.engine.targets import StyleTargets
from nstpipe.engine.terms import TemporalTarget
from nstpipe.engine.transforms import Jitter
from nstpipe.events import EventSink


class Dreamer:
    """The encoder, the layers climbed (or the guide matched), the octaves and the jitter.

    A jittered run takes the eager pass (see :class:`~nstpipe.engine.visualize.Visualizer`).
    """

    def __init__(
        self,
        encoder: Encoder,
        layers: Sequence[str],
        config: EngineConfig,
        device: torch.device | str = "cpu",
        channels: Sequence[int] = (),
        guide: torch.Tensor | None = None,
        octave_scale: float = 1.4,
        jitter: int = 32,
    ) -> None:
        self.encoder = encoder
        self.layers = tuple(layers)
        self.channels = tuple(channels)
        self.octave_scale = octave_scale
        self.jitter = jitter
        self.config = replace(config, cuda_graphs=False) if jitter else config
        self.device = torch.device(device)
        self.guide = None if guide is None else guide.to(self.device, torch.float32)
        self.features = FeaturePass(encoder, self.device, self.config)

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what ``auto`` chose on this device."""
        return self.features.precision

    def with_config(self, config: EngineConfig) -> Dreamer:
        """The same encoder, layers and guide under another budget (a video's later frames)."""
        other = copy.copy(self)
        other.config = replace(config, cuda_graphs=False) if self.jitter else config
        if (config.precision, config.compile) != (self.config.precision, self.config.compile):
            other.features = FeaturePass(self.encoder, self.device, other.config)
        return other

    def mode(self) -> Mode:
        """A fresh mode, its jitter seeded anew: every run draws the same sequence."""
        jitter = Jitter(self.jitter, seed=self.config.seed) if self.jitter else None
        return dream(self.config, self.layers, self.channels, self.guide, jitter, self.octave_scale)

    def run(self, content: torch.Tensor, init: torch.Tensor | None = None, callback: EventSink | None = None,
            temporal: TemporalTarget | None = None) -> Result:
        """Dream on ``content`` (N, 3, H, W) RGB in [0, 1]; the output has its size.

        ``init``: what the octaves start from instead of the photo (a video frame's warped
        predecessor); ``temporal``: the temporal term's target. No input is
        modified.
        """
        painter = Painter(self.features, self.mode(), self.config, self.device, self.guide_targets())
        return painter.run(content, init, callback, temporal)

    def guide_targets(self) -> StyleTargets | None:
        """The guide's statistics at the dream's layers, for the distribution terms that
        ``style_loss`` adds to a guided dream; None without a guide."""
        if self.guide is None:
            return None
        layers = replace(self.config, style_layers=self.layers, style_layer_weights=(1.0,) * len(self.layers), preserve_color="none")
        return StyleTargets([self.guide], self.features, layers, 1, self.device)
