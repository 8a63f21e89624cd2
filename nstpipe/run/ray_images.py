"""Image tasks on Ray actors: batches to free workers, retried, then split, when a worker dies.

Each actor holds an :class:`~nstpipe.jobs.worker.ImageWorker` (VGG19 and the style targets
loaded once) and stylizes the inputs of one call (up to its worker's batch, see
``Settings.batch``), writing each output atomically itself, so an output folder on a
cluster must be a path every node sees.

Scheduling is a bounded queue: at most ``queue_per_worker`` calls (default 1) wait on each
actor, and tasks are pulled from the (lazy) plan only as calls finish, so an archive of
millions of files never sits in memory. A worker process that dies (killed, out of
memory, a crashing decoder) is restarted by Ray and the call it held is run again, up to
``max_attempts`` in all. A call of one input that still fails is reported failed and
skipped: a poisonous file can never loop the job. A batch that still fails is split, its
inputs sent again one per call, so that only the one that kills its worker is reported.
One call per worker at a time means a crash is charged to the inputs that caused it,
never to innocent ones queued behind them; an image takes seconds, a call's round trip a
millisecond.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Iterable, Iterator, Sequence

import ray

from nstpipe.engine.device import pin_threads
from nstpipe.events import EventSink, ImageTask, TaskResult, WorkerLost
from nstpipe.jobs.records import ImageJob
from nstpipe.jobs.worker import WorkerFactory
from nstpipe.run.executor import Summary, take_batch
from nstpipe.run.ray_calls import DIED, GONE, UNREACHABLE, WORKER_LOST, Start, after_unreachable, alive_nodes, answer, check_head, none_left


class ImageActor:
    """The Ray actor: wraps an ImageWorker; events stay in the worker, results come back."""

    def __init__(self, job: ImageJob, threads: int | None, factory: WorkerFactory) -> None:
        pin_threads(threads)
        self.start = Start(lambda: factory(job))

    def process_batch(self, tasks: list[ImageTask]) -> list[TaskResult]:
        return self.start.made().process_batch(tasks)

    def batch(self) -> int:
        return self.start.made().batch

    def pid(self) -> int:
        return os.getpid()


class ImageScheduler:
    """Feeds the tasks of one folder job to ``actors`` (:class:`ImageActor` handles)."""

    def __init__(self, actors: Sequence[Any], on_event: EventSink, max_attempts: int, queue_per_worker: int = 1) -> None:
        self.actors = list(actors)
        self.on_event = on_event
        self.max_attempts = max_attempts
        self.queue_per_worker = queue_per_worker
        self.batches = [_batch(actor) for actor in self.actors]
        self.load = [0] * len(self.actors)
        self.inflight: dict[Any, tuple[int, list[ImageTask]]] = {}  # ref -> (actor index, tasks)
        # The tasks of a batch whose worker died on every try, or could not be reached, to
        # run again one per call.
        self.alone: deque[ImageTask] = deque()
        self.gone: set[int] = set()  # the workers out of reach for good, given no more calls
        self.nodes = alive_nodes()

    def run(self, tasks: Iterable[ImageTask]) -> Summary:
        summary = Summary()
        pending = iter(tasks)
        self._fill(pending)
        while self.inflight:
            ready, _ = ray.wait(list(self.inflight), num_returns=1)
            for result in self._finished(ready[0]):
                summary.add(result)
                self.on_event(result)
            self._fill(pending)
        return summary

    def _fill(self, pending: Iterator[ImageTask]) -> None:
        for index, actor in enumerate(self.actors):
            while index not in self.gone and self.load[index] < self.queue_per_worker:
                # A task sent again was reported as started with its batch.
                batch = [self.alone.popleft()] if self.alone else take_batch(pending, self.batches[index], self.on_event)
                if not batch:
                    return
                self.inflight[actor.process_batch.remote(batch)] = (index, batch)
                self.load[index] += 1

    def _finished(self, ref: Any) -> list[TaskResult]:
        index, batch = self.inflight.pop(ref)
        self.load[index] -= 1
        try:
            return answer(ref)
        except UNREACHABLE:
            check_head()
            fate = after_unreachable(self.actors[index], self.nodes)
            if fate == DIED:
                return self._lost(batch)
            if fate == GONE:
                self.gone.add(index)
                if len(self.gone) == len(self.actors):
                    raise none_left(len(self.actors)) from None
            self.alone.extend(batch)  # a node lost, not the inputs' doing: no try counted
            return []
        except WORKER_LOST:
            # Ray restarted the worker and re-ran the call max_attempts - 1 times.
            check_head()
            return self._lost(batch)

    def _lost(self, batch: list[ImageTask]) -> list[TaskResult]:
        """The results of a call whose worker died on every try.

        One picture of a batch may have killed it, or none (the process was killed from
        outside): the batch's tasks go back one per call, so that only a picture that
        kills its worker on its own is reported, never the others that shared its call.
        """
        if len(batch) > 1:
            self.alone.extend(batch)
            return []
        task = batch[0]
        self.on_event(WorkerLost(task, self.max_attempts))
        return [TaskResult(task, False, f"{task.source}: its worker died {self.max_attempts} times; skipped")]


def _batch(actor: Any) -> int:
    """The worker's batch (``auto`` depends on its device); 1 for a worker that cannot
    start, whose calls then fail one input each, as a lost worker's."""
    try:
        return int(answer(actor.batch.remote()))
    except WORKER_LOST:
        return 1
