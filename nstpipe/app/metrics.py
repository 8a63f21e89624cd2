"""``nstpipe metrics``: how steady a painted video is, and how close to its photo and painting."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from nstpipe.app.checks import check_output, check_video_source
from nstpipe.config import Settings
from nstpipe.engine.device import resolve_device
from nstpipe.engine.metrics import VideoMetrics, parse_gaps, video_metrics
from nstpipe.errors import InputError
from nstpipe.events import Chosen, EventSink, FrameDone, VideoPlanned
from nstpipe.jobs.worker import metrics_encoder
from nstpipe.media.framestore import frame_files
from nstpipe.media.imaging import read_rgb
from nstpipe.media.plot import plot_format, plot_warping_error
from nstpipe.media.video import read_frames
from nstpipe.media.writer import atomic_write_json
from nstpipe.modes.model import read_image

__all__ = ["measure_video", "metrics_record", "painted_frames", "parse_gaps"]


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
    source_info = check_video_source(source)
    frames, (width, height), painted = painted_frames(stylized)
    check_same_shape(stylized, (width, height), (source_info.width, source_info.height))
    style_image = read_image(style) if style is not None else None
    if frames > source_info.frame_count:
        if source_info.ends_early:  # the painted video was made from the whole file
            raise InputError(source, source_info.ends_early)
        raise InputError(stylized, f"has {frames} frames, the source only {source_info.frame_count}")
    device = resolve_device(settings.device)
    report(Chosen(f"{width}x{height}", str(device), "fp32", None, frames, "frames"))
    encoder = metrics_encoder(settings, device)
    report(VideoPlanned(frames, 0))
    # A preview (nstpipe video --frames N) is compared with the first N source frames.
    source_stream = _Counted(f.rgb for f in itertools.islice(read_frames(source), frames))
    painted_stream = _Counted(painted)
    try:
        return video_metrics(
            encoder,
            source_stream,
            painted_stream,
            style_image.to(device) if style_image is not None else None,
            on_frame=lambda frame: report(FrameDone(frame.index, 0, 0.0)),
            gaps=gaps,
        )
    except ValueError:
        # zip(strict=True): one stream ended before the other although both containers
        # counted enough frames; the one that ended is the one cut short or corrupt.
        if source_stream.ended and source_stream.count < frames:
            raise InputError(source, _cut_short(source_stream.count, source_info.frame_count)) from None
        if painted_stream.ended:
            raise InputError(stylized, _cut_short(painted_stream.count, frames)) from None
        raise InputError(stylized, f"decodes to more frames than the {frames} its container counts") from None


def check_same_shape(stylized: Path, size: tuple[int, int], source: tuple[int, int]) -> None:
    """The painted frames must show the source's picture: the same shape, whatever their
    size (a turned or cropped video would be compared pixel by pixel with another picture)."""
    (width, height), (own_width, own_height) = size, source
    # Sizes are rounded to whole (even) pixels: a side may be off by up to 2 in either video.
    if abs(width * own_height - height * own_width) > 2 * (width + height + own_width + own_height):
        raise InputError(stylized, f"is {width}x{height}, the source {own_width}x{own_height}: not the source's shape (turned or cropped?)")


def _cut_short(decoded: int, counted: int) -> str:
    return f"only {decoded} of its {counted} frames could be decoded (cut short or corrupt?)"


class _Counted(Iterator[np.ndarray]):
    """The frames of a stream, counted, and whether it ended: which of two streams ran out."""

    def __init__(self, frames: Iterator[np.ndarray]) -> None:
        self._frames = frames
        self.count = 0
        self.ended = False

    def __next__(self) -> np.ndarray:
        try:
            frame = next(self._frames)
        except StopIteration:
            self.ended = True
            raise
        self.count += 1
        return frame


def painted_frames(stylized: Path) -> tuple[int, tuple[int, int], Iterator[np.ndarray]]:
    """The painted frames' count, (width, height) and pixels: a video, or a folder of the
    frames before encoding (what ``--keep-frames`` leaves), which tells the painting's
    own steadiness from what the encoder adds."""
    if stylized.is_dir():
        files = frame_files(stylized)
        first = read_rgb(files[0])
        return len(files), (first.shape[1], first.shape[0]), itertools.chain([first], (read_rgb(f) for f in files[1:]))
    info = check_video_source(stylized)
    if info.ends_early:  # measured as it is, it would pass for a shorter painting
        raise InputError(stylized, info.ends_early)
    return info.frame_count, (info.width, info.height), (f.rgb for f in read_frames(stylized))
