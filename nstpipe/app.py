"""The driver behind the commands: check everything up front, plan, execute, record.

Bad styles, an unwritable output, an output that would replace a file nstpipe did not
make, and unknown settings fail here before any work starts. Events go to a ``report``
callable (the CLI's progress display); nothing is printed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from PIL import Image

from nstpipe import __version__
from nstpipe.config import MIN_SIZE, Settings, texture_size
from nstpipe.engine.device import resolve_device, visible_gpus
from nstpipe.engine.metrics import VideoMetrics, video_metrics
from nstpipe.engine.stylize import resolve_precision
from nstpipe.engine.tensors import to_rgb8
from nstpipe.errors import ConfigError, InputError
from nstpipe.events import Chosen, EventSink, FrameDone, JobPlanned, Kept, Skipped, VideoPlanned
from nstpipe.jobs.failures import clear_failure, failed_before, record_failure
from nstpipe.jobs.plan import VIDEO_SUFFIXES as VIDEO_INPUT_SUFFIXES
from nstpipe.jobs.plan import Chunk, ImageTask, plan_chunks, plan_images, plan_videos, source_identity
from nstpipe.jobs.video_job import FramesSummary, VideoJob, count_done, encode, make_video_job, output_frame_size, video_batch
from nstpipe.jobs.worker import (
    ImageJob,
    ImageWorker,
    TaskResult,
    build_texturer,
    build_visualizer,
    is_done,
    make_job,
    metrics_encoder,
    read_unchanged,
)
from nstpipe.media.framestore import FrameStore
from nstpipe.media.imaging import is_still_image, read_image, read_rgb
from nstpipe.media.plot import plot_format, plot_warping_error
from nstpipe.media.sheet import contact_sheet
from nstpipe.media.video import VIDEO_CONTAINERS, VideoInfo, probe, read_frames, temp_tag
from nstpipe.media.writer import (
    IMAGE_FORMATS,
    atomic_write_json,
    check_encodable,
    clean_temp_files,
    image_format,
    read_record,
    record_path,
    write_image,
)
from nstpipe.run.executor import Executor, LocalExecutor, Summary

if TYPE_CHECKING:
    import torch

SETTINGS_FILE = "nstpipe-settings.json"
VIDEO_SUFFIXES = tuple(VIDEO_CONTAINERS)


@dataclass
class FolderOutcome:
    done: int = 0
    skipped: int = 0
    failed: list[TaskResult] = field(default_factory=list)
    failed_before: list[Skipped] = field(default_factory=list)


def check_inputs(styles: Sequence[Path], settings: Settings) -> None:
    """Fail before any work on a missing or unreadable style or init image, or on blend
    weights that do not match the style images."""
    if settings.mode == "dream":
        if len(styles) > 1:
            raise InputError("--guide", "a dream takes one guide image at most")
    elif not styles:
        raise InputError("--style", "at least one style image is needed")
    blend = settings.engine.style_blend
    if blend and len(blend) != len(styles):
        raise ConfigError(f"setting 'style_blend': {len(blend)} weights for {len(styles)} style image(s)", "style_blend")
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


def protected(styles: Sequence[Path], settings: Settings, *inputs: Path) -> dict[str, list[Path]]:
    """The files a command reads, by what they are to it: an output must not replace them."""
    files = {"input": list(inputs), "guide image" if settings.mode == "dream" else "style image": list(styles)}
    if settings.engine.init_is_file:
        files["init image"] = [Path(settings.engine.init)]
    return files


def check_output(output: Path, inputs: Mapping[str, Sequence[Path]], overwrite: bool) -> None:
    """Refuse, before any work, an output that would replace one of ``inputs`` or a file
    nstpipe did not make; ``overwrite`` (``-y``, as in ffmpeg) lifts both."""
    if output.is_dir():
        raise InputError(output, "is a folder; name the output file")
    if overwrite or not os.path.lexists(output):
        return
    advice = "give another -o, or -y to replace it"
    for what, paths in inputs.items():
        if any(_same_file(output, path) for path in paths):
            raise InputError(output, f"is the {what}; the output would replace it ({advice})")
    if not made_by_nstpipe(output):
        raise InputError(output, f"exists and was not made by nstpipe ({advice})")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def made_by_nstpipe(path: Path) -> bool:
    """Whether nstpipe wrote the file now at ``path``: a PNG that carries its record (the
    outputs of ``images``), or a file whose record beside it vouches for these very bytes
    (``image`` and ``video``)."""
    return read_record(path) is not None or beside_record(path) is not None


def beside_record(output: Path) -> dict[str, Any] | None:
    """The settings record beside ``output``, if it was written for the file now there
    (same size and modification time): a file edited or replaced since is not nstpipe's."""
    try:
        record = json.loads(record_path(output).read_text(encoding="utf-8"))
        return record if record["output"] == source_identity(output) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def finished(output: Path, identity: Mapping[str, Any]) -> bool:
    """Whether ``output`` is nstpipe's and was made with exactly ``identity`` (fingerprint,
    source, and what else the command records), so that a rerun keeps it."""
    record = beside_record(output)
    return record is not None and all(record.get(key) == value for key, value in identity.items())


