"""Choosing the torch device, and how many pictures it optimizes at once."""

from __future__ import annotations

import gc
from typing import Callable, Sequence, TypeVar

import torch

from nstpipe.config import EngineConfig, parse_memory
from nstpipe.engine.memory import image_memory
from nstpipe.errors import ConfigError

MAX_AUTO_BATCH = 8
# The share of the free GPU memory an automatic batch may plan to fill; the rest is the
# margin for what the estimate leaves out (the allocator's slack, cuDNN workspaces, the
# style and content targets) and for other users of the GPU.
BATCH_MEMORY_SHARE = 0.75

Item = TypeVar("Item")
Out = TypeVar("Out")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must exist on this machine."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"setting 'device': unknown device {name!r}", "device") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"setting 'device': {name} asked for but CUDA is not available", "device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"setting 'device': {name} asked for but only {torch.cuda.device_count()} GPU(s) visible", "device")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"setting 'device': {name} asked for but MPS is not available", "device")
    return device


def visible_gpus() -> int:
    """CUDA GPUs this process sees (Ray schedules workers on CUDA GPUs only, not MPS)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pin_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads (None: leave torch's default)."""
    if threads:
        torch.set_num_threads(threads)


def resolve_batch(batch: int, device: torch.device, side: int, config: EngineConfig) -> int:
    """``batch``, or for 0 (auto) the batch size this device is best served by.

    A CPU or MPS iteration is bound by arithmetic already at one picture, so batching
    gains nothing there; a GPU is fed better the more pictures share its passes, as many
    as its free memory holds.
    """
    if batch:
        return batch
    if device.type != "cuda":
        return 1
    free, _ = torch.cuda.mem_get_info(device)
    given = parse_memory(config.max_memory)  # the run's budget, where one is given, bounds the batch too
    return batch_for_memory(free if given is None else min(free, int(given / BATCH_MEMORY_SHARE)), image_memory(side, config))


def batch_for_memory(free_bytes: int, per_image: int, most: int = MAX_AUTO_BATCH) -> int:
    """How many pictures of ``per_image`` bytes fit in ``free_bytes``, margin kept: 1 to ``most``."""
    return max(1, min(most, int(free_bytes * BATCH_MEMORY_SHARE) // max(1, per_image)))


def free_after_oom() -> None:
    """Give back the memory of a batch that ran out of GPU memory, before it is retried smaller.

    Callers call this after their ``except`` block, never inside it: while the handler
    runs, the exception's traceback holds the frames of the failed run and with them every
    activation it made, so a retry from inside the handler starts with the GPU as full as
    when it failed. tests/jobs/test_worker.py and tests/engine/test_temporal.py check where the retry
    runs; tests/engine/test_cuda.py runs out of real GPU memory.
    """
    gc.collect()  # whatever of the failed run sits in reference cycles
    if torch.cuda.is_initialized():  # type: ignore[no-untyped-call]  # unannotated in torch
        torch.cuda.empty_cache()


def run_or_split(items: Sequence[Item], run: Callable[[Sequence[Item]], list[Out]]) -> list[Out]:
    """``run(items)``, or, when that runs out of GPU memory, ``run`` on each item alone.

    The memory estimate behind an automatic batch can be too hopeful for a GPU (or another
    process took memory since); the items then go one at a time, after
    :func:`free_after_oom`. A single item that runs out of memory raises: there is
    nothing smaller to try, and the run stops.
    """
    try:
        return run(items)
    except torch.cuda.OutOfMemoryError:
        if len(items) == 1:
            raise
    free_after_oom()  # here, after the handler (see there)
    return [out for item in items for out in run([item])]
