"""Running image tasks on Ray actors: one per GPU, or N on CPUs; the only module that imports ray.

Each actor holds an :class:`~pipeline.jobs.worker.ImageWorker` (VGG19 and the style targets
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

import contextlib
import os
from collections import deque
from typing import Any, Iterable, Iterator, Sequence

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError, WorkerCrashedError
from ray.util.queue import Queue

from pipeline.engine.device import pin_threads
from pipeline.errors import NstpipeError
from pipeline.events import EventSink, FrameDone, FrameStarted, WorkerLost
from pipeline.run.executor import Summary, take_batch
from pipeline.media.framestore import CHAIN, SEAM, FrameStore
from pipeline.jobs.plan import Chunk, ImageTask
from pipeline.jobs.video_job import FramesSummary, VideoJob, blend_seam, build_frame_stylizer, chain_groups, stylize_chains
from pipeline.jobs.worker import ImageJob, ImageWorker, TaskResult, WorkerFactory

WORKER_LOST = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)


class _ImageActor:
    """The Ray actor: wraps an ImageWorker; events stay in the worker, results come back."""

    def __init__(self, job: ImageJob, threads: int | None, factory: WorkerFactory) -> None:
        pin_threads(threads)
        self.worker = factory(job)

    def process_batch(self, tasks: list[ImageTask]) -> list[TaskResult]:
        return self.worker.process_batch(tasks)

    def batch(self) -> int:
        return self.worker.batch

    def pid(self) -> int:
        return os.getpid()


class _VideoActor:
    """The Ray actor for video: paints whole chains and seams into the shared frame store."""

    def __init__(self, job: VideoJob, threads: int | None) -> None:
        pin_threads(threads)
        self.job = job
        self.stylizer = build_frame_stylizer(job)

    # The event queue comes with each call, not to the constructor: an actor handle among
    # the constructor's arguments makes Ray's restart of this actor unreliable
    # (ray-project/ray#53727), and Ray says so on the user's terminal.

    def chain(self, store: FrameStore, chunks: tuple[Chunk, ...], events: Queue) -> FramesSummary:
        return stylize_chains(self.job, store, chunks, _frame_events(events), lambda job: self.stylizer)

    def seam(self, store: FrameStore, chunks: tuple[Chunk, ...], events: Queue) -> FramesSummary:
        (chunk,) = chunks
        return blend_seam(self.job, store, chunk, _frame_events(events))

    def pid(self) -> int:
        return os.getpid()


def _frame_events(events: Queue) -> EventSink:
    def report(event: object) -> None:
        # Per-frame events only; per-iteration ones would flood the queue.
        if isinstance(event, (FrameStarted, FrameDone)):
            events.put(event)

    return report


def _seams_ready(chunks: Sequence[Chunk], chained: set[int], done: Chunk) -> list[Chunk]:
    """Seams that ``done`` completes: its own (with the chunk before) and the next chunk's."""
    ready = []
    for i, chunk in enumerate(chunks):
        if chunk.blend and i > 0 and chunk.start in chained and chunks[i - 1].start in chained:
            if done in (chunk, chunks[i - 1]):
                ready.append(chunk)
    return ready


def _get(ref: Any) -> Any:
    """``ray.get``, with the project's own errors raised as themselves (one line, as locally)."""
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, NstpipeError):
            raise exc.cause from None  # a bad input or a full disk
        raise


def _drain(events: Any, on_event: EventSink) -> None:
    while not events.empty():
        for event in events.get_nowait_batch(events.qsize()):
            on_event(event)


@contextlib.contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[None]:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a private local one.

    The private instance runs no dashboard and keeps Ray's token authentication (on by
    default) as it is; it is shut down on exit. It cannot be held to loopback: this Ray
    turns a loopback node address into the machine's reachable one, and its servers
    listen on every interface. A joined cluster is left running.
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


