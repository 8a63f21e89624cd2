"""Running image tasks. ``LocalExecutor`` runs them in this process, one after another.

An executor takes a job and an iterable of tasks and reports through ``on_event``:
:class:`TaskStarted`, the engine's ``Progress``/``ScaleDone`` events, and one
:class:`~pipeline.worker.TaskResult` per task. It never prints and never raises for a bad
input; the summary says what failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

from pipeline.plan import ImageTask
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
    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary: ...


class LocalExecutor:
    """One worker in this process; the model is loaded on the first task, not before."""

    def __init__(self, worker_factory: Callable[[ImageJob], ImageWorker] = ImageWorker) -> None:
        self.worker_factory = worker_factory

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
