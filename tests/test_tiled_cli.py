"""``nstpipe image`` under a memory budget too small for the whole picture (painted in tiles),
and the size it paints a photo at."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nstpipe.app.sizes import photo_settings
from nstpipe.cli import app
from nstpipe.config import build_settings
from nstpipe.errors import InputError
from nstpipe.media.writer import check_encodable

runner = CliRunner()
# Layers down to relu3_1 only: a halo of 12 pixels, so a 96 px picture holds several tiles.
SHALLOW = ("--style-layers", "relu1_1,relu2_1,relu3_1", "--content-layer", "relu3_1", "--preset", "fast", "-n", "2")


def test_a_run_that_must_tile_ends_at_its_size(tmp_path: Path, photo_path: Path, painting_path: Path, layouts: list[Any]) -> None:
    out = tmp_path / "out.png"
    args = ["image", str(photo_path), "-s", str(painting_path), "-o", str(out), "--size", "96", *SHALLOW, "-q"]
    result = runner.invoke(app, [*args, "--max-memory", "706M"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert any(layout.tile is not None for layout in layouts)
    with Image.open(out) as img:
        assert img.size == (96, 72)  # tubingen_64.jpg is 64x48


def test_a_budget_too_small_for_one_tile_is_one_line(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    out = tmp_path / "out.png"
    result = runner.invoke(app, ["image", str(photo_path), "-s", str(painting_path), "-o", str(out), "--size", "96", *SHALLOW,
                                 "--max-memory", "100M"])
    assert result.exit_code != 0
    assert "--max-memory 100M is too small for a 96x72 picture" in result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in result.output  # after the opening line, one line
    assert not out.exists()


def test_a_bad_amount_names_the_flag(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    result = runner.invoke(app, ["image", str(photo_path), "-s", str(painting_path), "-o", str(tmp_path / "o.png"),
                                 "--max-memory", "lots"])
    assert result.exit_code == 2 and "--max-memory" in result.output and "Traceback" not in result.output


def test_a_cpu_keeps_the_preset_size_and_names_the_photo_s_own(tmp_path: Path, make_rgb: Any, painting_path: Path) -> None:
    photo = make_rgb(tmp_path / "big.jpg", 400, 600)
    out = tmp_path / "out.png"
    result = runner.invoke(app, ["image", str(photo), "-s", str(painting_path), "-o", str(out), "--preset", "fast", "--scales", "1",
                                 "-n", "1", "--device", "cpu", "--style-layers", "relu1_1", "--content-layer", "relu1_1"])
    assert result.exit_code == 0, result.output
    assert "nstpipe: 256x171 (the input is 600x400; at that size --size 600 would take about" in result.output
    with Image.open(out) as img:
        assert img.size == (256, 171)


def test_a_gpu_paints_a_photo_at_its_own_size_up_to_max_size(tmp_path: Path, make_rgb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = make_rgb(tmp_path / "big.jpg", 400, 600)
    monkeypatch.setattr("nstpipe.app.sizes.resolve_device", lambda name: torch.device("mps"))
    settings = build_settings("default")
    assert photo_settings(settings, photo, size_from_device=True)[0].size == 600
    assert photo_settings(dataclasses.replace(settings, max_size=500), photo, size_from_device=True)[0].size == 500
    assert photo_settings(settings, photo, size_from_device=False) == (settings, (600, 400))
    monkeypatch.setattr("nstpipe.app.sizes.resolve_device", lambda name: torch.device("cpu"))
    assert photo_settings(settings, photo, size_from_device=True)[0].size == settings.size


def test_sizes_nothing_can_paint_or_hold_are_one_line(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    result = runner.invoke(app, ["image", str(photo_path), "-s", str(painting_path), "-o", str(tmp_path / "o.png"), "--size", "5000"])
    assert result.exit_code == 2 and "5000 is above max_size 4096 (raise --max-size" in result.output
    with pytest.raises(InputError, match=r"o.webp: WEBP holds at most 16383 pixels a side, and the picture is 20000x15000"):
        check_encodable(tmp_path / "o.webp", 20000, 15000)
    check_encodable(tmp_path / "o.png", 20000, 15000)
    # libjpeg's limit, under the format's 65535: Pillow cannot write a wider JPEG.
    with pytest.raises(InputError, match=r"JPEG holds at most 65500 pixels"):
        check_encodable(tmp_path / "o.jpg", 65501, 8)


def test_a_gpu_paints_each_picture_of_a_folder_at_its_own_size(
    tmp_path: Path, make_rgb: Any, painting_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The driver decides (here told it has an MPS GPU); the worker paints on this CPU.
    make_rgb(tmp_path / "in" / "a.jpg", 24, 32)
    make_rgb(tmp_path / "in" / "b.png", 40, 20)
    monkeypatch.setattr("nstpipe.app.sizes.resolve_device", lambda name="auto": torch.device("mps"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["images", str(tmp_path / "in"), "-s", str(painting_path), "-o", str(out), "--preset", "fast",
                                 "--scales", "1", "-n", "1", "--max-size", "36"])
    assert result.exit_code == 0, result.output
    assert "each its own size, long side at most 36" in result.output
    with Image.open(out / "a.png") as a, Image.open(out / "b.png") as b:
        assert (a.size, b.size) == ((32, 24), (18, 36))
