"""The ``nstpipe`` command line, end to end at tiny sizes through typer's CliRunner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path, PurePath
from typing import Any, Callable

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from nstpipe.cli import app
from nstpipe.media.writer import read_record

runner = CliRunner()
FAST = ("--preset", "fast", "--size", "32", "-n", "3", "-q")


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def mtimes(paths: list[Path]) -> list[int]:
    return [p.stat().st_mtime_ns for p in paths]


@pytest.fixture
def folder(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    """in/a.jpg, in/sub/b.png, in/sub/deeper/c.jpg, a corrupt in/sub/broken.jpg and in/notes.txt."""
    root = tmp_path / "in"
    make_rgb(root / "a.jpg", 24, 32, seed=1)
    make_rgb(root / "sub" / "b.png", 32, 20, seed=2)
    make_rgb(root / "sub" / "deeper" / "c.jpg", 30, 30, seed=3)
    (root / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole JPEG")
    (root / "notes.txt").write_text("not a picture")
    return root


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("image", "images", "video", "metrics", "presets"):
        assert command in result.stdout


def test_image_help_lists_options() -> None:
    result = invoke("image", "--help")
    assert result.exit_code == 0
    assert "--style" in result.stdout and "--preserve-color" in result.stdout


def test_help_does_not_import_torch() -> None:
    script = (
        "import sys\n"
        "sys.argv = ['nstpipe', '--help']\n"
        "from nstpipe import cli\n"
        "try:\n"
        "    cli.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None), exc.code\n"
        "sys.exit(3 if 'torch' in sys.modules else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "images" in done.stdout


def test_presets_command() -> None:
    result = invoke("presets")
    assert result.exit_code == 0
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    assert {"fast", "default", "quality"} <= set(lines)
    assert "iterations=" in lines["fast"]


def test_image_writes_png_and_settings(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    out = tmp_path / "result" / "photo.png"
    result = invoke("image", photo_path, "--style", painting_path, "-o", out, "--size", "48", "-n", "5", "--preset", "fast")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (48, 36)  # tubingen_64.jpg is 64x48
    # The record is named after the whole output name, so that photo.png and photo.jpg
    # never share one.
    record = json.loads((out.parent / "photo.png.settings.json").read_text())
    assert record["settings"]["size"] == 48
    assert record["settings"]["iterations"] == 5
    assert record["styles"] == [str(painting_path)]
    assert len(record["fingerprint"]) == 32
    assert sorted(p.name for p in out.parent.iterdir()) == ["photo.png", "photo.png.settings.json"]


def test_image_config_file_and_flags(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    config = tmp_path / "mine.toml"
    config.write_text("size = 24\niterations = 2\noptimizer = 'adam'\n")
    out = tmp_path / "o.jpg"
    result = invoke("image", photo_path, "-s", painting_path, "-o", out, "--preset", "fast", "--config", config, "--size", "40", "-q")
    assert result.exit_code == 0, result.output
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.size == (40, 30)
    settings = json.loads((tmp_path / "o.jpg.settings.json").read_text())["settings"]
    assert (settings["size"], settings["iterations"], settings["optimizer"]) == (40, 2, "adam")


def test_missing_style_is_a_usage_error(tmp_path: Path, photo_path: Path) -> None:
    out = tmp_path / "out" / "x.png"
    missing = tmp_path / "no_such_style.jpg"
    result = invoke("image", photo_path, "--style", missing, "-o", out, *FAST)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("nstpipe: error:") and str(missing) in lines[0]
    assert "Traceback" not in result.output
    assert not out.exists() and not (tmp_path / "out").exists()


def test_unknown_preset_is_a_usage_error(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    result = invoke("image", photo_path, "-s", painting_path, "-o", tmp_path / "x.png", "--preset", "turbo")
    assert result.exit_code == 2
    assert "unknown preset 'turbo'" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_bad_flag_value_is_a_usage_error(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    result = invoke("image", photo_path, "-s", painting_path, "-o", tmp_path / "x.png", "--optimizer", "sgd")
    assert result.exit_code == 2
    assert "'optimizer'" in result.stderr


def test_a_device_typo_is_refused_naming_the_flag_even_where_the_output_is_kept(
    tmp_path: Path, photo_path: Path, painting_path: Path
) -> None:
    out = tmp_path / "x.png"
    assert invoke("image", photo_path, "-s", painting_path, "-o", out, *FAST).exit_code == 0
    result = invoke("image", photo_path, "-s", painting_path, "-o", out, *FAST, "--device", "gpu")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "nstpipe: error: setting 'device' (--device): unknown device 'gpu' (auto, cpu, cuda, cuda:1, mps)"


def test_a_device_this_machine_lacks_is_one_line_naming_the_flag(
    tmp_path: Path, photo_path: Path, painting_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = invoke("image", photo_path, "-s", painting_path, "-o", tmp_path / "x.png", *FAST, "--device", "cuda")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "nstpipe: error: setting 'device' (--device): cuda asked for but CUDA is not available"
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("size = 'big'\n", "setting 'size': cannot use 'big'"),
        ("size = 8\n", "setting 'size': must be at least 16 pixels"),
        ("sizee = 32\n", "unknown setting 'sizee'"),
    ],
)
def test_a_bad_value_in_a_config_file_names_the_file_not_the_flag(
    text: str, line: str, tmp_path: Path, photo_path: Path, painting_path: Path
) -> None:
    config = tmp_path / "mine.toml"
    config.write_text(text)
    result = invoke("image", photo_path, "-s", painting_path, "-o", tmp_path / "x.png", "--preset", "fast", "--config", config)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().startswith(f"nstpipe: error: {config}: {line}")


def test_a_bad_flag_over_a_config_file_names_the_flag(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    config = tmp_path / "mine.toml"
    config.write_text("size = 32\n")
    result = invoke("image", photo_path, "-s", painting_path, "-o", tmp_path / "x.png", "--config", config, "--size", "8")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "nstpipe: error: setting 'size' (--size): must be at least 16 pixels"


def test_images_mirrors_reports_failures_and_resumes(tmp_path: Path, folder: Path, painting_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke("images", folder, "-s", painting_path, "-o", out, *FAST)
    assert result.exit_code == 1, result.output
    outputs = [out / "a.png", out / "sub" / "b.png", out / "sub" / "deeper" / "c.png"]
    sizes = []
    for path in outputs:
        with Image.open(path) as img:
            sizes.append(img.size)
    assert sizes == [(32, 24), (20, 32), (32, 32)]
    assert not (out / "sub" / "broken.png").exists() and not (out / "notes.png").exists()
    assert "3 stylized, 0 already done, 1 failed" in result.stdout
    failures = [line for line in result.stderr.splitlines() if line.startswith("nstpipe: failed:")]
    assert len(failures) == 1 and "broken.jpg" in failures[0]
    assert (out / "nstpipe-settings.json").is_file()
    before = mtimes(outputs)
    record = read_record(outputs[0])
    assert record is not None
    fingerprint = record["fingerprint"]

    again = invoke("images", folder, "-s", painting_path, "-o", out, *FAST)
    assert again.exit_code == 1  # the broken input is still without an output
    assert "0 stylized, 3 already done, 0 failed (+1 in an earlier run; --retry-failed tries them again)" in again.stdout
    assert "nstpipe: failed in an earlier run:" in again.stderr and "broken.jpg" in again.stderr
    assert mtimes(outputs) == before
    retried = invoke("images", folder, "-s", painting_path, "-o", out, *FAST, "--retry-failed")
    assert "0 stylized, 3 already done, 1 failed;" in retried.stdout

    reseeded = invoke("images", folder, "-s", painting_path, "-o", out, *FAST, "--seed", "5")
    assert reseeded.exit_code == 1
    assert "3 stylized, 0 already done, 1 failed" in reseeded.stdout
    records = [read_record(p) for p in outputs]
    assert all(r is not None and r["fingerprint"] != fingerprint for r in records)

    more = invoke("images", folder, "-s", painting_path, "-o", out, *FAST[:-3], "-n", "2", "-q", "--seed", "5")
    assert "3 stylized, 0 already done" in more.stdout


def test_images_all_good_exits_zero(tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path) -> None:
    make_rgb(tmp_path / "in" / "only.png", 16, 24)
    result = invoke("images", tmp_path / "in", "-s", painting_path, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    assert "1 stylized, 0 already done, 0 failed" in result.stdout
    assert (tmp_path / "out" / "only.png").is_file()


def test_images_batch_option_reaches_the_worker(
    tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nstpipe.jobs.worker import ImageWorker

    calls: list[tuple[int, int]] = []  # (the worker's batch, the tasks of a call)
    real = ImageWorker.process_batch

    def process_batch(self: ImageWorker, tasks: list, callback: Any = None) -> list:
        calls.append((self.batch, len(tasks)))
        return real(self, tasks, callback)

    monkeypatch.setattr(ImageWorker, "process_batch", process_batch)
    for i in range(3):
        make_rgb(tmp_path / "in" / f"p{i}.png", 24, 32, seed=i)
    result = invoke("images", tmp_path / "in", "-s", painting_path, "-o", tmp_path / "out", *FAST, "--batch", "2")
    assert result.exit_code == 0, result.output
    assert "3 stylized" in result.stdout and calls == [(2, 2), (2, 1)]
    assert json.loads((tmp_path / "out" / "nstpipe-settings.json").read_text())["settings"]["batch"] == 2
    calls.clear()
    auto = invoke("images", tmp_path / "in", "-s", painting_path, "-o", tmp_path / "auto", *FAST)
    assert auto.exit_code == 0 and calls == [(1, 1)] * 3  # auto on a CPU: one at a time
    refused = invoke("images", tmp_path / "in", "-s", painting_path, "-o", tmp_path / "x", *FAST, "--batch", "-1")
    assert refused.exit_code == 2 and not (tmp_path / "x").exists()


def test_images_output_inside_the_input_folder(tmp_path: Path, folder: Path, painting_path: Path) -> None:
    """Outputs under the input folder are not taken for inputs on the next run."""
    out = folder / "styled"
    first = invoke("images", folder, "-s", painting_path, "-o", out, *FAST)
    assert "3 stylized, 0 already done, 1 failed" in first.stdout
    again = invoke("images", folder, "-s", painting_path, "-o", out, *FAST, "--retry-failed")
    assert "0 stylized, 3 already done, 1 failed" in again.stdout
    assert not (out / "styled").exists()


def test_images_refuses_to_write_over_its_inputs(folder: Path, painting_path: Path) -> None:
    original = (folder / "sub" / "b.png").read_bytes()
    result = invoke("images", folder, "-s", painting_path, "-o", folder, *FAST)
    assert result.exit_code == 2
    assert "overwrite inputs" in result.stderr
    assert (folder / "sub" / "b.png").read_bytes() == original


def test_images_on_a_missing_folder(tmp_path: Path, painting_path: Path) -> None:
    result = invoke("images", tmp_path / "nope", "-s", painting_path, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 2
    assert "nope: not a folder" in result.stderr
    assert not (tmp_path / "out").exists()


def test_images_of_the_root_without_o_is_one_line(painting_path: Path) -> None:
    result = invoke("images", "/", "-s", painting_path, *FAST)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "/: give -o" in result.stderr and "Traceback" not in result.output


def test_video_and_metrics_commands(tmp_path: Path, painting_path: Path) -> None:
    from clips import make_clip

    clip = make_clip(tmp_path / "in.mp4", n_frames=5, width=48, height=32, fps=10, audio=1)
    out = tmp_path / "out.mp4"
    result = invoke("video", clip, "--style", painting_path, "-o", out, *FAST, "--later-iterations", "1", "--temporal", "flow")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 5 frames" in result.output
    result = invoke("metrics", clip, out, "--style", painting_path, "--json", tmp_path / "m.json", "--plot", tmp_path / "m.png")
    assert result.exit_code == 0, result.output
    assert "warping_error" in result.output and "source_warping_error" in result.output
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["summary"]["frames"] == 5 and len(record["frames"]) == 5
    assert record["frames"][0]["warping_error"] is None and record["frames"][1]["warping_error"] >= 0
    assert all(f["style"] > 0 and f["content"] > 0 for f in record["frames"])
    with Image.open(tmp_path / "m.png") as plot:
        assert plot.format == "PNG" and plot.width > 200


def test_metrics_at_several_gaps(tmp_path: Path) -> None:
    """The clip measured against itself: as steady as the footage at every gap, pair by pair."""
    from clips import make_clip

    clip = make_clip(tmp_path / "in.mp4", n_frames=13, width=48, height=32, fps=10)
    result = invoke("metrics", clip, clip, "--gaps", "5,2", "--json", tmp_path / "m.json", "--plot", tmp_path / "m.png", "-q")
    assert result.exit_code == 0, result.output
    shown = dict(line.split() for line in result.stdout.splitlines())
    assert list(shown)[:5] == ["frames", "warping_error", "source_warping_error", "content", "style"]
    for key in ("warping_error_ratio", "warping_error_ratio_gap2", "warping_error_ratio_gap5"):
        assert float(shown[key]) == pytest.approx(1.0)
    assert "settling" in shown and "warping_error_gap5" in shown and "source_warping_error_gap2" in shown
    record = json.loads((tmp_path / "m.json").read_text())
    assert sorted(record["gaps"]) == ["1", "2", "5"]
    assert [pair["first"] for pair in record["gaps"]["5"]] == list(range(8))
    assert all(pair["stylized"] == pair["source"] for pair in record["gaps"]["2"])
    assert record["summary"]["warping_error_ratio_gap5"] == pytest.approx(1.0)
    with Image.open(tmp_path / "m.png") as plot:
        assert plot.height > 2.5 * 275  # a panel per gap


def test_metrics_of_a_folder_of_painted_frames(tmp_path: Path, painting_path: Path) -> None:
    """The frames before encoding (what --keep-frames leaves) are measured as a video is:
    the clip's own frames as PNGs are exactly as steady as the clip."""
    from clips import make_clip
    from nstpipe.media.video import read_frames
    from nstpipe.media.writer import write_png

    clip = make_clip(tmp_path / "in.mp4", n_frames=7, width=48, height=32, fps=10)
    job = tmp_path / "work" / "0123456789abcdef"
    job.mkdir(parents=True)
    for frame in read_frames(clip):
        write_png(job / f"frame-{frame.index:06d}.png", frame.rgb, {})
    result = invoke("metrics", clip, tmp_path / "work", "--gaps", "1,3", "-q")
    assert result.exit_code == 0, result.output
    shown = dict(line.split() for line in result.stdout.splitlines())
    assert shown["frames"] == "7"
    assert float(shown["warping_error_ratio"]) == pytest.approx(1.0) and float(shown["warping_error_ratio_gap3"]) == pytest.approx(1.0)
    # A painted clip's kept frames: the video and its frames measured alike.
    out = tmp_path / "out.mp4"
    kept = tmp_path / "kept"
    result = invoke("video", clip, "--style", painting_path, "-o", out, *FAST, "--frames", "4", "--keep-frames", "--work-dir", kept)
    assert result.exit_code == 0, result.output
    result = invoke("metrics", clip, kept, "-q")
    assert result.exit_code == 0, result.output
    assert dict(line.split() for line in result.stdout.splitlines())["frames"] == "4"
    # Bad folders: one line each, naming the folder and the reason.
    (job / "frame-000003.png").unlink()
    second = tmp_path / "work" / "fedcba9876543210"
    second.mkdir()
    (job / "frame-000000.png").rename(second / "frame-000000.png")
    (empty := tmp_path / "empty").mkdir()
    for folder, reason in ((job, "frame 0 is missing"), (tmp_path / "work", "frames of 2 jobs"), (empty, "holds no frame")):
        result = invoke("metrics", clip, folder)
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and reason in result.output and "Traceback" not in result.output


