"""The answers of calls to Ray actors, and the errors that mean a call's worker was lost."""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Generic, TypeVar

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError, RayActorError, RayTaskError, WorkerCrashedError

from nstpipe.errors import ClusterError, NstpipeError

T = TypeVar("T")

# Raised for a call whose worker could not be reached, its node lost (or cut off).
UNREACHABLE = ActorUnavailableError
# Seconds a worker may stay out of reach before its calls go to the others: long enough
# for Ray to notice a lost node (missed heartbeats) and start the worker again elsewhere.
REACH_LIMIT = 120.0

# Raised for a call whose worker process died on every try Ray gave it.
WORKER_LOST = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)


class Start(Generic[T]):
    """What an actor builds as it starts (its painter), or the project's error that stopped it.

    The error is raised by each call, not by the constructor: raised there, it reaches the
    driver as the actor's death, and every input would be charged with a worker that died
    (a style image missing on its node fails them all); raised by a call, :func:`answer`
    gives it as itself, one line that stops the job.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self.error: NstpipeError | None = None
        try:
            self.value: T | None = build()
        except NstpipeError as exc:
            self.value, self.error = None, exc

    def made(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


def answer(ref: Any) -> Any:
    """``ray.get``, with the project's own errors raised as themselves (one line, as locally)."""
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, NstpipeError):
            raise exc.cause from None  # a bad input or a full disk
        raise


# What became of a worker whose call failed as UNREACHABLE.
DIED = "died"  # back, on a node that was never lost: the call's own doing, one try spent
MOVED = "moved"  # back, a node lost meanwhile: its calls go out again, no try counted
GONE = "gone"  # still out of reach: its calls go to the others, and it gets no more


# Seconds the cluster's head has to accept a connection before it is taken for lost.
HEAD_TIMEOUT = 5.0


def check_head() -> None:
    """A :class:`~nstpipe.errors.ClusterError` when the head of the cluster (its GCS) no
    longer answers, the cluster stopped or its machine lost.

    Every call then fails as its worker's death; charged to its inputs, they would all be
    recorded as failed, and a rerun would skip them. Ray's own requests to a lost head
    wait a minute before its client ends the process, so the head is asked directly.
    """
    address = ray.get_runtime_context().gcs_address
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=HEAD_TIMEOUT).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ClusterError(f"lost the Ray cluster at {address} ({reason}): finished outputs are kept, rerun to continue") from None


def alive_nodes() -> set[str]:
    return {node["NodeID"] for node in ray.nodes() if node["Alive"]}


def after_unreachable(actor: Any, nodes: set[str], limit: float = REACH_LIMIT) -> str:
    """:data:`DIED`, :data:`MOVED` or :data:`GONE`, for ``actor`` whose call failed as
    :data:`UNREACHABLE`, of a job that started on ``nodes``.

    When a worker's node is lost, Ray spends the call's retries in a second, before it
    has noticed the loss (by missed heartbeats) and restarted the worker on a node with
    room; the inputs of that call did nothing wrong. A worker process that dies on a call
    can fail the same way, so the worker is waited for (up to ``limit`` seconds), and
    the call charged only when no node was lost meanwhile.
    """
    deadline = time.monotonic() + limit
    while (left := deadline - time.monotonic()) > 0:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=min(left, 10.0))
            return MOVED if nodes - alive_nodes() else DIED
        except UNREACHABLE:
            time.sleep(min(1.0, left))
        except GetTimeoutError:
            continue  # being started again, or waiting for room
        except WORKER_LOST:
            break
    return GONE


def none_left(workers: int) -> ClusterError:
    return ClusterError(f"the cluster lost every worker ({workers}), their nodes out of reach for {REACH_LIMIT:.0f} s")
