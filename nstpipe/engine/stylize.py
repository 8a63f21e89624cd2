"""Style transfer: pictures painted by optimizing their pixels against an objective of terms.

The facade the callers use. :class:`Painter` runs any mode (a list of terms and a schedule,
:mod:`nstpipe.engine.modes`), from a photo or from a size alone; :class:`Stylizer` is the
style-transfer mode with its paintings. No file I/O and no printing here. Progress leaves
through a callback as small frozen event objects; the caller decides what to show or save.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from nstpipe.config import EngineConfig
from nstpipe.engine.color import ColourPreservation, match_moments, transport_colours
from nstpipe.engine.features import Encoder, FeaturePass, resolve_precision, splits
from nstpipe.engine.memory import budget_bytes, fmt_bytes, image_memory, plan_layout
from nstpipe.engine.modes import Mode, style_transfer
from nstpipe.engine.objective import Objective
from nstpipe.engine.optimize import GRAPH_MIN_STEPS, LBFGS_HISTORY, LevelOutcome, converged, optimize_level
from nstpipe.engine.resize import resize
from nstpipe.engine.schedule import LevelPlan, pyramid
from nstpipe.engine.targets import StyleTargets
from nstpipe.engine.terms import OUTSIDE_WEIGHT, GramSource, Level, TemporalTarget
from nstpipe.engine.tiledread import assemble, read_tile
from nstpipe.engine.tiles import Layout
from nstpipe.errors import NstpipeError, TooThinError
from nstpipe.events import EventSink, Progress, ScaleDone

__all__ = [
    "Encoder", "FeaturePass", "GRAPH_MIN_STEPS", "LBFGS_HISTORY", "OUTSIDE_WEIGHT", "Objective",
    "Painter", "Result", "Stylizer", "TemporalTarget", "converged", "encoder_layers",
    "image_memory", "pyramid", "resolve_precision",
]


@dataclass(frozen=True)
class Result:
    image: torch.Tensor  # (N, 3, H, W), RGB in [0, 1], on the stylizer's device
    iterations: int  # batched steps over all scales (for N = 1: the optimizer iterations)
    loss: float  # summed over the batch
    item_iterations: tuple[int, ...] = ()  # per batch item: the steps that updated it
    item_losses: tuple[float, ...] = ()


class Painter:
    """Runs a mode: at each level of its schedule, the objective its terms make there, optimized.

    Needs a content photo only where a term reads one; without it, a run starts from noise
    (or from ``init``) at a given size.
    """

    def __init__(
        self,
        features: Encoder,
        mode: Mode,
        config: EngineConfig,
        device: torch.device,
        styles: GramSource | None = None,
    ) -> None:
        self.features = features
        self.mode = mode
        self.config = config  # the optimizer's settings: kind, learning rate, stall rule, CUDA graphs
        self.device = device
        self.styles = styles

    def run(
        self,
        content: torch.Tensor | None = None,
        init: torch.Tensor | None = None,
        callback: EventSink | None = None,
        temporal: TemporalTarget | None = None,
        size: tuple[int, int] | None = None,
        count: int = 1,
        start: torch.Tensor | None = None,
        recolour: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Result:
        """Pictures of ``content``'s size (N, 3, H, W), or of ``size`` (height, width) without one.

        ``init`` overrides the schedule's start; ``temporal`` is the warped predecessor frame
        for a temporal term; ``count``: how many pictures a run from a size alone makes;
        ``start``: the photo as the schedule starts from it and mixes it into finer levels
        (recoloured, say), where the terms still read ``content``; ``recolour``: what each
        level's start is put through before its steps (see :meth:`Stylizer.recolour`). No
        input is modified.
        """
        content = None if content is None else content.to(self.device, torch.float32)
        height, width = self._size(content, size)
        count = content.shape[0] if content is not None else init.shape[0] if init is not None else count
        levels = self.mode.schedule.levels(height, width, self.mode.min_side)
        photo = content if start is None else start.to(self.device, torch.float32)
        image = self.mode.schedule.start(levels[0].size, count, photo, init, self.device)
        total, per_item = 0, [0] * count
        for plan in levels:
            if plan.index > 0:
                image = self.mode.schedule.carry(image, plan.size, photo, init, plan.fine)
            if recolour is not None:
                image = recolour(image.detach())
            outcome = self._optimize(plan, image, content, temporal, callback)
            image, total = outcome.image, total + outcome.steps
            if outcome.steps:
                per_item = [done + len(history) for done, history in zip(per_item, outcome.histories)]
        losses = tuple(history[-1] for history in outcome.histories)
        return Result(image=image.detach(), iterations=total, loss=outcome.loss, item_iterations=tuple(per_item), item_losses=losses)

    def _size(self, content: torch.Tensor | None, size: tuple[int, int] | None) -> tuple[int, int]:
        if content is not None:
            height, width = content.shape[-2:]
        elif self.mode.needs_content:
            raise ValueError("this mode reads a content photo: pass one")
        elif size is None:
            raise ValueError("without a content photo, a run needs a size")
        else:
            height, width = size
        need = self.mode.min_side
        if min(height, width) < need:
            # A thin panorama at a small --size: VGG19 would pool a side down to nothing.
            raise TooThinError(
                f"too thin to stylize at {width}x{height} pixels: the VGG19 layers used need at "
                f"least {need} on each side (raise --size)"
            )
        return height, width

    def level(self, size: tuple[int, int], content: torch.Tensor | None = None, temporal: TemporalTarget | None = None) -> Level:
        """What the terms read at a level of ``size``: the photo, the Grams, the warped predecessor."""
        return Level(
            size,
            self.features,
            content=None if content is None else resize(content, size),
            styles=self.styles,
            temporal=None if temporal is None else temporal.at(size, self.device),
            read=self._reader(size),
        )

    def _reader(self, size: tuple[int, int]) -> Callable[[torch.Tensor, str], torch.Tensor] | None:
        """How a level of ``size`` reads the photo's features: tile by tile where one pass
        over it does not fit the memory budget (None: in one pass)."""
        layers = self.mode.layers
        tile = read_tile(size, layers, budget_bytes(self.config.max_memory, self.device)) if layers else None
        if tile is None:
            return None
        return lambda picture, layer: assemble(self.features, picture, layer, tile, layers)

    def _optimize(
        self, plan: LevelPlan, start: torch.Tensor, content: torch.Tensor | None, temporal: TemporalTarget | None,
        callback: EventSink | None,
    ) -> LevelOutcome:
        objective = Objective.at(self.level(plan.size, content, temporal), self.mode.terms, self.mode.view)
        h, w = plan.size

        def report(step: int, loss: float) -> None:
            if callback is not None:
                callback(Progress(plan.index, plan.count, step, plan.budget, loss, h, w))

        outcome = optimize_level(objective, start, plan.budget, self.config, self.device, report, self.layout(plan, start.shape[0]))
        if callback is not None:
            callback(ScaleDone(plan.index, plan.count, outcome.steps, outcome.loss, 0 < outcome.steps < plan.budget))
        return outcome


    def layout(self, plan: LevelPlan, count: int) -> Layout:
        """How a level of ``count`` pictures fits the memory budget: whole, or in tiles."""
        budget = budget_bytes(self.config.max_memory, self.device)
        precision = getattr(self.features, "precision", "fp32")  # a FeaturePass says; a bare encoder runs fp32
        layout = plan_layout(plan.size, count, self.config, self.mode.layers, budget, plan.budget, precision, splits(self.features))
        if layout.tile is not None and self.mode.schedule.wrap:
            # Tiles read the picture with zero padding at its border; a wrapped one has none.
            h, w = plan.size
            raise NstpipeError(f"a tileable texture of {w}x{h} does not fit --max-memory {fmt_bytes(budget)}: raise it or lower the size")
        return layout


class Stylizer:
    """Style transfer: holds the encoder and the style images; Gram targets are computed once per size.

    One instance serves many content images (an archive, or the frames of a video):
    the style targets depend only on the output's long side, so they are cached.
    """

    def __init__(self, encoder: Encoder, styles: Sequence[torch.Tensor], config: EngineConfig, device: torch.device | str = "cpu") -> None:
        self.encoder = encoder
        self.config = config
        self.device = torch.device(device)
        self.mode = style_transfer(config)
        self.features = FeaturePass(encoder, self.device, config)
        self.targets = StyleTargets(styles, self.features, config, self.mode.min_side, self.device)

    def with_config(self, config: EngineConfig) -> Stylizer:
        """The same encoder, styles and Gram cache under another budget or temporal weight.

        For settings that do not change the style targets (iterations, scales, weights of
        the loss terms); the video path uses it for frames after the first.
        """
        other = copy.copy(self)
        other.config = config
        other.mode = style_transfer(config)
        if (config.precision, config.compile) != (self.config.precision, self.config.compile):
            other.features = FeaturePass(self.encoder, self.device, config)
            other.targets = self.targets.with_features(other.features)  # targets computed at another precision
        return other

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what ``auto`` chose on this device."""
        return self.features.precision

    def style_targets(self, long_side: int, content: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Blended Gram targets for an output whose long side is ``long_side`` (see :class:`StyleTargets`)."""
        return self.targets.grams(long_side, content)

    def painter(self) -> Painter:
        return Painter(self.features, self.mode, self.config, self.device, self.targets)

    def objective(self, content: torch.Tensor, temporal: TemporalTarget | None = None) -> Objective:
        """The objective of a one-level run on ``content``, at its size."""
        content = content.to(self.device, torch.float32)
        level = self.painter().level((content.shape[-2], content.shape[-1]), content, temporal)
        return Objective.at(level, self.mode.terms)

    def run(self, content: torch.Tensor, init: torch.Tensor | None = None, callback: EventSink | None = None,
            temporal: TemporalTarget | None = None) -> Result:
        """Stylize ``content`` (N, 3, H, W) RGB in [0, 1]; the output has the same size.

        ``init`` overrides the configured init (the video path passes the warped previous
        frame here); ``temporal`` adds the temporal loss toward that frame. No input is
        modified.
        """
        result = self.painter().run(content, init, callback, temporal, start=self.start(content, init), recolour=self.recolour(init))
        image = ColourPreservation(self.config.preserve_color).result(result.image, content.to(self.device, torch.float32))
        return replace(result, image=image.detach())

    def recolour(self, init: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """From noise, with ``color_start``: each level's start, the first and every finer
        one, recoloured to the paintings' palette at that level's size. An upsampled coarser
        result has drifted from the palette (its colours blurred toward their mean), and a
        level that starts there keeps much of the drift. None: starts as the schedule makes
        them (from the photo, whose recolouring :meth:`start` does once; from a given
        ``init``; or with ``preserve_color``)."""
        return self._to_palette(init, "noise")

    def start(self, content: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor | None:
        """The photo recoloured to the paintings' palette (its mean and covariance, or its whole
        distribution) where ``color_start`` asks for it
        and the run starts from the photo; None: the photo as it is."""
        to_palette = self._to_palette(init, "content")
        return None if to_palette is None else to_palette(content.to(self.device, torch.float32))

    def _to_palette(self, init: torch.Tensor | None, starts_from: str) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """The map onto the paintings' palette that ``color_start`` asks for (a picture's
        whole colour distribution at its own size, or the colour mean and covariance), where
        a run with no given ``init`` starts from ``starts_from`` and keeps no photo's colours;
        None elsewhere."""
        config = self.config
        if config.color_start == "none" or config.preserve_color != "none" or init is not None or config.init != starts_from:
            return None
        if config.color_start == "transport":
            return lambda image: transport_colours(image.contiguous(), self.targets.pixels(max(image.shape[-2:])))
        mean, cov = self.targets.palette()
        return lambda image: match_moments(image, mean, cov)


def encoder_layers(config: EngineConfig) -> tuple[str, ...]:
    """The layers the encoder must give for style transfer under ``config``: every layer its terms read."""
    return style_transfer(config).layers