def test_video_batch_option_reaches_the_executor(tmp_path: Path, painting_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nstpipe.run.executor
    from clips import make_clip

    batches: list[int] = []
    real: Callable[..., object] = nstpipe.run.executor.run_chunks

    def run_chunks(*args: Any, batch: int = 1, **kwargs: Any) -> object:
        batches.append(batch)
        return real(*args, batch=batch, **kwargs)

    monkeypatch.setattr(nstpipe.run.executor, "run_chunks", run_chunks)
    clip = make_clip(tmp_path / "in.mp4", n_frames=3, width=48, height=32, fps=10)
    for flag in ("3", "0"):
        result = invoke("video", clip, "--style", painting_path, "-o", tmp_path / f"out{flag}.mp4", *FAST, "--batch", flag)
        assert result.exit_code == 0, result.output
    assert batches == [3, 1]  # 0 is auto: 1 on this CPU


def test_video_errors_are_one_line(tmp_path: Path, painting_path: Path) -> None:
    from clips import make_clip

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    result = invoke("video", bad, "--style", painting_path, "-o", tmp_path / "o.mp4", *FAST)
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and str(bad) in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.mp4").exists()
    short = make_clip(tmp_path / "short.mp4", n_frames=3)
    longer = make_clip(tmp_path / "long.mp4", n_frames=6)
    result = invoke("metrics", short, longer)
    assert result.exit_code == 2 and "has 6 frames, the source only 3" in result.output


def test_metrics_names_the_video_cut_short_not_the_whole_one(tmp_path: Path) -> None:
    """Both indexes count 20 frames; the one whose frames run out is the one to blame,
    source or stylized."""
    from clips import cut_clip, noise_clip
    from nstpipe.media.video import probe, read_frames

    whole = noise_clip(tmp_path / "whole.mp4", n_frames=20)
    cut = cut_clip(tmp_path / "cut.mp4", whole)
    there = sum(1 for _ in read_frames(cut))
    assert probe(cut).frame_count == there and 0 < there < 20
    for source, stylized in ((cut, whole), (whole, cut)):
        result = invoke("metrics", source, stylized, "-q")
        assert result.exit_code == 2, result.output
        assert result.stderr == f"nstpipe: error: {cut}: the file ends after {there} of about 20 frames (cut off?)\n"


@pytest.mark.parametrize("form, suffix", [("matroska", ".mkv"), ("mp4", ".mp4")])
def test_video_of_a_file_cut_off_is_written_with_what_is_there_and_fails(
    tmp_path: Path, painting_path: Path, form: str, suffix: str
) -> None:
    """One line naming the file and where it ends, exit status 1, the video of the frames
    there written; a rerun keeps it and says so again. (The same line counts a last packet
    cut short among the frames not decoded.) A preview that stops before the end lacks nothing."""
    from clips import cut_clip, noise_clip
    from nstpipe.media.video import probe

    cut = cut_clip(tmp_path / f"cut{suffix}", noise_clip(tmp_path / f"whole{suffix}", n_frames=12, form=form))
    info, out = probe(cut), tmp_path / "o.mp4"
    line = f"nstpipe: {cut}: {info.ends_early}; painted the {info.frame_count}"
    assert info.ends_early is not None
    for run in ("wrote", "kept"):
        result = invoke("video", cut, "--style", painting_path, "-o", out, *FAST)
        assert result.exit_code == 1 and result.stderr.startswith(line) and result.stderr.count("\n") == 1, result.output
        assert result.stdout.startswith(f"{run} {out}: {info.frame_count} frames")
        assert probe(out).frame_count == info.frame_count
    preview = invoke("video", cut, "--style", painting_path, "-o", tmp_path / "p.mp4", *FAST, "--frames", "2")
    assert preview.exit_code == 0 and preview.stderr == "", preview.output


def test_video_of_a_corrupt_file_is_painted_whole_and_fails(tmp_path: Path, painting_path: Path) -> None:
    """A packet that cannot be decoded no longer stops every run at the same frame: the frame
    before stands in for it, the video is written, one line counts them, exit status 1, and
    a rerun keeps the video and says so again."""
    from clips import noise_clip, spoil_clip
    from nstpipe.media.video import probe, read_frames

    bad = spoil_clip(tmp_path / "bad.mp4", noise_clip(tmp_path / "whole.mp4", n_frames=12))
    damaged, out = sum(frame.stand_in for frame in read_frames(bad)), tmp_path / "o.mp4"
    assert damaged > 0
    line = f"nstpipe: {bad}: {damaged} of its 12 frames could not be decoded (corrupt data); the frame before stands in for each\n"
    for run in ("wrote", "kept"):
        result = invoke("video", bad, "--style", painting_path, "-o", out, *FAST)
        assert result.exit_code == 1 and result.stderr == line, result.output
        assert result.stdout.startswith(f"{run} {out}: 12 frames")
        assert probe(out).frame_count == 12


def test_video_with_several_inputs_writes_into_a_folder(tmp_path: Path, painting_path: Path) -> None:
    from clips import make_clip

    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "a.mp4", n_frames=3)
    make_clip(folder / "b.mkv", n_frames=2)
    (folder / "notes.txt").write_text("not a video")
    broken = tmp_path / "c.mp4"
    broken.write_bytes(b"garbage" * 100)
    result = invoke("video", folder, broken, "--style", painting_path, "-o", tmp_path / "out", *FAST, "--later-iterations", "1")
    assert result.exit_code == 1
    # Each video now has its settings record beside it, which lets a rerun keep it.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.mp4", "a.mp4.settings.json", "b.mp4", "b.mp4.settings.json"]
    assert "wrote" in result.output and f"failed: {broken}" in result.output


