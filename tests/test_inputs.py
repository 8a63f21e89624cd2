"""Awkward inputs end to end: the pixel limit, odd file names, odd and thin picture sizes,
files that change or vanish while a run reads them, and videos without sound or with
several tracks.

The picture decoders themselves are covered in test_imaging.py; here the concern is what
reaches the workers and what a run reports. Everything is tiny (32 px, 1-2 iterations).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
from PIL import Image

from clips import audio_packets, make_clip
from helpers import DATA, invoke
from nstpipe.app import stylize_folder, stylize_video
from nstpipe.config import DEFAULT_MAX_PIXELS, build_settings
from nstpipe.errors import ConfigError, InputError
from nstpipe.events import TaskStarted
from nstpipe.jobs.plan import ImageTask, source_identity
from nstpipe.jobs.records import make_job
from nstpipe.jobs.worker import ImageWorker, TaskResult, is_done, read_unchanged
from nstpipe.media.video import probe
from nstpipe.media.writer import read_record

FAST = ("--preset", "fast", "--size", "32", "-n", "1", "--scales", "1", "-q")
SETTINGS = build_settings("fast", None, {"size": 32, "iterations": 1, "scales": 1, "device": "cpu"})
CAFE = os.fsdecode(b"caf\xe9.jpg")  # Latin-1 bytes: not valid UTF-8
BROKEN = os.fsdecode(b"broken \xff.jpg")




# -- the pixel limit --------------------------------------------------------------------------


def test_max_pixels_setting_is_checked_and_leaves_fingerprints_alone() -> None:
    assert SETTINGS.max_pixels == DEFAULT_MAX_PIXELS == 89_478_485
    raised = build_settings("fast", None, {"size": 32, "iterations": 1, "scales": 1, "device": "cpu", "max_pixels": 0})
    assert raised.max_pixels == 0 and raised.fingerprint() == SETTINGS.fingerprint()
    with pytest.raises(ConfigError, match="'max_pixels'"):
        build_settings("fast", None, {"max_pixels": -1})


def test_max_pixels_flag_reaches_styles_and_workers(tmp_path: Path, painting_path: Path, make_rgb: Callable[..., Path]) -> None:
    """The style (64x40 = 2560 px) is checked before any work; inputs in the worker."""
    root = tmp_path / "in"
    make_rgb(root / "small.png", 24, 16)
    make_rgb(root / "big.png", 60, 80)
    out = tmp_path / "out"
    refused = invoke("images", root, "-s", painting_path, "-o", out, *FAST, "--max-pixels", "2000")
    assert refused.exit_code == 2 and not out.exists()
    assert refused.stderr.count("\n") == 1 and str(painting_path) in refused.stderr and "--max-pixels" in refused.stderr

    result = invoke("images", root, "-s", painting_path, "-o", out, *FAST, "--max-pixels", "3000")
    assert result.exit_code == 1, result.output
    assert "1 stylized, 0 already done, 1 failed" in result.stdout
    (failure,) = [line for line in result.stderr.splitlines() if line.startswith("nstpipe: failed:")]
    assert f"{root / 'big.png'}: 80x60 = 4,800 pixels is over the limit of 3,000" in failure
    assert (out / "small.png").is_file() and not (out / "big.png").exists()

    # The limit is not part of the settings' identity: raising it keeps the finished output.
    again = invoke("images", root, "-s", painting_path, "-o", out, *FAST, "--max-pixels", "0")
    assert "1 already done" in again.stdout


# -- file names ---------------------------------------------------------------------------------


def test_names_with_odd_bytes_and_spaces_end_to_end(tmp_path: Path, painting_path: Path, make_rgb: Callable[..., Path]) -> None:
    root = tmp_path / "in"
    make_rgb(root / CAFE, 16, 24)
    make_rgb(root / "with space" / "a b.png", 20, 16)
    (root / "with space" / BROKEN).write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    out = tmp_path / "out"
    result = invoke("images", root, "-s", painting_path, "-o", out, *FAST)
    assert result.exit_code == 1, result.output
    assert "2 stylized, 0 already done, 1 failed" in result.stdout
    # The mirrored names, byte for byte.
    assert [n for n in os.listdir(os.fsencode(out)) if n.endswith(b".png")] == [b"caf\xe9.png"]
    assert [n for n in os.listdir(os.fsencode(out / "with space")) if n.endswith(b".png")] == [b"a b.png"]
    (failure,) = [line for line in result.stderr.splitlines() if line.startswith("nstpipe: failed:")]
    # One line, the odd byte escaped rather than a UnicodeEncodeError.
    assert "with space/broken \\udcff.jpg: corrupt or truncated image" in failure
    assert "Traceback" not in result.output


def test_an_output_whose_record_name_is_too_long_is_refused_before_any_work(tmp_path: Path, painting_path: Path) -> None:
    """``OUT.settings.json`` beside a 250-byte output is over the file system's 255: the
    picture was painted whole, then lost when its record was written."""
    most = os.pathconf(tmp_path, "PC_NAME_MAX")
    if most != 255:
        pytest.skip(f"names here may have {most} bytes, not 255")
    photo = tmp_path / ("y" * 240 + ".png")
    Image.new("RGB", (24, 16), (40, 90, 160)).save(photo)
    before = sorted(os.listdir(tmp_path))
    for output in ([], ["-o", tmp_path / ("z" * 246 + ".png")]):
        result = invoke("image", photo, "-s", painting_path, *output, *FAST)
        assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
        assert "bytes, and this file system holds 255 at most; give -o a shorter name" in result.stderr
        assert str(output[-1] if output else tmp_path / ("y" * 240 + ".starry_night_64.png")) in result.stderr
    assert sorted(os.listdir(tmp_path)) == before


def test_odd_bytes_in_a_printed_path_do_not_crash_a_strict_stdout(tmp_path: Path, painting_path: Path) -> None:
    """A UTF-8 locale gives sys.stdout strict errors: the summary line naming an output folder
    with a non-UTF-8 name raised UnicodeEncodeError once the work was done."""
    (tmp_path / "empty").mkdir()
    out = tmp_path / os.fsdecode(b"out \xe9")
    script = (
        "import sys\n"
        f"sys.argv = ['nstpipe', 'images', {str(tmp_path / 'empty')!r}, '-s', {str(painting_path)!r}, '-o', {str(out)!r}, '-q']\n"
        "from nstpipe import cli\n"
        "cli.main()\n"
    )
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, env=env, timeout=120, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert done.stdout.endswith(b"outputs in " + os.fsencode(out) + b"\n")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
@pytest.mark.parametrize(("command", "suffix"), [("image", ".png"), ("dream", ".png"), ("video", ".mp4")])
def test_a_fifo_given_as_the_picture_is_one_line(tmp_path: Path, painting_path: Path, command: str, suffix: str) -> None:
    """Refused before it is opened (``dream`` first asks what kind of input it is): in a child
    process, so that a command that opens the FIFO fails the test instead of hanging it."""
    fifo = tmp_path / f"pipe{suffix}"
    os.mkfifo(fifo)
    style = ["-s", str(painting_path)] if command != "dream" else []
    argv = ["nstpipe", command, str(fifo), *style, "-o", str(tmp_path / f"out{suffix}"), "--size", "32", "-q"]
    script = f"import sys\nsys.argv = {argv!r}\nfrom nstpipe import cli\ncli.main()\n"
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[1])
    except subprocess.TimeoutExpired:
        pytest.fail(f"nstpipe {command} waited for a writer to the FIFO")
    assert done.returncode == 2 and done.stderr == f"nstpipe: error: {fifo}: not a regular file\n"
    assert not (tmp_path / f"out{suffix}").exists()


# -- files that change or vanish during a run ---------------------------------------------------------


@pytest.fixture(scope="module")
def worker() -> ImageWorker:
    """One real worker (VGG19 and the style loaded once) for the tests of this section."""
    return ImageWorker(make_job(SETTINGS, [DATA / "starry_night_64.jpg"]))


def task_for(tmp_path: Path, source: Path) -> ImageTask:
    return ImageTask(source=source, relative=Path(source.name), output=tmp_path / "out" / (source.stem + ".png"))


def rewrite(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (24, 16)) -> None:
    """New content, and a new mtime even on file systems with coarse timestamps."""
    mtime = path.stat().st_mtime_ns if path.exists() else 0
    Image.new("RGB", size, colour).save(path)
    os.utime(path, ns=(mtime + 2_000_000_000, mtime + 2_000_000_000))


def changing_reader(monkeypatch: pytest.MonkeyPatch, path: Path, times: int) -> list[int]:
    """The worker's reader, rewriting ``path`` right after each of its first ``times`` reads."""
    import nstpipe.jobs.worker as worker_module

    real, calls = worker_module.read_photo, []

    def read(source: Path, *args: Any, **kwargs: Any):
        image = real(source, *args, **kwargs)
        calls.append(1)
        if len(calls) <= times:
            rewrite(path, (0, 0, 255) if len(calls) % 2 else (0, 255, 0))
        return image

    monkeypatch.setattr(worker_module, "read_photo", read)
    return calls