class RayExecutor:
    """The executor interface of :class:`~pipeline.run.executor.LocalExecutor`, over Ray actors.

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

    def parallelism(self) -> int:
        return self.workers or max(1, int(ray.cluster_resources().get("GPU", 0)))

    def _start_actors(self, job: Any, actor: type = _ImageActor, *args: Any) -> None:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = self.parallelism()
        # A dead worker is restarted (it reloads the model) and its call re-run, by Ray.
        options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": self.max_attempts - 1}
        threads = self.threads
        if gpus >= count:
            options["num_gpus"] = 1
        else:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            threads = threads or max(1, cpus // count)
            options["num_cpus"] = min(threads, max(1, cpus // count))
        actor_class = ray.remote(actor).options(**options)
        self.actors = [actor_class.remote(job, threads, *args) for _ in range(count)]

    def pids(self) -> list[int]:
        return ray.get([actor.pid.remote() for actor in self.actors])

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary:
        summary = Summary()
        pending = iter(tasks)
        # The tasks of a batch whose worker died on every try, to run again one per call.
        alone: deque[ImageTask] = deque()
        inflight: dict[Any, tuple[int, list[ImageTask]]] = {}  # ref -> (actor index, tasks)
        self._start_actors(job, _ImageActor, self.worker_factory)
        batches = [self._batch(actor) for actor in self.actors]
        load = [0] * len(self.actors)

        def fill() -> None:
            for index, actor in enumerate(self.actors):
                while load[index] < self.queue_per_worker:
                    # A task sent again was reported as started with its batch.
                    batch = [alone.popleft()] if alone else take_batch(pending, batches[index], on_event)
                    if not batch:
                        return
                    inflight[actor.process_batch.remote(batch)] = (index, batch)
                    load[index] += 1

        fill()
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            index, batch = inflight.pop(ready[0])
            load[index] -= 1
            try:
                results: list[TaskResult] = _get(ready[0])
            except WORKER_LOST:
                # Ray restarted the worker and re-ran the call max_attempts - 1 times.
                results = self._lost(batch, alone, on_event)
            for result in results:
                summary.add(result)
                on_event(result)
            fill()
        return summary

    @staticmethod
    def _batch(actor: Any) -> int:
        """The worker's batch (``auto`` depends on its device); 1 for a worker that cannot
        start, whose calls then fail one input each, as a lost worker's."""
        try:
            return int(_get(actor.batch.remote()))
        except WORKER_LOST:
            return 1

    def _lost(self, batch: list[ImageTask], alone: deque[ImageTask], on_event: EventSink) -> list[TaskResult]:
        """The results of a call whose worker died on every try.

        One picture of a batch may have killed it, or none (the process was killed from
        outside): the batch's tasks go back one per call, so that only a picture that
        kills its worker on its own is reported, never the others that shared its call.
        """
        if len(batch) > 1:
            alone.extend(batch)
            return []
        task = batch[0]
        on_event(WorkerLost(task, self.max_attempts))
        return [TaskResult(task, False, f"{task.source}: its worker died {self.max_attempts} times; skipped")]

    def run_video(
        self, job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink, batch: int = 1
    ) -> FramesSummary:
        """``batch`` chains per call (painted in step), on free workers; a seam as soon as
        both its chunks are done.

        Frame events come back from the workers through a Ray queue, so the progress bar
        moves with every frame of every worker.
        """
        events = Queue(maxsize=10_000)
        self._start_actors(job, _VideoActor)
        todo: deque[tuple[str, tuple[Chunk, ...]]] = deque((CHAIN, group) for group in chain_groups(chunks, batch))
        chained: set[int] = set()  # start frames of the chunks whose chain is done
        free = list(range(len(self.actors)))
        inflight: dict[Any, tuple[int, str, tuple[Chunk, ...]]] = {}
        summary = FramesSummary()
        while todo or inflight:
            while todo and free:
                index = free.pop()
                stage, group = todo.popleft()
                # The stage names are the actor's method names: chain or seam.
                inflight[getattr(self.actors[index], stage).remote(store, group, events)] = (index, stage, group)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            _drain(events, on_event)
            for ref in ready:
                index, stage, group = inflight.pop(ref)
                free.append(index)
                summary.add(self._result(ref, job, group))
                if stage == CHAIN:
                    chained.update(chunk.start for chunk in group)
                    seams = dict.fromkeys(seam for chunk in group for seam in _seams_ready(chunks, chained, chunk))
                    todo.extendleft((SEAM, (seam,)) for seam in seams)
        _drain(events, on_event)
        return summary

    def _result(self, ref: Any, job: VideoJob, group: tuple[Chunk, ...]) -> FramesSummary:
        try:
            return _get(ref)
        except WORKER_LOST:
            frames = ", ".join(f"{chunk.start}-{chunk.stop - 1}" for chunk in group)
            raise NstpipeError(f"{job.source}: a worker died {self.max_attempts} times on frames {frames}") from None

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
