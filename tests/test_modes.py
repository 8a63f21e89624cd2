"""A mode is one spec: a toy mode registered in a test runs through the command line on a
picture and a folder; the flags of every mode are declared once and refused where unused."""

from __future__ import annotations

import ast
import dataclasses
import shutil
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest
import torch
from typer.testing import CliRunner, Result

from helpers import pixels
from nstpipe.cli import app
from nstpipe.cli.commands import build_app
from nstpipe.config import EngineConfig, Settings
from nstpipe.engine.stylize import Result as Painted
from nstpipe.events import EventSink
from nstpipe.media.writer import read_record
from nstpipe.modes import MODES, spec_of
from nstpipe.modes.base import FOLDER, PICTURE, Command, Flag, ModeSpec, retell
from nstpipe.modes.model import read_image

PACKAGE = Path(__file__).resolve().parent.parent / "nstpipe"
runner = CliRunner()


class Negative:
    """A painter without a network: the photo's negative."""

    def __init__(self, settings: Settings) -> None:
        self.device = torch.device("cpu")
        self.config = settings.engine
        self.precision = "fp32"

    def with_config(self, config: EngineConfig) -> Negative:
        return self

    def run(
        self, content: torch.Tensor, init: torch.Tensor | None = None, callback: EventSink | None = None, temporal: object = None
    ) -> Painted:
        count = content.shape[0]
        return Painted(1.0 - content, 0, 0.0, (0,) * count, (0.0,) * count)


def negative_painter(settings: Settings, styles: Sequence[Path]) -> Negative:
    return Negative(settings)


NEGATIVE = ModeSpec(
    name="negative",
    preset="default",
    commands=(
        Command(
            "negative", "The photo's negative.", frozenset({PICTURE, FOLDER}), Flag("source", (), Path, "A photo or a folder."),
            retell("output", shown="NAME.negative.SUFFIX beside the input"),
        ),
    ),
    flags=("size", "device", "batch", "retry_failed"),
    painter=negative_painter,
    styles="none",
    tag=lambda styles: "negative",
)


@pytest.fixture
def toy_app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    monkeypatch.setitem(MODES, NEGATIVE.name, NEGATIVE)  # the one line a fifth mode adds to the registry
    toy = build_app()
    return lambda *args: runner.invoke(toy, [str(a) for a in args])


