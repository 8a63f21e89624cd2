"""Atomic writes, the resume record inside output PNGs, and temp-file cleanup."""

from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nstpipe.errors import InputError, OutputError
from nstpipe.media.writer import (
    TEMP_PREFIX,
    atomic_write_bytes,
    atomic_write_json,
    clean_temp_files,
    read_record,
    record_path,
    renew_record,
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


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, length + type + data + CRC) of each chunk of a PNG, read here on its own."""
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        found.append((data[at + 4:at + 8], data[at:at + 12 + length]))
        at += 12 + length
    return found


@pytest.fixture
def output(tmp_path: Path) -> Path:
    path = tmp_path / "out.png"
    write_png(path, np.random.default_rng(3).integers(0, 256, (64, 48, 3), dtype=np.uint8), {"fingerprint": "f", "picture_reader": 1})
    return path


def test_a_renewed_record_leaves_the_pixels_byte_for_byte(output: Path) -> None:
    before = output.read_bytes()
    renewed = {"fingerprint": "f", "picture_reader": 2, "pixels": "a longer record than the one it replaces"}
    assert renew_record(output, {"fingerprint": "f", "picture_reader": 1}, renewed)
    assert read_record(output) == renewed
    after = output.read_bytes()
    assert [c for c in chunks(after) if c[0] != b"tEXt"] == [c for c in chunks(before) if c[0] != b"tEXt"]
    assert [kind for kind, _ in chunks(after)] == [kind for kind, _ in chunks(before)]
    assert b"IDAT" in [kind for kind, _ in chunks(after)]
    with Image.open(output) as img:
        img.verify()  # every chunk's CRC, the new one's too
    assert np.array_equal(np.asarray(Image.open(output)), np.asarray(Image.open(io.BytesIO(before))))
    assert os.listdir(output.parent) == ["out.png"]


@pytest.mark.parametrize("damage", ["cut short", "image data", "after its end", "another record"])
def test_a_record_is_renewed_only_in_a_whole_png_that_carries_it(output: Path, damage: str) -> None:
    data = output.read_bytes()
    idat = data.index(b"IDAT")
    damaged = {
        "cut short": data[: len(data) // 2],
        "image data": data[: idat + 20] + bytes([data[idat + 20] ^ 1]) + data[idat + 21:],
        "after its end": data + b"\0",
        "another record": data,
    }[damage]
    output.write_bytes(damaged)
    old = {"fingerprint": "other" if damage == "another record" else "f", "picture_reader": 1}
    assert not renew_record(output, old, {"fingerprint": "f", "picture_reader": 2})
    assert output.read_bytes() == damaged and os.listdir(output.parent) == ["out.png"]


def test_a_record_that_cannot_be_written_leaves_the_output_as_it_is(output: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = output.read_bytes()

    def refuse(src: str, dst: str) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match="out.png: cannot write .Read-only file system."):
        renew_record(output, {"fingerprint": "f", "picture_reader": 1}, {"fingerprint": "f", "picture_reader": 2})
    assert output.read_bytes() == before and os.listdir(output.parent) == ["out.png"]
