"""A video job: stylize the frames in order into the frame store, then encode the video.

Frames are streamed: one source frame, and per chain its predecessor's source and
stylized frame (and those of the frames the long-term temporal loss reaches back to) are
in memory at a time, whatever the length of the video. Frames already in the
store (a run that was interrupted) are skipped; the chain continues from the saved
predecessor, so at most the frame that was in flight is redone (the chains and their
passes: :mod:`nstpipe.jobs.chains`). Events go to ``on_event``; nothing is printed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from nstpipe.config import Settings
from nstpipe.engine.device import resolve_batch, resolve_device
from nstpipe.engine.resize import fit_long_side
from nstpipe.engine.temporal import FrameStylizer, StylizedFrame, seam_start
from nstpipe.engine.tensors import prepare, to_rgb8
from nstpipe.errors import InputError
from nstpipe.events import Encoding, EventSink, FrameDone, FrameStarted
from nstpipe.jobs.plan import Chunk
from nstpipe.jobs.records import VideoJob
from nstpipe.jobs.worker import build_painter
from nstpipe.media.framestore import CHAIN, SEAM, FrameStore
from nstpipe.media.video import Frame, VideoInfo, VideoWriter, read_frames
from nstpipe.media.writer import BeforePublish
from nstpipe.modes.model import read_image


@dataclass
class FramesSummary:
    frames: int = 0
    stylized: int = 0  # by this run; the rest were in the store
    iterations: int = 0  # of the frames stylized by this run
    blended: int = 0  # seam frames cross-faded by this run
    repainted: int = 0  # frames painted again by this run's passes after the first
    damaged: int = 0  # of the frames, those the frame before stood in for (see read_frames)

    def add(self, other: FramesSummary) -> None:
        self.frames += other.frames
        self.stylized += other.stylized
        self.iterations += other.iterations
        self.blended += other.blended
        self.repainted += other.repainted
        self.damaged += other.damaged


def build_frame_stylizer(job: VideoJob) -> FrameStylizer:
    stylizer = FrameStylizer(build_painter(job.settings, job.styles), job.settings)
    if job.settings.engine.init_is_file:
        stylizer.init_image = read_image(Path(job.settings.engine.init), max_pixels=job.settings.max_pixels)
    return stylizer


def source_frames(job: VideoJob, start: int = 0, stop: int | None = None) -> Iterator[tuple[Frame, np.ndarray]]:
    """Frames ``start`` .. ``stop - 1``, each with its copy at the output size (uint8 RGB).

    Frames before ``start`` are decoded and dropped: decoding costs milliseconds a frame,
    and seeking by frame number is not exact in every container.
    """
    for frame in read_frames(job.source):
        if stop is not None and frame.index >= stop:
            return
        if frame.index >= start:
            yield frame, to_rgb8(prepare(frame.rgb, job.settings.size))


def count_done(store: FrameStore, frames: int) -> int:
    return sum(1 for index in range(frames) if store.is_done(index))


def video_batch(settings: Settings, info: VideoInfo) -> int:
    """Chains a worker paints in step: ``batch``, or for 0 (auto) what the memory of this
    machine's device holds at the output frame size (1 on CPU and MPS). The chains are
    planned here, before any worker starts, so on a cluster whose GPUs are elsewhere
    auto gives 1: there, say ``--batch``."""
    side = max(output_frame_size(info.height, info.width, settings))
    return resolve_batch(settings.batch, resolve_device(settings.device), side, settings.engine)


def output_frame_size(height: int, width: int, settings: Settings) -> tuple[int, int]:
    """(height, width) of the painted frames of a video whose frames are ``height x width``."""
    return fit_long_side(height, width, settings.size) if settings.size else (height, width)


def blend_seam(job: VideoJob, store: FrameStore, chunk: Chunk, on_event: EventSink) -> FramesSummary:
    """Cross-fade the first ``chunk.blend`` frames of ``chunk`` in from the frame before it.

    Both chains must be done. Frame j of the blend becomes the previous (new) frame warped
    along the flow, mixed with the chunk's own frame j (see :func:`seam_start`), without
    optimizing: re-optimizing re-textures every frame on its own, which brings back the
    flicker that the blend removes. The difference between the two chains is spread over
    ``blend + 1`` equal steps.
    """
    summary = FramesSummary()
    previous: tuple[np.ndarray, np.ndarray] | None = None  # source and output of the frame before
    for frame, source in source_frames(job, chunk.start - 1, chunk.start + chunk.blend):
        index = frame.index
        output = store.read(index)  # the incoming frame, a blend frame already done, or the chunk's own
        if index >= chunk.start and not store.is_done(index, SEAM):
            assert previous is not None
            # Each blend frame starts from the one before it, so the incoming chain's share
            # compounds: 1 / (blend + 1 - j) on the chunk's own frame j makes that share
            # fall in equal steps, 1 - (j + 1) / (blend + 1), not fastest midway.
            weight = 1.0 / (chunk.blend + 1 + chunk.start - index)
            init = seam_start(source, previous[0], previous[1], output, weight).init
            assert init is not None  # a seam always starts from the blend
            output = _paint(index, store, frame.time, on_event, partial(_seam_frame, init), SEAM).rgb
            summary.blended += 1
        previous = (source, output)
    return summary


def _seam_frame(init: torch.Tensor) -> StylizedFrame:
    """A seam frame is its blend as it stands: no iterations."""
    return StylizedFrame(to_rgb8(init), 0, 0.0)


def _paint(
    index: int, store: FrameStore, time_s: float, on_event: EventSink, paint: Callable[[], StylizedFrame], stage: str = CHAIN
) -> StylizedFrame:
    return paint_frames([(index, time_s)], store, on_event, lambda: [paint()], stage)[0]


def paint_frames(
    slots: Sequence[tuple[int, float]],
    store: FrameStore,
    on_event: EventSink,
    paint: Callable[[], list[StylizedFrame]],
    stage: str = CHAIN,
) -> list[StylizedFrame]:
    """Paint the frames at ``slots`` (index, time) together and save each; a frame's
    seconds are its share of the batch's."""
    for index, _ in slots:
        on_event(FrameStarted(index))
    start = time.perf_counter()
    results = paint()
    seconds = (time.perf_counter() - start) / len(slots)
    for (index, time_s), result in zip(slots, results):
        store.write(index, result.rgb, time_s, result.iterations, stage)
        on_event(FrameDone(index, result.iterations, seconds))
    return results


