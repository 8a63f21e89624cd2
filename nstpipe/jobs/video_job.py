"""A video job: stylize the frames in order into the frame store, then encode the video.

Frames are streamed: one source frame, and per chain its predecessor's source and
stylized frame (and those of the frames the long-term temporal loss reaches back to) are
in memory at a time, whatever the length of the video. Frames already in the
store (a run that was interrupted) are skipped; the chain continues from the saved
predecessor, so at most the frame that was in flight is redone. Passes after the first
(``video_passes``) walk each chain again, back and forth, and the frames they repaint
record their pass, so a resumed run goes on from the frame and pass where it stopped.
Events go to ``on_event``; nothing is printed.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import deque
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
from nstpipe.engine.temporal import Earlier, FrameInput, FrameStylizer, StylizedFrame, seam_start
from nstpipe.engine.tensors import prepare, to_rgb8
from nstpipe.errors import InputError
from nstpipe.events import Encoding, EventSink, FrameDone, FrameStarted
from nstpipe.jobs.pictures import read_image
from nstpipe.jobs.plan import Chunk, source_identity
from nstpipe.jobs.worker import build_stylizer, make_job
from nstpipe.media.framestore import CHAIN, SEAM, FrameStore
from nstpipe.media.video import Frame, VideoInfo, VideoWriter, read_frames


@dataclass(frozen=True)
class VideoJob:
    settings: Settings
    styles: tuple[Path, ...]
    source: Path
    info: VideoInfo
    fingerprint: str


@dataclass
class FramesSummary:
    frames: int = 0
    stylized: int = 0  # by this run; the rest were in the store
    iterations: int = 0  # of the frames stylized by this run
    blended: int = 0  # seam frames cross-faded by this run
    repainted: int = 0  # frames painted again by this run's passes after the first

    def add(self, other: FramesSummary) -> None:
        self.frames += other.frames
        self.stylized += other.stylized
        self.iterations += other.iterations
        self.blended += other.blended
        self.repainted += other.repainted


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


def source_frames_backward(job: VideoJob, start: int, stop: int, block: int = 32) -> Iterator[tuple[Frame, np.ndarray]]:
    """Frames ``stop - 1`` down to ``start``, as :func:`source_frames` gives them.

    Decoded forward ``block`` frames at a time, last block first: at most ``block`` frames
    in memory, each block decoded from the start of the video again (see :func:`source_frames`).
    """
    end = stop
    while end > start:
        begin = max(start, end - block)
        yield from reversed(list(source_frames(job, begin, end)))
        end = begin


def pass_stage(sweep: int) -> str:
    """The stage a frame's record names once pass ``sweep`` (1, 2, ...) painted it."""
    return CHAIN if sweep == 1 else f"pass{sweep}"


def painted_pass(store: FrameStore, index: int) -> int:
    """The last pass that painted a saved frame: 1 for its chain, a seam's frame counting as
    after every pass (it is blended once the passes are done); 0 when not saved."""
    record = store.record(index)
    if record is None:
        return 0
    stage = str(record.get("stage", CHAIN))
    if stage == SEAM:
        return sys.maxsize
    return int(stage.removeprefix("pass")) if stage.startswith("pass") else 1


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


def stylize_chains(
    job: VideoJob,
    store: FrameStore,
    chunks: Sequence[Chunk],
    on_event: EventSink,
    make_stylizer: Callable[[VideoJob], FrameStylizer] = build_frame_stylizer,
) -> FramesSummary:
    """The frames of each chunk not yet in ``store``, in order, each from its saved
    predecessor; the chains in step, the next frame of each stylized in one batch.

    A chunk's first frame has no predecessor (it is painted like a photo); the rest start
    from the frame before them, read back from the store after a resume. A GPU that one
    frame leaves partly idle paints as many chains in about the time of one. After a
    resume the chains stand at different frames, and a chain that is done drops out of
    the batch. Then each further pass (``video_passes``, chained modes) over every chain,
    in step the same way.
    """
    stylizers: list[FrameStylizer] = []  # the model loads only when a frame needs it

    def stylizer() -> FrameStylizer:
        if not stylizers:
            stylizers.append(make_stylizer(job))
        return stylizers[0]

    video = job.settings.video
    summary = FramesSummary()
    for sweep in range(1, (video.video_passes if video.temporal != "none" else 1) + 1):
        summary.add(_sweep(job, store, chunks, sweep, on_event, stylizer))
    return summary


def _sweep(
    job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], sweep: int, on_event: EventSink, stylizer: Callable[[], FrameStylizer]
) -> FramesSummary:
    """Pass ``sweep`` over the chains of ``chunks``, in step."""
    walks = [_ChainWalk(job, store, chunk, sweep) for chunk in chunks]
    while pending := _next_frames(walks):
        inputs = [walk.input(frame.index, source) for walk, frame, source in pending]
        slots = [(frame.index, frame.time) for _, frame, _ in pending]
        paint = partial(stylizer().stylize_many, inputs, on_event)
        results = _paint_many(slots, store, on_event, paint, pass_stage(sweep))
        for (walk, _, source), result in zip(pending, results):
            walk.painted(source, result)
    summary = FramesSummary()
    for walk in walks:
        summary.add(walk.summary)
    return summary


def _next_frames(walks: Sequence[_ChainWalk]) -> list[tuple[_ChainWalk, Frame, np.ndarray]]:
    """The next frame to paint of every chain that has one."""
    pending = []
    for walk in walks:
        if (found := walk.next_pending()) is not None:
            pending.append((walk, *found))
    return pending


