"""What a mode paints with, as the drivers above see it: one protocol, two ways to start.

Every painter holds its model on a device and tells what arithmetic ``auto`` chose there.
A :class:`PhotoPainter` paints a batch of photos or video frames (style transfer, a dream):
the worker, the folder job and the video job call it alike. A :class:`CanvasPainter`
paints from a size alone (a texture, a feature visualization).
"""

from __future__ import annotations

from typing import Protocol

import torch

from nstpipe.config import EngineConfig
from nstpipe.engine.stylize import Result, TemporalTarget
from nstpipe.events import EventSink


class Painter(Protocol):
    device: torch.device

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what ``auto`` chose on this device."""
        ...


class PhotoPainter(Painter, Protocol):
    config: EngineConfig

    def run(
        self, content: torch.Tensor, init: torch.Tensor | None = None,
        callback: EventSink | None = None, temporal: TemporalTarget | None = None,
    ) -> Result:
        """Pictures of ``content``'s size (N, 3, H, W), RGB in [0, 1]; no input is modified."""
        ...

    def with_config(self, config: EngineConfig) -> PhotoPainter:
        """The same model under another budget (a video's later frames)."""
        ...


class CanvasPainter(Painter, Protocol):
    def run(self, size: tuple[int, int], count: int = 1, callback: EventSink | None = None) -> Result:
        """``count`` pictures of ``size`` (height, width), (count, 3, H, W) RGB in [0, 1]."""
        ...