def test_videos_of_one_stem_beside_each_other_get_outputs_of_their_own(tmp_path: Path, painting_path: Path) -> None:
    from clips import make_clip

    folder = tmp_path / "clips"
    folder.mkdir()
    make_clip(folder / "clip.mp4", n_frames=2)
    make_clip(folder / "clip.mov", n_frames=3)
    tag = painting_path.stem
    result = invoke("video", folder, "--style", painting_path, *FAST, "--later-iterations", "1")
    assert result.exit_code == 0, result.output
    outputs = {name: folder / f"{name}.{tag}.mp4" for name in ("clip.mp4", "clip.mov")}
    assert sorted(p.name for p in folder.iterdir()) == sorted([*outputs, *(p.name for p in outputs.values()),
                                                             *(f"{p.name}.settings.json" for p in outputs.values())])
    from nstpipe.media.video import probe

    assert [probe(path).frame_count for path in outputs.values()] == [2, 3]
    # One of them alone is named as it was among its neighbours: its output is kept.
    again = invoke("video", folder / "clip.mov", "--style", painting_path, *FAST, "--later-iterations", "1")
    assert again.exit_code == 0 and f"kept {outputs['clip.mov']}" in again.stdout, again.output


def test_video_of_a_folder_without_videos_is_one_line(tmp_path: Path, painting_path: Path) -> None:
    empty, other = tmp_path / "empty", tmp_path / "notes"
    empty.mkdir()
    other.mkdir()
    (other / "notes.txt").write_text("not a video")
    for folder in (empty, other):
        result = invoke("video", folder, "--style", painting_path, *FAST)
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and f"{folder}: holds no videos (" in result.stderr