def test_a_toy_mode_runs_on_a_picture_and_a_folder(toy_app: Callable[..., Result], tmp_path: Path, photo_path: Path) -> None:
    photo = Path(shutil.copy(photo_path, tmp_path / "photo.png"))
    done = toy_app("negative", photo, "--size", "32", "--device", "cpu", "-q")
    assert done.exit_code == 0, done.output
    out = tmp_path / "photo.negative.png"
    assert f"wrote {out}" in done.stdout
    negative = 255 - (read_image(photo, 32)[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(pixels(out) - negative).max() <= 1
    again = toy_app("negative", photo, "--size", "32", "--device", "cpu", "-q")
    assert again.exit_code == 0 and f"kept {out}" in again.stdout

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(photo_path, folder / "sub" / "a.jpg")
    done = toy_app("negative", folder, "--size", "32", "--device", "cpu", "-q")
    assert done.exit_code == 0, done.output
    painted = tmp_path / "photos.negative" / "sub" / "a.png"
    assert "1 stylized" in done.stdout and painted.is_file()
    record = read_record(painted)
    assert record is not None and record["fingerprint"] != ""
    assert spec_of("negative") is NEGATIVE


def test_the_toy_mode_has_only_its_own_flags(toy_app: Callable[..., Result], tmp_path: Path, photo_path: Path) -> None:
    shown = toy_app("negative", "-h").stdout
    assert "--size" in shown and "--style" not in shown and "--frames" not in shown
    photo = Path(shutil.copy(photo_path, tmp_path / "photo.png"))
    refused = toy_app("negative", photo, "--retry-failed", "--device", "cpu")
    assert refused.exit_code == 2 and refused.stderr == "nstpipe: error: --retry-failed applies to a folder, not to a picture\n"


def test_an_unknown_mode_is_named() -> None:
    from nstpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown mode 'sleep'") as caught:
        spec_of("sleep")
    assert caught.value.key == "mode"


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("dream", "{photo}", "--frames", "3"), "--frames applies to a video, not to a picture"),
        (("dream", "{photo}", "--keep-frames"), "--keep-frames applies to a video, not to a picture"),
        (("dream", "{photo}", "--workers", "2"), "--workers applies to a folder or video, not to a picture"),
        (("dream", "{folder}", "--crf", "20"), "--crf applies to a video, not to a folder"),
        (("texture", "{photo}", "--width", "64", "--height", "64", "--size", "128"), "--size does not apply with --width and --height"),
        (("dream", "{folder}", "-o", "{tmp}/out.jpg"), "out.jpg: the output of a folder is a folder"),
        (("images", "{folder}", "-s", "{photo}", "-o", "{tmp}/out.png"), "out.png: the output of a folder is a folder"),
    ],
)
def test_a_flag_a_mode_does_not_use_is_refused_with_one_line(tmp_path: Path, photo_path: Path, args: tuple[str, ...], says: str) -> None:
    photo = Path(shutil.copy(photo_path, tmp_path / "photo.jpg"))
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(photo_path, folder / "a.jpg")
    before = sorted(tmp_path.rglob("*"))
    result = invoke(*(a.format(photo=photo, folder=folder, tmp=tmp_path) for a in args), "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and says in result.stderr and result.stdout == ""
    assert sorted(tmp_path.rglob("*")) == before  # nothing made: no folder named out.jpg


def test_a_text_file_named_as_a_picture_is_refused_as_a_picture(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a picture at all")
    result = invoke("dream", notes, "--device", "cpu")
    assert result.exit_code == 2
    assert result.stderr == f"nstpipe: error: {notes}: not an image file PIL can read\n"


def help_of(command: str) -> str:
    return " ".join(invoke(command, "-h").stdout.split())


def test_the_help_shows_each_modes_own_preset_defaults() -> None:
    dream = help_of("dream")
    assert "every later frame inherits it. [default: (1.0)]" in dream and "2.5" not in dream
    assert "Steps in each octave (a video's later frames: --later-iterations). [default: (8 in the dream preset)]" in dream
    texture = help_of("texture")
    assert "[default: (200 in the texture preset; coarse_iterations" in texture
    for command in ("texture", "visualize"):
        iterations = help_of(command).split("--iterations -n")[1].split("[default")[0]
        assert "frame" not in iterations and "video" not in iterations, command
    assert "[default: (40 in the default preset; coarse_iterations 40)]" in help_of("image")


def long_options(path: Path) -> list[str]:
    """The long option names a source file declares: "--name" or "--a/--b" in a tuple of
    names, as a flag's declaration or typer.Option's arguments have them."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        option = isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "Option"
        items = node.elts if isinstance(node, ast.Tuple) else node.args if isinstance(node, ast.Call) and option else []
        for item in items:
            if isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value.startswith("--"):
                names += [part for part in item.value.split("/") if part.startswith("--") and " " not in part]
    return names


def test_every_long_option_is_declared_once() -> None:
    files = sorted((PACKAGE / "cli").glob("*.py")) + sorted((PACKAGE / "modes").glob("*.py"))
    counts = Counter(name for path in files for name in long_options(path))
    assert counts["--size"] == 1 and counts["--layer"] == 1 and counts["--tileable"] == 1
    assert [name for name, count in counts.items() if count > 1] == []


def test_the_once_check_sees_a_second_declaration(tmp_path: Path) -> None:
    twice = tmp_path / "twice.py"
    twice.write_text('A = ("--size",)\nB = Flag("size", ("-s",), int, "help --size", "--size")\nC = typer.Option("--size")\n')
    assert long_options(twice) == ["--size", "--size"]
    assert long_options(PACKAGE / "cli" / "options.py").count("--size") == 1


def test_a_retold_flag_keeps_its_declaration() -> None:
    from nstpipe.cli.options import TABLE

    shown = retell("layer", setting="visualize_layer").apply(TABLE["layer"])
    assert shown.decls == TABLE["layer"].decls and dataclasses.replace(shown, setting="dream_layers") == TABLE["layer"]
