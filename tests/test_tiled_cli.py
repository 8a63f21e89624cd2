"""``nstpipe image`` under a memory budget too small for the whole picture: painted in tiles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from nstpipe.cli import app
from nstpipe.engine import memory

runner = CliRunner()
# Layers down to relu3_1 only: a halo of 12 pixels, so a 96 px picture holds several tiles.
SHALLOW = ("--style-layers", "relu1_1,relu2_1,relu3_1", "--content-layer", "relu3_1", "--preset", "fast", "-n", "2")


def test_a_run_that_must_tile_ends_at_its_size(
    tmp_path: Path, photo_path: Path, painting_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layouts: list[Any] = []
    real = memory.plan_layout

    def spy(*args: Any) -> Any:
        layouts.append(real(*args))
        return layouts[-1]

    monkeypatch.setattr("nstpipe.engine.stylize.plan_layout", spy)
    out = tmp_path / "out.png"
    args = ["image", str(photo_path), "-s", str(painting_path), "-o", str(out), "--size", "96", *SHALLOW, "-q"]
    result = runner.invoke(app, [*args, "--max-memory", "606M"])
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
