"""Running image tasks and video chunks on Ray actors: one per GPU, or N on CPUs.

Ray stays inside :mod:`nstpipe.run`. This module holds the Ray instance
(:func:`ray_session`), the actors' lifecycle and :class:`RayExecutor`, which has the
interface of :class:`~nstpipe.run.executor.LocalExecutor`; the scheduling is in
:mod:`nstpipe.run.ray_images` (a folder's batches) and :mod:`nstpipe.run.ray_video`
(a video's chains and seams).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable, Iterator, Sequence

import ray
from ray.exceptions import RayError

from nstpipe.errors import ClusterError
from nstpipe.events import EventSink, ImageTask
from nstpipe.jobs.plan import Chunk
from nstpipe.jobs.records import ImageJob, VideoJob
from nstpipe.jobs.video_job import FramesSummary
from nstpipe.jobs.worker import ImageWorker, WorkerFactory
from nstpipe.media.framestore import FrameStore
from nstpipe.run.executor import Summary
from nstpipe.run.ray_images import ImageActor, ImageScheduler
from nstpipe.run.ray_join import backend_quiet, check_fits, check_token_path, join_address, quiet, stderr_hidden
from nstpipe.run.ray_video import VideoActor, VideoScheduler


@contextlib.contextmanager
def ray_session(address: str | None = None, cpus: int | None = None, verbose: bool = False) -> Iterator[None]:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a private local one.

    A cluster that cannot be joined is a :class:`~nstpipe.errors.ClusterError` within
    seconds (see :mod:`nstpipe.run.ray_join`). The private instance is nstpipe's own even
    when a cluster runs on this machine: ``ray start`` leaves that cluster's address where
    a plain ``ray.init`` would find and join it. It runs no dashboard and keeps Ray's token
    authentication (on by default) as it is; it is shut down on exit. It cannot be held to
    loopback: this Ray turns a loopback node address into the machine's reachable one, and
    its servers listen on every interface. A joined cluster is left running. Ray's own log
    lines stay off the terminal unless ``verbose``.
    """
    if ray.is_initialized():
        yield
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    with quiet(verbose):
        if address:
            _join(address, verbose)
        else:
            check_token_path()
            ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            yield
        finally:
            ray.shutdown()


def _join(address: str, verbose: bool) -> None:
    target = join_address(address, verbose)
    with stderr_hidden(verbose), backend_quiet(verbose):
        try:
            ray.init(address=target, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError, RayError) as exc:  # ValueError: ray:// without Ray Client
            ray.shutdown()
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ClusterError(f"cannot join the Ray cluster at {address}: {reason}") from None


class RayExecutor:
    """The executor interface of :class:`~nstpipe.run.executor.LocalExecutor`, over Ray actors.

    ``workers`` defaults to one per GPU of the cluster, else 1; CPU workers get
    ``threads`` torch threads each (default: the cluster's CPUs shared out). A worker
    that dies is restarted by Ray and its call run again, up to ``max_attempts`` in all.
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

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: EventSink) -> Summary:
        self._start_actors(ImageActor, job, self.worker_factory)
        return ImageScheduler(self.actors, on_event, self.max_attempts, self.queue_per_worker).run(tasks)

    def run_video(
        self, job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink, batch: int = 1
    ) -> FramesSummary:
        """``batch`` chains per call (painted in step), on free workers; a seam as soon as
        both its chunks are done."""
        self._start_actors(VideoActor, job)
        return VideoScheduler(self.actors, job, store, chunks, on_event, self.max_attempts).run(batch)

    def check_fits(self) -> None:
        """A :class:`~nstpipe.errors.ClusterError` when the cluster cannot hold the workers,
        which would wait for resources for ever."""
        self._placement()

    def _placement(self) -> tuple[int, int | None, dict[str, Any]]:
        """The number of workers, their torch threads and the resources each asks for
        (checked against the cluster's): a GPU each when there are enough, else a share of
        the CPUs that one node can give."""
        resources = ray.cluster_resources()
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
        gpus, count = int(resources.get("GPU", 0)), self.parallelism()
        threads, options = self.threads, {"num_gpus": 1}
        if gpus < count:
            largest = max((int(node.get("CPU", 0)) for node in nodes), default=1)
            share = max(1, min(int(resources.get("CPU", 1)) // count, largest))
            threads = threads or share
            options = {"num_cpus": min(threads, share)}
        check_fits(count, options, resources, nodes)
        return count, threads, options

    def _start_actors(self, actor: type, job: Any, *args: Any) -> None:
        """``parallelism()`` actors of class ``actor``, each made with ``(job, threads, *args)``,
        spread over the cluster's nodes."""
        self.close()  # those of an earlier job, so that their GPUs and CPUs are free
        count, threads, resources = self._placement()
        # A dead worker is restarted (it reloads the model) and its call re-run, by Ray;
        # spread, so that a lost node costs as few workers as can be.
        options = {"max_restarts": -1, "max_task_retries": self.max_attempts - 1, "scheduling_strategy": "SPREAD", **resources}
        actor_class: Any = ray.remote(actor).options(**options)
        self.actors = [actor_class.remote(job, threads, *args) for _ in range(count)]

    def pids(self) -> list[int]:
        return ray.get([actor.pid.remote() for actor in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