def style_tag(styles: Sequence[Path], mode: str = "style") -> str:
    """What a default output name says of how it was painted: ``monet``, ``monet+klimt``;
    ``dream``, or ``dream-clouds`` for a dream guided by ``clouds.jpg``."""
    if mode == "dream":
        return "-".join(["dream", *(path.stem for path in styles)])
    return "+".join(path.stem for path in styles)


def default_image_output(content: Path, styles: Sequence[Path], mode: str = "style") -> Path:
    """``photo.monet.jpg`` beside ``photo.jpg``: the photo's format where nstpipe writes it, else PNG."""
    suffix = content.suffix if content.suffix.lower() in IMAGE_FORMATS else ".png"
    return content.with_name(f"{content.stem}.{style_tag(styles, mode)}{suffix}")


def default_folder_output(folder: Path, styles: Sequence[Path], mode: str = "style") -> Path:
    """``photos.monet/`` beside the folder ``photos/``."""
    named = folder if folder.name not in ("", ".", "..") else Path(os.path.abspath(folder))
    return named.with_name(f"{named.name}.{style_tag(styles, mode)}")


def default_video_output(source: Path, styles: Sequence[Path], mode: str = "style") -> Path:
    return source.with_name(f"{source.stem}.{style_tag(styles, mode)}.mp4")


def input_kind(source: Path) -> str:
    """``folder``, ``image`` or ``video``: what ``nstpipe dream`` was given (a missing or
    unreadable file is named as such)."""
    if source.is_dir():
        return "folder"
    if not source.exists():
        raise InputError(source, "no such file or folder")
    return "image" if is_still_image(source) else "video"


def settings_record(job: ImageJob, device: str, precision: str | None = None) -> dict[str, object]:
    settings = job.settings.to_dict()
    settings["device"] = device  # what "auto" chose
    if precision is not None:
        settings["precision"] = precision  # what "auto" chose, like the device
    return {
        "nstpipe": __version__,
        "fingerprint": job.fingerprint,
        "styles": [str(p) for p in job.styles],
        "settings": settings,
    }


def write_output_record(
    output: Path, job: ImageJob, device: torch.device, precision: str, result: Mapping[str, object], **fields: object
) -> None:
    """The record beside a single output (``image``, ``texture``, ``visualize``): the settings
    with what ``auto`` chose, the run's result, and the output's identity, by which a rerun
    knows the file as nstpipe's own (:func:`made_by_nstpipe`)."""
    record = settings_record(job, str(device), precision)
    record["result"] = dict(result)
    record.update(fields, output=source_identity(output))
    atomic_write_json(record_path(output), record)


def chosen(
    settings: Settings, size: str, output: Path | None, count: int | None = None, unit: str = "", own: tuple[int, int] | None = None
) -> Chosen:
    """What the opening line says; ``own``: the input's own (width, height), named beside the
    size painted, with, on a CPU, about how long that size would take."""
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.engine.precision, device)
    source = f"{own[0]}x{own[1]}" if own is not None else ""
    estimate = cpu_estimate(own, settings) if own is not None and device.type == "cpu" and max(own) > settings.size else ""
    return Chosen(size, str(device), precision, output, count, unit, source, estimate)


