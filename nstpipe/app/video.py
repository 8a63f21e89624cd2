"""A video, painted frame by frame by any mode that reads a photo, and resumable.

The frames are painted into a work folder (see :class:`~nstpipe.media.framestore.FrameStore`),
then encoded; an output finished with the same settings, frames and quality is kept.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from nstpipe.app.checks import (
    check_inputs,
    check_name_fits,
    check_output,
    check_video_source,
    check_video_suffix,
    check_writable,
    protected,
)
from nstpipe.app.naming import default_video_output, default_work_dir
from nstpipe.app.sizes import chosen, video_settings
from nstpipe.config import Settings
from nstpipe.engine.device import resolve_device
from nstpipe.engine.features import resolve_precision
from nstpipe.errors import InputError
from nstpipe.events import EventSink, Kept, VideoPlanned
from nstpipe.jobs.plan import VIDEO_SUFFIXES as VIDEO_INPUT_SUFFIXES
from nstpipe.jobs.plan import Chunk, plan_chunks, plan_videos
from nstpipe.jobs.records import VideoJob, beside_record, finished, made_by_nstpipe, make_video_job, recorded, video_manifest
from nstpipe.jobs.video_job import FramesSummary, count_done, encode, output_frame_size, video_batch
from nstpipe.media.audio import check_audio
from nstpipe.media.framestore import FrameStore
from nstpipe.media.lock import FOLDER_LOCK, output_lock
from nstpipe.media.names import name_max
from nstpipe.media.video import VideoInfo
from nstpipe.media.writer import RECORD_SUFFIX, clean_output_leftovers
from nstpipe.run.executor import Executor, LocalExecutor

WORK_BUSY = "another nstpipe run is painting into this work folder; wait for that run to end, or give another --work-dir"


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
    # Why it failed; beside a summary, what the source lacks that its written video does too
    # (cut off, or frames that could not be decoded), which the exit status tells as a failure.
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
    targets = video_targets(sources, styles, output, settings.mode, options.limit)
    if not targets:  # only folders were given, and none holds a video
        suffixes = ", ".join(sorted(VIDEO_INPUT_SUFFIXES))
        raise InputError(", ".join(map(str, sources)), f"holds no videos (files ending {suffixes}, other than nstpipe's outputs)")
    for source, target in targets:
        check_video_suffix(target)
        check_name_fits(target)
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
    sources: Sequence[Path], styles: Sequence[Path], output: Path | None, mode: str = "style", limit: int | None = None
) -> list[tuple[Path, Path]]:
    """(source, output) of every video to paint; beside each, a preview of the first
    ``limit`` frames is named apart (``clip.monet.first30.mp4``), so that it does not take
    the place of the whole video."""
    if output is None:
        targets = [(source, default_video_output(source, styles, mode, limit)) for source in list_videos(sources)]
        # Left are contrived names (clip.mov.mp4 beside clip.mov and clip.mp4): refused, not overwritten.
        seen: dict[str, Path] = {}
        for source, target in targets:
            other = seen.setdefault(str(target).casefold(), source)
            if other != source:
                raise InputError(target, f"would be the output of both {other} and {source}; give -o a folder")
        return targets
    if len(sources) == 1 and not sources[0].is_dir():
        return [(sources[0], output)]
    return plan_videos(sources, output, most=name_max(output) - len(RECORD_SUFFIX))


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
    check_name_fits(output)
    info = check_video_source(source)
    if info.has_audio:
        check_audio(source, output)
    settings = video_settings(settings, info, options.size_from_device)
    check_frame_size(source, info.height, info.width, settings)
    check_output(output, protected(styles, settings, source), options.overwrite)
    # Before the clean-up below: another run's temp files, and its work folder, are its own.
    with contextlib.ExitStack() as held:
        held.enter_context(output_lock(output))
        if options.work_dir is not None:  # the default one is the output's alone, an explicit one may be shared
            held.enter_context(output_lock(options.work_dir, options.work_dir / FOLDER_LOCK, WORK_BUSY, scratch=True))
        return locked_video(source, styles, output, settings, info, report, options, executor)


def locked_video(
    source: Path, styles: Sequence[Path], output: Path, settings: Settings, info: VideoInfo, report: EventSink,
    options: VideoOptions, executor: Executor | None,
) -> VideoOutcome:
    """:func:`paint_video` once its checks are passed and its output's lock is held."""
    job = make_video_job(settings, list(styles), source, info)
    frames = info.frame_count if options.limit is None else min(options.limit, info.frame_count)
    # crf is not in the fingerprint (a new one only re-encodes), so the record names it.
    identity = {"fingerprint": job.fingerprint, "frames": frames, "crf": settings.video.crf}
    # Before the check: a video, or its record, that a run of other settings was writing
    # when it was killed, which a kept output would otherwise leave there for good.
    clean_output_leftovers(output)
    if finished(output, identity):
        store = frame_store(job, output, frames, options)
        if not options.keep_frames and left_behind(store, settings.video.crf):
            store.remove()
        report(Kept(output))
        damaged = (beside_record(output) or {}).get("damaged", 0)
        damaged = damaged if isinstance(damaged, int) else 0
        summary = FramesSummary(frames=frames, damaged=damaged)
        return VideoOutcome(source, output, summary, source_faults(source, info, frames, damaged), kept=True)
    check_preview_keeps(output, frames, options)
    check_writable(output.parent)
    check_writable(options.work_dir or default_work_dir(output))  # before the opening line: a mistake is one line
    height, width = output_frame_size(info.height, info.width, settings)
    # H.264's 4:2:0 takes even sides only: the writer crops the odd last row or column.
    report(chosen(settings, f"{width - width % 2}x{height - height % 2}", output, frames, "frames"))
    summary = run_video_job(job, output, frames, identity, report, options, executor or LocalExecutor())
    return VideoOutcome(source, output, summary, source_faults(source, info, frames, summary.damaged))