class _ChainWalk:
    """One chunk's frames in the order of pass ``sweep`` (forward in odd passes, backward
    in even ones): skips those done, keeps the frames before the next one (in this order)
    at hand, as many as the temporal loss reaches back (``temporal_gaps``).

    A pass after the first leaves its first frame as the pass before painted it, and
    repaints each of the others from that frame's painting and its neighbour's new one.
    """

    def __init__(self, job: VideoJob, store: FrameStore, chunk: Chunk, sweep: int = 1) -> None:
        self.job, self.store, self.chunk, self.sweep = job, store, chunk, sweep
        backward = sweep % 2 == 0
        self.step = -1 if backward else 1  # from a frame to the next in this pass
        self.frames = source_frames_backward(job, chunk.start, chunk.stop) if backward else source_frames(job, chunk.start, chunk.stop)
        self.summary = FramesSummary()
        video = job.settings.video
        # The gaps beyond 1 that the temporal loss reads (flow mode only).
        self.gaps = video.temporal_gaps[1:] if video.temporal == "flow" else ()
        # (source, output) of the frames before the next one, latest last, from this chunk
        # only; an output is None until it is needed after a skipped frame, then read back.
        self.recent: deque[tuple[np.ndarray, np.ndarray | None]] = deque(maxlen=max((1, *self.gaps)))
        self.finished = False

    def next_pending(self) -> tuple[Frame, np.ndarray] | None:
        """The next frame not in the store with its source at the output size; None at the end."""
        if self.finished:
            return None
        first = self.sweep == 1
        for frame, source in self.frames:
            self.summary.frames += first
            if not self._done(frame.index):
                self._read_back(frame.index)
                return frame, source
            self.recent.append((source, None))
        self.finished = True
        if first:  # later passes read the frames that the first found
            _check_complete(self.job, self.chunk, self.summary.frames)
        return None

    def _done(self, index: int) -> bool:
        if self.sweep == 1:
            return self.store.is_done(index)
        # A later pass starts from its first frame as it stands: it has no neighbour yet.
        return not self.recent or painted_pass(self.store, index) >= self.sweep

    def _read_back(self, index: int) -> None:
        """The saved outputs of the frames the next one reads, where a resume skipped them:
        the same uint8 pictures an unbroken run holds, so it continues the same."""
        for gap in (1, *self.gaps):
            if gap <= len(self.recent) and (held := self.recent[-gap])[1] is None:
                self.recent[-gap] = (held[0], self.store.read(index - gap * self.step))

    def input(self, index: int, source: np.ndarray) -> FrameInput:
        if not self.recent:
            return FrameInput(source)
        reach = [(gap, *self.recent[-gap]) for gap in self.gaps if gap <= len(self.recent)]
        earlier = tuple(Earlier(gap, old_source, output) for gap, old_source, output in reach if output is not None)
        # In a later pass, the painting of the pass before: saved, as after a resume.
        current = self.store.read(index) if self.sweep > 1 else None
        return FrameInput(source, *self.recent[-1], earlier, current)

    def painted(self, source: np.ndarray, result: StylizedFrame) -> None:
        if self.sweep == 1:
            self.summary.stylized += 1
        else:
            self.summary.repainted += 1
        self.summary.iterations += result.iterations
        self.recent.append((source, result.rgb))


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
            weight = 1.0 / (chunk.blend + chunk.start - index)
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
    return _paint_many([(index, time_s)], store, on_event, lambda: [paint()], stage)[0]


def _paint_many(
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


def _check_complete(job: VideoJob, chunk: Chunk, frames: int) -> None:
    """OpenCV ends a broken stream as if it were the end; the container's count tells."""
    if frames == 0 and chunk.start == 0:
        raise InputError(job.source, "no video frames could be decoded")
    if frames < len(chunk):
        raise InputError(job.source, f"decoding stopped after {chunk.start + frames} of {chunk.stop} frames (corrupt or truncated video)")


def run_chunks(
    job: VideoJob,
    store: FrameStore,
    chunks: Sequence[Chunk],
    on_event: EventSink,
    make_stylizer: Callable[[VideoJob], FrameStylizer] = build_frame_stylizer,
    batch: int = 1,
) -> FramesSummary:
    """Every chain, ``batch`` at a time in step, then every seam, in this process (one
    model for all of them)."""
    stylizers: list[FrameStylizer] = []

    def shared(job: VideoJob) -> FrameStylizer:
        if not stylizers:
            stylizers.append(make_stylizer(job))
        return stylizers[0]

    summary = FramesSummary()
    for group in chain_groups(chunks, batch):
        summary.add(stylize_chains(job, store, group, on_event, shared))
    for chunk in chunks:
        if chunk.blend:
            summary.add(blend_seam(job, store, chunk, on_event))
    return summary


def chain_groups(chunks: Sequence[Chunk], batch: int) -> list[tuple[Chunk, ...]]:
    """The chunks in runs of ``batch`` consecutive ones, each run painted in step."""
    size = max(1, batch)
    return [tuple(chunks[i : i + size]) for i in range(0, len(chunks), size)]


def encode(job: VideoJob, store: FrameStore, frames: int, output: Path, on_event: EventSink, full: bool) -> None:
    """The saved frames into ``output`` (atomic), with the input's timing and audio."""
    on_event(Encoding(frames))
    times = [store.time(index) for index in range(frames)]
    first = store.read(0)
    height, width = first.shape[:2]
    fps = job.info.fps or Fraction(30)
    # A preview of the first frames takes the audio that plays under them, no more.
    audio_end = None if full else times[-1] + float(1 / fps)
    with VideoWriter(output, job.source, width, height, fps, crf=job.settings.video.crf, audio_end=audio_end) as writer:
        for index, frame_time in enumerate(times):
            writer.write(first if index == 0 else store.read(index), frame_time)