# Seconds per megapixel per optimizer step on a CPU of two cores (bench tiles, s_per_mp_it,
# tiled): a rough guide for the opening line, which says "about".
CPU_SECONDS_PER_MEGAPIXEL_STEP = 60.0


def cpu_estimate(own: tuple[int, int], settings: Settings) -> str:
    """About how long painting the input at its own size (``--size`` its long side) would take here."""
    steps = settings.engine.iterations + settings.engine.coarse_iterations * (settings.engine.scales - 1) / 4
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


def photo_settings(settings: Settings, source: Path, size_from_device: bool) -> tuple[Settings, tuple[int, int] | None]:
    """The settings a photo is painted with, and its own (width, height) where its header says.
    Without --size (``size_from_device``), a GPU (CUDA, MPS) paints it at its own size, at
    most ``max_size``; a CPU at the preset's, which is quicker by far."""
    try:
        with Image.open(source) as img:
            turned = img.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientation: shown a quarter turn round
            own: tuple[int, int] | None = (img.height, img.width) if turned else img.size
    except (OSError, ValueError, Image.DecompressionBombError):
        own = None  # the read proper names the file and the reason
    settings = capped(settings, size_from_device)
    if size_from_device and own is not None and resolve_device(settings.device).type in ("cuda", "mps"):
        settings = dataclasses.replace(settings, size=max(MIN_SIZE, min(max(own), settings.max_size)))
    return settings, own


def stylize_one(
    content: Path, styles: Sequence[Path], output: Path, settings: Settings, report: EventSink, overwrite: bool = False,
    size_from_device: bool = False,
) -> bool:
    """Paint ``content`` into ``output``; False when ``output`` was already made with these
    settings from this photo, and is kept. ``size_from_device``: no --size was given (see
    :func:`photo_settings`)."""
    image_format(output)  # the suffix names a format nstpipe writes, before any work
    settings, own = photo_settings(settings, content, size_from_device)
    check_inputs(styles, settings)
    check_output(output, protected(styles, settings, content), overwrite)
    picture, source = read_unchanged(content, settings.size, settings.max_pixels)
    job = make_job(settings, list(styles))
    if finished(output, {"fingerprint": job.fingerprint, "source": source}):
        report(Kept(output))
        return False
    check_writable(output.parent)
    check_encodable(output, picture.shape[-1], picture.shape[-2])
    report(chosen(settings, f"{picture.shape[-1]}x{picture.shape[-2]}", output, own=own))
    report(JobPlanned(1))
    worker = ImageWorker(job)
    start = time.perf_counter()
    result = worker.stylize_picture(picture, output, callback=report)
    seconds = time.perf_counter() - start
    outcome = {"iterations": result.iterations, "seconds": round(seconds, 3), "loss": result.loss}
    write_output_record(output, job, worker.stylizer.device, worker.stylizer.precision, outcome, source=source)
    return True


def default_texture_output(styles: Sequence[Path]) -> Path:
    """``starry.texture.png`` beside the (first) painting ``starry.jpg``."""
    if not styles:
        raise InputError("STYLE", "at least one painting is needed")
    return styles[0].with_name(f"{styles[0].stem}.texture.png")


def texture_outputs(output: Path, count: int) -> list[Path]:
    """The file of each variation: ``output`` for one; ``OUT-0.png``, ``OUT-1.png``... for several."""
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}-{k}{output.suffix}") for k in range(count)]


@dataclass(frozen=True)
class TextureOutcome:
    outputs: list[Path]
    kept: bool = False  # all made earlier with these settings, left as they were


