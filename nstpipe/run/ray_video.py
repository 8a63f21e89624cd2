"""A video's chunks on Ray actors: chains on free workers, each seam as soon as both its chunks are done.

Each actor holds a frame stylizer (VGG19 and the style targets loaded once) and paints
whole chains, ``batch`` in step per call, and seams into the frame store, which must be
a folder every node sees. Frame events come back from the workers through a Ray queue,
so the progress bar moves with every frame of every worker.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Sequence

import ray
from ray.util.queue import Queue

from nstpipe.engine.device import pin_threads
from nstpipe.errors import ClusterError, NstpipeError
from nstpipe.events import EventSink, FrameDone, FrameStarted
from nstpipe.jobs.chains import chain_groups, stylize_chains
from nstpipe.jobs.plan import Chunk
from nstpipe.jobs.records import VideoJob
from nstpipe.jobs.video_job import FramesSummary, blend_seam, build_frame_stylizer
from nstpipe.media.framestore import CHAIN, SEAM, FrameStore
from nstpipe.run.ray_calls import (
    DIED,
    MOVED,
    UNREACHABLE,
    WORKER_LOST,
    Start,
    after_unreachable,
    alive_nodes,
    answer,
    check_head,
    none_left,
)

QUEUE_SIZE = 10_000  # frame events not yet drained; a worker waits when it is full


class VideoActor:
    """The Ray actor for video: paints whole chains and seams into the shared frame store."""

    def __init__(self, job: VideoJob, threads: int | None) -> None:
        pin_threads(threads)
        self.job = job
        self.start = Start(lambda: build_frame_stylizer(job))

    # The event queue comes with each call, not to the constructor: an actor handle among
    # the constructor's arguments makes Ray's restart of this actor unreliable
    # (ray-project/ray#53727), and Ray says so on the user's terminal.

    def chain(self, store: FrameStore, chunks: tuple[Chunk, ...], events: Queue) -> FramesSummary:
        stylizer = self.start.made()
        return stylize_chains(self.job, store, chunks, _frame_events(events), lambda job: stylizer)

    def seam(self, store: FrameStore, chunks: tuple[Chunk, ...], events: Queue) -> FramesSummary:
        (chunk,) = chunks
        self.start.made()
        return blend_seam(self.job, store, chunk, _frame_events(events))

    def pid(self) -> int:
        return os.getpid()


def _frame_events(events: Queue) -> EventSink:
    def report(event: object) -> None:
        # Per-frame events only; per-iteration ones would flood the queue.
        if isinstance(event, (FrameStarted, FrameDone)):
            events.put(event)

    return report


def seams_ready(chunks: Sequence[Chunk], chained: set[int], done: Chunk) -> list[Chunk]:
    """Seams that ``done`` completes, given the start frames of the chunks whose chain is
    ``chained``: its own (with the chunk before) and the next chunk's."""
    ready = []
    for i, chunk in enumerate(chunks):
        if chunk.blend and i > 0 and chunk.start in chained and chunks[i - 1].start in chained:
            if done in (chunk, chunks[i - 1]):
                ready.append(chunk)
    return ready


class VideoScheduler:
    """Paints the chunks of one video with ``actors`` (:class:`VideoActor` handles)."""

    def __init__(
        self, actors: Sequence[Any], job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink, max_attempts: int
    ) -> None:
        self.actors = list(actors)
        self.job, self.store, self.chunks = job, store, chunks
        self.on_event = on_event
        self.max_attempts = max_attempts
        self.todo: deque[tuple[str, tuple[Chunk, ...]]] = deque()  # (stage, chunks), next first
        self.chained: set[int] = set()  # start frames of the chunks whose chain is done
        self.free = list(range(len(self.actors)))
        self.inflight: dict[Any, tuple[int, str, tuple[Chunk, ...]]] = {}  # ref -> (actor index, stage, chunks)
        self.summary = FramesSummary()
        self.nodes = alive_nodes()

    def run(self, batch: int = 1) -> FramesSummary:
        """``batch`` chains per call (painted in step), then the seams as they are ready."""
        events = Queue(maxsize=QUEUE_SIZE)
        self.todo.extend((CHAIN, group) for group in chain_groups(self.chunks, batch))
        while self.todo or self.inflight:
            self._dispatch(events)
            ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=0.5)
            _drain(events, self.on_event)
            for ref in ready:
                self._finished(ref)
        _drain(events, self.on_event)
        return self.summary

    def _dispatch(self, events: Queue) -> None:
        while self.todo and self.free:
            index = self.free.pop()
            stage, group = self.todo.popleft()
            # The stage names are the actor's method names: chain or seam.
            self.inflight[getattr(self.actors[index], stage).remote(self.store, group, events)] = (index, stage, group)

    def _finished(self, ref: Any) -> None:
        index, stage, group = self.inflight.pop(ref)
        try:
            summary = self._answer(ref, group)
        except UNREACHABLE:
            check_head()
            fate = after_unreachable(self.actors[index], self.nodes)
            if fate == DIED:
                raise self._died(group) from None
            # A node lost, not the frames' doing: the call goes out again, to this worker
            # now that it is back, or to the others (it then gets no more calls).
            self.todo.appendleft((stage, group))
            if fate == MOVED:
                self.free.append(index)
            elif not self.free and not self.inflight:
                raise none_left(len(self.actors)) from None
            return
        self.free.append(index)
        self.summary.add(summary)
        if stage == CHAIN:
            self.chained.update(chunk.start for chunk in group)
            seams = dict.fromkeys(seam for chunk in group for seam in seams_ready(self.chunks, self.chained, chunk))
            self.todo.extendleft((SEAM, (seam,)) for seam in seams)

    def _answer(self, ref: Any, group: tuple[Chunk, ...]) -> FramesSummary:
        try:
            return answer(ref)
        except UNREACHABLE:
            raise
        except WORKER_LOST:
            check_head()
            raise self._died(group) from None

    def _died(self, group: tuple[Chunk, ...]) -> NstpipeError:
        frames = ", ".join(f"{chunk.start}-{chunk.stop - 1}" for chunk in group)
        return NstpipeError(f"{self.job.source}: a worker died {self.max_attempts} times on frames {frames}")


def _drain(events: Any, on_event: EventSink) -> None:
    """Hand on the frame events the workers have queued. The queue is an actor of the
    cluster: lost with the cluster (or alone), the run ends in one line, its finished
    frames kept, rather than in Ray's traceback."""
    try:
        while not events.empty():
            for event in events.get_nowait_batch(events.qsize()):
                on_event(event)
    except WORKER_LOST as exc:
        check_head()
        lost = f"lost the queue of frame events on the Ray cluster ({type(exc).__name__})"
        raise ClusterError(f"{lost}: finished frames are kept, rerun to continue") from None
