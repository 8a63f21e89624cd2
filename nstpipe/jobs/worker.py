"""A worker: loads its mode's painter (VGG19, the style targets) once, then paints a few inputs per call.

The local executor runs one in-process; the Ray executor wraps the same class in actors.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from nstpipe.config import Settings
from nstpipe.engine.device import resolve_batch, run_or_split
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS
from nstpipe.engine.painters import PhotoPainter
from nstpipe.engine.stylize import Result
from nstpipe.engine.tensors import to_rgb8
from nstpipe.engine.vgg import VGGFeatures
from nstpipe.errors import InputError, NstpipeError, is_passing, os_reason
from nstpipe.events import EventSink, ImageTask, TaskResult
from nstpipe.jobs.plan import source_identity
from nstpipe.jobs.records import ImageJob, photo_record, renew_reading, same_reading
from nstpipe.media.writer import BeforePublish, read_record, write_image, write_png
from nstpipe.modes import spec_of
from nstpipe.modes.model import encoder, photo_pixels, read_image, read_photo


def read_unchanged(
    path: Path, long_side: int, max_pixels: int, tries: int = 2, own_size: bool = False
) -> tuple[torch.Tensor, dict[str, int], str]:
    """Decode ``path`` together with the identity of the very bytes decoded and the hash of
    the pixels the reader gave (see :func:`~nstpipe.jobs.records.photo_record`); at
    ``long_side``, or with ``own_size`` at its own size, at most ``long_side``.

    The identity is taken before and after decoding; if they differ (an editor saving, a
    copy still arriving), the read is tried again, and an input still changing is reported.
    So a resume record never vouches for content other than what was stylized; a change
    after the read makes the record stale and the next run redoes the file.
    """
    for _ in range(tries):
        try:
            before = source_identity(path)
            image, pixels = read_photo(path, long_side, max_pixels, own_size)
            if source_identity(path) == before:
                return image, before, pixels
        except OSError as exc:  # vanished between two looks, or its folder shut
            raise InputError(path, os_reason(exc) or exc.strerror or str(exc), lasting=not is_passing(exc)) from None
    raise InputError(path, "changed while it was being read (is it still being written?)")


def painted_side(settings: Settings) -> int:
    """The long side a folder's photo is read at (with ``own_size``: at most)."""
    return settings.max_size if settings.own_size else settings.size


def is_done(task: ImageTask, job: ImageJob) -> bool:
    """An output is complete when it carries a record for these settings and this source,
    made from the pixels the reader gives today (see :func:`~nstpipe.jobs.records.same_reading`:
    the photo is decoded again only after a reader revision).

    An output kept after its photo was decoded gets today's revision in its record
    (:func:`~nstpipe.jobs.records.renew_reading`), so that the photo is decoded once per
    revision, not on every run.
    """
    record = read_record(task.output)
    if record is None or record.get("fingerprint") not in (job.fingerprint, job.by_revision):
        return False
    try:
        if record.get("source") != source_identity(task.source):
            return False
    except OSError:
        return False
    settings, decoded = job.settings, []

    def pixels() -> str:
        decoded.append(photo_pixels(task.source, painted_side(settings), settings.max_pixels))
        return decoded[-1]

    try:
        if not same_reading(job, record, pixels):
            return False
    except (NstpipeError, OSError):
        return False  # painted again, where it fails with its reason
    return not decoded or renew_reading(task.output, record)


def build_painter(settings: Settings, styles: Sequence[Path]) -> PhotoPainter:
    """What paints a photo or a frame under ``settings``: the painter of its mode."""
    return spec_of(settings.mode).photo_painter(settings, styles)


def metrics_encoder(settings: Settings, device: torch.device) -> VGGFeatures:
    """The VGG19 that ``nstpipe metrics`` measures with: the benchmarks' layers, max pooling."""
    return encoder(settings, tuple(dict.fromkeys((CONTENT_LAYER, *STYLE_LAYERS))), "max", device)