def make_texture(
    styles: Sequence[Path], output: Path, settings: Settings, report: EventSink, overwrite: bool = False
) -> TextureOutcome:
    """``settings.texture.texture_count`` textures of the paintings ``styles`` into ``output``
    (see :func:`texture_outputs`), optimized together; each variation k from seed + k. All
    kept when each was made earlier with these settings."""
    image_format(output)  # the suffix names a format nstpipe writes, before any work
    check_inputs(styles, settings)
    outputs = texture_outputs(output, settings.texture.texture_count)
    for target in outputs:
        check_output(target, protected(styles, settings), overwrite)
    job = make_job(settings, list(styles))
    if all(finished(target, {"fingerprint": job.fingerprint, "variation": k}) for k, target in enumerate(outputs)):
        for target in outputs:
            report(Kept(target))
        return TextureOutcome(outputs, kept=True)
    check_writable(output.parent)
    height, width = texture_size(settings)
    shown = output if len(outputs) == 1 else output.with_name(f"{output.stem}-{{0..{len(outputs) - 1}}}{output.suffix}")
    report(chosen(settings, f"{width}x{height}", shown, len(outputs), "pictures"))
    report(JobPlanned(len(outputs)))
    texturer = build_texturer(settings, job.styles)
    start = time.perf_counter()
    result = texturer.run((height, width), len(outputs), callback=report)
    seconds = time.perf_counter() - start
    for k, target in enumerate(outputs):
        write_image(target, to_rgb8(result.image[k]))
        outcome = {"iterations": result.iterations, "seconds": round(seconds, 3), "loss": result.item_losses[k]}
        write_output_record(target, job, texturer.device, texturer.precision, outcome, variation=k, seed=settings.engine.seed + k)
    return TextureOutcome(outputs)


def default_visualization_output(settings: Settings) -> Path:
    """``relu4_1-7.png`` for one channel, ``relu4_1-0-15.png`` for a range, in the current folder."""
    shown = settings.visualize
    channels = shown.visualize_channels
    span = f"{channels[0]}" if len(channels) == 1 else f"{channels[0]}-{channels[-1]}"
    return Path(f"{shown.visualize_layer}-{span}.png")


def make_visualization(output: Path, settings: Settings, report: EventSink, overwrite: bool = False) -> bool:
    """The channels ``settings.visualize`` names, one picture each from noise, optimized
    together, into ``output``: the picture for one channel, a contact sheet labelled by
    channel for several. False when ``output`` was made earlier with these settings and is kept."""
    image_format(output)  # the suffix names a format nstpipe writes, before any work
    check_output(output, protected((), settings), overwrite)
    job = make_job(settings, [])
    if finished(output, {"fingerprint": job.fingerprint}):
        report(Kept(output))
        return False
    check_writable(output.parent)
    channels = settings.visualize.visualize_channels
    report(chosen(settings, f"{settings.size}x{settings.size}", output, len(channels), "pictures"))
    report(JobPlanned(len(channels)))
    visualizer = build_visualizer(settings)
    start = time.perf_counter()
    result = visualizer.run((settings.size, settings.size), callback=report)
    seconds = time.perf_counter() - start
    pictures = [to_rgb8(result.image[k]) for k in range(len(channels))]
    write_image(output, pictures[0] if len(pictures) == 1 else contact_sheet(pictures, [str(c) for c in channels]))
    outcome = {"iterations": result.iterations, "seconds": round(seconds, 3), "losses": list(result.item_losses)}
    layer = settings.visualize.visualize_layer
    write_output_record(output, job, visualizer.device, visualizer.precision, outcome, layer=layer, channels=list(channels))
    return True


