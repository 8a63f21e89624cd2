"""Running image tasks and video chunks. ``LocalExecutor`` runs them in this process, in turn.

An executor takes a job and an iterable of tasks and reports through ``on_event``:
:class:`TaskStarted`, the engine's ``Progress``/``ScaleDone`` events, and one
:class:`~pipeline.worker.TaskResult` per task. It never prints and never raises for a bad
input; the summary says what failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

from pipeline.framestore import FrameStore
from pipeline.plan import Chunk, ImageTask
from pipeline.video_job import FramesSummary, VideoJob, run_chunks
from pipeline.worker import ImageJob, ImageWorker, TaskResult

EventSink = Callable[[object], None]


@dataclass(frozen=True)
class TaskStarted:
    task: ImageTask


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
        """How many workers run at once: a video is split into that many chains."""

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary: ...

    def run_video(self, job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink) -> FramesSummary: ...


class LocalExecutor:
    """One worker in this process; the model is loaded on the first task, not before."""

    def __init__(self, worker_factory: Callable[[ImageJob], ImageWorker] = ImageWorker) -> None:
        self.worker_factory = worker_factory

    def parallelism(self) -> int:
        return 1

    def run_video(self, job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink) -> FramesSummary:
        return run_chunks(job, store, chunks, on_event)

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary:
        summary = Summary()
        worker: ImageWorker | None = None
        for task in tasks:
            if worker is None:
                worker = self.worker_factory(job)
            on_event(TaskStarted(task))
            result = worker.process(task, callback=on_event)
            summary.add(result)
            on_event(result)
        return summary
