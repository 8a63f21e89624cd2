"""A video job: stylize the frames in order into the frame store, then encode the video.

Frames are streamed: one source frame, its predecessor and one stylized predecessor are
in memory at a time, whatever the length of the video. Frames already in the store (a run
that was interrupted) are skipped; the chain continues from the saved predecessor, so at
most the frame that was in flight is redone. Events go to ``on_event``; nothing is printed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from pipeline.config import Settings
from pipeline.errors import InputError
from pipeline.framestore import FrameStore
from pipeline.imaging import prepare, read_image, to_rgb8
from pipeline.temporal import FrameStylizer
from pipeline.video import Frame, VideoInfo, VideoWriter, read_frames
from pipeline.worker import build_stylizer, make_job, source_identity

EventSink = Callable[[object], None]


@dataclass(frozen=True)
class VideoJob:
    settings: Settings
    styles: tuple[Path, ...]
    source: Path
    info: VideoInfo
    fingerprint: str


@dataclass(frozen=True)
class VideoPlanned:
    frames: int  # frames this run will have when done
    done: int  # already in the work folder


@dataclass(frozen=True)
class FrameStarted:
    index: int


@dataclass(frozen=True)
class FrameDone:
    index: int
    iterations: int
    seconds: float


@dataclass(frozen=True)
class Encoding:
    frames: int


@dataclass
class FramesSummary:
    frames: int = 0
    stylized: int = 0  # by this run; the rest were in the store
    iterations: int = 0  # of the frames stylized by this run
    times: list[float] = dataclasses.field(default_factory=list)


def make_video_job(settings: Settings, styles: list[Path], source: Path, info: VideoInfo) -> VideoJob:
    """The job's identity: the image fingerprint, the frame-chaining settings and the input.

    The encoder's quality (crf) is left out: changing it re-encodes the saved frames.
    """
    video = dataclasses.asdict(settings.video)
    video.pop("crf")
    identity = {**source_identity(source), "frames": info.frame_count, "width": info.width, "height": info.height}
    extra = {"image": make_job(settings, styles).fingerprint, "video": video, "input": identity}
    return VideoJob(settings, tuple(styles), source, info, settings.fingerprint(extra))


def build_frame_stylizer(job: VideoJob) -> FrameStylizer:
    stylizer = FrameStylizer(build_stylizer(job.settings, job.styles), job.settings)
    init = job.settings.engine.init
    if init not in ("content", "noise"):
        stylizer.init_image = read_image(Path(init))
    return stylizer


def source_frames(job: VideoJob, limit: int | None = None) -> Iterator[tuple[Frame, np.ndarray]]:
    """Each frame with its copy at the output size (uint8 RGB), up to ``limit`` frames."""
    for frame in read_frames(job.source):
        if limit is not None and frame.index >= limit:
            return
        yield frame, to_rgb8(prepare(frame.rgb, job.settings.size))


def count_done(store: FrameStore, frames: int) -> int:
    return sum(1 for index in range(frames) if store.is_done(index))


def stylize_frames(
    job: VideoJob,
    store: FrameStore,
    on_event: EventSink,
    limit: int | None = None,
    make_stylizer: Callable[[VideoJob], FrameStylizer] = build_frame_stylizer,
) -> FramesSummary:
    """Every frame not yet in ``store``, in order; each starts from its saved predecessor."""
    summary = FramesSummary()
    stylizer: FrameStylizer | None = None  # the model loads only when a frame needs it
    previous_source: np.ndarray | None = None
    previous_output: np.ndarray | None = None  # None after a skipped frame: read it if needed
    for frame, source in source_frames(job, limit):
        index = frame.index
        summary.frames += 1
        summary.times.append(frame.time)
        if store.is_done(index):
            previous_output = None
        else:
            if previous_output is None and index > 0:
                previous_output = store.read(index - 1)
            stylizer = stylizer or make_stylizer(job)
            on_event(FrameStarted(index))
            start = time.perf_counter()
            result = stylizer.stylize(source, previous_source, previous_output, callback=on_event)
            store.write(index, result.rgb, frame.time, result.iterations)
            summary.stylized += 1
            summary.iterations += result.iterations
            on_event(FrameDone(index, result.iterations, time.perf_counter() - start))
            previous_output = result.rgb
        previous_source = source
    _check_complete(job, summary.frames, limit)
    return summary


def _check_complete(job: VideoJob, frames: int, limit: int | None) -> None:
    """OpenCV ends a broken stream as if it were the end; the container's count tells."""
    expected = job.info.frame_count if limit is None else min(limit, job.info.frame_count)
    if frames == 0:
        raise InputError(job.source, "no video frames could be decoded")
    if frames < expected:
        raise InputError(job.source, f"decoding stopped after {frames} of {expected} frames (corrupt or truncated video)")


def encode(job: VideoJob, store: FrameStore, times: list[float], output: Path, on_event: EventSink, full: bool) -> None:
    """The saved frames into ``output`` (atomic), with the input's timing and audio."""
    on_event(Encoding(len(times)))
    first = store.read(0)
    height, width = first.shape[:2]
    fps = job.info.fps or Fraction(30)
    # A preview of the first frames takes the audio that plays under them, no more.
    audio_end = None if full else times[-1] + float(1 / fps)
    with VideoWriter(output, job.source, width, height, fps, crf=job.settings.video.crf, audio_end=audio_end) as writer:
        for index, frame_time in enumerate(times):
            writer.write(first if index == 0 else store.read(index), frame_time)
