"""One picture: a photo painted by any mode that reads one, or pictures from a size alone."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from nstpipe.app.checks import check_inputs, check_name_fits, check_output, check_writable, protected
from nstpipe.app.naming import default_image_output
from nstpipe.app.sizes import chosen, photo_settings
from nstpipe.config import Settings
from nstpipe.engine.stylize import Result
from nstpipe.errors import InputError, TooThinError
from nstpipe.events import EventSink, JobPlanned, Kept
from nstpipe.jobs.records import ImageJob, beside_record, job_finished, make_job, output_record, photo_record, recorded, same_reading
from nstpipe.jobs.worker import ImageWorker, read_unchanged
from nstpipe.media.lock import output_lock
from nstpipe.media.writer import BeforePublish, check_encodable, clean_output_leftovers, image_format, write_image
from nstpipe.modes import spec_of


def paint_picture(
    content: Path, styles: Sequence[Path], output: Path | None, settings: Settings, report: EventSink, overwrite: bool = False,
    size_from_device: bool = False,
) -> tuple[Path, bool]:
    """Paint ``content`` into ``output`` (by default beside it, named after the styles);
    False when ``output`` was already made with these settings from this photo, and is kept.
    ``size_from_device``: no --size was given (see :func:`~nstpipe.app.sizes.photo_settings`)."""
    target = output or default_image_output(content, styles, settings.mode)
    image_format(target)  # the suffix names a format nstpipe writes, before any work
    check_name_fits(target)
    settings, own = photo_settings(settings, content, size_from_device)
    check_inputs(styles, settings)
    check_output(target, protected(styles, settings, content), overwrite)
    with output_lock(target):  # before the clean-up: another run's temp files are its own
        return locked_picture(content, styles, target, settings, own, report)


def locked_picture(
    content: Path, styles: Sequence[Path], target: Path, settings: Settings, own: tuple[int, int] | None, report: EventSink
) -> tuple[Path, bool]:
    """:func:`paint_picture` once its checks are passed and its output's lock is held."""
    picture, source, pixels = read_unchanged(content, settings.size, settings.max_pixels)
    job = make_job(settings, list(styles))
    # The photo by its path too: two photos of one size and time (a zip's, a copy's) are
    # not the same photo.
    made_from = {"source": source, "input": str(content.resolve())}
    # Before the check: a run killed while writing other settings' output left its temp
    # file, which a kept output would otherwise leave there for good.
    clean_output_leftovers(target)
    if kept_picture(target, job, made_from, pixels):
        report(Kept(target))
        return target, False
    check_writable(target.parent)
    check_encodable(target, picture.shape[-1], picture.shape[-2])
    report(chosen(settings, f"{picture.shape[-1]}x{picture.shape[-2]}", target, own=own))
    report(JobPlanned(1))
    worker = ImageWorker(job)
    start = time.perf_counter()

    def record(result: Result) -> BeforePublish:
        outcome = {"iterations": result.iterations, "seconds": round(time.perf_counter() - start, 3), "loss": result.loss}
        fields = {**photo_record(job, source, pixels), **made_from}
        return recorded(target, output_record(job, worker.painter.device, worker.painter.precision, outcome, **fields))

    try:
        worker.stylize_picture(picture, target, callback=report, record=record)
    except TooThinError as exc:
        raise InputError(content, str(exc)) from None
    return target, True


def kept_picture(target: Path, job: ImageJob, made_from: Mapping[str, Any], pixels: str) -> bool:
    """Whether ``target`` was made with these settings from this photo as the reader gives
    it today (:func:`~nstpipe.jobs.records.same_reading`; the photo is decoded anyway, so
    its record is left as it is)."""
    record = beside_record(target)
    return record is not None and all(record.get(k) == v for k, v in made_from.items()) and same_reading(job, record, lambda: pixels)


def paint_canvas(
    styles: Sequence[Path], output: Path | None, settings: Settings, report: EventSink, overwrite: bool = False
) -> tuple[list[Path], bool]:
    """The pictures of a mode without an input (a texture, a visualization), optimized
    together, into the files its canvas names; all kept (False) when each was made
    earlier with these settings."""
    spec = spec_of(settings.mode)
    canvas = spec.canvas
    assert canvas is not None, f"{spec.name} paints from an input"
    target = output or canvas.default_output(styles, settings)
    image_format(target)  # the suffix names a format nstpipe writes, before any work
    check_inputs(styles, settings)
    outputs = canvas.outputs(target, settings)
    for path, _ in outputs:
        check_name_fits(path)
        check_output(path, protected(styles, settings), overwrite)
    with contextlib.ExitStack() as held:
        for path, _ in outputs:
            held.enter_context(output_lock(path))
        return locked_canvas(styles, target, outputs, settings, report)


def locked_canvas(
    styles: Sequence[Path], target: Path, outputs: Sequence[tuple[Path, Mapping[str, Any]]], settings: Settings, report: EventSink
) -> tuple[list[Path], bool]:
    """:func:`paint_canvas` once its checks are passed and its outputs' locks are held."""
    spec = spec_of(settings.mode)
    canvas = spec.canvas
    assert canvas is not None
    job = make_job(settings, list(styles))
    paths = [path for path, _ in outputs]
    for path in paths:  # before the check, as for a picture (see paint_picture)
        clean_output_leftovers(path)
    if all(job_finished(path, job, identity) for path, identity in outputs):
        for path in paths:
            report(Kept(path))
        return paths, False
    check_writable(target.parent)
    height, width, count = canvas.size(settings)
    for path in paths:
        check_encodable(path, width, height)
    shown = target if len(outputs) == 1 else target.with_name(f"{target.stem}-{{0..{len(outputs) - 1}}}{target.suffix}")
    report(chosen(settings, f"{width}x{height}", shown, count, "pictures"))
    report(JobPlanned(count))
    painter = spec.canvas_painter(settings, job.styles)
    start = time.perf_counter()
    result = painter.run((height, width), count, callback=report)
    made = canvas.finish(result, settings, time.perf_counter() - start)
    for (path, identity), (picture, fields) in zip(outputs, made):
        record = output_record(job, painter.device, painter.precision, fields.pop("result"), **identity, **fields)
        write_image(path, picture, recorded(path, record))
    return paths, True