def test_file_rewritten_while_read_is_read_again(tmp_path: Path, worker: ImageWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "photo.png"
    rewrite(source, (255, 0, 0))
    calls = changing_reader(monkeypatch, source, times=1)
    result = worker.process_batch([task := task_for(tmp_path, source)])[0]
    assert result.ok and len(calls) == 2
    # The record vouches for the bytes of the second read: the file as it now is.
    record = read_record(task.output)
    assert record is not None and record["source"] == source_identity(source)
    assert is_done(task, worker.job)


def test_file_that_keeps_changing_is_reported_not_recorded(tmp_path: Path, worker: ImageWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "photo.png"
    rewrite(source, (255, 0, 0))
    changing_reader(monkeypatch, source, times=5)
    result = worker.process_batch([task := task_for(tmp_path, source)])[0]
    assert not result.ok and result.error == f"{source}: changed while it was being read (is it still being written?)"
    assert not task.output.exists() and not is_done(task, worker.job)


def test_file_changed_after_the_read_is_redone_next_time(tmp_path: Path, worker: ImageWorker, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record holds the identity of what was read, so a change during the (long)
    optimization leaves a stale record, and the next run redoes the file."""
    source = tmp_path / "photo.png"
    rewrite(source, (255, 0, 0))
    real_run = worker.painter.run

    def run_then_change(*args: Any, **kwargs: Any):
        rewrite(source, (0, 0, 255))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(worker.painter, "run", run_then_change)
    result = worker.process_batch([task := task_for(tmp_path, source)])[0]
    assert result.ok and task.output.is_file()
    assert not is_done(task, worker.job)


@pytest.mark.parametrize(("size", "expected"), [((1, 1), (32, 32)), ((33, 17), (32, 16)), ((19, 31), (20, 32))])
def test_odd_and_one_pixel_images_are_stylized(
    tmp_path: Path, worker: ImageWorker, size: tuple[int, int], expected: tuple[int, int]
) -> None:
    source = tmp_path / "odd.png"
    Image.new("RGB", size, (200, 30, 30)).save(source)
    result = worker.process_batch([task := task_for(tmp_path, source)])[0]
    assert result.ok, result.error
    with Image.open(task.output) as img:
        assert img.size == expected


@pytest.mark.parametrize("size", [(33, 15), (7, 31)])
def test_too_thin_a_picture_is_reported_not_a_crash(tmp_path: Path, worker: ImageWorker, size: tuple[int, int]) -> None:
    """At 32 px a 33x15 picture is 32x15; VGG19 pools four times before relu5_1, and a side of
    15 would come out as nothing (PyTorch raised RuntimeError, which stopped the whole run)."""
    source = tmp_path / "thin.png"
    Image.new("RGB", size, (200, 30, 30)).save(source)
    result = worker.process_batch([task := task_for(tmp_path, source)])[0]
    assert not result.ok and not task.output.exists()
    assert result.error is not None
    assert result.error.startswith(f"{source}: too thin to stylize at ") and "at least 16 on each side (raise --size)" in result.error


def test_too_thin_a_single_picture_is_one_line_naming_it(tmp_path: Path, painting_path: Path) -> None:
    source = tmp_path / "thin.png"
    Image.new("RGB", (33, 15), (200, 30, 30)).save(source)
    result = invoke("image", source, "--style", painting_path, "--size", "32", "-n", "1", "--device", "cpu")
    last = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 2 and last.startswith(f"nstpipe: error: {source}: too thin to stylize at "), result.output
    assert "Traceback" not in result.output


def test_pyramid_leaves_out_levels_too_thin_for_the_layers() -> None:
    from nstpipe.engine.stylize import pyramid

    assert SETTINGS.engine.min_side == 16
    assert pyramid(20, 64, 2, 16, min_side=16) == [(20, 64)]  # the coarse 10x32 would fail
    assert pyramid(40, 64, 3, 16, min_side=16) == [(20, 32), (40, 64)]


def test_read_unchanged_reports_a_vanished_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="gone.png: file not found"):
        read_unchanged(tmp_path / "gone.png", 32, DEFAULT_MAX_PIXELS)


def test_file_vanishing_mid_run_is_reported_and_the_rest_goes_on(
    tmp_path: Path, painting_path: Path, make_rgb: Callable[..., Path]
) -> None:
    root = tmp_path / "in"
    for name in ("a.png", "b.png", "c.png"):
        make_rgb(root / name, 16, 16)
    events: list[object] = []

    def report(event: object) -> None:
        events.append(event)
        if isinstance(event, TaskStarted) and event.task.relative.name == "a.png":
            (root / "b.png").unlink()  # planned and counted, gone before its turn

    outcome = stylize_folder(root, [painting_path], tmp_path / "out", SETTINGS, report)
    assert outcome.done == 2
    assert [f.error for f in outcome.failed] == [f"{root / 'b.png'}: file not found"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["a.png", "c.png"]
    assert sum(isinstance(e, TaskResult) for e in events) == 3


# -- video: no sound, several tracks ------------------------------------------------------------------


@pytest.mark.parametrize("tracks", [0, 2])
def test_video_without_audio_or_with_several_tracks(tmp_path: Path, painting_path: Path, tracks: int) -> None:
    clip = make_clip(tmp_path / "in.mp4", n_frames=3, width=48, height=32, fps=6, audio=tracks)
    settings = build_settings("fast", None, {"size": 32, "iterations": 1, "scales": 1, "later_iterations": 1, "device": "cpu"})
    out = tmp_path / "out.mp4"
    stylize_video(clip, [painting_path], out, settings, lambda event: None)
    info = probe(out)
    assert (info.frame_count, info.audio_streams) == (3, tracks)
    assert audio_packets(out) == audio_packets(clip)  # every track copied, byte for byte


def test_a_thin_style_image_is_scaled_up_enough_for_the_layers(tmp_path: Path) -> None:
    """A 200x10 style resized to the output's long side (32) would be 32x2: pooled to nothing."""
    style = tmp_path / "strip.png"
    Image.new("RGB", (200, 10), (20, 40, 200)).save(style)
    worker = ImageWorker(make_job(SETTINGS, [style]))
    source = tmp_path / "photo.png"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(source)
    result = worker.process_batch([task_for(tmp_path, source)])[0]
    assert result.ok, result.error
