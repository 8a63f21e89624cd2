"""Short clips made with PyAV for the video tests, and ways to look inside the results.

A clip: a top half of pure red over a blue bottom half with a white bar moving across it,
optionally rotated, with irregular frame times, or with AAC tracks (a sine tone each).
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence, cast

import av
import numpy as np

from nstpipe.engine.metrics import frame_warping_error
from nstpipe.media.video import VideoInfo, VideoWriter, probe, read_frames

SAMPLE_RATE = 16000


def pattern(index: int, width: int, height: int) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[: height // 2] = (255, 0, 0)
    rgb[height // 2 :] = (0, 0, 255)
    x = (index * 3) % max(1, width - 4)
    rgb[height // 2 :, x : x + 4] = 255
    return rgb


def make_clip(
    path: Path,
    n_frames: int = 12,
    width: int = 48,
    height: int = 32,
    fps: int = 12,
    audio: int = 0,
    rotation: int | None = None,
    times: Sequence[float] | None = None,
    audio_codec: str = "aac",
    aspect: Fraction | None = None,
    form: str | None = None,
) -> Path:
    """An H.264 MP4 (or ``form``'s container); ``audio`` tracks of ``audio_codec``;
    ``rotation`` counter-clockwise degrees as display matrix; ``times`` in seconds give each
    frame's timestamp (variable frame rate); ``aspect`` the pixels' shape (sample aspect ratio)."""
    with av.open(str(path), "w", format=form) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if aspect is not None:
            video.codec_context.sample_aspect_ratio = aspect
        if times is not None:
            video.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            video.set_display_rotation(rotation)
        tracks = [
            cast(av.audio.stream.AudioStream, container.add_stream(audio_codec, rate=SAMPLE_RATE, layout="mono")) for _ in range(audio)
        ]
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            if times is not None:
                frame.pts, frame.time_base = round(times[i] * 1000), Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        seconds = (times[-1] + 1 / fps) if times is not None else n_frames / fps
        for k, track in enumerate(tracks):
            write_tone(container, track, seconds, 440.0 * (k + 1))
    return path


def write_tone(container: av.container.OutputContainer, track: av.audio.stream.AudioStream, seconds: float, hz: float) -> None:
    total = int(seconds * SAMPLE_RATE)
    for start in range(0, total, 1024):
        t = np.arange(start, min(start + 1024, total)) / SAMPLE_RATE
        frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = SAMPLE_RATE, start
        container.mux(track.encode(frame))
    container.mux(track.encode(None))


def flac_clip(path: Path, n_frames: int, blocks: Iterable[int], spoil: int | None = None) -> Path:
    """A Matroska clip (which MOV's FLAC cannot come from as it is): H.264 at 10 fps and a
    FLAC track of 1024-sample blocks of a steady level, each starting at the sample given
    (so a gap between blocks is a gap in the sound); ``spoil``: the number of the FLAC
    packet replaced by noise of its size."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 48, 32, "yuv420p"
        track = container.add_stream("flac", rate=SAMPLE_RATE, layout="mono")
        for i in range(n_frames):
            container.mux(video.encode(av.VideoFrame.from_ndarray(pattern(i, 48, 32), format="rgb24")))
        container.mux(video.encode(None))
        packets = []
        for start in blocks:
            frame = av.AudioFrame.from_ndarray(np.full((1, 1024), 0.2, np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            packets += track.encode(frame)
        packets += track.encode(None)
        for k, packet in enumerate(packets):
            if k == spoil:
                noise = av.Packet(rng.integers(0, 256, packet.size, np.uint8).tobytes())
                noise.pts, noise.dts, noise.duration, noise.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
                noise.stream = track
                packet = noise
            container.mux(packet)
    return path


def joined(path: Path, parts: Sequence[Path]) -> Path:
    """MPEG-TS files joined end to end, as ``cat a.ts b.ts`` does: each part's timestamps
    start again, and each may have its own frame size."""
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path


def round_trip(source: Path, out: Path) -> VideoInfo:
    info = probe(source)
    with VideoWriter(out, source=source, width=info.width, height=info.height, fps=info.fps) as writer:
        for frame in read_frames(source):
            writer.write(frame.rgb, frame.time)
    return probe(out)


def audio_packets(path: Path) -> list[tuple[str, int, list[str]]]:
    """Per audio stream: codec, sample rate, and the digest of every packet's bytes."""
    result = []
    with av.open(str(path)) as container:
        for stream in container.streams.audio:
            digests = [hashlib.sha1(bytes(p)).hexdigest() for p in container.demux(stream) if p.size]
            result.append((stream.codec_context.name, stream.codec_context.sample_rate, digests))
            container.seek(0)
    return result


def audio_times_from_picture_start(path: Path) -> list[float]:
    """Each audio packet's time, counted from the video stream's start."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.start_time is not None and video.time_base is not None
        start = video.start_time * video.time_base
        times = []
        for packet in container.demux(audio):
            if packet.size:
                assert packet.pts is not None and packet.time_base is not None
                times.append(float(packet.pts * packet.time_base - start))
        return times


def video_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        times = []
        for frame in container.decode(video=0):
            assert frame.pts is not None and frame.time_base is not None
            times.append(float(frame.pts * frame.time_base))
        return sorted(times)


def warping_errors(source: Iterable[np.ndarray], stylized: Iterable[np.ndarray]) -> list[float]:
    """E_warp of frames 1..T-1 of two equally long frame streams, each against the frame before."""
    pairs = list(zip(source, stylized, strict=True))
    return [frame_warping_error(a[0], b[0], a[1], b[1]) for a, b in zip(pairs, pairs[1:])]


def is_red(rgb: np.ndarray) -> bool:
    r, g, b = rgb.reshape(-1, 3).astype(float).mean(axis=0)
    return r > 200 and g < 60 and b < 60


def zero_frame_clip(path: Path) -> Path:
    """A video stream without a single frame: MP4, or AVI (with MPEG-4 Part 2, as AVI expects)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4" if path.suffix == ".avi" else "libx264", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()  # PyAV writes the header lazily, at the first packet
    return path


def cut_clip(path: Path, whole: Path, fraction: float = 0.5) -> Path:
    """The first ``fraction`` of the bytes of ``whole``, a :func:`noise_clip`: its header still
    states every frame (MP4's index at the front, Matroska's DURATION), fewer are there."""
    data = whole.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def spoil_clip(path: Path, whole: Path, at: float = 0.5, size: int = 2048) -> Path:
    """``whole`` with ``size`` of its bytes from ``at`` of the way in overwritten by noise."""
    data = bytearray(whole.read_bytes())
    start = int(len(data) * at)
    data[start : start + size] = np.random.default_rng(1).bytes(len(data[start : start + size]))
    path.write_bytes(bytes(data))
    return path


def noise_clip(path: Path, n_frames: int = 20, width: int = 48, height: int = 32, fps: int = 12, form: str | None = None) -> Path:
    """An H.264 MP4 (or ``form``'s container) of random frames, each about as many bytes as
    the next, with its index at the front (``faststart``), so that its first bytes hold its
    first frames whole."""
    rng = np.random.default_rng(0)
    options = {"movflags": "faststart"} if form in (None, "mp4") else {}
    with av.open(str(path), "w", format=form, options=options) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for _ in range(n_frames):
            rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            container.mux(video.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(video.encode(None))
    return path


def make_pan(path: Path, photo: Path, n_frames: int = 16, width: int = 40, height: int = 32, fps: int = 10) -> Path:
    """A real photo seen through a window that slides one pixel a frame, right then back."""
    from PIL import Image

    with Image.open(photo) as img:
        scene = np.asarray(img.convert("RGB"))
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        travel = scene.shape[1] - width
        for i in range(n_frames):
            x = i % (2 * travel) if i % (2 * travel) <= travel else 2 * travel - i % (2 * travel)
            window = np.ascontiguousarray(scene[4 : 4 + height, x : x + width])
            container.mux(video.encode(av.VideoFrame.from_ndarray(window, format="rgb24")))
        container.mux(video.encode(None))
    return path