@contextlib.contextmanager
def open_executor(workers: int | None = None, address: str | None = None, verbose: bool = False) -> Iterator[Executor]:
    """Ray actors when there is more than one worker or a cluster; else this process.

    One worker on one machine gains nothing from Ray but its start-up time (seconds), so
    that case runs in-process; everything else (``--workers N``, several GPUs,
    ``--address`` or ``RAY_ADDRESS``) goes through Ray. A private instance counts at least
    one CPU a worker, so that ``--workers`` above the machine's cores shares them rather
    than leaving workers waiting; ``verbose`` lets Ray's own log lines through.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None and (workers or max(1, visible_gpus())) == 1:
        yield LocalExecutor()
        return
    from nstpipe.run.ray_executor import RayExecutor, ray_session

    with ray_session(address, max(os.cpu_count() or 1, workers or 1), verbose):
        executor = RayExecutor(workers)
        executor.check_fits()  # before any line about the job: the cluster may not hold the workers
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
    overwrite: bool = False,
    size_from_device: bool = False,
) -> FolderOutcome:
    """Stylize every image under ``folder`` into ``output``, skipping finished ones.

    Inputs that failed in an earlier run are skipped too (see :mod:`nstpipe.jobs.failures`)
    unless ``retry_failed``; each new failure is recorded the moment it is reported.
    ``size_from_device``: no --size was given, and a GPU (CUDA, MPS) paints each picture at
    its own size, at most ``max_size``.
    """
    settings = capped(settings, size_from_device)
    if size_from_device and resolve_device(settings.device).type in ("cuda", "mps"):
        settings = dataclasses.replace(settings, own_size=True)
    job = start_folder(folder, styles, output, settings, report, overwrite)
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


def start_folder(folder: Path, styles: Sequence[Path], output: Path, settings: Settings, report: EventSink, overwrite: bool) -> ImageJob:
    """Everything a folder job checks and reports before the first picture: the job."""
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    check_inputs(styles, settings)
    device = resolve_device(settings.device)  # an unknown device fails here, before any output
    check_writable(output)
    job = make_job(settings, list(styles))
    total = count_planned(folder, output, protected(styles, settings), overwrite)  # also refuses output == input
    size = f"each its own size, long side at most {settings.max_size}" if settings.own_size else f"long side {settings.size}"
    report(chosen(settings, size, output, total, "pictures"))
    report(JobPlanned(total))
    atomic_write_json(output / SETTINGS_FILE, settings_record(job, str(device)))
    return job


def count_planned(folder: Path, output: Path, inputs: Mapping[str, Sequence[Path]], overwrite: bool) -> int:
    """The images a folder job will go through, each planned output checked first as
    :func:`check_output` checks a single one (the inputs themselves cannot be outputs:
    the plan keeps the output folder out of the walk)."""
    total = 0
    for task in plan_images(folder, output):
        check_output(task.output, inputs, overwrite)
        total += 1
    return total


def default_work_dir(output: Path) -> Path:
    return output.with_name(output.name + ".nstpipe-work")


@dataclass(frozen=True)
class VideoOptions:
    """How a video job runs, beside its settings."""

    work_dir: Path | None = None  # default: beside the output (see default_work_dir)
    limit: int | None = None  # paint only the first frames (a preview)
    keep_frames: bool = False
    overwrite: bool = False  # -y: an output may replace an input or a file nstpipe did not make
    # No --size was asked for: the size follows this machine's device (see video_settings).
    size_from_device: bool = False


@dataclass(frozen=True)
class VideoOutcome:
    source: Path
    output: Path
    summary: FramesSummary | None = None  # None when it failed
    error: str | None = None
    kept: bool = False  # finished earlier with these settings, left as it was


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
    overwrite: bool = False,
) -> FramesSummary:
    """Stylize ``source`` into ``output`` (H.264 MP4), resuming from the work folder; see
    :func:`paint_video`."""
    check_inputs(styles, settings)
    options = VideoOptions(work_dir, limit, keep_frames, overwrite)
    summary = paint_video(source, styles, output, settings, report, options, executor).summary
    assert summary is not None
    return summary


def stylize_videos(
    sources: Sequence[Path],
    styles: Sequence[Path],
    output: Path | None,
    settings: Settings,
    report: EventSink,
    options: VideoOptions,
    executor: Executor | None = None,
) -> Iterator[VideoOutcome]:
    """Every video of ``sources`` (a folder stands for the videos in it), in turn.

    ``output`` is the output file for one video, the output folder for several, or None:
    beside each video, named after it and the styles (``clip.monet.mp4``). The styles and
    every output are checked before any video is painted. A video that cannot be read
    stops a job of one video (InputError); among several it is one failed outcome.
    """
    check_inputs(styles, settings)
    targets = video_targets(sources, styles, output, settings.mode)
    for source, target in targets:
        check_video_suffix(target)
        check_output(target, protected(styles, settings, source), options.overwrite)
    single = len(sources) == 1 and not sources[0].is_dir()
    for source, target in targets:
        try:
            yield paint_video(source, styles, target, settings, report, options, executor)
        except InputError as exc:
            if single:
                raise
            yield VideoOutcome(source, target, error=str(exc))


def video_targets(
    sources: Sequence[Path], styles: Sequence[Path], output: Path | None, mode: str = "style"
) -> list[tuple[Path, Path]]:
    """(source, output) of every video to paint."""
    if output is None:
        return [(source, default_video_output(source, styles, mode)) for source in list_videos(sources)]
    if len(sources) == 1 and not sources[0].is_dir():
        return [(sources[0], output)]
    return plan_videos(sources, output)


def list_videos(sources: Sequence[Path]) -> list[Path]:
    """The videos given, a folder standing for the videos in it, less nstpipe's own outputs
    (which sit beside their inputs when no -o is given)."""
    found: list[Path] = []
    for path in sources:
        if not path.is_dir():
            found.append(path)
            continue
        videos = (p for p in path.iterdir() if p.suffix.lower() in VIDEO_INPUT_SUFFIXES and p.is_file())
        found += sorted(p for p in videos if not made_by_nstpipe(p))
    return found


def check_video_suffix(output: Path) -> None:
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(output, f"the output is H.264 video: name it {', '.join(VIDEO_SUFFIXES)}")


def check_video_source(source: Path) -> VideoInfo:
    """The video's properties; a still image is named as such (FFmpeg would take it for a
    video of one frame, which then fails deep inside the job)."""
    if is_still_image(source):
        raise InputError(source, "is a still image, not a video; use `nstpipe image`")
    return probe(source)  # a missing, empty or corrupt file fails here, before any work


def paint_video(
    source: Path,
    styles: Sequence[Path],
    output: Path,
    settings: Settings,
    report: EventSink,
    options: VideoOptions,
    executor: Executor | None = None,
) -> VideoOutcome:
    """Paint ``source`` into ``output`` (the styles are checked already).

    The frames are split into ``batch`` chains per worker of ``executor`` (see
    :func:`~nstpipe.jobs.plan.plan_chunks`), each worker painting its chains in step; the
    split is saved in the manifest and kept on a rerun, whatever the number of workers or
    the batch then. The frames stay in the work folder until the video is published; then
    they are removed unless ``keep_frames``. An output finished with the same settings,
    frames and quality is kept.
    """
    check_video_suffix(output)
    info = check_video_source(source)
    settings = video_settings(settings, info, options.size_from_device)
    check_frame_size(source, info.height, info.width, settings)
    check_output(output, protected(styles, settings, source), options.overwrite)
    job = make_video_job(settings, list(styles), source, info)
    frames = info.frame_count if options.limit is None else min(options.limit, info.frame_count)
    # crf is not in the fingerprint (a new one only re-encodes), so the record names it.
    identity = {"fingerprint": job.fingerprint, "frames": frames, "crf": settings.video.crf}
    if finished(output, identity):
        report(Kept(output))
        return VideoOutcome(source, output, FramesSummary(frames=frames), kept=True)
    check_writable(output.parent)
    height, width = output_frame_size(info.height, info.width, settings)
    report(chosen(settings, f"{width}x{height}", output, frames, "frames"))
    summary = run_video_job(job, output, frames, identity, report, options, executor or LocalExecutor())
    return VideoOutcome(source, output, summary)


def run_video_job(
    job: VideoJob,
    output: Path,
    frames: int,
    identity: Mapping[str, Any],
    report: EventSink,
    options: VideoOptions,
    executor: Executor,
) -> FramesSummary:
    """Paint the frames into the work folder, encode them, record the output."""
    clean_temp_files(output.parent, temp_tag(output))  # a video a killed run was encoding
    store = FrameStore(options.work_dir or default_work_dir(output), job.fingerprint)
    check_writable(store.root.parent)
    batch = video_batch(job.settings, job.info)
    chunks = saved_chunks(store, frames) or plan_chunks(frames, executor.parallelism() * batch)
    manifest = video_manifest(job, str(resolve_device(job.settings.device)), batch)
    store.open({**manifest, "frames": frames, "chunks": [dataclasses.astuple(c) for c in chunks]})
    report(VideoPlanned(frames, count_done(store, frames)))
    try:
        summary = executor.run_video(job, store, chunks, report, batch)
    except InputError:
        if count_done(store, frames) == 0:
            store.remove()  # nothing painted: no empty work folder left behind
        raise
    encode(job, store, frames, output, report, full=frames == job.info.frame_count)
    # After the video, so that the record vouches for the file published: a run killed
    # in between leaves a video without a record, which the next run (with -y) encodes again
    # from the frames still in the work folder.
    atomic_write_json(record_path(output), {**manifest, **identity, "output": source_identity(output)})
    if not options.keep_frames:
        store.remove()
    return summary


def video_settings(settings: Settings, info: VideoInfo, size_from_device: bool) -> Settings:
    """The settings a video is painted with. Without --size (``size_from_device``), the size
    follows the device of the machine running nstpipe: on a GPU (CUDA, MPS) the video's own long
    side, at most ``max_size`` (the tiles keep its memory in the budget); elsewhere the
    preset's, never above the video's own. It
    is decided here, once, so that the fingerprint, the manifest and the record hold the
    size painted (another machine may decide otherwise, and then paints anew)."""
    settings = capped(settings, size_from_device)
    if not size_from_device:
        return settings
    own = max(info.width, info.height)
    most = settings.max_size if resolve_device(settings.device).type in ("cuda", "mps") else settings.size
    return dataclasses.replace(settings, size=max(MIN_SIZE, min(own, most)))


def check_frame_size(source: Path, height: int, width: int, settings: Settings) -> None:
    """A frame too thin for the VGG19 layers fails before any work, naming the video."""
    h, w = output_frame_size(height, width, settings)
    need = settings.engine.min_side
    if min(h, w) < need:
        raise InputError(
            source,
            f"frames of {w}x{h} at --size {settings.size} are too thin: "
            f"the VGG19 layers used need at least {need} pixels on each side (raise --size)",
        )


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
    json_path: Path | None = None,
    plot_path: Path | None = None,
    overwrite: bool = False,
    gaps: Sequence[int] = (1,),
) -> VideoMetrics:
    """``nstpipe metrics``: E_warp of ``stylized`` and of ``source`` between frames
    ``gaps`` apart, and per-frame distances; written to ``json_path`` and drawn into
    ``plot_path`` when given (both checked, like every output, before the measuring)."""
    inputs = {"input": [source, stylized], "style image": [style] if style is not None else []}
    if plot_path is not None:
        plot_format(plot_path)
    for path in (json_path, plot_path):
        if path is not None:
            check_output(path, inputs, overwrite)
    result = _measure(source, stylized, style, settings, report, gaps)
    if json_path is not None:
        atomic_write_json(json_path, metrics_record(source, stylized, style, result))
    if plot_path is not None:
        plot_warping_error(result, plot_path, title=f"E_warp: {stylized.name}")
    return result


def metrics_record(source: Path, stylized: Path, style: Path | None, result: VideoMetrics) -> dict[str, object]:
    return {
        "source": str(source), "stylized": str(stylized), "style": str(style) if style else None,
        "width": result.width, "height": result.height, "summary": result.summary(),
        "frames": [dataclasses.asdict(frame) for frame in result.frames],
        "gaps": {str(gap): [dataclasses.asdict(pair) for pair in pairs] for gap, pairs in result.pairs.items()},
    }


def _measure(
    source: Path, stylized: Path, style: Path | None, settings: Settings, report: EventSink, gaps: Sequence[int]
) -> VideoMetrics:
    source_info, stylized_info = probe(source), probe(stylized)
    style_image = read_image(style) if style is not None else None
    if stylized_info.frame_count > source_info.frame_count:
        raise InputError(stylized, f"has {stylized_info.frame_count} frames, the source only {source_info.frame_count}")
    device = resolve_device(settings.device)
    # A preview (nstpipe video --frames N) is compared with the first N source frames.
    frames = stylized_info.frame_count
    report(Chosen(f"{stylized_info.width}x{stylized_info.height}", str(device), "fp32", None, frames, "frames"))
    encoder = metrics_encoder(settings, device)
    report(VideoPlanned(frames, 0))
    try:
        return video_metrics(
            encoder,
            (f.rgb for f in itertools.islice(read_frames(source), frames)),
            (f.rgb for f in read_frames(stylized)),
            style_image.to(device) if style_image is not None else None,
            on_frame=lambda frame: report(FrameDone(frame.index, 0, 0.0)),
            gaps=gaps,
        )
    except ValueError:
        # zip(strict=True): one stream ended early although both containers counted more.
        raise InputError(stylized, "the frames of the two videos could not all be decoded (corrupt?)") from None
