"""The answers of calls to Ray actors, and the errors that mean a call's worker was lost."""

from __future__ import annotations

from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError, RayTaskError, WorkerCrashedError

from pipeline.errors import NstpipeError

# Raised for a call whose worker process died on every try Ray gave it.
WORKER_LOST = (RayActorError, ActorDiedError, ActorUnavailableError, WorkerCrashedError)


def answer(ref: Any) -> Any:
    """``ray.get``, with the project's own errors raised as themselves (one line, as locally)."""
    try:
        return ray.get(ref)
    except RayTaskError as exc:
        if isinstance(exc.cause, NstpipeError):
            raise exc.cause from None  # a bad input or a full disk
        raise
