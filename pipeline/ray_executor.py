"""Running image tasks on Ray actors: one per GPU, or N on CPUs; the only module that imports ray.

Each actor holds an :class:`~pipeline.worker.ImageWorker` (VGG19 and the style targets
loaded once) and stylizes one input per call, writing its output atomically itself, so
an output folder on a cluster must be a path every node sees.

Scheduling is a bounded queue: at most ``queue_per_worker`` calls (default 1) wait on each
actor, and tasks are pulled from the (lazy) plan only as calls finish, so an archive of
millions of files never sits in memory. A worker process that dies (killed, out of
memory, a crashing decoder) is restarted by Ray and the call it held is run again, up to
``max_attempts`` in all, after which that input is reported failed and skipped: a
poisonous file can never loop the job. One call per worker at a time means a crash is
charged to the input that caused it, never to an innocent one queued behind it; an image
takes seconds, a call's round trip a millisecond.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, WorkerCrashedError

from pipeline.executor import EventSink, Summary, TaskStarted
from pipeline.plan import ImageTask
from pipeline.worker import ImageJob, ImageWorker, TaskResult, WorkerFactory

WORKER_LOST = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)


@dataclass(frozen=True)
class WorkerLost:
    """``task`` killed its worker on every one of ``attempts`` tries; it is skipped."""

    task: ImageTask
    attempts: int


class _ImageActor:
    """The Ray actor: wraps an ImageWorker; events stay in the worker, results come back."""

    def __init__(self, job: ImageJob, threads: int | None, factory: WorkerFactory) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.worker = factory(job)

    def process(self, task: ImageTask) -> TaskResult:
        return self.worker.process(task)

    def pid(self) -> int:
        return os.getpid()


def visible_gpus() -> int:
    """GPUs this machine shows (CUDA only; Ray does not schedule Apple MPS)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextlib.contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[None]:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a private local one.

    The private instance binds to loopback only and runs no dashboard; it is shut down on
    exit. A joined cluster is left running.
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
    try:
        yield
    finally:
        ray.shutdown()


class RayExecutor:
    """The executor interface of :class:`~pipeline.executor.LocalExecutor`, over Ray actors.

    ``workers`` defaults to one per GPU of the cluster, else 1; CPU workers get
    ``threads`` torch threads each (default: the cluster's CPUs shared out).
    """

    def __init__(
        self,
        workers: int | None = None,
        threads: int | None = None,
        max_attempts: int = 3,
        queue_per_worker: int = 1,
        worker_factory: WorkerFactory = ImageWorker,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self.threads = threads
        self.max_attempts = max_attempts
        self.queue_per_worker = queue_per_worker
        self.worker_factory = worker_factory
        self.actors: list[Any] = []

    def _start_actors(self, job: ImageJob) -> None:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = self.workers or max(1, gpus)
        # A dead worker is restarted (it reloads the model) and its call re-run, by Ray.
        options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": self.max_attempts - 1}
        threads = self.threads
        if gpus >= count:
            options["num_gpus"] = 1
        else:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            threads = threads or max(1, cpus // count)
            options["num_cpus"] = min(threads, max(1, cpus // count))
        actor_class = ray.remote(_ImageActor).options(**options)
        self.actors = [actor_class.remote(job, threads, self.worker_factory) for _ in range(count)]

    def pids(self) -> list[int]:
        return ray.get([actor.pid.remote() for actor in self.actors])

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary:
        summary = Summary()
        pending = iter(tasks)
        inflight: dict[Any, tuple[int, ImageTask]] = {}  # ref -> (actor index, task)
        self._start_actors(job)
        load = [0] * len(self.actors)

        def fill() -> None:
            for index, actor in enumerate(self.actors):
                while load[index] < self.queue_per_worker:
                    task = next(pending, None)
                    if task is None:
                        return
                    on_event(TaskStarted(task))
                    inflight[actor.process.remote(task)] = (index, task)
                    load[index] += 1

        fill()
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            index, task = inflight.pop(ready[0])
            load[index] -= 1
            try:
                result: TaskResult = ray.get(ready[0])
            except WORKER_LOST:
                # Ray restarted the worker and re-ran the call max_attempts - 1 times.
                result = TaskResult(task, False, f"{task.source}: its worker died {self.max_attempts} times; skipped")
                on_event(WorkerLost(task, self.max_attempts))
            summary.add(result)
            on_event(result)
            fill()
        return summary

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
