"""Atomic writes, the resume record inside output PNGs, and temp-file cleanup."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstpipe.errors import InputError
from nstpipe.media.writer import (
    TEMP_PREFIX,
    atomic_write_bytes,
    atomic_write_json,
    clean_temp_files,
    read_record,
    record_path,
    write_image,
    write_png,
)


def picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)


def test_atomic_write_creates_folders_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert os.listdir(target.parent) == ["out.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_files_get_ordinary_permissions(tmp_path: Path) -> None:
    """Not mkstemp's owner-only 0600: outputs must be as readable as any new file."""
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    if not plain.stat().st_mode & 0o044:
        pytest.skip("the umask makes every new file private here")
    atomic_write_bytes(tmp_path / "out.bin", b"x")
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"good")
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_write_json(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    atomic_write_json(target, {"b": 1, "a": [1.5, "x"], "p": Path("/x")})
    assert json.loads(target.read_text()) == {"a": [1.5, "x"], "b": 1, "p": "/x"}
    assert target.read_text().endswith("\n")


def test_png_and_record_round_trip(tmp_path: Path) -> None:
    record = {"fingerprint": "abc123", "source": {"size": 10, "mtime_ns": 1700000000000000000}}
    path = tmp_path / "o" / "x.png"
    write_png(path, picture(), record)
    assert read_record(path) == record
    assert np.array_equal(np.asarray(Image.open(path)), picture())
    assert [p.name for p in path.parent.iterdir()] == ["x.png"]


def test_png_without_record(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    write_png(path, picture())
    assert read_record(path) is None
    Image.fromarray(picture()).save(tmp_path / "foreign.png")
    assert read_record(tmp_path / "foreign.png") is None


def test_read_record_of_bad_files(tmp_path: Path) -> None:
    assert read_record(tmp_path / "missing.png") is None
    text = tmp_path / "text.png"
    text.write_text("hello")
    assert read_record(text) is None
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(picture()).save(jpeg)
    assert read_record(jpeg) is None
    full = tmp_path / "full.png"
    write_png(full, np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8), {"fingerprint": "f"})
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    assert read_record(truncated) is None


def test_write_image_by_suffix(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", picture())
    write_image(tmp_path / "b.webp", picture())
    write_image(tmp_path / "c.png", picture())
    assert Image.open(tmp_path / "a.jpg").format == "JPEG"
    assert Image.open(tmp_path / "b.webp").format == "WEBP"
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c.png")), picture())
    assert sorted(os.listdir(tmp_path)) == ["a.jpg", "b.webp", "c.png"]


@pytest.mark.parametrize("name", ["a.gif", "a.xyz", "a.png.bak"])
def test_a_suffix_that_names_no_format_is_refused_before_writing(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="names no image format nstpipe writes; name it .png, .jpg"):
        write_image(tmp_path / name, picture())
    assert os.listdir(tmp_path) == []


def test_record_paths_follow_the_whole_output_name(tmp_path: Path) -> None:
    assert record_path(tmp_path / "a.gif").name == "a.gif.settings.json"
    assert record_path(tmp_path / "a.jpg") != record_path(tmp_path / "a.png")


def test_clean_temp_files_removes_only_leftovers(tmp_path: Path) -> None:
    (tmp_path / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    (tmp_path / f"{TEMP_PREFIX}def").write_bytes(b"partial")
    (tmp_path / "keep.png").write_bytes(b"x")
    (tmp_path / "nstpipe-tmp-not-ours").write_bytes(b"x")
    (tmp_path / f"{TEMP_PREFIX}dir").mkdir()
    nested = tmp_path / "sub"
    nested.mkdir()
    (nested / f"{TEMP_PREFIX}deep").write_bytes(b"x")
    assert clean_temp_files(tmp_path) == 2
    assert sorted(os.listdir(tmp_path)) == sorted(["keep.png", "nstpipe-tmp-not-ours", f"{TEMP_PREFIX}dir", "sub"])
    assert (nested / f"{TEMP_PREFIX}deep").exists()  # not recursive
    assert clean_temp_files(tmp_path / "absent") == 0
