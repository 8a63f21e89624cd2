"""One video frame at a time: where it starts, what holds it to its predecessor, its budget.

No I/O. Frames arrive as HxWx3 uint8 RGB at the output size: the source frame, and the
source and *stylized* previous frames. The stylized predecessor is taken as the uint8
picture that was saved, not the float tensor the optimizer ended with, so a run that
resumes from the saved frames continues exactly as an uninterrupted run would.

Modes (``VideoConfig.temporal``):
  flow  start from the previous stylized frame warped along the optical flow between the
        source frames, and add Ruder et al.'s temporal loss toward it (masked where the
        flow is not trusted); with frames further back (``VideoConfig.temporal_gaps``),
        their long-term loss: each pixel held to the most recent of those frames where
        it was visible (Ruder, Dosovitskiy and Brox 2018, section 4.2), or to all of
        them, each half as strongly as the nearer one (``VideoConfig.temporal_hold``);
  prev  start from the previous stylized frame as it is, no temporal loss;
  none  every frame on its own, from the configured init (the baseline).

A pass after the first (``VideoConfig.video_passes``) walks a chain again, the other way:
the "previous" frames are then its neighbours in the direction of that pass, and each
frame starts from its painting of the pass before, blended with the neighbour's (see
:func:`again_start`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np
import torch

from nstpipe.config import EngineConfig, Settings, VideoConfig
from nstpipe.engine.device import run_or_split
from nstpipe.engine.flow import source_motion, unchanged_in_place, warp
from nstpipe.engine.painters import PhotoPainter
from nstpipe.engine.stylize import TemporalTarget
from nstpipe.engine.tensors import prepare, to_rgb8
from nstpipe.events import EventSink


@dataclass(frozen=True)
class FrameStart:
    """How one frame's optimization begins; both None means "like a photo". ``still``,
    (1, 1, H, W) where given: 1 where the frame keeps its predecessor exactly (see
    :func:`still_in_place`)."""

    init: torch.Tensor | None
    temporal: TemporalTarget | None
    still: torch.Tensor | None = None


@dataclass(frozen=True)
class Earlier:
    """A frame of the chain ``gap`` frames before the one to stylize: its source and output."""

    gap: int
    source: np.ndarray
    output: np.ndarray


@dataclass(frozen=True)
class FrameInput:
    """A frame to stylize: its source and, after a chain's first frame, its predecessor's,
    and those of frames further back for the long-term temporal loss, nearest first.

    In a pass after the first, ``current`` is the frame's painting of the pass before and
    "predecessor" means the neighbour in this pass's direction, already painted by it.
    """

    source: np.ndarray
    previous_source: np.ndarray | None = None
    previous_output: np.ndarray | None = None
    earlier: tuple[Earlier, ...] = ()
    current: np.ndarray | None = None


@dataclass(frozen=True)
class StylizedFrame:
    rgb: np.ndarray  # HxWx3 uint8, the size of the source frame given
    iterations: int
    loss: float


def frame_start(
    mode: str,
    source: np.ndarray,
    previous_source: np.ndarray | None,
    previous_output: np.ndarray | None,
    earlier: Sequence[Earlier] = (),
    hold: str = "recent",
    keep_still: bool = False,
) -> FrameStart:
    """The init and temporal target of a frame; the first frame has no predecessor.

    With ``earlier`` frames (flow mode), the target holds each pixel to those frames as
    ``hold`` says (see :func:`long_term_target`), and the frame starts there. With
    ``keep_still`` (flow mode), :func:`still_in_place` says where the frame keeps its
    predecessor.
    """
    if mode == "none" or previous_output is None:
        return FrameStart(None, None)
    previous = prepare(previous_output)
    if mode == "prev":
        return FrameStart(previous, None)
    if previous_source is None:
        raise ValueError("flow mode needs the previous source frame")
    # Flow on the source frames (the stylized ones have painted texture that would
    # mislead it), at the output size, where the warp is applied; directly between this
    # frame and each earlier one, never chained through the frames between.
    nearest = _warped(source, previous_source, previous)
    still = still_in_place(source, [previous_source, *(e.source for e in earlier)]) if keep_still else None
    if not earlier:
        return FrameStart(nearest.warped, nearest, still)
    further = [_warped(source, e.source, prepare(e.output)) for e in sorted(earlier, key=lambda e: e.gap)]
    target = long_term_target([nearest, *further], hold)
    return FrameStart(target.warped, target, still)


def still_in_place(source: np.ndarray, earlier_sources: Sequence[np.ndarray]) -> torch.Tensor:
    """(1, 1, H, W) float: 1 where ``source`` is :func:`unchanged_in_place` against every one
    of ``earlier_sources``, 0 elsewhere.

    Against every earlier frame, not the predecessor alone: a change too slow to pass the
    margin from one frame to the next (a light fading) passes it against a frame further
    back, and there the painting follows it again.
    """
    still = torch.ones(source.shape[:2], dtype=torch.bool)
    for other in earlier_sources:
        still &= unchanged_in_place(other, source)
    return still[None, None].float()


def _warped(source: np.ndarray, earlier_source: np.ndarray, earlier_output: torch.Tensor) -> TemporalTarget:
    """An earlier output warped onto ``source`` along the source frames' flow, with its mask."""
    backward, mask = source_motion(earlier_source, source)
    return TemporalTarget(warped=warp(earlier_output, backward), mask=mask)


