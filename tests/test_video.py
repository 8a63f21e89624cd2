"""Video I/O: probing, streamed RGB frames, and the atomic H.264 writer that keeps the audio.

Every clip is made here with PyAV: a top half of pure red over a blue bottom half with a
white bar moving across it, optionally rotated, with irregular frame times, or with AAC
tracks (a sine tone each).
"""

from __future__ import annotations

import hashlib
import os
import types
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.video import VideoInfo, VideoWriter, probe, read_frames

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
) -> Path:
    """An H.264 MP4; ``audio`` AAC tracks; ``rotation`` counter-clockwise degrees as display
    matrix; ``times`` in seconds give each frame's timestamp (variable frame rate)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        if times is not None:
            video.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            video.set_display_rotation(rotation)
        tracks = [container.add_stream("aac", rate=SAMPLE_RATE, layout="mono") for _ in range(audio)]
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
        start = video.start_time * video.time_base
        return [float(p.pts * p.time_base - start) for p in container.demux(audio) if p.size]


def video_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return sorted(float(f.pts * f.time_base) for f in container.decode(video=0))


def is_red(rgb: np.ndarray) -> bool:
    r, g, b = rgb.reshape(-1, 3).astype(float).mean(axis=0)
    return r > 200 and g < 60 and b < 60


def test_probe_reports_size_count_rate_rotation_audio(tmp_path: Path) -> None:
    info = probe(make_clip(tmp_path / "a.mp4", n_frames=12, width=48, height=32, fps=12, audio=1))
    assert (info.width, info.height, info.frame_count, info.fps, info.rotation) == (48, 32, 12, 12, 0)
    assert info.has_audio and info.audio_streams == 1
    assert info.duration == pytest.approx(1.0, abs=1 / 12)
    silent = probe(make_clip(tmp_path / "b.mp4", n_frames=5, fps=25))
    assert (silent.frame_count, silent.fps, silent.has_audio) == (5, 25, False)
    # Matroska stores no frame count: counted from the packets instead.
    assert probe(make_clip(tmp_path / "c.mkv", n_frames=7, fps=10)).frame_count == 7


def test_read_frames_streams_every_frame_as_rgb(tmp_path: Path) -> None:
    frames = read_frames(make_clip(tmp_path / "a.mp4", n_frames=12, fps=12))
    assert isinstance(frames, types.GeneratorType)  # streamed, never a list of the whole video
    count = 0
    for i, frame in enumerate(frames):
        assert frame.index == i and frame.time == pytest.approx(i / 12, abs=1e-3)
        assert frame.rgb.shape == (32, 48, 3) and frame.rgb.dtype == np.uint8
        # Red on top, blue below: channels in RGB order, not OpenCV's BGR.
        assert is_red(frame.rgb[2:14])
        assert frame.rgb[18:, :, 2].mean() > 100 > frame.rgb[18:, :, 0].mean()
        count += 1
    assert count == 12


def test_rotated_clip_is_read_upright(tmp_path: Path) -> None:
    """Stored 48x32 with a 90-degree counter-clockwise display matrix: shown 32 wide, 48 high,
    and the top (red) half of the stored picture turns into the left half."""
    clip = make_clip(tmp_path / "r.mp4", n_frames=5, width=48, height=32, rotation=90)
    info = probe(clip)
    assert (info.width, info.height, info.rotation) == (32, 48, 270)
    frames = list(read_frames(clip))
    assert len(frames) == 5
    assert all(f.rgb.shape == (48, 32, 3) for f in frames)
    assert is_red(frames[0].rgb[:, 2:14]) and not is_red(frames[0].rgb[:, 18:])


def test_round_trip_keeps_frames_rate_duration_and_audio_unchanged(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", n_frames=15, width=48, height=32, fps=15, audio=2)
    before = probe(source)
    after = round_trip(source, tmp_path / "out" / "out.mp4")
    assert (after.width, after.height, after.frame_count, after.rotation) == (48, 32, 15, 0)
    assert float(after.fps) == pytest.approx(15, rel=0.01)
    assert after.duration == pytest.approx(before.duration, abs=1 / 15)
    # Same codec and the very same packets, byte for byte: copied, not re-encoded.
    copied = audio_packets(tmp_path / "out" / "out.mp4")
    assert len(copied) == 2 and copied == audio_packets(source)
    with av.open(str(tmp_path / "out" / "out.mp4")) as container:
        video = container.streams.video[0].codec_context
        assert (video.name, video.pix_fmt) == ("h264", "yuv420p")
    assert os.listdir(tmp_path / "out") == ["out.mp4"]
    frame = next(read_frames(tmp_path / "out" / "out.mp4"))
    assert is_red(frame.rgb[2:14])


def test_variable_frame_rate_times_are_kept(tmp_path: Path) -> None:
    times = [0.0, 0.04, 0.12, 0.13, 0.4, 0.45, 0.8, 0.81, 1.2, 1.25]
    source = make_clip(tmp_path / "vfr.mp4", n_frames=len(times), fps=10, times=times)
    assert [f.time for f in read_frames(source)] == pytest.approx(times, abs=2e-3)
    round_trip(source, tmp_path / "out.mp4")
    assert video_times(tmp_path / "out.mp4") == pytest.approx(times, abs=2e-3)


def test_audio_stays_in_sync_when_the_picture_starts_late(tmp_path: Path) -> None:
    """Video from 0.5 s, audio from 0 s: frame times count from the first frame, so the copied
    audio must move with them, keeping each sound at the same distance from the picture."""
    source = make_clip(tmp_path / "late.mp4", n_frames=8, fps=10, audio=1, times=[0.5 + i / 10 for i in range(8)])
    round_trip(source, tmp_path / "out.mp4")
    expected = audio_times_from_picture_start(source)
    assert expected[0] < -0.4  # the test means something only if the offset is really there
    assert audio_times_from_picture_start(tmp_path / "out.mp4") == pytest.approx(expected, abs=1e-3)


def test_odd_size_is_cropped_to_even(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "odd.mp4", n_frames=5, width=34, height=26)
    with VideoWriter(tmp_path / "out.mp4", source=None, width=33, height=25, fps=10) as writer:
        assert (writer.width, writer.height) == (32, 24)
        for frame in read_frames(source):
            writer.write(frame.rgb[:25, :33], frame.time)
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.frame_count, info.has_audio) == (32, 24, 5, False)
    assert is_red(next(read_frames(tmp_path / "out.mp4")).rgb[2:10])


def test_writer_rejects_frames_of_another_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="48x32x3"):
        with VideoWriter(tmp_path / "out.mp4", source=None, width=32, height=48, fps=10) as writer:
            writer.write(pattern(0, 32, 48), 0.0)
            writer.write(pattern(0, 48, 32), 0.1)
    assert os.listdir(tmp_path) == []


def test_exception_inside_with_leaves_no_output_and_no_temp_file(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "in.mp4", n_frames=6, audio=1)
    out_dir = tmp_path / "out"
    with pytest.raises(RuntimeError, match="stop"):
        with VideoWriter(out_dir / "out.mp4", source=source, width=48, height=32, fps=12) as writer:
            for frame in read_frames(source):
                writer.write(frame.rgb, frame.time)
            raise RuntimeError("stop")
    assert os.listdir(out_dir) == []


def test_existing_output_is_untouched_when_writing_fails(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous")
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, source=None, width=48, height=32, fps=12) as writer:
            writer.write(pattern(0, 48, 32), 0.0)
            raise KeyboardInterrupt
    assert out.read_bytes() == b"previous" and os.listdir(tmp_path) == ["out.mp4"]


def zero_frame_clip(path: Path) -> Path:
    """A video stream without a single frame: MP4, or AVI (with MPEG-4 Part 2, as AVI expects)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4" if path.suffix == ".avi" else "libx264", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()  # PyAV writes the header lazily, at the first packet
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)), "corrupt"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: None, "file not found"),
        # MP4 drops a track without samples: no video stream at all. AVI keeps it.
        (zero_frame_clip, "no video stream"),
        (zero_frame_clip, "no video frames"),
    ],
    ids=["random-bytes", "zero-bytes", "missing", "zero-frames-mp4", "zero-frames-avi"],
)
def test_unusable_files_raise_input_error_naming_the_file(tmp_path: Path, make, reason: str) -> None:
    path = tmp_path / ("bad.avi" if reason == "no video frames" else "bad.mp4")
    make(path)
    with pytest.raises(InputError, match=reason) as probed:
        probe(path)
    assert str(path) in str(probed.value) and "\n" not in str(probed.value)
    with pytest.raises(InputError) as read:
        list(read_frames(path))
    assert str(path) in str(read.value)