def test_progress_bar_counts_frames_and_images_from_events() -> None:
    import io

    from rich.console import Console
    from rich.progress import Progress as Bars

    from nstpipe.cli import _ProgressBar
    from nstpipe.events import FrameDone, FrameStarted, JobPlanned, Progress, Skipped, VideoPlanned
    from nstpipe.jobs.plan import ImageTask

    bars = Bars(console=Console(file=io.StringIO()))
    bar = _ProgressBar(bars)
    bar(VideoPlanned(10, 3))
    bar(FrameStarted(3))
    bar(Progress(0, 1, 2, 40, 0.5, 24, 32))
    bar(FrameDone(3, 5, 0.1))
    frames = bars.tasks[-1]
    assert (frames.completed, frames.total, frames.description) == (4, 10, "frame 4")
    assert bars.tasks[0].completed == 2 and bars.tasks[0].total == 40
    bar(JobPlanned(5))
    bar(Skipped(ImageTask(Path("a.png"), PurePath("a.png"), Path("out/a.png"))))
    assert bars.tasks[-1].completed == 1 and bars.tasks[-1].total == 5


def test_hold_still_is_the_presets_and_the_flag_overrides_it(tmp_path: Path, painting_path: Path) -> None:
    """The presets keep the painting where the footage stands still; --hold-still off turns it off,
    and the setting is part of the video's settings record; a value that is neither is one line."""
    import json

    from clips import make_clip

    clip = make_clip(tmp_path / "in.mp4", n_frames=2, width=48, height=32, fps=10)
    held = {}
    for name, flags in (("preset", ()), ("off", ("--hold-still", "off")), ("on", ("--hold-still", "on"))):
        out = tmp_path / f"{name}.mp4"
        result = invoke("video", clip, "--style", painting_path, "-o", out, *FAST, *flags)
        assert result.exit_code == 0, result.output
        held[name] = json.loads(out.with_name(out.name + ".settings.json").read_text())["settings"]["hold_still"]
    assert held == {"preset": True, "off": False, "on": True}
    result = invoke("video", clip, "--style", painting_path, "-o", tmp_path / "bad.mp4", *FAST, "--hold-still", "sometimes")
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "on or off" in result.output, result.output


