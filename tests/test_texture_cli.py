"""``nstpipe texture`` end to end at 32-48 px through typer's CliRunner: outputs beside the
painting, variations by seed, rectangles, tileable sizes, blends, -y, and mistakes answered
with one line and exit status 2, every input left as it was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import CPU_AUTO, invoke, pixels, snapshot

TINY = ("--size", "32", "-n", "3")


@pytest.fixture
def here(tmp_path: Path, painting_path: Path, photo_path: Path) -> Path:
    """A folder holding starry.jpg (64x40) and tubingen.jpg (64x48)."""
    shutil.copyfile(painting_path, tmp_path / "starry.jpg")
    shutil.copyfile(photo_path, tmp_path / "tubingen.jpg")
    return tmp_path


def test_a_texture_goes_beside_the_painting_and_a_rerun_keeps_it(here: Path) -> None:
    result = invoke("texture", here / "starry.jpg", *TINY)
    assert result.exit_code == 0, result.output
    out = here / "starry.texture.png"
    assert result.stderr.splitlines()[0] == f"nstpipe: 32x32 on cpu ({CPU_AUTO}), 1 picture -> {out}"
    assert f"wrote {out}" in result.stdout
    assert pixels(out).shape == (32, 32, 3)
    record = json.loads((here / "starry.texture.png.settings.json").read_text())
    assert record["settings"]["mode"] == "texture" and record["variation"] == 0 and record["seed"] == 0
    before = out.stat().st_mtime_ns
    again = invoke("texture", here / "starry.jpg", *TINY, "-q")
    assert again.exit_code == 0 and f"kept {out}" in again.stdout
    assert out.stat().st_mtime_ns == before
    other = invoke("texture", here / "starry.jpg", *TINY, "-q", "--seed", "5")  # other settings: made anew
    assert other.exit_code == 0 and f"wrote {out}" in other.stdout


def test_kept_textures_take_away_what_a_killed_run_was_writing(here: Path) -> None:
    from nstpipe.media.writer import TEMP_PREFIX, create_temp, temp_tag

    run = ("texture", here / "starry.jpg", *TINY, "--count", "2", "-o", here / "t.png", "-q")
    assert invoke(*run).exit_code == 0
    # What a run with another seed, killed while writing its second variation, leaves.
    fd, _ = create_temp(here, temp_tag(here / "t-1.png"))
    os.close(fd)
    again = invoke(*run)
    assert again.exit_code == 0 and f"kept {here / 't-1.png'}" in again.stdout, again.output
    assert [p.name for p in here.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


def test_count_makes_variations_each_as_made_alone_with_its_seed(here: Path) -> None:
    result = invoke("texture", here / "starry.jpg", *TINY, "--count", "2", "--seed", "4", "-o", here / "t.png")
    assert result.exit_code == 0, result.output
    assert "2 pictures -> " + str(here / "t-{0..1}.png") in result.stderr
    first, second = pixels(here / "t-0.png"), pixels(here / "t-1.png")
    assert np.abs(first - second).mean() > 10
    alone = invoke("texture", here / "starry.jpg", *TINY, "--seed", "5", "-o", here / "alone.png", "-q")
    assert alone.exit_code == 0, alone.output
    assert np.abs(pixels(here / "alone.png") - second).max() <= 2  # float rounding of a batched pass
    assert json.loads((here / "t-1.png.settings.json").read_text())["seed"] == 5


def test_a_width_and_height_of_0_are_the_square_of_size(here: Path) -> None:
    result = invoke("texture", here / "starry.jpg", *TINY, "--width", "0", "--height", "0", "-o", here / "sq.png", "-q")
    assert result.exit_code == 0, result.output
    assert pixels(here / "sq.png").shape == (32, 32, 3)


def test_a_rectangle_and_a_format_from_the_suffix(here: Path) -> None:
    result = invoke("texture", here / "starry.jpg", "-n", "2", "--width", "48", "--height", "32", "-o", here / "r.jpg", "-q")
    assert result.exit_code == 0, result.output
    with Image.open(here / "r.jpg") as image:
        assert image.format == "JPEG" and image.size == (48, 32)


def test_a_tileable_size_is_rounded_and_said(here: Path) -> None:
    result = invoke("texture", here / "starry.jpg", "--size", "40", "-n", "2", "--tileable", "--scales", "1")
    assert result.exit_code == 0, result.output
    assert "nstpipe: 48x48 on cpu" in result.stderr  # the nearest multiple of 16
    assert pixels(here / "starry.texture.png").shape == (48, 48, 3)


def test_blended_paintings(here: Path) -> None:
    result = invoke("texture", here / "starry.jpg", here / "tubingen.jpg", *TINY, "--style-weights", "0.7,0.3", "-q")
    assert result.exit_code == 0, result.output
    record = json.loads((here / "starry.texture.png.settings.json").read_text())
    assert record["styles"] == [str(here / "starry.jpg"), str(here / "tubingen.jpg")]
    assert record["settings"]["style_blend"] == [0.7, 0.3]


def test_a_foreign_file_is_replaced_only_with_y(here: Path) -> None:
    (here / "starry.texture.png").write_bytes(b"mine")
    refused = invoke("texture", here / "starry.jpg", *TINY)
    assert refused.exit_code == 2 and "was not made by nstpipe" in refused.stderr
    assert (here / "starry.texture.png").read_bytes() == b"mine"
    done = invoke("texture", here / "starry.jpg", *TINY, "-y", "-q")
    assert done.exit_code == 0, done.output
    assert pixels(here / "starry.texture.png").shape == (32, 32, 3)


@pytest.mark.parametrize(
    "args, named",
    [
        (("--count", "0"), "--count"),
        (("--width", "64"), "--height"),
        (("--width", "8", "--height", "64"), "--width"),
        (("--style-weights", "nan"), "--style-weights"),
        (("--style-weights", "1,1"), "style_blend"),
        (("-o", "painting.texture"), "suffix"),
        (("-o", "starry.jpg"), "style image"),
    ],
)
def test_mistakes_are_one_line_and_touch_nothing(here: Path, args: tuple[str, ...], named: str) -> None:
    before = snapshot(here)
    paths = (str(here / a) if a.endswith((".jpg", ".texture")) else a for a in args)
    result = invoke("texture", here / "starry.jpg", *TINY, *paths)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nstpipe: error: ") and named in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert snapshot(here) == before


def test_a_size_the_format_cannot_hold_is_refused_before_any_work(here: Path) -> None:
    before = snapshot(here)
    wide = ("--width", "16400", "--height", "32")
    result = invoke("texture", here / "starry.jpg", "-n", "1", *wide, "--device", "cpu", "-o", here / "t.webp")
    assert result.exit_code == 2 and "t.webp: WEBP holds at most 16383 pixels a side" in result.stderr, result.output
    assert "Traceback" not in result.output and snapshot(here) == before


def test_the_help_lists_the_texture_options() -> None:
    result = invoke("texture", "--help")
    assert result.exit_code == 0
    for option in ("--count", "--tileable", "--width", "--height", "--style-weights", "--preset"):
        assert option in result.stdout