def check_complete(job: VideoJob, chunk: Chunk, frames: int) -> None:
    """A truncated stream may end as if it were the end; the container's count tells."""
    if frames == 0 and chunk.start == 0:
        raise InputError(job.source, "no video frames could be decoded")
    if frames < len(chunk):
        raise InputError(job.source, f"decoding stopped after {chunk.start + frames} of {chunk.stop} frames (corrupt or truncated video)")


def encode(
    job: VideoJob, store: FrameStore, frames: int, output: Path, on_event: EventSink, full: bool, before: BeforePublish | None = None
) -> None:
    """The saved frames into ``output`` (atomic), with the input's timing and audio;
    ``before``: as for :func:`~nstpipe.media.writer.publish` (the output's record)."""
    on_event(Encoding(frames))
    times = [store.time(index) for index in range(frames)]
    first = store.read(0)
    height, width = first.shape[:2]
    fps = job.info.fps or Fraction(30)
    # A preview of the first frames takes the audio that plays under them, no more.
    audio_end = None if full else times[-1] + float(1 / fps)
    with VideoWriter(output, job.source, width, height, fps, crf=job.settings.video.crf, audio_end=audio_end, before=before) as writer:
        for index, frame_time in enumerate(times):
            writer.write(first if index == 0 else store.read(index), frame_time)