@pytest.mark.parametrize("at", ["output", "record"])
@pytest.mark.parametrize("command", ["image", "video"])
def test_a_run_stopped_as_it_writes_its_output_and_record_goes_on_without_y(
    command: str, at: str, tmp_path: Path, photo_path: Path, painting_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The record is written for the finished file before the file is renamed into place, and
    it names the earlier output it replaces: stopped as either is renamed into place, the
    next run knows the file there as its own and paints again, with no -y."""
    import os

    from clips import make_clip

    source = photo_path if command == "image" else make_clip(tmp_path / "in.mp4", n_frames=3, width=48, height=32)
    out = tmp_path / ("o.jpg" if command == "image" else "o.mp4")
    stop = out if at == "output" else out.with_name(out.name + ".settings.json")
    run = (command, source, "--style", painting_path, "-o", out, "--size", "32", "--device", "cpu", "-q")
    assert invoke(*run, "-n", "1").exit_code == 0
    replace = os.replace

    def stopped(src: str, dst: str) -> None:
        if Path(dst) == stop:
            raise KeyboardInterrupt  # as a kill just before that rename
        replace(src, dst)

    monkeypatch.setattr(os, "replace", stopped)
    assert invoke(*run, "-n", "2").exit_code == 130
    monkeypatch.setattr(os, "replace", replace)
    again = invoke(*run, "-n", "2")
    assert again.exit_code == 0 and "not made by nstpipe" not in again.output, again.output
    assert json.loads(stop.with_name(out.name + ".settings.json").read_text())["settings"]["iterations"] == 2
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nstpipe-tmp-")] == []


def test_an_image_run_takes_away_what_a_killed_one_was_writing_and_no_other(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    from nstpipe.media.writer import create_temp, record_path, temp_tag

    out = tmp_path / "o.png"
    ours = [create_temp(tmp_path, temp_tag(made)) for made in (out, record_path(out))]
    theirs = create_temp(tmp_path, temp_tag(tmp_path / "other.png"))  # another job's, in the making
    for fd, _ in [*ours, theirs]:
        os.close(fd)
    result = invoke("image", photo_path, "--style", painting_path, "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    assert [Path(tmp).exists() for _, tmp in ours] == [False, False] and Path(theirs[1]).exists()


def test_a_kept_image_takes_away_what_a_killed_run_of_other_settings_was_writing(
    tmp_path: Path, photo_path: Path, painting_path: Path
) -> None:
    from nstpipe.media.writer import create_temp, record_path, temp_tag

    out = tmp_path / "o.png"
    run = ("image", photo_path, "--style", painting_path, "-o", out, *FAST)
    assert invoke(*run).exit_code == 0
    # What a run with another -n, killed while writing, leaves beside the finished output.
    leftovers = [create_temp(tmp_path, temp_tag(made)) for made in (out, record_path(out))]
    for fd, _ in leftovers:
        os.close(fd)
    again = invoke(*run)
    assert again.exit_code == 0 and f"kept {out}" in again.stdout, again.output
    assert [Path(tmp).exists() for _, tmp in leftovers] == [False, False]


def test_a_file_named_as_the_output_folder_or_work_folder_is_one_line(
    tmp_path: Path, photo_path: Path, painting_path: Path
) -> None:
    from clips import make_clip

    clip = make_clip(tmp_path / "in.mp4", n_frames=3, width=48, height=32, fps=10)
    notes = tmp_path / "notes"
    notes.write_text("mine")
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copyfile(photo_path, folder / "p.jpg")
    tiny = ("--preset", "fast", "--size", "32", "-n", "2")  # not quiet: no opening line may come first
    for run in (("images", folder, "-o", notes), ("video", clip, "-o", tmp_path / "v.mp4", "--work-dir", notes)):
        result = invoke(*run, "--style", painting_path, *tiny)
        assert result.exit_code == 2, result.output
        assert result.stderr == f"nstpipe: error: {notes}: is a file, not a folder; name a folder for the outputs\n"
    assert notes.read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["in.mp4", "notes", "photos"]


def test_another_photo_of_the_same_size_and_time_is_painted_not_kept(tmp_path: Path, painting_path: Path) -> None:
    out = tmp_path / "same.png"
    photos = [tmp_path / "black.bmp", tmp_path / "white.bmp"]
    for photo, grey in zip(photos, (0, 255)):
        Image.new("RGB", (40, 32), (grey, grey, grey)).save(photo)
        os.utime(photo, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    assert photos[0].stat().st_size == photos[1].stat().st_size
    first = invoke("image", photos[0], "--style", painting_path, "-o", out, *FAST)
    second = invoke("image", photos[1], "--style", painting_path, "-o", out, *FAST)
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert f"wrote {out}" in second.stdout and "kept" not in second.stdout
    assert json.loads(out.with_name("same.png.settings.json").read_text())["input"] == str(photos[1].resolve())


@pytest.mark.parametrize("flag", ["--preset", "--style-loss", "--style-weights", "--address"])
def test_an_empty_value_is_refused_not_read_as_left_out(flag: str, tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    command = "images" if flag == "--address" else "image"
    source = photo_path.parent if command == "images" else photo_path
    out = tmp_path / ("out" if command == "images" else "o.png")
    result = invoke(command, source, "--style", painting_path, "-o", out, *FAST, flag, "")
    assert result.exit_code == 2 and result.stderr.strip() == f"nstpipe: error: {flag}: give a value, not an empty one", result.output
    assert not out.exists()


STYLE, OUTPUT = "'--style' / '-s'", "'--output' / '-o'"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("image", "", "-s", "s.jpg"), "'content'"),
        (("image", "p.jpg", "--style", ""), STYLE),
        (("image", "p.jpg", "-s", "s.jpg", "-s", ""), STYLE),
        (("image", "p.jpg", "-s", "s.jpg", "-o", ""), OUTPUT),
        (("image", "p.jpg", "-s", "s.jpg", "--config", ""), "'--config'"),
        (("images", "", "-s", "s.jpg"), "'folder'"),
        (("images", "in", "-s", ""), STYLE),
        (("images", "in", "-s", "s.jpg", "-o", ""), OUTPUT),
        (("video", "", "-s", "s.jpg"), "'sources'"),
        (("video", "v.mp4", "-s", ""), STYLE),
        (("video", "v.mp4", "-s", "s.jpg", "-o", ""), OUTPUT),
        (("video", "v.mp4", "-s", "s.jpg", "--work-dir", ""), "'--work-dir'"),
        (("texture", "", "-o", "t.png"), "'styles'"),
        (("texture", "s.jpg", "-o", ""), OUTPUT),
        (("visualize", "--layer", "relu3_1", "-o", ""), OUTPUT),
        (("dream", ""), "'source'"),
        (("dream", "p.jpg", "-o", ""), OUTPUT),
        (("dream", "p.jpg", "--guide", ""), "'--guide'"),
        (("metrics", "", "v.mp4"), "'source'"),
        (("metrics", "v.mp4", ""), "'stylized'"),
        (("metrics", "v.mp4", "o.mp4", "--style", ""), STYLE),
        (("metrics", "v.mp4", "o.mp4", "--json", ""), "'--json'"),
    ],
)
def test_an_empty_path_is_refused_naming_its_flag(
    args: tuple[str, ...], named: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'' would be read as '.', the current folder: a photo taken for a folder, a style that
    "is a directory", outputs written into the working folder. The files named need not
    exist: the slip is refused before any is looked at."""
    monkeypatch.chdir(tmp_path)
    result = invoke(*args, "-q")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"nstpipe: error: Invalid value for {named}: an empty path (see ")
    assert len(result.stderr.splitlines()) == 1 and result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_metrics_refuses_a_video_of_another_shape_or_a_still(tmp_path: Path, painting_path: Path) -> None:
    """A turned video, or a picture named .mp4, would be compared pixel by pixel with frames
    of another picture, and give figures with exit 0."""
    from clips import make_clip

    clip = make_clip(tmp_path / "in.mp4", n_frames=4, width=48, height=32, fps=10)
    half = make_clip(tmp_path / "half.mp4", n_frames=4, width=24, height=16, fps=10)
    turned = make_clip(tmp_path / "turned.mp4", n_frames=4, width=48, height=32, fps=10, rotation=90)
    still = tmp_path / "still.mp4"
    shutil.copy(painting_path, still)
    assert invoke("metrics", clip, half, "-q").exit_code == 0
    result = invoke("metrics", clip, turned, "-q")
    assert result.exit_code == 2
    assert result.stderr == f"nstpipe: error: {turned}: is 32x48, the source 48x32: not the source's shape (turned or cropped?)\n"
    result = invoke("metrics", clip, still, "-q")
    assert result.exit_code == 2 and result.stderr.startswith(f"nstpipe: error: {still}: is a still image, not a video")


