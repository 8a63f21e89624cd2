"""Which inputs a folder run stylizes, and where each output goes."""

from __future__ import annotations

import errno
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, features

from nstpipe.errors import InputError
from nstpipe.jobs.plan import IMAGE_SUFFIXES, SETTINGS_FILE, ImageTask, is_image_name, output_names, plan_images
from nstpipe.media.imaging import read_rgb


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def relatives(tasks: list[ImageTask]) -> list[str]:
    return [str(t.relative) for t in tasks]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    for name in ("top.jpg", "notes.txt", "sub/inner.png", "sub/deeper/d.JPG", "sub/readme.md", "sub/.hidden"):
        touch(root / name)
    (root / "empty").mkdir()
    return root


def test_is_image_name() -> None:
    assert is_image_name("a.JPG") and is_image_name("b.tiff") and is_image_name("c.webp")
    assert not is_image_name("notes.txt") and not is_image_name("jpg") and not is_image_name("archive.jpg.zip")


def test_a_folder_run_takes_every_suffix_pillow_reads(tmp_path: Path) -> None:
    """AVIF (which ``image`` reads and writes) and JPEG's rarer names are planned; and every
    suffix planned is one that Pillow here reads, so no file is planned only to fail."""
    root = tmp_path / "in"
    root.mkdir()
    written = sorted(s for s in IMAGE_SUFFIXES | {".avif", ".jpe", ".jfif"} if s != ".avif" or features.check("avif"))
    for suffix in written:
        Image.new("RGB", (8, 6), (200, 30, 30)).save(root / f"p{suffix}", format=Image.registered_extensions()[suffix])
    tasks = list(plan_images(root, tmp_path / "out"))
    assert sorted(t.source.suffix for t in tasks) == written
    assert all(read_rgb(t.source).shape == (6, 8, 3) for t in tasks)


def test_output_names_single() -> None:
    assert output_names(["photo.jpg"]) == {"photo.jpg": "photo.png"}
    assert output_names(["x.png", "y.tif"]) == {"x.png": "x.png", "y.tif": "y.png"}


def test_output_names_shared_stem_keeps_whole_names() -> None:
    assert output_names(["a.jpg", "a.png", "b.jpeg"]) == {"a.jpg": "a.jpg.png", "a.png": "a.png.png", "b.jpeg": "b.png"}


def test_output_names_too_long_are_cut_with_a_hash_of_the_whole() -> None:
    """A shared stem of 250 bytes: its whole names, .png added, would take 258."""
    stem = "s" * 250
    names = output_names([f"{stem}.jpg", f"{stem}.png", "b.jpg"], most=255)
    assert names["b.jpg"] == "b.png" and len(set(names.values())) == 3
    for name in (f"{stem}.jpg", f"{stem}.png"):
        assert len(names[name]) <= 255 and names[name].startswith(stem[:200]) and names[name].endswith(".png")
    assert output_names([f"{stem}.png", f"{stem}.jpg"], most=255) == {n: names[n] for n in (f"{stem}.jpg", f"{stem}.png")}


def test_output_names_contrived_collision_still_distinct() -> None:
    names = output_names(["a.png.jpg", "a.png", "a.jpg"])
    assert names == {"a.jpg": "a.jpg.png", "a.png": "a.png.png", "a.png.jpg": "a.png~1.png"}


def test_output_names_never_collide() -> None:
    """Every subset of a pool of awkward names (all 1024 of them) maps to distinct .png names."""
    pool = [stem + ext for stem in ("a", "a.png", "a.jpg", "a~1", "b") for ext in (".jpg", ".png")]
    for k in range(len(pool) + 1):
        for names in itertools.combinations(pool, k):
            chosen = output_names(names)
            assert set(chosen) == set(names)
            assert len(set(chosen.values())) == len(names), names
            assert all(out.endswith(".png") and "/" not in out for out in chosen.values())


