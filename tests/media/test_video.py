"""Video I/O: probing, streamed RGB frames, and the atomic H.264 writer that keeps the audio.

The clips are made by tests/clips.py with PyAV (see there for what they show).
"""

from __future__ import annotations

import os
import types
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clips import (
    SAMPLE_RATE,
    audio_packets,
    audio_times_from_picture_start,
    cut_clip,
    flac_clip,
    is_red,
    joined,
    make_clip,
    noise_clip,
    pattern,
    round_trip,
    spoil_clip,
    video_times,
    zero_frame_clip,
)
from nstpipe.errors import InputError
from nstpipe.media.audio import check_audio
from nstpipe.media.video import VideoWriter, probe, read_frames


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


def test_colour_is_interpolated_between_the_samples_of_4_2_0(tmp_path: Path) -> None:
    """H.264 keeps one colour sample per 2x2 pixels. Read as swscale converts directly, each
    sample is repeated over its block: R - B (which does not depend on the luma) then steps
    only between blocks. Interpolated, as a player shows it, it steps between every two
    columns alike."""
    ramp = np.linspace(0, 255, 64)
    rgb = np.zeros((16, 64, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = ramp.astype(np.uint8), (255 - ramp).astype(np.uint8)
    path = tmp_path / "ramp.mp4"
    with VideoWriter(path, None, 64, 16, 10, crf=0) as writer:
        for i in range(3):
            writer.write(rgb, i / 10)
    frame = next(read_frames(path)).rgb.astype(int)
    steps = np.abs(np.diff(frame[4:12, 8:56, 0] - frame[4:12, 8:56, 2], axis=1)).mean(0)
    within, across = steps[0::2].mean(), steps[1::2].mean()  # column 8 starts a block
    assert within > 0.5 * across > 0
    assert np.abs(frame - rgb.astype(int)).mean() < 3  # and the colours are the frame's own


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


@pytest.mark.parametrize(
    ("form", "codec", "out"),
    [("mov", "pcm_mulaw", "out.mp4"), ("avi", "pcm_u8", "out.mp4"), ("mov", "pcm_s16le", "out.mp4"), ("matroska", "flac", "out.mov")],
)
def test_audio_the_output_cannot_hold_is_reencoded_to_aac(tmp_path: Path, form: str, codec: str, out: str) -> None:
    """An old camera's PCM cannot go into MP4, nor FLAC into MOV: re-encoded, not lost, and
    not found out only once every frame is painted."""
    source = make_clip(tmp_path / f"cam.{form}", n_frames=10, fps=10, audio=1, audio_codec=codec, form=form)
    assert audio_packets(source)[0][0] == codec
    check_audio(source, tmp_path / out)
    after = round_trip(source, tmp_path / out)
    assert after.has_audio and after.frame_count == 10
    with av.open(str(tmp_path / out)) as container:
        track = container.streams.audio[0]
        assert track.codec_context.name == "aac"
        samples = sum(frame.samples for frame in container.decode(track))
    assert samples / track.codec_context.sample_rate == pytest.approx(1.0, abs=0.1)
    assert sorted(os.listdir(tmp_path)) == sorted([source.name, out])


def test_a_gap_in_reencoded_sound_is_kept(tmp_path: Path) -> None:
    """Sound from 0 to 0.5 s and from 1 to 1.5 s: re-encoded, the second part still starts
    at 1 s, not where the first ended."""
    blocks = [start + offset for start in (0, SAMPLE_RATE) for offset in range(0, SAMPLE_RATE // 2, 1024)]
    source = flac_clip(tmp_path / "gap.mkv", n_frames=16, blocks=blocks)
    round_trip(source, tmp_path / "out.mov")
    with av.open(str(tmp_path / "out.mov")) as container:
        track = container.streams.audio[0]
        assert track.codec_context.name == "aac"
        loud = [float(f.time) for f in container.decode(track) if f.time is not None and np.abs(f.to_ndarray()).max() > 0.1]
    assert loud[-1] > 1.4
    assert not [t for t in loud if 0.55 < t < 0.95]


def test_a_corrupt_packet_of_reencoded_sound_is_dropped(tmp_path: Path) -> None:
    """FLAC (which MOV cannot hold) with one packet of noise: the rest is re-encoded, as
    FFmpeg's tools drop what they cannot decode; the output is not blamed for the source."""
    source = flac_clip(tmp_path / "bad.mkv", n_frames=10, blocks=range(0, SAMPLE_RATE, 1024), spoil=5)
    round_trip(source, tmp_path / "out.mov")
    with av.open(str(tmp_path / "out.mov")) as container:
        samples = sum(frame.samples for frame in container.decode(container.streams.audio[0]))
    assert samples / SAMPLE_RATE > 0.8


def test_audio_that_cannot_be_kept_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nstpipe.media import audio

    source = make_clip(tmp_path / "cam.mov", n_frames=4, fps=10, audio=1, audio_codec="pcm_mulaw", form="mov")
    check_audio(source, tmp_path / "out.mov")  # MOV holds it as it is
    monkeypatch.setattr(audio, "AAC_LAYOUTS", {})  # as for a track of more channels than AAC takes
    refusal = r"cam\.mov.*audio track 1 \(pcm_mulaw, 1 channels\) can be neither copied into \.mp4 nor re-encoded"
    with pytest.raises(InputError, match=refusal):
        check_audio(source, tmp_path / "out.mp4")


def test_a_stream_whose_size_changes_is_read_at_its_first_size(tmp_path: Path) -> None:
    first = make_clip(tmp_path / "a.ts", n_frames=3, width=48, height=32, fps=10, form="mpegts")
    second = make_clip(tmp_path / "b.ts", n_frames=3, width=64, height=32, fps=10, form="mpegts")
    source = joined(tmp_path / "ab.ts", [first, second])
    info = probe(source)
    frames = list(read_frames(source))
    assert (info.width, info.height) == (48, 32)
    assert [f.rgb.shape for f in frames] == [(32, 48, 3)] * 6
    assert is_red(frames[5].rgb[2:14])


def test_times_that_jump_back_follow_on_and_the_audio_with_them(tmp_path: Path) -> None:
    """Three MPEG-TS parts joined: each part is laid after the one before, its sound as far
    from its picture as in the part itself."""
    part = make_clip(tmp_path / "part.ts", n_frames=5, fps=10, audio=1, form="mpegts")
    own = audio_times_from_picture_start(part)
    source = joined(tmp_path / "three.ts", [part, part, part])
    times = [f.time for f in read_frames(source)]
    assert len(times) == 15
    assert all(later > earlier for earlier, later in zip(times, times[1:]))
    round_trip(source, tmp_path / "out.mp4")
    assert video_times(tmp_path / "out.mp4") == pytest.approx(times, abs=2e-3)
    audio = audio_times_from_picture_start(tmp_path / "out.mp4")
    assert len(audio) == 3 * len(own)
    for k in range(3):
        assert audio[k * len(own)] - times[5 * k] == pytest.approx(own[0], abs=1e-3)


def test_a_ts_file_is_walked_once_for_where_its_times_start_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A video split into chains reads its frames once a chain, and its sound once more: its
    packets are walked once for the shifts, until the file changes."""
    from nstpipe.media import ffmpeg

    walks: list[str] = []
    walk = ffmpeg._starts

    def counted(container: av.container.InputContainer) -> dict[int, list[tuple[int, float]]]:
        walks.append(container.name)
        return walk(container)

    monkeypatch.setattr(ffmpeg, "_starts", counted)
    part = make_clip(tmp_path / "part.ts", n_frames=3, fps=10, audio=1, form="mpegts")
    source = joined(tmp_path / "two.ts", [part, part])
    times = [f.time for f in read_frames(source)]
    assert [f.time for f in read_frames(source)] == times and len(times) == 6
    round_trip(source, tmp_path / "out.mp4")  # its frames once more, and its sound
    assert len(walks) == 1
    joined(source, [part, part, part])
    assert len(list(read_frames(source))) == 9 and len(walks) == 2


def test_a_time_a_little_back_is_left_to_the_writer_and_one_missing_follows_on() -> None:
    """No muxer writes such a file, so the clock is given the frames' times as a decoder
    would: a glitch a tick back is not a new start (the frames after keep their times), and
    frames without a time follow one frame after the last, never back to 0."""
    from nstpipe.media.ffmpeg import Shifts
    from nstpipe.media.video import _Clock

    stream = types.SimpleNamespace(average_rate=Fraction(10), guessed_rate=None, time_base=Fraction(1, 1000), start_time=0, index=0)
    clock = _Clock(stream, Shifts({}))  # type: ignore[arg-type]
    pts = [None, None, 200, 300, 299, 400, None]
    times = [clock.seconds(types.SimpleNamespace(pts=p), i) for i, p in enumerate(pts)]  # type: ignore[arg-type]
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.299, 0.4, 0.5])


@pytest.mark.parametrize("form, suffix", [("mp4", ".mp4"), ("matroska", ".mkv")])
def test_a_file_cut_off_is_read_to_where_it_ends_and_says_how_far_short(tmp_path: Path, form: str, suffix: str) -> None:
    """Its header still states every frame (MP4's index, Matroska's DURATION), its container
    counts only those there: the probe counts those, and about how many are missing; the
    reader gives as many, as in the whole file. The packet cut short has the frame before
    stand in for it, not the frames a decoder in threads held when the stream ended."""
    whole = noise_clip(tmp_path / f"whole{suffix}", n_frames=20, form=form)
    cut = cut_clip(tmp_path / f"cut{suffix}", whole)
    info, frames, own = probe(cut), list(read_frames(cut)), list(read_frames(whole))
    assert probe(whole).cut_off == 0 and probe(whole).ends_early is None
    assert 0 < info.frame_count == len(frames) < 20 and abs(info.frame_count + info.cut_off - 20) <= 1
    assert info.ends_early == f"the file ends after {info.frame_count} of about {info.frame_count + info.cut_off} frames (cut off?)"
    assert [f.index for f in frames if f.stand_in] in ([], [len(frames) - 1])
    for frame, same in zip(frames, own):
        assert frame.time == same.time and (frame.stand_in or np.array_equal(frame.rgb, same.rgb))


def test_a_corrupt_packet_has_the_frame_before_stand_in_at_its_time(tmp_path: Path) -> None:
    """As FFmpeg goes on past a packet it cannot decode, and keeps the rate by repeating the
    frame before: every frame the probe counted, at its own time, so a resumed run gets past."""
    whole = noise_clip(tmp_path / "whole.mp4", n_frames=20)
    bad = spoil_clip(tmp_path / "bad.mp4", whole)
    frames, own = list(read_frames(bad)), list(read_frames(whole))
    assert len(frames) == probe(bad).frame_count == 20 and [f.time for f in frames] == [f.time for f in own]
    stand_ins = [f.index for f in frames if f.stand_in]
    assert stand_ins and stand_ins[0] > 0
    assert all(np.array_equal(frames[k].rgb, frames[k - 1].rgb) for k in stand_ins)
    # (Frames decoded from data near the noise may differ; the first frames are whole.)
    assert np.array_equal(frames[0].rgb, own[0].rgb)


def test_non_square_pixels_are_shown_square(tmp_path: Path) -> None:
    """Anamorphic video (DV, HDV): each coded pixel shown twice as wide is read as two."""
    source = make_clip(tmp_path / "wide.mp4", n_frames=3, width=48, height=32, aspect=Fraction(2))
    info = probe(source)
    frames = list(read_frames(source))
    assert (info.width, info.height) == (96, 32)
    assert frames[0].rgb.shape == (32, 96, 3)
    tall = make_clip(tmp_path / "tall.mp4", n_frames=3, width=48, height=32, aspect=Fraction(1, 2))
    assert (probe(tall).width, probe(tall).height) == (48, 64)
    assert next(read_frames(tall)).rgb.shape == (64, 48, 3)


def test_a_name_with_a_colon_is_read_as_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dashcam's name: FFmpeg takes ``2024-06-01T10:`` for a protocol unless told it is a file."""
    make_clip(tmp_path / "2024-06-01T10:30:00.mp4", n_frames=4, audio=1)
    monkeypatch.chdir(tmp_path)
    source = Path("2024-06-01T10:30:00.mp4")
    assert probe(source).frame_count == 4
    assert round_trip(source, Path("2024-06-01T10:31:00.mp4")).has_audio


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


def test_an_unreadable_video_is_reported_once_without_decoder_chatter(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """FFmpeg prints its own lines ("moov atom not found") on stderr at the C level; the
    error itself is one line, so they are kept quiet, by probe and read_frames alike."""
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(np.random.default_rng(1).bytes(3000))
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(make_clip(tmp_path / "whole.mp4", n_frames=4).read_bytes()[:-200])
    for path in (bad, truncated):
        with pytest.raises(InputError, match=r"or corrupt \((Invalid data found when processing input|End of file)\)$"):
            probe(path)
        with pytest.raises(InputError, match=r"or corrupt \((Invalid data found when processing input|End of file)\)$"):
            list(read_frames(path))
    assert capfd.readouterr().err == ""
