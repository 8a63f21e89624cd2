"""What a newcomer meets first: the command of the design card as written, outputs beside
the inputs, the line saying what was chosen, mistakes answered with one line (and no
input touched), formats that follow the suffix, progress in a log, and the help.

Every run is tiny: 32-64 px pictures and clips, the fast preset, one or two iterations.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner, Result

import nstpipe.cli.progress
from clips import make_clip
from helpers import CPU_AUTO, invoke, snapshot
from nstpipe.app import video_settings
from nstpipe.cli import _LogProgress, app
from nstpipe.config import build_settings
from nstpipe.events import Encoding, FrameDone, JobPlanned, Progress, Skipped, VideoPlanned
from nstpipe.media.video import VideoInfo, probe

TINY = ("--preset", "fast", "--size", "32", "-n", "2", "--scales", "1", "-q")
VIDEO_TINY = ("--preset", "fast", "-n", "1", "--scales", "1", "--later-iterations", "1", "-q")


@pytest.fixture
def here(tmp_path: Path, photo_path: Path, painting_path: Path) -> Path:
    """A folder holding photo.jpg (64x48) and monet.jpg (64x40), as a user's would."""
    shutil.copyfile(photo_path, tmp_path / "photo.jpg")
    shutil.copyfile(painting_path, tmp_path / "monet.jpg")
    return tmp_path


