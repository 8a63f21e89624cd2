"""A picture reader revision repaints only what the reader now decodes as other pixels.

The real worker, driver and records, with a painter that hands back the photo it is
given (no model): which outputs are painted again is what counts here, not how.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

import nstpipe.media.imaging as imaging
from nstpipe.app import FolderOutcome, paint_picture, stylize_folder
from nstpipe.config import build_settings
from nstpipe.engine.stylize import Result
from nstpipe.events import TaskResult
from nstpipe.jobs.plan import SETTINGS_FILE, source_identity
from nstpipe.jobs.records import beside_record, make_job
from nstpipe.media.imaging import PICTURE_READER_REVISION
from nstpipe.media.writer import read_record, write_png
from nstpipe.run.executor import LocalExecutor

SETTINGS = build_settings("fast", None, {"size": 32, "iterations": 2, "device": "cpu", "batch": 2})


class EchoPainter:
    """Paints a photo as itself, at once."""

    device = torch.device("cpu")
    precision = "fp32"

    def run(self, content: torch.Tensor, init: torch.Tensor | None = None, callback: Any = None, temporal: Any = None) -> Result:
        count = content.shape[0]
        return Result(content.clone(), 1, 0.0, item_iterations=(1,) * count, item_losses=(0.0,) * count)


@pytest.fixture(autouse=True)
def echo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nstpipe.jobs.worker.build_painter", lambda settings, styles: EchoPainter())


@pytest.fixture
def decoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of every picture the reader decodes."""
    names: list[str] = []
    real = imaging.read_rgb

    def read(path: Path, *args: Any, **kwargs: Any) -> np.ndarray:
        names.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(imaging, "read_rgb", read)
    return names


