"""The size a picture or a video is painted at: the device's default, the cap, and the opening
line's estimate of what the input's own size would cost on a CPU."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nstpipe.config import MIN_SIZE, Settings, half_size_read
from nstpipe.engine.device import resolve_device
from nstpipe.engine.features import resolve_precision
from nstpipe.engine.memory import pass_flops
from nstpipe.errors import ConfigError
from nstpipe.events import Chosen
from nstpipe.media.imaging import shown_size
from nstpipe.media.video import VideoInfo

# Seconds per megapixel per optimizer step on a CPU of two cores, fp32, one pass over the
# whole picture (`python -m bench tiles --parts speed`, untiled_s_per_mp_it): a rough guide
# for the opening line, which says "about"; tiles at large sizes cost more.
CPU_SECONDS_PER_MEGAPIXEL_STEP = 8.4


def cpu_estimate(own: tuple[int, int], settings: Settings) -> str:
    """About how long painting the input at its own size (``--size`` its long side) would take here."""
    engine = settings.engine
    steps = engine.iterations + engine.coarse_iterations * (engine.scales - 1) / 4
    if engine.half_size_style:
        # One more pass at every step, over a quarter of the pixels, through the deepest layer it reads.
        steps *= 1 + pass_flops(half_size_read(engine)) / (4 * pass_flops(engine.layers))
    seconds = CPU_SECONDS_PER_MEGAPIXEL_STEP * own[0] * own[1] / 1e6 * steps
    hours = seconds / 3600
    took = f"{hours:.0f} h" if hours >= 1 else f"{max(1.0, seconds / 60):.0f} min"
    return f"--size {max(own)} would take about {took}"


def capped(settings: Settings, size_from_device: bool) -> Settings:
    """A --size above ``max_size`` is refused in one line; a preset's is brought down to it."""
    if settings.size <= settings.max_size:
        return settings
    if not size_from_device:
        above = f"{settings.size} is above max_size {settings.max_size} (raise --max-size to paint larger)"
        raise ConfigError(f"setting 'size': {above}", "size")
    return dataclasses.replace(settings, size=settings.max_size)


def on_gpu(settings: Settings) -> bool:
    return resolve_device(settings.device).type in ("cuda", "mps")


def photo_settings(settings: Settings, source: Path, size_from_device: bool) -> tuple[Settings, tuple[int, int] | None]:
    """The settings a photo is painted with, and its own (width, height) where its header says.
    Without --size (``size_from_device``), a GPU (CUDA, MPS) paints it at its own size, at
    most ``max_size``; a CPU at the preset's, which is quicker by far."""
    own = shown_size(source)
    settings = capped(settings, size_from_device)
    if size_from_device and own is not None and on_gpu(settings):
        settings = dataclasses.replace(settings, size=max(MIN_SIZE, min(max(own), settings.max_size)))
    return settings, own


def folder_settings(settings: Settings, size_from_device: bool) -> Settings:
    """Without --size, a GPU (CUDA, MPS) paints each picture of a folder at its own size, at
    most ``max_size``."""
    settings = capped(settings, size_from_device)
    if size_from_device and on_gpu(settings):
        settings = dataclasses.replace(settings, own_size=True)
    return settings


def video_settings(settings: Settings, info: VideoInfo, size_from_device: bool) -> Settings:
    """The settings a video is painted with. Without --size (``size_from_device``), the size
    follows the device of the machine running nstpipe: on a GPU (CUDA, MPS) the video's own
    long side, at most ``max_size`` (tiles keep its memory in the budget); elsewhere the
    preset's, never above the video's own. Decided once, by the driver, so that the
    fingerprint, the manifest and the record hold the size painted (another machine may
    decide otherwise, and then paints anew)."""
    settings = capped(settings, size_from_device)
    if not size_from_device:
        return settings
    most = settings.max_size if on_gpu(settings) else settings.size
    return dataclasses.replace(settings, size=max(MIN_SIZE, min(max(info.width, info.height), most)))


def chosen(
    settings: Settings, size: str, output: Path | None, count: int | None = None, unit: str = "", own: tuple[int, int] | None = None
) -> Chosen:
    """The line of what a command chose: the size, the device and the arithmetic ``auto`` gave;
    ``own``: the input's own (width, height), named beside the size painted, with, on a CPU,
    about how long that size would take."""
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.engine.precision, device)
    source = f"{own[0]}x{own[1]}" if own is not None else ""
    estimate = cpu_estimate(own, settings) if own is not None and device.type == "cpu" and max(own) > settings.size else ""
    return Chosen(size, str(device), precision, output, count, unit, source, estimate)