def test_plan_mirrors_folders_and_ignores_other_files(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    tasks = list(plan_images(tree, out))
    assert relatives(tasks) == ["top.jpg", "sub/inner.png", "sub/deeper/d.JPG"]
    assert [t.output for t in tasks] == [out / "top.png", out / "sub" / "inner.png", out / "sub" / "deeper" / "d.png"]
    assert [t.source for t in tasks] == [tree / "top.jpg", tree / "sub" / "inner.png", tree / "sub" / "deeper" / "d.JPG"]
    assert not out.exists()  # planning writes nothing


def test_plan_of_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a folder"):
        list(plan_images(tmp_path / "missing", tmp_path / "out"))
    with pytest.raises(InputError, match="not a folder"):
        list(plan_images(touch(tmp_path / "file.jpg"), tmp_path / "out"))


def test_symlink_loop_is_not_followed(tree: Path, tmp_path: Path) -> None:
    os.symlink(tree, tree / "sub" / "loop", target_is_directory=True)
    os.symlink(tree / "sub", tree / "sub" / "deeper" / "up", target_is_directory=True)
    tasks = list(plan_images(tree, tmp_path / "out"))  # terminates
    assert relatives(tasks) == ["top.jpg", "sub/inner.png", "sub/deeper/d.JPG"]


def test_file_symlinks_inside_kept_outside_skipped(tree: Path, tmp_path: Path) -> None:
    outside = touch(tmp_path / "elsewhere" / "secret.jpg")
    os.symlink(outside, tree / "escape.jpg")
    os.symlink(tree / "sub" / "inner.png", tree / "alias.png")
    os.symlink(Path("..") / ".." / "elsewhere" / "secret.jpg", tree / "sub" / "relative_escape.jpg")
    tasks = list(plan_images(tree, tmp_path / "out"))
    assert sorted(relatives(tasks)) == ["alias.png", "sub/deeper/d.JPG", "sub/inner.png", "top.jpg"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_only_regular_files_are_planned(tree: Path, tmp_path: Path) -> None:
    """A FIFO named like a picture, or a link to one, would block the worker that reads it."""
    os.mkfifo(tree / "pipe.png")
    os.symlink(tree / "pipe.png", tree / "sub" / "to_pipe.jpg")
    os.symlink(tree / "top.jpg", tree / "sub" / "to_top.jpg")
    tasks = list(plan_images(tree, tmp_path / "out"))
    assert sorted(relatives(tasks)) == ["sub/deeper/d.JPG", "sub/inner.png", "sub/to_top.jpg", "top.jpg"]


def test_every_output_is_inside_the_output_root(tree: Path, tmp_path: Path) -> None:
    touch(tree / "sub" / "inner.jpg")
    touch(tree / "..odd.jpg")
    out = tmp_path / "out"
    tasks = list(plan_images(tree, out))
    assert len(tasks) == 5
    root = out.resolve()
    for task in tasks:
        assert root in task.output.resolve().parents
        assert task.output.suffix == ".png"
    assert len({t.output for t in tasks}) == len(tasks)


def test_output_folder_inside_the_input_is_not_walked(tree: Path) -> None:
    out = tree / "styled"
    touch(out / "top.png")
    touch(out / "sub" / "inner.png")
    tasks = list(plan_images(tree, out))
    assert relatives(tasks) == ["top.jpg", "sub/inner.png", "sub/deeper/d.JPG"]
    assert tasks[0].output == out / "top.png"


def test_output_folder_equal_to_the_input_is_refused(tree: Path) -> None:
    with pytest.raises(InputError, match="overwrite inputs"):
        list(plan_images(tree, tree / "sub" / ".."))


def test_plan_chunks_splits_evenly_and_never_too_short() -> None:
    from nstpipe.jobs.plan import Chunk, plan_chunks

    assert plan_chunks(0, 4) == []
    assert plan_chunks(100, 1) == [Chunk(0, 100, 0)]
    chunks = plan_chunks(100, 4, blend=10)
    assert [(c.start, c.stop, c.blend) for c in chunks] == [(0, 25, 0), (25, 50, 10), (50, 75, 10), (75, 100, 10)]
    # 30 frames cannot hold 4 chunks of at least 2 * 10 + 1: one chain then.
    assert plan_chunks(30, 4, blend=10) == [Chunk(0, 30, 0)]
    for frames in range(1, 200):
        chunks = plan_chunks(frames, 7)
        assert chunks[0].start == 0 and chunks[-1].stop == frames
        assert all(a.stop == b.start for a, b in zip(chunks, chunks[1:]))
        assert len(chunks) == 1 or all(len(c) > 2 * c.blend for c in chunks)


def test_plan_videos_expands_folders_and_refuses_clashing_names(tmp_path: Path) -> None:
    from nstpipe.jobs.plan import plan_videos

    (tmp_path / "in").mkdir()
    for name in ("b.mkv", "a.mp4", "a.mov", "readme.txt"):
        (tmp_path / "in" / name).write_bytes(b"x")
    single = tmp_path / "c.mp4"
    single.write_bytes(b"x")
    out = tmp_path / "out"
    assert plan_videos([tmp_path / "in", single], out) == [
        (tmp_path / "in" / "a.mov", out / "a.mov.mp4"),
        (tmp_path / "in" / "a.mp4", out / "a.mp4.mp4"),
        (tmp_path / "in" / "b.mkv", out / "b.mp4"),
        (single, out / "c.mp4"),
    ]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "c.mp4").write_bytes(b"x")
    with pytest.raises(InputError, match="collide"):
        plan_videos([single, tmp_path / "other"], out)


def test_earlier_output_folders_inside_the_input_are_not_walked(tree: Path) -> None:
    """An output folder of an earlier run with another -o (it holds the folder job's
    settings file) is not input for this run, however deep it lies."""
    for earlier in (tree / "monet", tree / "sub" / "klimt"):
        touch(earlier / SETTINGS_FILE, b"{}")
        touch(earlier / "top.png")
        touch(earlier / "sub" / "inner.png")
    touch(tree / "sub" / "notes" / "settings.json")  # a folder without the settings file is walked
    touch(tree / "sub" / "notes" / "n.jpg")
    tasks = list(plan_images(tree, tree / "schiele"))
    assert relatives(tasks) == ["top.jpg", "sub/inner.png", "sub/deeper/d.JPG", "sub/notes/n.jpg"]


def test_an_unreadable_folder_is_reported_and_the_walk_goes_on(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as root, a folder's permissions would not stop the walk: listing it fails instead."""
    locked = tree / "sub" / "deeper"
    touch(tree / "sub" / "later" / "l.jpg")
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    errors: list[InputError] = []
    tasks = list(plan_images(tree, tmp_path / "out", errors.append))
    assert relatives(tasks) == ["top.jpg", "sub/inner.png", "sub/later/l.jpg"]
    assert [str(e) for e in errors] == [f"{locked}: cannot read the folder (permission denied); its pictures are skipped"]
    assert relatives(list(plan_images(tree, tmp_path / "out"))) == relatives(tasks)  # none asked for: passed over