def test_a_preview_does_not_take_the_place_of_a_finished_video(tmp_path: Path, painting_path: Path) -> None:
    """Beside the clip, ``--frames N`` is named apart from the whole video; into a named
    output that holds a longer finished video, it is refused in one line unless -y, and
    the video is left as it was."""
    from clips import make_clip

    clip = make_clip(tmp_path / "in.mp4", n_frames=4, width=48, height=32, fps=10)
    whole = invoke("video", clip, "--style", painting_path, *FAST)
    assert whole.exit_code == 0, whole.output
    preview = invoke("video", clip, "--style", painting_path, *FAST, "--frames", "2")
    assert preview.exit_code == 0, preview.output
    outputs = sorted(p.name for p in tmp_path.glob("in.*.mp4"))
    assert outputs == [f"in.{painting_path.stem}.first2.mp4", f"in.{painting_path.stem}.mp4"]
    out = tmp_path / f"in.{painting_path.stem}.mp4"
    before = out.read_bytes()
    refused = invoke("video", clip, "--style", painting_path, "-o", out, *FAST, "--frames", "2")
    assert refused.exit_code == 2 and refused.output.count("\n") == 1, refused.output
    assert "a finished video of 4 frames, which a preview of 2 would replace" in refused.output
    assert out.read_bytes() == before
    forced = invoke("video", clip, "--style", painting_path, "-o", out, *FAST, "--frames", "2", "-y")
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != before