def check_preview_keeps(output: Path, frames: int, options: VideoOptions) -> None:
    """Refuse a preview that would replace a longer video nstpipe finished at ``output``
    (hours of work, whose frames went when it was published), unless ``-y``."""
    if options.limit is None or options.overwrite:
        return
    done = (beside_record(output) or {}).get("frames")
    if isinstance(done, int) and done > frames and output.exists() and made_by_nstpipe(output):
        replaced = f"holds a finished video of {done} frames, which a preview of {frames} would replace"
        raise InputError(output, f"{replaced}; give -o another name, or -y")


def source_faults(source: Path, info: VideoInfo, frames: int, damaged: int) -> str | None:
    """One line naming the source and what its painted video lacks for its sake: the frames
    after where the file was cut off, and the ``damaged`` frames that could not be decoded
    (the frame before stands in for each); None when nothing."""
    reasons = []
    if info.ends_early and frames == info.frame_count:  # a preview of the frames there lacks none
        reasons.append(f"{info.ends_early}; painted the {frames}")
    if damaged:
        reasons.append(f"{damaged} of its {frames} frames could not be decoded (corrupt data); the frame before stands in for each")
    return str(InputError(source, "; ".join(reasons))) if reasons else None


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
    store = frame_store(job, output, frames, options)
    batch = video_batch(job.settings, job.info)
    chunks = saved_chunks(store, frames) or plan_chunks(frames, executor.parallelism() * batch)
    device = resolve_device(job.settings.device)
    manifest = video_manifest(job, str(device), resolve_precision(job.settings.engine.precision, device), batch)
    store.open({**manifest, "frames": frames, "chunks": [dataclasses.astuple(c) for c in chunks]})
    report(VideoPlanned(frames, count_done(store, frames)))
    try:
        summary = executor.run_video(job, store, chunks, report, batch)
    except InputError:
        if count_done(store, frames) == 0:
            store.remove()  # nothing painted: no empty work folder left behind
        raise
    # The record keeps the frames stood in for, so that a rerun that keeps the video says so too.
    record = {**manifest, **identity, "damaged": summary.damaged}
    encode(job, store, frames, output, report, full=frames == job.info.frame_count, before=recorded(output, record))
    if not options.keep_frames:
        store.remove()
    return summary


def frame_store(job: VideoJob, output: Path, frames: int, options: VideoOptions) -> FrameStore:
    """The store of the job's frames when it paints the first ``frames``.

    A preview (fewer frames than the video's) has a store of its own: its chains are planned
    over its frames only, so its frames must not be taken for another plan's, and its store
    is removed once its video is out, which must not take a longer run's frames with it.
    """
    key = job.fingerprint
    if frames != job.info.frame_count:
        key = hashlib.sha256(f"{job.fingerprint}:frames={frames}".encode()).hexdigest()
    return FrameStore(options.work_dir or default_work_dir(output), key)


def left_behind(store: FrameStore, crf: int) -> bool:
    """Whether the frames in ``store`` are those of the kept output, which a run killed
    between its record and their removal left behind. A store shares its key with every
    --crf (a new one only re-encodes), so one that a run of another crf was painting,
    when it was stopped, holds that run's work, which its rerun continues."""
    if not store.root.exists():
        return False
    settings = (store.manifest() or {}).get("settings")
    return not isinstance(settings, dict) or settings.get("crf", crf) == crf


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
