"""Running image tasks and video chunks. ``LocalExecutor`` runs them in this process, in turn.

An executor takes a job and an iterable of tasks and reports through ``on_event``:
:class:`~nstpipe.events.TaskStarted`, the engine's ``Progress``/``ScaleDone`` events, and one
:class:`~nstpipe.jobs.worker.TaskResult` per task. It never prints and never raises for a bad
input; the summary says what failed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Protocol, Sequence

from nstpipe.events import EventSink, ImageTask, TaskResult, TaskStarted
from nstpipe.jobs.chains import run_chunks
from nstpipe.jobs.plan import Chunk
from nstpipe.jobs.records import ImageJob, VideoJob
from nstpipe.jobs.video_job import FramesSummary
from nstpipe.jobs.worker import ImageWorker, WorkerFactory
from nstpipe.media.framestore import FrameStore


@dataclass
class Summary:
    done: int = 0
    failed: list[TaskResult] = field(default_factory=list)
    iterations: int = 0

    def add(self, result: TaskResult) -> None:
        if result.ok:
            self.done += 1
            self.iterations += result.iterations
        else:
            self.failed.append(result)


class Executor(Protocol):
    def parallelism(self) -> int:
        """How many workers run at once: a video is split into that many chains (times the
        frames each worker paints in step)."""

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary: ...

    def run_video(
        self, job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink, batch: int = 1
    ) -> FramesSummary:
        """Every chunk's chain, ``batch`` chains per call in step, then every seam."""


class LocalExecutor:
    """One worker in this process; the model is loaded on the first task, not before.

    The tasks run in turn, up to the worker's batch at a time.
    """

    def __init__(self, worker_factory: WorkerFactory = ImageWorker) -> None:
        self.worker_factory = worker_factory

    def parallelism(self) -> int:
        return 1

    def run_video(
        self, job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink, batch: int = 1
    ) -> FramesSummary:
        return run_chunks(job, store, chunks, on_event, batch=batch)

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary:
        summary = Summary()
        pending = iter(tasks)
        first = next(pending, None)
        if first is None:
            return summary
        worker = self.worker_factory(job)
        pending = itertools.chain([first], pending)
        while batch := take_batch(pending, worker.batch, on_event):
            for result in worker.process_batch(batch, callback=on_event):
                summary.add(result)
                on_event(result)
        return summary


def take_batch(pending: Iterator[ImageTask], count: int, on_event: EventSink) -> list[ImageTask]:
    """The next ``count`` tasks of the plan (fewer at its end), each reported as started.

    Only these are pulled: the plan stays lazy, and the tasks skipped on the way (already
    done) are reported as the plan is walked, not all at once.
    """
    batch = list(itertools.islice(pending, count))
    for task in batch:
        on_event(TaskStarted(task))
    return batch