def long_term_masks(masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Ruder et al.'s (2018) long-term weights, from the masks of frames nearest first.

    c_long_j = max(0, c_j - sum of c_long_l over the nearer frames l): a pixel counts
    once, with the most recent frame where it was visible, so that the temporal loss of
    a pixel seen in every earlier frame is that of the nearest alone. (Their code's
    ``closestFirst``.) Their sum is the largest of the masks, at most 1.
    """
    taken = torch.zeros_like(masks[0])
    shares = []
    for mask in masks:
        share = (mask - taken).clamp(min=0)
        shares.append(share)
        taken = taken + share
    return shares


def fading_masks(masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Weights of every earlier frame where it was visible, from the masks nearest first, each
    frame half as strong as the one nearer: c_j 2^-j, scaled so that their sum is the
    largest of the masks, as with :func:`long_term_masks`.

    A pixel seen in every earlier frame is then held to them all, not to the nearest alone:
    the small change that each frame's iterations leave where the footage stands still no
    longer adds up from frame to frame, since the frames further back pull it back.
    """
    weights = [mask * 0.5**j for j, mask in enumerate(masks)]
    total = sum(weights, torch.zeros_like(masks[0]))
    largest = torch.stack(list(masks)).amax(0)
    return [w * largest / total.clamp(min=1e-12) for w in weights]


def long_term_target(targets: Sequence[TemporalTarget], hold: str = "recent") -> TemporalTarget:
    """One temporal target for the warped earlier frames of ``targets``, nearest first, with
    their :func:`long_term_masks` (``hold`` "recent") or :func:`fading_masks` ("fading").
    Squared pulls m_j (x - a_j)^2 sum to one pull M (x - sum m_j a_j / M)^2 plus a
    constant, M = sum m_j: the returned target; where no earlier frame is trusted (M = 0),
    the nearest frame, which the mask leaves free.
    """
    shares = (fading_masks if hold == "fading" else long_term_masks)([t.mask for t in targets])
    total = sum(shares, torch.zeros_like(shares[0]))
    blended = sum((m * t.warped for m, t in zip(shares, targets)), torch.zeros_like(targets[0].warped))
    warped = torch.where(total > 0, blended / total.clamp(min=1e-12), targets[0].warped)
    return TemporalTarget(warped=warped, mask=total)


def again_start(start: FrameStart, current: np.ndarray, blend: float) -> FrameStart:
    """A frame's start in a pass after the first (Ruder et al. 2018, section 4.3): its
    painting of the pass before, moved ``blend`` of the way toward the neighbour's new
    painting where the flow trusts it, x = p + blend * c * (w - p). The temporal target
    stays the neighbour's (``start``, see :func:`frame_start`), so the few iterations
    of the pass pull the frame further toward it where it is trusted, and elsewhere the
    frame keeps what it had.
    """
    painted = prepare(current)
    if start.init is None:
        return FrameStart(painted, None)
    trusted = start.temporal.mask if start.temporal is not None else torch.ones(())
    return FrameStart(painted + blend * trusted * (start.init - painted), start.temporal)


def seam_start(
    source: np.ndarray,
    previous_source: np.ndarray,
    previous_output: np.ndarray,
    own_output: np.ndarray,
    weight: float,
) -> FrameStart:
    """A frame near the start of a chunk, eased in from the chain that runs into it.

    Two pulls, as one temporal target: toward the previous frame of the chain that runs
    into this chunk, warped along the flow (trusted where its mask is 1), and toward this
    frame as the chunk painted it on its own (trusted everywhere), with ``weight`` in
    (0, 1) on the latter. Over the blend frames ``weight`` rises toward 1, so the chain
    eases from its neighbour's last frame into the chunk's own frames. Two squared pulls
    m1 (x - a)^2 + m2 (x - b)^2 are one pull (m1 + m2)(x - (m1 a + m2 b)/(m1 + m2))^2 plus
    a constant, which is what is returned.
    """
    flow = frame_start("flow", source, previous_source, previous_output)
    assert flow.temporal is not None  # "flow" with a predecessor always has one
    incoming = (1.0 - weight) * flow.temporal.mask
    total = incoming + weight
    target = (incoming * flow.temporal.warped + weight * prepare(own_output)) / total
    return FrameStart(target, TemporalTarget(warped=target, mask=total))


class FrameStylizer:
    """Stylizes a video frame by frame; the first frame gets the full budget."""

    def __init__(self, stylizer: PhotoPainter, settings: Settings) -> None:
        video = settings.video
        self.mode = video.temporal
        self.hold = video.temporal_hold
        chained = self.mode != "none" and video.first_budget != 1
        self.first = stylizer.with_config(first_budget(stylizer.config, video)) if chained else stylizer
        # Later frames start close to their answer: no pyramid (it would blur that start
        # down and up again), a small budget, the same early stopping.
        later = dataclasses.replace(stylizer.config, scales=1, iterations=video.later_iterations)
        self.later = stylizer if self.mode == "none" else stylizer.with_config(later)
        # Frames of a pass after the first: closer still, with their own budget.
        self.again = stylizer.with_config(dataclasses.replace(later, iterations=video.pass_iterations))
        self.blend = video.pass_blend
        self.settle = video.temporal_blend
        self.keep_still = video.hold_still
        self.init_image: torch.Tensor | None = None  # an --init file, for frames without a predecessor

    def start(self, frame: FrameInput) -> FrameStart:
        """Where ``frame`` starts and what holds it (see :func:`frame_start`, :func:`again_start`)."""
        start = frame_start(
            self.mode, frame.source, frame.previous_source, frame.previous_output, frame.earlier, self.hold, self.keep_still
        )
        return start if frame.current is None else again_start(start, frame.current, self.blend)

    def stylize(
        self,
        source: np.ndarray,
        previous_source: np.ndarray | None = None,
        previous_output: np.ndarray | None = None,
        callback: EventSink | None = None,
        earlier: Sequence[Earlier] = (),
    ) -> StylizedFrame:
        return self.stylize_many([FrameInput(source, previous_source, previous_output, tuple(earlier))], callback)[0]

    def stylize_many(self, frames: Sequence[FrameInput], callback: EventSink | None = None) -> list[StylizedFrame]:
        """Frames of one size from different chains, optimized together; results in order.

        The frames form one batch per kind, since the kinds run different schedules: the
        first frames of chains, the chained ones (those with a predecessor), and those of a
        pass after the first. Each frame of a batch follows the path it would follow alone
        (see :meth:`~nstpipe.engine.stylize.Stylizer.run`). A batch that runs out of GPU memory is done again one
        frame at a time.
        """
        starts = [self.start(f) for f in frames]
        kinds = [self._painter(f, s) for f, s in zip(frames, starts)]
        if len(frames) == 1:
            return self._batch(kinds[0], frames, starts, callback)
        results: dict[int, StylizedFrame] = {}
        for painter in dict.fromkeys(kinds):
            group = [i for i, kind in enumerate(kinds) if kind is painter]
            # One at a time after running out of GPU memory, from the starts (and flows) already computed.
            done = run_or_split(group, partial(self._part, painter, frames, starts, callback))
            results.update(zip(group, done))
        return [results[i] for i in range(len(frames))]

    def _part(
        self, painter: PhotoPainter, frames: Sequence[FrameInput], starts: Sequence[FrameStart],
        callback: EventSink | None, part: Sequence[int],
    ) -> list[StylizedFrame]:
        return self._batch(painter, [frames[i] for i in part], [starts[i] for i in part], callback)

    def _painter(self, frame: FrameInput, start: FrameStart) -> PhotoPainter:
        """What paints a frame: its kind's schedule."""
        if start.init is None:
            return self.first
        return self.later if frame.current is None else self.again

    def _batch(
        self, painter: PhotoPainter, frames: Sequence[FrameInput], starts: Sequence[FrameStart], callback: EventSink | None
    ) -> list[StylizedFrame]:
        """Frames of one kind (see :meth:`_painter`), in one run."""
        content = torch.cat([prepare(f.source) for f in frames])
        image: torch.Tensor
        if painter is self.first:
            result = self.first.run(content, init=self.init_image, callback=callback)
            image = result.image
        else:
            init = torch.cat([s.init for s in starts if s.init is not None])
            temporal = _stacked([s.temporal for s in starts])
            result = painter.run(content, init=init, callback=callback, temporal=temporal)
            image = _kept(settled(result.image, temporal, self.settle), frames, starts)
        return [
            StylizedFrame(to_rgb8(image[i : i + 1]), result.item_iterations[i], result.item_losses[i])
            for i in range(len(frames))
        ]


def settled(image: torch.Tensor, temporal: TemporalTarget | None, blend: float) -> torch.Tensor:
    """``image`` moved ``blend`` of the way toward the temporal target where its mask
    trusts it, x + blend * c * (w - x) (see :attr:`VideoConfig.temporal_blend`); a new
    tensor, the caller's untouched."""
    if temporal is None or blend == 0:
        return image
    warped = temporal.warped.to(image.device, image.dtype)
    mask = temporal.mask.to(image.device, image.dtype).clamp(0, 1)
    return image + blend * mask * (warped - image)


def _kept(image: torch.Tensor, frames: Sequence[FrameInput], starts: Sequence[FrameStart]) -> torch.Tensor:
    """A batch's frames, each wholly its predecessor where its start says the footage stood
    still (see :attr:`VideoConfig.hold_still`): :func:`settled` all the way, with the
    predecessor unwarped as the target, since the flow is zero there
    (nstpipe.engine.flow.still_where_unmoved)."""
    if all(s.still is None for s in starts):
        return image
    parts = []
    for i, (frame, start) in enumerate(zip(frames, starts)):
        own = image[i : i + 1]
        if start.still is None:
            parts.append(own)
            continue
        assert frame.previous_output is not None  # a still mask comes only with a predecessor
        parts.append(settled(own, TemporalTarget(warped=prepare(frame.previous_output), mask=start.still), 1.0))
    return torch.cat(parts)


def first_budget(config: EngineConfig, video: VideoConfig) -> EngineConfig:
    """The engine settings of a chain's first frame: the iterations times ``first_budget``."""
    scale = video.first_budget
    return dataclasses.replace(
        config, coarse_iterations=round(config.coarse_iterations * scale),
        coarsest_iterations=round(config.coarsest_iterations * scale), iterations=round(config.iterations * scale),
    )


def _stacked(targets: Sequence[TemporalTarget | None]) -> TemporalTarget | None:
    """One temporal target for a batch: warped frames (N, 3, H, W), masks (N, 1, H, W)."""
    present = [t for t in targets if t is not None]
    if len(present) < len(targets):
        return None  # "prev" mode: a frame starts from its predecessor without a temporal loss
    height, width = present[0].warped.shape[-2:]
    return TemporalTarget(
        warped=torch.cat([t.warped for t in present]),
        mask=torch.cat([t.mask.reshape(1, 1, height, width) for t in present]),
    )
