"""Choosing the torch device."""

from __future__ import annotations

import torch

from pipeline.errors import ConfigError


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
        raise ConfigError(f"setting 'device': unknown device {name!r}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"setting 'device': {name} asked for but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"setting 'device': {name} asked for but only {torch.cuda.device_count()} GPU(s) visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"setting 'device': {name} asked for but MPS is not available")
    return device


def visible_gpus() -> int:
    """CUDA GPUs this process sees (Ray schedules workers on CUDA GPUs only, not MPS)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pin_threads(threads: int | None) -> None:
    """Give torch ``threads`` CPU threads (None: leave torch's default)."""
    if threads:
        torch.set_num_threads(threads)
