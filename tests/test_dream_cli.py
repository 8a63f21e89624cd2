"""``nstpipe dream`` end to end at 32-48 px through typer's CliRunner: a photo, a folder
that resumes, a video that resumes after an interruption, the guide, and mistakes answered
with one line and exit status 2."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clips import make_clip
from helpers import CPU_AUTO, invoke, pixels, snapshot, write_rgb
from nstpipe.app import stylize_video
from nstpipe.config import build_settings
from nstpipe.events import FrameDone, FrameStarted, VideoPlanned
from nstpipe.media.video import probe
from nstpipe.media.writer import encode_image
from nstpipe.modes.model import read_image

TINY = ("--size", "32", "-n", "2", "--octaves", "2", "--jitter", "4", "--device", "cpu")


class Stop(Exception):
    """Stands in for Ctrl-C or a crash."""


@pytest.fixture
def photo(tmp_path: Path, photo_path: Path) -> Path:
    return Path(shutil.copy(photo_path, tmp_path / "photo.jpg"))


def test_a_photo_is_dreamed_beside_itself_and_a_rerun_keeps_it(photo: Path) -> None:
    result = invoke("dream", photo, *TINY)
    assert result.exit_code == 0, result.output
    out = photo.with_name("photo.dream.jpg")
    first = result.stderr.splitlines()[0]  # the size, the photo's own, and about how long that would take here
    assert first.startswith("nstpipe: 32x24 (the input is 64x48; ") and first.endswith(f" on cpu ({CPU_AUTO}) -> {out}")
    assert f"wrote {out}" in result.stdout
    dreamed = pixels(out)
    assert dreamed.shape == (24, 32, 3)
    photo_at_32 = (read_image(photo, 32)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    # Against the photo resized and saved the same way: JPEG's own loss is several levels.
    as_saved = np.asarray(Image.open(io.BytesIO(encode_image(photo_at_32, "JPEG"))), dtype=np.float64)
    assert np.abs(dreamed - as_saved).mean() > 1.0  # dreamed, not the photo resized
    record = json.loads(out.with_name("photo.dream.jpg.settings.json").read_text())
    settings = record["settings"]
    assert settings["mode"] == "dream" and settings["dream_layers"] == ["relu4_2"] and settings["scales"] == 2
    assert settings["iterations"] == settings["coarse_iterations"] == 2 and record["result"]["iterations"] == 4
    before = out.stat().st_mtime_ns
    again = invoke("dream", photo, *TINY, "-q")
    assert again.exit_code == 0 and f"kept {out}" in again.stdout and out.stat().st_mtime_ns == before
    deeper = invoke("dream", photo, *TINY, "-q", "--layer", "relu3_1", "--channel", "7")  # other settings: made anew
    assert deeper.exit_code == 0 and f"wrote {out}" in deeper.stdout


def test_a_guided_dream_is_named_after_its_guide_and_differs_from_the_plain_one(photo: Path, painting_path: Path) -> None:
    guide = Path(shutil.copy(painting_path, photo.with_name("waves.jpg")))
    # Saved as the guided one is (JPEG), so that the encoder's loss is no difference here.
    plain = invoke("dream", photo, *TINY, "-q", "-o", photo.with_name("plain.jpg"))
    guided = invoke("dream", photo, *TINY, "-q", "--guide", guide)
    assert plain.exit_code == 0 and guided.exit_code == 0, guided.output
    out = photo.with_name("photo.dream-waves.jpg")
    assert f"wrote {out}" in guided.stdout
    assert np.abs(pixels(out) - pixels(photo.with_name("plain.jpg"))).mean() > 0.5
    record = json.loads(out.with_name(out.name + ".settings.json").read_text())
    assert record["styles"] == [str(guide)]


def test_a_folder_is_mirrored_and_resumes_where_it_stopped(tmp_path: Path) -> None:
    for name in ("a.png", "sub/b.png", "sub/c.jpg"):
        write_rgb(tmp_path / "in" / name, 24, 32, seed=len(name))
    out = tmp_path / "in.dream"
    first = invoke("dream", tmp_path / "in", *TINY, "-q")
    assert first.exit_code == 0, first.output
    assert "3 stylized, 0 already done, 0 failed" in first.stdout
    outputs = [out / "a.png", out / "sub" / "b.png", out / "sub" / "c.png"]
    assert all(p.is_file() for p in outputs)
    kept = {p: p.stat().st_mtime_ns for p in outputs[:2]}
    outputs[2].unlink()  # as if the run had stopped before the last picture
    again = invoke("dream", tmp_path / "in", *TINY, "-q")
    assert "1 stylized, 2 already done, 0 failed" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in kept} == kept and outputs[2].is_file()
    other = invoke("dream", tmp_path / "in", *TINY, "-q", "--octave-scale", "1.6")
    assert "3 stylized, 0 already done" in other.stdout


def test_a_video_keeps_its_frames_and_audio_and_resumes_after_an_interruption(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", n_frames=6, width=48, height=32, fps=6, audio=1)
    settings = build_settings("dream", None, {
        "mode": "dream", "size": 32, "scales": 2, "iterations": 2, "coarse_iterations": 2, "later_iterations": 1, "device": "cpu",
    })
    out, work = tmp_path / "clip.dream.mp4", tmp_path / "work"
    events: list[object] = []

    def stop_after_three(event: object) -> None:
        events.append(event)
        if isinstance(event, FrameDone) and sum(isinstance(e, FrameDone) for e in events) == 3:
            raise Stop

    with pytest.raises(Stop):
        stylize_video(clip, [], out, settings, stop_after_three, work_dir=work)
    assert not out.exists()
    events.clear()
    summary = stylize_video(clip, [], out, settings, events.append, work_dir=work)
    assert VideoPlanned(6, 3) in events and [e.index for e in events if isinstance(e, FrameStarted)] == [3, 4, 5]
    assert summary.iterations == 3 * 1  # later frames: later_iterations each
    source, result = probe(clip), probe(out)
    assert (result.frame_count, result.fps) == (source.frame_count, source.fps)
    assert result.audio_streams == source.audio_streams


def test_the_video_command_line_names_its_output_after_the_dream(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "walk.mp4", n_frames=3, width=48, height=32, fps=6)
    result = invoke("dream", clip, *TINY, "--later-iterations", "1", "-q")
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'walk.dream.mp4'}: 3 frames" in result.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--layer", "relu9_1"), "unknown VGG19 layer 'relu9_1'"),
        (("--layer", "relu2_1", "--channel", "128"), "relu2_1 has channels 0 to 127 (got 128)"),
        (("--octave-scale", "1.0"), "'octave_scale' (--octave-scale): must be a finite number above 1"),
        (("--octave-scale", "nan"), "must be a finite number above 1"),
        (("--learning-rate", "-1"), "'learning_rate'"),
        (("--guide", "missing.jpg"), "missing.jpg"),
    ],
)
def test_mistakes_are_one_line_and_exit_2_and_touch_nothing(photo: Path, args: tuple[str, ...], says: str) -> None:
    before = snapshot(photo.parent)
    result = invoke("dream", photo, *TINY, *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nstpipe: error:") and says in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert snapshot(photo.parent) == before


def test_a_missing_input_is_named(tmp_path: Path) -> None:
    result = invoke("dream", tmp_path / "nothing.jpg", *TINY)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"nstpipe: error: {tmp_path / 'nothing.jpg'}: no such file or folder"


def animated(path: Path) -> Path:
    """Two frames, saved as Pillow saves an animation (``save_all``)."""
    frames = [Image.new("RGB", (48, 32), colour) for colour in ((200, 40, 40), (40, 40, 200))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    return path


def test_an_animated_webp_is_dreamed_as_its_first_frame_and_never_as_a_video(tmp_path: Path, painting_path: Path) -> None:
    """FFmpeg cannot decode an animated WebP's frames: it was sent to the video reader and
    called corrupt. It is a picture, as ``image`` and a folder read it; asked for as a video
    (``-o x.mp4``, ``video``), it is refused in one line that says why."""
    anim = animated(tmp_path / "anim.webp")
    result = invoke("dream", anim, *TINY, "-q")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "anim.dream.webp") as out:
        assert out.format == "WEBP" and getattr(out, "n_frames", 1) == 1 and out.size == (32, 21)
    before = snapshot(tmp_path)
    line = f"nstpipe: error: {anim}: animated WebP: FFmpeg here cannot decode its frames; convert it to a GIF or MP4\n"
    for args in (("dream", anim, "-o", tmp_path / "x.mp4", *TINY), ("video", anim, "-s", painting_path, "--size", "32", "-n", "1")):
        result = invoke(*args)
        assert result.exit_code == 2 and result.stderr == line, result.output
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [("empty.webp", b"", "empty file"), ("empty.gif", b"", "empty file"), ("bad.gif", b"GIF89a\x00cut", "not an image file PIL can read"),
     ("bad.webp", b"RIFF\x00\x00\x00\x00WEBPcut", "not an image file PIL can read")],
)
def test_a_broken_gif_or_webp_is_the_problem_reported_not_the_output(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    """Unreadable, it was taken for a video, and ``-o x.png`` was blamed for not being .mp4."""
    (bad := tmp_path / name).write_bytes(content)
    result = invoke("dream", bad, "-o", tmp_path / "x.png", *TINY)
    assert result.exit_code == 2 and result.stderr == f"nstpipe: error: {bad}: {reason}\n", result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_broken_photo_in_a_folder_is_one_failure_and_the_rest_are_dreamed(tmp_path: Path) -> None:
    write_rgb(tmp_path / "in" / "good.png", 24, 32)
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not a jpeg")
    result = invoke("dream", tmp_path / "in", *TINY, "-q")
    assert result.exit_code == 1
    assert "1 stylized, 0 already done, 1 failed" in result.stdout
    failures = [line for line in result.stderr.splitlines() if line.startswith("nstpipe: failed:")]
    assert len(failures) == 1 and "bad.jpg" in failures[0]