class ImageWorker:
    def __init__(self, job: ImageJob) -> None:
        self.job = job
        self.painter = build_painter(job.settings, job.styles)
        engine = job.settings.engine
        self.init_image = read_image(Path(engine.init), max_pixels=job.settings.max_pixels) if engine.init_is_file else None

    @functools.cached_property
    def batch(self) -> int:
        """How many tasks a call of :meth:`process_batch` should get (``auto`` resolved here,
        on this worker's device, once the model takes its memory)."""
        settings = self.job.settings
        return resolve_batch(settings.batch, self.painter.device, painted_side(settings), settings.engine)

    def stylize_picture(
        self, content: torch.Tensor, output: Path, callback: EventSink | None = None,
        record: Callable[[Result], BeforePublish] | None = None,
    ) -> Result:
        """Stylize ``content`` (a picture read at the job's size) into ``output``, in any format
        :func:`~nstpipe.media.writer.write_image` knows; ``record``: what writes the output's
        record, from the result, before the output is in place."""
        result = self.painter.run(content, init=self.init_image, callback=callback)
        write_image(output, to_rgb8(result.image), record(result) if record is not None else None)
        return result

    def process_batch(self, tasks: Sequence[ImageTask], callback: EventSink | None = None) -> list[TaskResult]:
        """Stylize several files and write each output atomically; results in task order.

        The pictures of one size are optimized together, as one batch. A bad input becomes
        its own failed result and the others go on; a failed write raises
        :class:`~nstpipe.errors.OutputError`, which stops the run: a full disk is not the
        input's fault, and every later write would fail the same way.
        """
        start = time.perf_counter()
        results: dict[int, TaskResult] = {}
        groups: dict[tuple[int, ...], list[_Loaded]] = {}
        for index, task in enumerate(tasks):
            try:
                settings = self.job.settings
                read = read_unchanged(task.source, painted_side(settings), settings.max_pixels, own_size=settings.own_size)
            except (NstpipeError, OSError) as exc:
                results[index] = _failed(task, exc, start)
                continue
            groups.setdefault(tuple(read[0].shape), []).append(_Loaded(index, task, *read))
        for group in groups.values():
            results.update(self._stylize_group(group, callback, start))
        return [results[index] for index in range(len(tasks))]

    def _stylize_group(self, group: list[_Loaded], callback: EventSink | None, start: float) -> dict[int, TaskResult]:
        """Pictures of one size, together, or one at a time when together they run out of GPU memory."""
        results = run_or_split(group, lambda items: self._stylize_together(items, callback, start))
        return {item.index: result for item, result in zip(group, results)}

    def _stylize_together(self, items: Sequence[_Loaded], callback: EventSink | None, start: float) -> list[TaskResult]:
        try:
            result = self.painter.run(torch.cat([item.content for item in items]), init=self.init_image, callback=callback)
        except (NstpipeError, OSError) as exc:
            # Such as a picture too thin for the layers: the same for every picture of this size.
            return [_failed(item.task, exc, start) for item in items]
        done = []
        for i, item in enumerate(items):
            record = photo_record(self.job, item.identity, item.pixels)
            write_png(item.task.output, to_rgb8(result.image[i]), record)
            done.append(TaskResult(item.task, True, iterations=result.item_iterations[i], seconds=time.perf_counter() - start))
        return done


@dataclass(frozen=True)
class _Loaded:
    """A task whose input was read: where it stands among the tasks, its pixels, its
    identity, and the hash of what the reader gave."""

    index: int
    task: ImageTask
    content: torch.Tensor
    identity: dict[str, int]
    pixels: str


def _failed(task: ImageTask, exc: Exception, start: float) -> TaskResult:
    """The failed result for ``task``, with a one-line reason that names the file, and
    whether the input itself is at fault (see :class:`~nstpipe.errors.InputError`)."""
    if isinstance(exc, InputError):
        reason = str(exc)
    elif isinstance(exc, OSError):
        reason = f"{exc.filename or task.source}: {os.strerror(exc.errno) if exc.errno else exc}"
    else:
        reason = f"{task.source}: {exc}"
    lasting = exc.lasting if isinstance(exc, InputError) else not is_passing(exc)
    return TaskResult(task, False, reason, seconds=time.perf_counter() - start, lasting=lasting)


WorkerFactory = Callable[[ImageJob], ImageWorker]
