"""Video in and out: probe a file, stream its frames as RGB, write H.264 MP4 with the audio kept.

The I/O layer of ``nstpipe video``; nothing here stylizes. Frames are decoded by PyAV, their
colour interpolated to every pixel and turned by the display rotation, so every frame is
upright and the output carries no rotation metadata. Writing goes through PyAV too: libx264
video timed by the caller's frame times (a variable frame rate survives), and every audio
stream of the source copied packet by packet where the output's container holds its codec,
re-encoded to AAC where it does not (an old camera's PCM or ADPCM). Like every other output,
the file appears atomically.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Iterator

import av
import numpy as np

from nstpipe.errors import InputError, OutputError, output_error
from nstpipe.files import refuse_special_file
from nstpipe.media.audio import AudioCopier
from nstpipe.media.ffmpeg import VIDEO_CONTAINERS, Shifts, local, open_error, shifts
from nstpipe.media.packets import decoded, frame_counts, in_order

# The same exclusive, umask-respecting temp files as every other output (see writer.py).
from nstpipe.media.writer import BeforePublish, create_temp, publish, remove_quietly, temp_tag

# 1/90000 s, the MPEG clock: fine enough that any frame time rounds by < 6 microseconds.
TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class VideoInfo:
    width: int  # as displayed, i.e. after rotation
    height: int
    frame_count: int
    fps: Fraction  # average frame rate
    rotation: int  # clockwise degrees to display upright: 0, 90, 180 or 270
    audio_streams: int
    duration: float  # seconds
    # About how many frames more than ``frame_count`` the file states it holds: it was cut off.
    cut_off: int = 0

    @property
    def has_audio(self) -> bool:
        return self.audio_streams > 0

    @property
    def ends_early(self) -> str | None:
        """Where the file was cut off, as the reason to name it by; None where it is whole."""
        if not self.cut_off:
            return None
        return f"the file ends after {self.frame_count} of about {self.frame_count + self.cut_off} frames (cut off?)"


@dataclass(frozen=True)
class Frame:
    index: int
    time: float  # seconds from the start of the stream
    rgb: np.ndarray  # HxWx3 uint8, upright
    stand_in: bool = False  # the frame before, in place of one whose data could not be decoded


def probe(path: Path) -> VideoInfo:
    """Size, frame count, rate, rotation, audio and duration; decodes one frame to be sure.
    The size is as displayed: upright, in square pixels (see :func:`square_size`)."""
    refuse_special_file(path)  # FFmpeg would wait on a FIFO for a writer
    try:
        with av.open(local(path)) as container:
            return _probe_container(path, container)
    except InputError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise open_error(path, exc) from None


def _probe_container(path: Path, container: av.container.InputContainer) -> VideoInfo:
    if not container.streams.video:
        raise InputError(path, "no video stream")
    stream = container.streams.video[0]
    first = _first_frame(path, container, stream)
    # Counter-clockwise in FFmpeg's display matrix; clockwise as in the old `rotate` tag.
    # Quarter turns only: all read_frames applies.
    rotation = (-round(first.rotation / 90) * 90) % 360
    frame_count, cut_off = frame_counts(container, stream)
    duration = _duration(container, stream)
    fps = stream.average_rate or stream.guessed_rate or _rate(frame_count, duration)
    width, height = square_size(first.width, first.height, stream.codec_context.sample_aspect_ratio)
    if rotation in (90, 270):
        width, height = height, width
    return VideoInfo(width, height, frame_count, Fraction(fps), rotation, len(container.streams.audio), duration, cut_off)


def square_size(width: int, height: int, aspect: Fraction | None) -> tuple[int, int]:
    """The coded size stretched to square pixels by the sample aspect ratio: wider where
    each pixel is shown wider (HDV's 1440x1080 shown as 1920x1080, DV), taller where it is
    shown taller, so that no coded pixel is lost and the picture keeps its shape."""
    if not aspect or aspect == 1:
        return width, height
    if aspect > 1:
        return round(width * aspect), height
    return width, round(height / aspect)


def _first_frame(path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> av.VideoFrame:
    for _, frames in decoded(container, stream):
        if frames:
            return frames[0]
    raise InputError(path, "no video frames")


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else 0.0


def _rate(frame_count: int, duration: float) -> Fraction:
    return Fraction(frame_count / duration).limit_denominator(1001) if duration > 0 else Fraction(0)


# Raised when the frames of the same file are read as other pixels, so that a video's frames
# painted from the earlier reading are painted again rather than mixed with new ones (see
# nstpipe.jobs.records.make_video_job). 1: the colour of 4:2:0 and 4:2:2 video interpolated
# (read by PyAV), not repeated over each 2x2 block (as OpenCV's capture read it). 2: frames
# of a stream whose size changes read at its first size, and times that start again
# (joined MPEG-TS) laid after the earlier ones. (A frame stood in for a corrupt packet changes
# no frame that revision gave: its reader stopped at the first such packet.)
READER_REVISION = 2


def read_frames(path: Path) -> Iterator[Frame]:
    """Every frame of ``path``, upright, as RGB; one frame in memory at a time. A frame whose
    data cannot be decoded has the one before stand in for it (see :func:`~nstpipe.media.packets.in_order`)."""
    if not path.is_file():
        raise InputError(path, "file not found" if not path.exists() else "not a file")
    try:
        container = av.open(local(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise open_error(path, exc) from None
    with container:
        if not container.streams.video:
            raise InputError(path, "no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        index = 0
        size: tuple[int, int] | None = None
        try:
            for frame, time, stand_in in in_order(container, stream, _Clock(stream, shifts(path))):
                # Every frame at the size probe reported, the first one's: a stream whose
                # size changes midway (joined recordings) is scaled back to it, as FFmpeg's
                # own tools do, and non-square pixels are stretched square.
                size = size or square_size(frame.width, frame.height, stream.codec_context.sample_aspect_ratio)
                yield Frame(index, time, _upright(rgb_of(frame, size), frame.rotation), stand_in)
                index += 1
        except (av.error.FFmpegError, ValueError) as exc:
            raise open_error(path, exc) from None
        if index == 0:
            raise InputError(path, "no video frames could be decoded")


class _Clock:
    """Each frame's time from the stream's start, as the writer takes it. Where a format's
    timestamps start again (MPEG-TS files joined end to end), the later frames are laid
    after the earlier ones by :func:`~nstpipe.media.ffmpeg.shifts`, as the audio is; a frame
    without a time follows one frame after the last."""

    def __init__(self, stream: av.video.stream.VideoStream, shifts: Shifts) -> None:
        self.stream = stream
        self.shifts = shifts
        self.step = 1 / float(stream.average_rate or stream.guessed_rate or 30)
        self.last: float | None = None

    def seconds(self, frame: av.VideoFrame, index: int) -> float:
        return self.follow(None if frame.pts is None else self.at(frame.pts, index))

    def at(self, pts: int, number: int) -> float | None:
        """The time of the ``number``-th frame (or packet) whose timestamp is ``pts``."""
        stream = self.stream
        if not stream.time_base:
            return None
        return float((pts - (stream.start_time or 0)) * stream.time_base) + self.shifts.at(stream.index, number)

    def follow(self, time: float | None) -> float:
        """``time``, or one frame after the last where there is none."""
        if time is None:
            time = 0.0 if self.last is None else self.last + self.step
        # A glitch a little back stays where it is: the writer nudges it past the frame before.
        self.last = time if self.last is None else max(self.last, time)
        return time


def rgb_of(frame: av.VideoFrame, size: tuple[int, int] | None = None) -> np.ndarray:
    """The frame as HxWx3 RGB, its colour samples interpolated to every pixel; ``size``
    (width, height), where given and not the frame's, scales it there (bicubic).

    swscale's direct conversion of 4:2:0 (and 4:2:2) to RGB repeats each colour sample over
    its 2x2 block: a painted frame's fine colour then shifts block by block as the picture
    moves, and the warping error counts it (docs/benchmarks.md, "How nstpipe reads a
    video"). A player interpolates the colour; going through the full-resolution 4:4:4 form,
    with swscale's bilinear filter, does the same.
    """
    full = _FULL_CHROMA.get(frame.format.name)
    if size is not None and size != (frame.width, frame.height):
        frame = frame.reformat(width=size[0], height=size[1], format=full, interpolation="BICUBIC")
    elif full is not None:
        frame = frame.reformat(format=full, interpolation="BILINEAR")
    return frame.to_ndarray(format="rgb24")


def _upright(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """The picture turned by the display matrix's ``rotation`` (counter-clockwise degrees, in
    quarter turns: what probe reports, clockwise, as VideoInfo.rotation)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


# The 4:4:4 form of each subsampled format that cameras and encoders write.
_FULL_CHROMA = {
    "yuv420p": "yuv444p", "yuvj420p": "yuvj444p", "yuv422p": "yuv444p", "yuvj422p": "yuvj444p", "nv12": "yuv444p", "nv21": "yuv444p",
    "yuv420p10le": "yuv444p10le", "yuv422p10le": "yuv444p10le",
}


class VideoWriter:
    """H.264 (libx264, yuv420p) MP4 with the audio of ``source`` copied in; atomic.

    ``write(rgb, time)`` takes HxWx3 uint8 frames of the size given here and their times in
    seconds; the times become the timestamps, so a variable frame rate is kept. ``fps`` is
    the nominal rate (stored as the stream's rate, and the last frame's duration). The
    audio is copied whole unless ``audio_end`` (seconds) cuts it, for a partial video.

    Odd sizes: yuv420p stores colour at half resolution, so libx264 refuses odd widths and
    heights. The last column and/or row is cropped rather than a replicated one padded on:
    the output then holds only real pixels and never exceeds the requested size; ``width``
    and ``height`` say what is written.

    The file is encoded into a temp file beside ``out_path`` and renamed onto it only when
    the ``with`` block ends normally; an exception removes the temp file, leaving nothing.
    """

    def __init__(
        self,
        out_path: Path,
        source: Path | None,
        width: int,
        height: int,
        fps: Fraction | float,
        crf: int = 18,
        audio_end: float | None = None,
        before: BeforePublish | None = None,
    ) -> None:
        """``before``: as for :func:`~nstpipe.media.writer.publish`, the finished file's record."""
        if width < 2 or height < 2:
            raise ValueError(f"frame size {width}x{height} is too small for H.264")
        if fps <= 0:
            raise ValueError(f"frame rate must be positive, got {fps}")
        self.out_path = out_path
        self.source = source
        self.requested = (height, width)
        self.width, self.height = width - width % 2, height - height % 2
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.crf = crf
        self.audio_end = audio_end  # seconds of audio to copy; None = all of it
        self.before = before
        self._tmp: str | None = None
        self._output: av.container.OutputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._audio: AudioCopier | None = None
        self._last_pts = -1
        self.frames_written = 0

    def __enter__(self) -> VideoWriter:
        with self._writing():
            self.out_path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = create_temp(self.out_path.parent, temp_tag(self.out_path))
            os.close(fd)
        try:
            with self._writing():
                self._open()
        except BaseException:
            self._abort()
            raise
        return self

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """OS errors while writing (a full disk) are the output's, not the input's; so is a
        muxer's refusal, which no rerun would get past."""
        try:
            yield
        except OSError as exc:
            raise output_error(self.out_path, exc) from None
        except av.error.FFmpegError as exc:
            raise OutputError(self.out_path, exc.strerror or str(exc)) from None

    def _open(self) -> None:
        # The temp name has no suffix, so name the format: the one the output's suffix names.
        container = VIDEO_CONTAINERS.get(self.out_path.suffix.lower(), "mp4")
        assert self._tmp is not None  # made by __enter__
        self._output = av.open(local(self._tmp), "w", format=container)
        stream = self._output.add_stream("libx264", rate=self.fps, options={"crf": str(self.crf)})
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.time_base = stream.codec_context.time_base = TIME_BASE
        self._video = stream
        if self.source is not None:
            self._audio = AudioCopier(self.source, self._output, container)

    def write(self, rgb: np.ndarray, time: float) -> None:
        if rgb.shape != (*self.requested, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"expected a {self.requested[0]}x{self.requested[1]}x3 uint8 frame, got {rgb.shape} {rgb.dtype}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[: self.height, : self.width]), format="rgb24")
        # Equal times (duplicated timestamps in some files) would make the muxer fail;
        # nudging by one tick (11 us) keeps every frame.
        frame.pts = self._last_pts = max(round(time / TIME_BASE), self._last_pts + 1)
        frame.time_base = TIME_BASE
        frame.duration = round(1 / (self.fps * TIME_BASE))
        with self._writing():
            assert self._video is not None  # set by __enter__
            self._mux(self._video.encode(frame))
            self.frames_written += 1
            if self._audio is not None:
                # Audio up to this frame's time, so the file is interleaved as players expect.
                self._audio.copy_until(time)

    def _mux(self, packets: list[av.Packet]) -> None:
        assert self._output is not None  # set by __enter__
        for packet in packets:
            self._output.mux(packet)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            with self._writing():
                self._finish()
        except BaseException:
            self._abort()
            raise

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise ValueError(f"{self.out_path}: no frames were written")
        assert self._video is not None and self._output is not None and self._tmp is not None  # set by __enter__
        self._mux(self._video.encode(None))
        if self._audio is not None:
            self._audio.copy_until(self.audio_end)
            self._audio.finish()
            self._audio.close()
        self._output.close()
        publish(self._tmp, self.out_path, self.before)

    def _abort(self) -> None:
        for closable in (self._audio, self._output):
            try:
                if closable is not None:
                    closable.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file goes anyway
                pass
        if self._tmp is not None:
            remove_quietly(self._tmp)
