"""A video's chains: each chunk's frames painted in order, pass after pass, into the frame store.

The first pass paints a chunk forward, each frame from its predecessor. A pass after the
first (``VideoConfig.video_passes``, Ruder et al. 2018's multi-pass) walks the chunk
again the other way, each frame starting from its painting and its new neighbour's;
the frames it repaints record their pass, so a resumed run goes on from the frame and
pass where it stopped.

The passes stay inside a chunk: chunks painted apart start from paintings of their own,
and the seam between two (see :func:`~nstpipe.jobs.video_job.blend_seam`) eases from one
into the other once both are done. (Carrying the next chunk's painting back through a
chunk from its first frame spreads that difference over every frame the flow does not
hold, which is worse at every distance in time than easing it in at the seam.)
"""

from __future__ import annotations

import sys
from collections import deque
from functools import partial
from typing import Callable, Iterator, Sequence

import numpy as np

from nstpipe.engine.temporal import Earlier, FrameInput, FrameStylizer, StylizedFrame
from nstpipe.events import EventSink
from nstpipe.jobs.plan import Chunk
from nstpipe.jobs.records import VideoJob
from nstpipe.jobs.video_job import (
    FramesSummary,
    blend_seam,
    build_frame_stylizer,
    check_complete,
    output_frame_size,
    paint_frames,
    source_frames,
)
from nstpipe.media.framestore import CHAIN, SEAM, FrameStore
from nstpipe.media.video import Frame

# The source frames at the output size that a pass back holds at a time.
BACKWARD_BYTES = 256 * 2**20


def source_frames_backward(job: VideoJob, start: int, stop: int, block: int = 0) -> Iterator[tuple[Frame, np.ndarray]]:
    """Frames ``stop - 1`` down to ``start``, as :func:`source_frames` gives them.

    Decoded forward ``block`` frames at a time, last block first, each block decoded from
    the start of the video again (see :func:`source_frames`); 0: as many frames as
    BACKWARD_BYTES hold at the output size, so that a small output decodes a chunk once.
    """
    if block <= 0:
        height, width = output_frame_size(job.info.height, job.info.width, job.settings)
        block = max(8, BACKWARD_BYTES // (height * width * 3))
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
        summary.add(_sweep(store, [_ChainWalk(job, store, chunk, sweep) for chunk in chunks], on_event, stylizer))
    return summary


def _sweep(store: FrameStore, walks: Sequence[_ChainWalk], on_event: EventSink, stylizer: Callable[[], FrameStylizer]) -> FramesSummary:
    """One pass over the chains of ``walks``, in step."""
    while pending := _next_frames(walks):
        inputs = [walk.input(frame.index, source) for walk, frame, source in pending]
        slots = [(frame.index, frame.time) for _, frame, _ in pending]
        paint = partial(stylizer().stylize_many, inputs, on_event)
        results = paint_frames(slots, store, on_event, paint, pass_stage(walks[0].sweep))
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
        walk = source_frames_backward if backward else source_frames
        self.frames = walk(job, chunk.start, chunk.stop)
        self.summary = FramesSummary()
        video = job.settings.video
        # The gaps beyond 1 that the temporal loss reads (flow mode only).
        self.gaps = video.temporal_gaps[1:] if video.temporal == "flow" else ()
        # (source, output) of the frames before the next one, latest last, from this walk
        # only; an output is None until it is needed after a skipped frame, then read back.
        self.recent: deque[tuple[np.ndarray, np.ndarray | None]] = deque(maxlen=max((1, *self.gaps)))
        self.finished = False

    def next_pending(self) -> tuple[Frame, np.ndarray] | None:
        """The next frame not done with its source at the output size; None at the end."""
        if self.finished:
            return None
        first = self.sweep == 1
        for frame, source in self.frames:
            self.summary.frames += first
            self.summary.damaged += first and frame.stand_in
            if not self._done(frame.index):
                self._read_back(frame.index)
                return frame, source
            self.recent.append((source, None))
        self.finished = True
        if first:  # later passes read the frames that the first found
            check_complete(self.job, self.chunk, self.summary.frames)
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
