"""``nstpipe visualize`` end to end at 32 px through typer's CliRunner: one channel, a
labelled contact sheet of a range, reruns kept, mistakes answered with one line and exit
status 2, and the fingerprint of the mode's settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import CPU_AUTO, invoke, pixels, snapshot
from nstpipe.config import Settings, VisualizeConfig, build_settings
from nstpipe.errors import ConfigError
from nstpipe.media.sheet import GAP, LABEL_HEIGHT, contact_sheet

TINY = ("--layer", "relu2_1", "--size", "32", "-n", "3", "--scales", "1")








@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_one_channel_goes_to_the_current_folder_and_a_rerun_keeps_it(here: Path) -> None:
    result = invoke("visualize", *TINY, "--channel", "5")
    assert result.exit_code == 0, result.output
    out = Path("relu2_1-5.png")
    assert result.stderr.splitlines()[0] == f"nstpipe: 32x32 on cpu ({CPU_AUTO}), 1 picture -> {out}"
    assert f"wrote {out}" in result.stdout
    assert pixels(here / out).shape == (32, 32, 3)
    record = json.loads((here / "relu2_1-5.png.settings.json").read_text())
    assert record["settings"]["mode"] == "visualize" and record["layer"] == "relu2_1" and record["channels"] == [5]
    before = (here / out).stat().st_mtime_ns
    again = invoke("visualize", *TINY, "--channel", "5", "-q")
    assert again.exit_code == 0 and f"kept {out}" in again.stdout
    assert (here / out).stat().st_mtime_ns == before
    other = invoke("visualize", *TINY, "--channel", "5", "-q", "--seed", "1")  # other settings: made anew
    assert other.exit_code == 0 and f"wrote {out}" in other.stdout


def test_a_range_gives_one_contact_sheet_with_a_labelled_tile_per_channel(here: Path) -> None:
    result = invoke("visualize", *TINY, "--channels", "2-6", "-q")
    assert result.exit_code == 0, result.output
    sheet = pixels(here / "relu2_1-2-6.png")
    columns, rows = 3, 2  # five tiles about as wide as high
    assert sheet.shape == (GAP + rows * (32 + LABEL_HEIGHT + GAP), GAP + columns * (32 + GAP), 3)
    for k in range(5):
        x, y = GAP + (k % columns) * (32 + GAP), GAP + (k // columns) * (32 + LABEL_HEIGHT + GAP)
        assert (sheet[y : y + LABEL_HEIGHT, x : x + 32] < 128).any(), f"tile {k} has no label"  # dark ink on white
    assert (sheet[GAP + 32 + LABEL_HEIGHT + GAP :, GAP + 2 * (32 + GAP) :] == 255).all()  # no sixth tile


def test_the_sheet_labels_differ_by_channel() -> None:
    tile = np.full((16, 16, 3), 128, dtype=np.uint8)
    a, b = contact_sheet([tile, tile], ["1", "2"]), contact_sheet([tile, tile], ["1", "7"])
    assert a.shape == b.shape and not np.array_equal(a, b)
    with pytest.raises(ValueError):
        contact_sheet([tile], ["1", "2"])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--layer", "relu9_1", "--channel", "0"), "unknown VGG19 layer 'relu9_1'"),
        (("--layer", "relu2_1", "--channel", "128"), "relu2_1 has 128 channels, 0 to 127 (got 128)"),
        (("--layer", "relu4_1", "--channels", "0-600"), "relu4_1 has 512 channels, 0 to 511 (got 0-600)"),
        (("--layer", "relu2_1", "--channels", "9-4"), "the range 9-4 ends before it starts"),
        (("--layer", "relu2_1", "--channels", "x"), "is not a channel K or a range A-B"),
        (("--layer", "relu2_1", "--channels", "1-"), "is not a channel K or a range A-B"),
        (("--layer", "relu2_1",), "give one channel (--channel K) or a range"),
        (("--layer", "relu2_1", "--channel", "1", "--channels", "1-2"), "give one channel (--channel K) or a range"),
    ],
)
def test_mistakes_give_one_line_and_exit_2_and_touch_nothing(here: Path, args: tuple[str, ...], says: str) -> None:
    (here / "keep.png").write_bytes(b"not ours")
    before = snapshot(here)
    result = invoke("visualize", "--size", "32", "-n", "1", *args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nstpipe: error: ") and says in lines[0], lines
    assert "Traceback" not in result.output
    assert snapshot(here) == before


def test_a_file_not_made_by_nstpipe_is_not_replaced_without_y(here: Path) -> None:
    (here / "mine.png").write_bytes(b"not ours")
    result = invoke("visualize", *TINY, "--channel", "1", "-o", "mine.png")
    assert result.exit_code == 2 and "was not made by nstpipe" in result.stderr
    assert (here / "mine.png").read_bytes() == b"not ours"
    forced = invoke("visualize", *TINY, "--channel", "1", "-o", "mine.png", "-y", "-q")
    assert forced.exit_code == 0, forced.output
    assert pixels(here / "mine.png").shape == (32, 32, 3)


def visualize(layer: str, channels: tuple[int, ...]) -> Settings:
    return build_settings("visualize", overrides={"mode": "visualize", "visualize_layer": layer, "visualize_channels": channels})


def test_the_fingerprint_tells_channels_layers_and_modes_apart() -> None:
    prints = {
        visualize("relu4_1", (0,)).fingerprint(), visualize("relu4_1", (1,)).fingerprint(),
        visualize("relu4_1", (0, 1)).fingerprint(), visualize("relu3_1", (0,)).fingerprint(),
    }
    assert len(prints) == 4
    base = visualize("relu4_1", (0,))
    others = {Settings(mode=mode, engine=base.engine, size=base.size).fingerprint() for mode in ("style", "texture")}
    assert len(others) == 2 and not others & prints
    # Style transfer and texture do not read the visualize settings.
    for mode in ("style", "texture"):
        assert Settings(mode=mode, visualize=VisualizeConfig("relu3_1", (7,))).fingerprint() == Settings(mode=mode).fingerprint()


def test_the_settings_refuse_a_channel_past_the_layer_and_a_falling_list() -> None:
    for layer, count in (("relu1_2", 64), ("conv2_1", 128), ("pool3", 256), ("relu4_1", 512), ("relu5_4", 512)):
        VisualizeConfig(layer, (count - 1,))
        with pytest.raises(ConfigError, match=f"has {count} channels, 0 to {count - 1}"):
            VisualizeConfig(layer, (count,))
    with pytest.raises(ConfigError, match="increase"):
        VisualizeConfig("relu4_1", (3, 2))
    with pytest.raises(ConfigError):
        VisualizeConfig("relu4_1", (-1,))
