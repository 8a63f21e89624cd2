"""The driver behind the commands: check everything up front, plan, execute, record.

Bad styles, an unwritable output and unknown settings fail here before any work starts.
Events go to a ``report`` callable (the CLI's progress bar); nothing is printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from pipeline import __version__
from pipeline.config import Settings
from pipeline.engine.device import resolve_device, visible_gpus
from pipeline.errors import InputError
from pipeline.events import EventSink, FrameDone, JobPlanned, Skipped, VideoPlanned
from pipeline.run.executor import Executor, LocalExecutor, Summary
from pipeline.jobs.failures import clear_failure, failed_before, record_failure
from pipeline.media.framestore import FrameStore
from pipeline.media.imaging import read_image, read_rgb
from pipeline.engine.metrics import VideoMetrics, video_metrics
from pipeline.jobs.plan import Chunk, ImageTask, plan_chunks, plan_images
from pipeline.media.video import probe, read_frames, temp_tag
from pipeline.jobs.video_job import FramesSummary, VideoJob, count_done, encode, make_video_job, output_frame_size, video_batch
from pipeline.jobs.worker import ImageJob, ImageWorker, TaskResult, is_done, make_job, metrics_encoder
from pipeline.media.writer import atomic_write_json, clean_temp_files

SETTINGS_FILE = "nstpipe-settings.json"
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov")


@dataclass
class FolderOutcome:
    done: int = 0
    skipped: int = 0
    failed: list[TaskResult] = field(default_factory=list)
    failed_before: list[Skipped] = field(default_factory=list)


def check_inputs(styles: Sequence[Path], settings: Settings) -> None:
    """Fail before any work on a missing or unreadable style or init image."""
    if not styles:
        raise InputError("--style", "at least one style image is needed")
    for path in styles:
        read_rgb(path, draft_side=64, max_pixels=settings.max_pixels)
    if settings.engine.init_is_file:
        read_rgb(Path(settings.engine.init), draft_side=64, max_pixels=settings.max_pixels)


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nstpipe-tmp-"):
            pass
    except OSError as exc:
        raise InputError(folder, f"output folder is not writable ({exc.strerror or exc})") from None


def settings_record(job: ImageJob, device: str) -> dict[str, object]:
    settings = job.settings.to_dict()
    settings["device"] = device  # what "auto" resolved to
    return {
        "nstpipe": __version__,
        "fingerprint": job.fingerprint,
        "styles": [str(p) for p in job.styles],
        "settings": settings,
    }


def stylize_one(content: Path, styles: Sequence[Path], output: Path, settings: Settings, report: EventSink) -> None:
    check_inputs(styles, settings)
    read_rgb(content, draft_side=64, max_pixels=settings.max_pixels)
    check_writable(output.parent)
    job = make_job(settings, list(styles))
    worker = ImageWorker(job)
    start = time.perf_counter()
    result = worker.stylize_file(content, output, callback=report)
    seconds = time.perf_counter() - start
    record = settings_record(job, str(worker.stylizer.device))
    record["settings"]["precision"] = worker.stylizer.precision  # what "auto" chose, like the device
    record["result"] = {"iterations": result.iterations, "seconds": round(seconds, 3), "loss": result.loss}
    atomic_write_json(output.with_name(output.stem + ".settings.json"), record)


@contextlib.contextmanager
def open_executor(workers: int | None = None, address: str | None = None) -> Iterator[Executor]:
    """Ray actors when there is more than one worker or a cluster; else this process.

    One worker on one machine gains nothing from Ray but its start-up time (seconds), so
    that case runs in-process; everything else (``--workers N``, several GPUs,
    ``--address`` or ``RAY_ADDRESS``) goes through Ray.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None and (workers or max(1, visible_gpus())) == 1:
        yield LocalExecutor()
        return
    from pipeline.run.ray_executor import RayExecutor, ray_session

    with ray_session(address):
        executor = RayExecutor(workers)
        try:
            yield executor
        finally:
            executor.close()


def stylize_folder(
    folder: Path,
    styles: Sequence[Path],
    output: Path,
    settings: Settings,
    report: EventSink,
    executor: Executor | None = None,
    retry_failed: bool = False,
) -> FolderOutcome:
    """Stylize every image under ``folder`` into ``output``, skipping finished ones.

    Inputs that failed in an earlier run are skipped too (see :mod:`pipeline.jobs.failures`)
    unless ``retry_failed``; each new failure is recorded the moment it is reported.
    """
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    check_inputs(styles, settings)
    check_writable(output)
    job = make_job(settings, list(styles))
    report(JobPlanned(sum(1 for _ in plan_images(folder, output))))  # also refuses output == input
    atomic_write_json(output / SETTINGS_FILE, settings_record(job, str(resolve_device(settings.device))))
    outcome = FolderOutcome()

    limits = {"max_pixels": settings.max_pixels}

    def todo() -> Iterator[ImageTask]:
        cleaned: set[Path] = set()
        for task in plan_images(folder, output):
            if task.output.parent not in cleaned:
                clean_temp_files(task.output.parent)
                cleaned.add(task.output.parent)
            if is_done(task, job.fingerprint):
                outcome.skipped += 1
                report(Skipped(task))
                continue
            # Looked up only for inputs without an output: a resume of a big archive
            # should not probe a failure record beside every finished output.
            reason = None if retry_failed else failed_before(task, job.fingerprint, limits)
            if reason is not None:
                outcome.failed_before.append(Skipped(task, reason))
                report(outcome.failed_before[-1])
            else:
                yield task

    def record(event: object) -> None:
        if isinstance(event, TaskResult):
            if event.ok:
                clear_failure(event.task)
            else:
                record_failure(event.task, job.fingerprint, event.error or "failed", limits)
        report(event)

    summary: Summary = (executor or LocalExecutor()).run_images(job, todo(), record)
    outcome.done = summary.done
    outcome.failed = summary.failed
    return outcome