def assert_refused(result: Result, *named: str) -> str:
    """Exit status 2 and one line on stderr naming each of ``named``, without a traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nstpipe: error: ")
    for name in named:
        assert name in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


# -- mistakes: one line, exit 2, no input touched, nothing left behind --------------------------------


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("image", "photo.jpg", "-s", "monet.jpg", "-o", "photo.jpg"), ("photo.jpg", "is the input", "-y")),
        (("image", "photo.jpg", "-s", "monet.jpg", "-o", "monet.jpg"), ("monet.jpg", "is the style image", "-y")),
        (("image", "photo.jpg", "-s", "monet.jpg", "-o", "notes.png"), ("notes.png", "not made by nstpipe", "-y")),
        (("image", "photo.jpg", "-s", "monet.jpg", "-o", "out.xyz"), ("out.xyz", "'.xyz'", ".png")),
        (("image", "photo.jpg", "-s", "monet.jpg", "-o", "out.gif"), ("out.gif", "'.gif'")),
        (("image", "photo.jpg", "-s", "monet.jpg", "-o", "out"), ("out", "no suffix")),
        (("image", "photo.jpg", "-s", "monet.jpg", "--style-weight", "nan"), ("'style_weight'", "--style-weight", "nan")),
        (("image", "photo.jpg", "-s", "monet.jpg", "--content-weight", "inf"), ("'content_weight'", "inf")),
        (("image", "photo.jpg", "-s", "monet.jpg", "--style-weight", "-1"), ("'style_weight'", "-1")),
        (("image", "photo.jpg", "-s", "monet.jpg", "--tv-weight", "-0.5"), ("'tv_weight'",)),
        (("image", "photo.jpg", "-s", "monet.jpg", "--style-weights", "0.5,0.3"), ("--style-weights", "2 weights for 1 style")),
        (("image", "photo.jpg", "-s", "monet.jpg", "-s", "monet.jpg", "--style-weights", "0,0"), ("--style-weights", "must not all be 0")),
        (("image", "photo.jpg", "-s", "monet.jpg", "--optimizer", "adam", "--learning-rate", "nan"), ("--learning-rate", "nan")),
        (("image", "photo.jpg", "-s", "monet.jpg", "--learning-rate", "0"), ("--learning-rate",)),
        (("image", "photo.jpg", "-s", "monet.jpg", "--size", "many"), ("--size",)),
        (("image", "photo.jpg"), ("--style",)),
        (("images", ".", "-s", "monet.jpg", "--style-weight", "nan"), ("'style_weight'",)),
        (("video", "clip.mp4", "-s", "monet.jpg", "--temporal-weight", "nan"), ("'temporal_weight'",)),
        (("video", "clip.mp4", "-s", "monet.jpg", "-o", "clip.mp4"), ("clip.mp4", "is the input")),
        (("video", "clip.mp4", "-s", "monet.jpg", "-o", "notes.png"), ("notes.png", ".mp4")),
        (("video", "photo.jpg", "-s", "monet.jpg"), ("photo.jpg", "is a still image, not a video", "nstpipe image")),
        (("metrics", "clip.mp4", "clip.mp4", "--plot", "chart.gif"), ("chart.gif", ".svg")),
        (("metrics", "clip.mp4", "clip.mp4", "--gaps", "0,5"), ("--gaps", "1 or more", "'0,5'")),
        (("metrics", "clip.mp4", "clip.mp4", "--gaps", "1,five"), ("--gaps", "whole numbers", "1,5,15")),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, tuple) and len(value) > 3 else None,
)
def test_a_mistake_is_one_line_and_touches_nothing(
    here: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], named: tuple[str, ...]
) -> None:
    make_clip(here / "clip.mp4", n_frames=3, width=48, height=32)
    (here / "notes.png").write_bytes(b"a file of the user's, not a picture nstpipe made")
    monkeypatch.chdir(here)
    before = snapshot(here)
    fast = () if args[0] == "metrics" else TINY[:2]  # should a mistake slip through, the run stays short
    assert_refused(invoke(*args, *fast), *named)
    assert snapshot(here) == before  # every input byte for byte, and no file or work folder left


@pytest.mark.parametrize(("target", "what"), [("photo.jpg", "input"), ("monet.jpg", "style image"), ("notes.png", "foreign file")])
def test_y_lets_the_output_replace_an_input_a_style_or_a_foreign_file(here: Path, target: str, what: str) -> None:
    (here / "notes.png").write_bytes(b"a file of the user's")
    result = invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", "-o", here / target, *TINY, "-y")
    assert result.exit_code == 0, result.output
    with Image.open(here / target) as img:
        assert img.size == (32, 24), what


def test_an_output_nstpipe_made_is_replaced_without_y_and_kept_when_finished(here: Path) -> None:
    out = here / "photo.monet.jpg"
    first = invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", *TINY)
    assert first.exit_code == 0 and f"wrote {out}" in first.stdout
    made = snapshot(here)
    again = invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", *TINY)
    assert again.exit_code == 0 and f"kept {out}: made earlier with these settings" in again.stdout
    assert snapshot(here) == made  # not even rewritten
    other = invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", *TINY, "--seed", "3")
    assert other.exit_code == 0 and f"wrote {out}" in other.stdout  # nstpipe's own: no -y needed
    Image.new("RGB", (8, 8)).save(out)  # edited by the user since: no longer nstpipe's file
    assert_refused(invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", *TINY), str(out), "not made by nstpipe")


def test_images_refuses_a_foreign_file_where_an_output_goes(here: Path, make_rgb: object) -> None:
    (here / "in").mkdir()
    shutil.copyfile(here / "photo.jpg", here / "in" / "a.jpg")
    (here / "out").mkdir()
    (here / "out" / "a.png").write_bytes(b"the user's own a.png")
    before = snapshot(here)
    assert_refused(invoke("images", here / "in", "-s", here / "monet.jpg", "-o", here / "out", *TINY), "a.png", "not made by nstpipe")
    assert snapshot(here) == before
    allowed = invoke("images", here / "in", "-s", here / "monet.jpg", "-o", here / "out", *TINY, "-y")
    assert allowed.exit_code == 0 and "1 stylized" in allowed.stdout
    again = invoke("images", here / "in", "-s", here / "monet.jpg", "-o", here / "out", *TINY)
    assert again.exit_code == 0 and "1 already done" in again.stdout  # its own outputs need no -y


def test_a_still_image_given_to_video_leaves_no_work_folder_even_with_o(here: Path) -> None:
    before = snapshot(here)
    line = assert_refused(invoke("video", here / "photo.jpg", "-s", here / "monet.jpg", "-o", here / "v.mp4", *TINY), "photo.jpg")
    assert "is a still image, not a video; use `nstpipe image`" in line
    assert snapshot(here) == before and sorted(p.name for p in here.iterdir()) == ["monet.jpg", "photo.jpg"]


# -- formats -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "fmt", "magic"),
    [(".jpg", "JPEG", b"\xff\xd8\xff"), (".webp", "WEBP", b"RIFF"), (".tif", "TIFF", b"II*\x00"), (".png", "PNG", b"\x89PNG")],
)
def test_the_suffix_decides_the_image_format(here: Path, suffix: str, fmt: str, magic: bytes) -> None:
    out = here / f"painted{suffix}"
    result = invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", "-o", out, *TINY)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)
    with Image.open(out) as img:
        assert img.format == fmt


def test_two_outputs_with_other_suffixes_keep_their_own_records(here: Path) -> None:
    for suffix, seed in ((".jpg", "1"), (".png", "2")):
        result = invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", "-o", here / f"a{suffix}", *TINY, "--seed", seed)
        assert result.exit_code == 0, result.output
    jpg, png = (json.loads((here / f"a{s}.settings.json").read_text()) for s in (".jpg", ".png"))
    assert (jpg["settings"]["seed"], png["settings"]["seed"]) == (1, 2)
    assert jpg["output"]["size"] == (here / "a.jpg").stat().st_size
    assert png["output"]["size"] == (here / "a.png").stat().st_size
    assert not (here / "a.settings.json").exists()


def test_the_chart_format_follows_its_suffix(here: Path) -> None:
    clip = make_clip(here / "clip.mp4", n_frames=3, width=48, height=32)
    result = invoke("metrics", clip, clip, "--plot", here / "chart.svg", "-q")
    assert result.exit_code == 0, result.output
    assert b"<svg" in (here / "chart.svg").read_bytes()[:400]


# -- the design card's command, and the line saying what was chosen ----------------------------------------


def test_the_design_cards_command_writes_beside_the_input_and_says_so(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_clip(here / "input.mp4", n_frames=3, width=64, height=36, fps=10)
    monkeypatch.chdir(here)
    result = invoke("video", "input.mp4", "--style", "monet.jpg", *VIDEO_TINY[:-1])
    assert result.exit_code == 0, result.output
    # No --size on a CPU: the preset's 256, but never above the video's own 64 px.
    assert f"nstpipe: 64x36 on cpu ({CPU_AUTO}), 3 frames -> input.monet.mp4" in result.stderr
    assert "wrote input.monet.mp4: 3 frames" in result.stdout
    assert probe(here / "input.monet.mp4").frame_count == 3
    assert sorted(p.name for p in here.iterdir()) == [
        "input.monet.mp4", "input.monet.mp4.settings.json", "input.mp4", "monet.jpg", "photo.jpg"
    ]
    again = invoke("video", "input.mp4", "--style", "monet.jpg", *VIDEO_TINY)
    assert again.exit_code == 0 and "kept input.monet.mp4: 3 frames, made earlier with these settings" in again.stdout


def test_a_folder_of_videos_without_o_paints_beside_each_and_skips_its_own_outputs(here: Path) -> None:
    (here / "clips").mkdir()
    make_clip(here / "clips" / "a.mp4", n_frames=2, width=48, height=32)
    first = invoke("video", here / "clips", "--style", here / "monet.jpg", *VIDEO_TINY)
    assert first.exit_code == 0, first.output
    again = invoke("video", here / "clips", "--style", here / "monet.jpg", *VIDEO_TINY)
    assert again.stdout.count("\n") == 1 and "kept" in again.stdout  # a.monet.mp4 is not taken for an input
    assert sorted(p.name for p in (here / "clips").iterdir()) == ["a.monet.mp4", "a.monet.mp4.settings.json", "a.mp4"]


def test_image_without_o_is_named_after_the_photo_and_the_style(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(here)
    result = invoke("image", "photo.jpg", "--style", "monet.jpg", "--preset", "fast", "--size", "32", "-n", "2", "--scales", "1")
    assert result.exit_code == 0, result.output
    # The size painted, the photo's own (64x48) and about how long that would take on this CPU.
    said = r"nstpipe: 32x24 \(the input is 64x48; at that size --size 64 would take about \d+ min\) "
    assert re.search(said + rf"on cpu \({CPU_AUTO}\) -> photo.monet.jpg", result.stderr)
    with Image.open(here / "photo.monet.jpg") as img:
        assert img.format == "JPEG"


def test_images_without_o_writes_a_folder_beside_the_folder(here: Path) -> None:
    (here / "photos").mkdir()
    shutil.copyfile(here / "photo.jpg", here / "photos" / "a.jpg")
    result = invoke("images", here / "photos", "--style", here / "monet.jpg", *TINY[:-1])
    assert result.exit_code == 0, result.output
    out = here / "photos.monet"
    assert result.stderr.splitlines()[0] == f"nstpipe: long side 32 on cpu ({CPU_AUTO}), 1 picture -> {out}"
    assert (out / "a.png").is_file() and f"outputs in {out}" in result.stdout


def test_the_size_line_comes_before_the_work(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The line is printed from the event that precedes the model's loading."""
    import nstpipe.app.picture

    def no_work(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(nstpipe.app.picture, "ImageWorker", no_work)
    result = invoke("image", here / "photo.jpg", "-s", here / "monet.jpg", "-o", here / "o.png", *TINY[:-1])
    assert result.exit_code == 130
    first = result.stderr.splitlines()[0]
    assert first.startswith("nstpipe: 32x24 (the input is 64x48; ") and first.endswith(f" on cpu ({CPU_AUTO}) -> {here / 'o.png'}")


@pytest.mark.parametrize(
    ("device", "width", "expected"),
    [("cpu", 1280, 256), ("cpu", 200, 200), ("cuda", 1280, 1280), ("cuda", 3840, 3840), ("mps", 1280, 1280), ("cuda", 7680, 4096)],
)
def test_a_video_without_size_follows_the_device(monkeypatch: pytest.MonkeyPatch, device: str, width: int, expected: int) -> None:
    import nstpipe.app.sizes

    monkeypatch.setattr(nstpipe.app.sizes, "resolve_device", lambda name="auto": torch.device(device))
    info = VideoInfo(width, width * 9 // 16, 60, Fraction(30), 0, 0, 2.0)
    settings = build_settings("default")
    chosen = video_settings(settings, info, size_from_device=True)
    assert chosen.size == expected
    # Decided once, on the driver: the fingerprint covers the size painted.
    assert chosen.fingerprint() == dataclasses.replace(settings, size=expected).fingerprint()
    assert video_settings(settings, info, size_from_device=False) is settings


# -- progress in a log ---------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_progress_prints_at_most_one_line_an_interval_with_counts_rate_and_eta() -> None:
    clock = FakeClock()
    lines: list[str] = []
    log = _LogProgress(lines.append, clock=clock, interval=10.0)
    log(VideoPlanned(frames=10, done=2))  # 2 from an earlier run: not counted in the rate
    for second in range(1, 26):
        clock.now += 1
        log(Progress(0, 1, second % 40 + 1, 40, 0.5, 24, 32))
        if second % 5 == 0:
            log(FrameDone(second // 5 + 1, 40, 5.0))
    assert lines == [
        "nstpipe: 3/10 frames, 0.10 frames/s, ETA 1m10s (level 1/1, iteration 11/40)",
        "nstpipe: 5/10 frames, 0.15 frames/s, ETA 33s (level 1/1, iteration 21/40)",
    ]
    for index in range(7, 10):
        clock.now += 5
        log(FrameDone(index, 40, 5.0))
    log(Encoding(10))
    log.finish()  # the job ends: already said, not said again
    assert lines[2:] == [
        "nstpipe: 8/10 frames, 0.20 frames/s, ETA 10s",
        "nstpipe: 10/10 frames in 40s (0.20 frames/s)",
        "nstpipe: encoding 10 frames",
    ]


def test_log_progress_of_a_folder_counts_skipped_outputs_as_done_but_not_in_the_rate() -> None:
    clock = FakeClock()
    lines: list[str] = []
    log = _LogProgress(lines.append, clock=clock, interval=10.0)
    log(JobPlanned(4))
    log(Skipped(None))  # type: ignore[arg-type]
    log(Skipped(None))  # type: ignore[arg-type]
    clock.now += 20
    log(Progress(1, 2, 5, 50, 0.3, 32, 32))
    # Nothing whole done by this run yet: the time left follows from the current picture's
    # share done, 0.28 (level 2 of 2 weighs four times level 1; 5 of its 50 iterations).
    assert lines == ["nstpipe: 2/4 pictures, 0.00 pictures/s, ETA 2m03s (level 2/2, iteration 5/50)"]
    log.finish()
    assert lines[-1] == "nstpipe: 4/4 pictures in 20s (0.10 pictures/s)"


def test_log_progress_of_a_single_picture_has_an_eta_from_its_levels_and_iterations() -> None:
    clock = FakeClock()
    lines: list[str] = []
    log = _LogProgress(lines.append, clock=clock, interval=10.0)
    log(JobPlanned(1))
    clock.now += 10
    log(JobPlanned(1))  # no step of the optimizer reported yet: nothing to go by
    assert lines == []
    clock.now += 10
    log(Progress(0, 1, 10, 40, 0.5, 24, 32))  # a quarter of the picture in 10 s (since the second plan)
    clock.now += 10
    log(Progress(1, 2, 0, 40, 0.5, 24, 32))  # level 1 of 2 done: a fifth of the work in 20 s
    assert lines == [
        "nstpipe: 0/1 pictures, 0.00 pictures/s, ETA 30s (level 1/1, iteration 10/40)",
        "nstpipe: 0/1 pictures, 0.00 pictures/s, ETA 1m20s (level 2/2, iteration 0/40)",
    ]


def test_a_run_into_a_log_prints_progress_lines(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nstpipe.cli.progress, "LOG_INTERVAL", 0.0)  # a line at every event, for a run of seconds
    clip = make_clip(here / "clip.mp4", n_frames=3, width=48, height=32)
    result = invoke("video", clip, "-s", here / "monet.jpg", *VIDEO_TINY[:-1])  # without -q; CliRunner's stderr is no terminal
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"nstpipe: 48x32 on cpu ({CPU_AUTO}), 3 frames -> ")
    progress = r"nstpipe: [0-2]/3 frames, [0-9.]+ frames/s, ETA (\d+m)?\d+s( \(.*\))?|nstpipe: 0/3 frames, 0.00 frames/s, ETA unknown.*"
    assert any(re.fullmatch(progress, line) for line in lines)
    assert re.fullmatch(r"nstpipe: 3/3 frames in \d+s \([0-9.]+ frames/s\)", lines[-2]) and lines[-1] == "nstpipe: encoding 3 frames"
    quiet = invoke("video", clip, "-s", here / "monet.jpg", *VIDEO_TINY, "-o", here / "q.mp4")
    assert quiet.exit_code == 0 and quiet.stderr == ""


# -- -n and the help -----------------------------------------------------------------------------------


def test_short_help_and_version() -> None:
    from nstpipe import __version__

    assert invoke("-h").exit_code == 0 and "video" in invoke("-h").stdout
    assert invoke("video", "-h").exit_code == 0 and "--later-iterations" in invoke("video", "-h").stdout
    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout == f"nstpipe {__version__}\n"


def test_help_shows_a_default_for_every_option() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            if param.param_type_name == "option" and not param.required and "--help" not in param.opts:
                assert param.show_default, f"{name} {param.opts[0]} shows no default"
    shown = CliRunner().invoke(app, ["image", "-h"], env={"COLUMNS": "400"}).stdout
    assert "[default: (40 in the default preset; coarse_iterations 40)]" in shown
    assert "[default: (PHOTO.STYLE.SUFFIX beside the photo)]" in shown and "[default: (off)]" in shown


def test_the_help_of_n_says_what_it_bounds() -> None:
    shown = " ".join(CliRunner().invoke(app, ["video", "-h"], env={"COLUMNS": "400"}).stdout.split())
    assert "Optimizer iterations at full size: of each picture, and of a video's first frame (times --first-budget)." in shown
    assert "every later frame inherits it. [default: (6.0 in the default preset)]" in shown
    assert (
        "The coarser pyramid levels run coarse_iterations each and the coarsest coarsest_iterations where set (config file "
        "settings), a video's later frames --later-iterations"
        in shown
    )