@pytest.fixture
def archive(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    for i, name in enumerate(("a.png", "b.png", "c.jpg")):
        make_rgb(tmp_path / "in" / name, 16, 24, seed=i)
    return tmp_path / "in"


@pytest.fixture
def style(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    return make_rgb(tmp_path / "style.png", 16, 16, seed=9)


def raise_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new version of the reader, in every module that reads its revision."""
    for module in ("nstpipe.media.imaging", "nstpipe.jobs.records"):
        monkeypatch.setattr(f"{module}.PICTURE_READER_REVISION", PICTURE_READER_REVISION + 1)


def read_otherwise(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The reader decodes the picture called ``name`` as other pixels; the others alike."""
    real = imaging.read_rgb

    def read(path: Path, *args: Any, **kwargs: Any) -> np.ndarray:
        rgb = real(path, *args, **kwargs)
        return 255 - rgb if Path(path).name == name else rgb

    monkeypatch.setattr(imaging, "read_rgb", read)


def run(archive: Path, style: Path, out: Path) -> tuple[list[str], FolderOutcome]:
    """The folder job; the names of the photos painted."""
    painted: list[str] = []

    def report(event: object) -> None:
        if isinstance(event, TaskResult) and event.ok:
            painted.append(event.task.relative.name)

    outcome = stylize_folder(archive, [style], out, SETTINGS, report, LocalExecutor())
    assert not outcome.failed
    return sorted(painted), outcome


def test_a_revision_that_reads_the_photos_alike_repaints_nothing(
    archive: Path, style: Path, tmp_path: Path, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    assert run(archive, style, out)[0] == ["a.png", "b.png", "c.jpg"]
    record = read_record(out / "b.png")
    assert record is not None and record["picture_reader"] == PICTURE_READER_REVISION and len(record["pixels"]) == 64
    decoded.clear()
    assert run(archive, style, out)[0] == [] and not {"a.png", "b.png", "c.jpg"} & set(decoded)  # no photo decoded
    raise_revision(monkeypatch)
    kept = {name: np.asarray(Image.open(out / name)) for name in ("a.png", "b.png", "c.png")}
    painted, outcome = run(archive, style, out)
    assert painted == [] and outcome.skipped == 3
    assert {"a.png", "b.png", "c.jpg"} <= set(decoded)  # decoded to compare, once the revision differs
    for name, pixels in kept.items():
        renewed = read_record(out / name)
        assert renewed is not None and renewed["picture_reader"] == PICTURE_READER_REVISION + 1
        assert np.array_equal(np.asarray(Image.open(out / name)), pixels)
    decoded.clear()
    painted, outcome = run(archive, style, out)
    assert painted == [] and outcome.skipped == 3
    assert not {"a.png", "b.png", "c.jpg"} & set(decoded)  # once per revision, not on every run


def test_a_record_that_cannot_be_renewed_keeps_the_output(
    archive: Path, style: Path, tmp_path: Path, decoded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only output folder or a full disk does not stop a run that paints nothing:
    the record stays as it is, and the next run decodes the photo again."""
    out = tmp_path / "out"
    run(archive, style, out)
    kept = (out / "a.png").read_bytes()
    raise_revision(monkeypatch)
    real = os.replace

    def replace(src: str, dst: str) -> None:
        if Path(dst).suffix == ".png":
            raise OSError(errno.ENOSPC, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    painted, outcome = run(archive, style, out)
    assert painted == [] and outcome.skipped == 3 and (out / "a.png").read_bytes() == kept
    assert sorted(os.listdir(out)) == sorted(["a.png", "b.png", "c.png", SETTINGS_FILE])
    monkeypatch.setattr(os, "replace", real)
    decoded.clear()
    assert run(archive, style, out)[0] == [] and {"a.png", "b.png", "c.jpg"} <= set(decoded)
    record = read_record(out / "a.png")
    assert record is not None and record["picture_reader"] == PICTURE_READER_REVISION + 1


def test_a_damaged_output_found_after_a_revision_is_repainted(
    archive: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its record whole, its image data not: found while renewing the record."""
    out = tmp_path / "out"
    run(archive, style, out)
    data = (out / "a.png").read_bytes()
    at = data.index(b"IDAT") + 8
    (out / "a.png").write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
    raise_revision(monkeypatch)
    assert run(archive, style, out)[0] == ["a.png"]
    with Image.open(out / "a.png") as img:
        img.verify()


def test_only_the_photo_read_as_other_pixels_is_repainted(
    archive: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run(archive, style, out)
    kept = (out / "a.png").read_bytes()
    raise_revision(monkeypatch)
    read_otherwise(monkeypatch, "b.png")
    assert run(archive, style, out)[0] == ["b.png"]
    data = (out / "a.png").read_bytes()  # its record renewed, its image data as it was
    assert data[data.index(b"IDAT") - 4:] == kept[kept.index(b"IDAT") - 4:]
    assert run(archive, style, out)[0] == []  # b's record names the new revision


def test_a_style_read_as_other_pixels_repaints_everything(
    archive: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run(archive, style, out)
    raise_revision(monkeypatch)
    assert run(archive, style, out)[0] == []  # the style decoded alike
    read_otherwise(monkeypatch, style.name)
    assert run(archive, style, out)[0] == ["a.png", "b.png", "c.jpg"]


def test_an_output_recorded_by_revision_alone_is_kept_under_that_revision_only(
    archive: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outputs of a version of nstpipe that recorded no pixels (the reader's revision in the
    job's fingerprint): kept while the revision is the same, painted again after a raise."""
    out = tmp_path / "out"
    run(archive, style, out)
    by_revision = make_job(SETTINGS, [style]).by_revision
    for name in ("a.png", "b.png", "c.jpg"):
        earlier = {"fingerprint": by_revision, "source": source_identity(archive / name)}
        write_png(out / (Path(name).stem + ".png"), np.zeros((16, 24, 3), np.uint8), earlier)
    assert run(archive, style, out)[0] == []
    raise_revision(monkeypatch)
    assert run(archive, style, out)[0] == ["a.png", "b.png", "c.jpg"]


def test_a_single_picture_is_kept_unless_read_as_other_pixels(
    archive: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "b.style.png"

    def paint() -> bool:
        return paint_picture(archive / "b.png", [style], target, SETTINGS, lambda event: None)[1]

    assert paint()
    record = beside_record(target)
    assert record is not None and record["picture_reader"] == PICTURE_READER_REVISION and len(record["pixels"]) == 64
    raise_revision(monkeypatch)
    assert not paint()
    read_otherwise(monkeypatch, "b.png")
    assert paint() and not paint()


def test_an_input_that_failed_is_tried_again_after_a_revision(
    archive: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that decodes pictures otherwise may read one it could not: the failure
    record names the revision, now that the job's fingerprint does not."""
    out = tmp_path / "out"
    (archive / "bad.png").write_bytes(b"not a picture")
    first = stylize_folder(archive, [style], out, SETTINGS, lambda event: None, LocalExecutor())
    assert [f.task.relative.name for f in first.failed] == ["bad.png"]
    again = stylize_folder(archive, [style], out, SETTINGS, lambda event: None, LocalExecutor())
    assert not again.failed and [s.task.relative.name for s in again.failed_before] == ["bad.png"]
    raise_revision(monkeypatch)
    raised = stylize_folder(archive, [style], out, SETTINGS, lambda event: None, LocalExecutor())
    assert [f.task.relative.name for f in raised.failed] == ["bad.png"] and not raised.failed_before and raised.done == 0