def default_work_dir(output: Path) -> Path:
    return output.with_name(output.name + ".nstpipe-work")


def stylize_video(
    source: Path,
    styles: Sequence[Path],
    output: Path,
    settings: Settings,
    report: EventSink,
    work_dir: Path | None = None,
    limit: int | None = None,
    keep_frames: bool = False,
    executor: Executor | None = None,
) -> FramesSummary:
    """Stylize ``source`` into ``output`` (H.264 MP4), resuming from the work folder.

    ``limit`` stylizes only the first frames (a preview). The frames are split into
    ``batch`` chains per worker of ``executor`` (see :func:`~pipeline.jobs.plan.plan_chunks`),
    each worker painting its chains in step; the split is saved in the manifest and kept
    on a rerun, whatever the number of workers or the batch then.
    The frames stay in the work folder until the video is published; then they are
    removed unless ``keep_frames``.
    """
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(output, f"the output is H.264 in MP4: name it {' or '.join(VIDEO_SUFFIXES)}")
    check_inputs(styles, settings)
    info = probe(source)  # a missing, empty or corrupt file fails here, before any work
    check_frame_size(source, info.height, info.width, settings)
    check_writable(output.parent)
    if output.resolve() == source.resolve():
        raise InputError(output, "the output would overwrite the input video")
    clean_temp_files(output.parent, temp_tag(output))  # a video a killed run was encoding
    executor = executor or LocalExecutor()
    job = make_video_job(settings, list(styles), source, info)
    store = FrameStore(work_dir or default_work_dir(output), job.fingerprint)
    check_writable(store.root.parent)
    frames = info.frame_count if limit is None else min(limit, info.frame_count)
    batch = video_batch(settings, info)
    chunks = saved_chunks(store, frames) or plan_chunks(frames, executor.parallelism() * batch)
    manifest = video_manifest(job, str(resolve_device(settings.device)), batch)
    store.open({**manifest, "frames": frames, "chunks": [dataclasses.astuple(c) for c in chunks]})
    report(VideoPlanned(frames, count_done(store, frames)))
    summary = executor.run_video(job, store, chunks, report, batch)
    encode(job, store, frames, output, report, full=frames == info.frame_count)
    if not keep_frames:
        store.remove()
    return summary


def check_frame_size(source: Path, height: int, width: int, settings: Settings) -> None:
    """A frame too thin for the VGG19 layers fails before any work, naming the video."""
    h, w = output_frame_size(height, width, settings)
    need = settings.engine.min_side
    if min(h, w) < need:
        raise InputError(source, f"frames of {w}x{h} at --size {settings.size} are too thin: the VGG19 layers used need at least {need} pixels on each side (raise --size)")


def saved_chunks(store: FrameStore, frames: int) -> list[Chunk] | None:
    """The split of an earlier run over the same frames, so that a resume continues it."""
    manifest = store.manifest() or {}
    if manifest.get("frames") != frames:
        return None
    try:
        return [Chunk(*map(int, c)) for c in manifest["chunks"]]
    except (KeyError, TypeError, ValueError):
        return None


def video_manifest(job: VideoJob, device: str, batch: int) -> dict[str, object]:
    record = settings_record(make_job(job.settings, list(job.styles)), device)
    record["settings"]["batch"] = batch  # type: ignore[index]  # what "auto" chose, like the device
    record.pop("fingerprint")  # the image fingerprint; the store writes the video job's
    record["input"] = {"path": str(job.source.resolve()), **dataclasses.asdict(job.info), "fps": str(job.info.fps)}
    return record


def measure_video(
    source: Path,
    stylized: Path,
    style: Path | None,
    settings: Settings,
    report: EventSink,
) -> VideoMetrics:
    """``nstpipe metrics``: E_warp of ``stylized`` and of ``source``, and per-frame distances."""
    source_info, stylized_info = probe(source), probe(stylized)
    style_image = read_image(style) if style is not None else None
    device = resolve_device(settings.device)
    encoder = metrics_encoder(settings, device)
    if stylized_info.frame_count > source_info.frame_count:
        raise InputError(stylized, f"has {stylized_info.frame_count} frames, the source only {source_info.frame_count}")
    # A preview (nstpipe video --frames N) is compared with the first N source frames.
    frames = stylized_info.frame_count
    report(VideoPlanned(frames, 0))
    try:
        return video_metrics(
            encoder,
            (f.rgb for f in itertools.islice(read_frames(source), frames)),
            (f.rgb for f in read_frames(stylized)),
            style_image.to(device) if style_image is not None else None,
            on_frame=lambda frame: report(FrameDone(frame.index, 0, 0.0)),
        )
    except ValueError:
        # zip(strict=True): one stream ended early although both containers counted more.
        raise InputError(stylized, "the frames of the two videos could not all be decoded (corrupt?)") from None
