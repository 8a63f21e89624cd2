"""The video work folder: frames count only when complete and made by this job."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nstpipe.media.framestore import MANIFEST, FrameStore
from nstpipe.media.writer import TEMP_PREFIX

RGB = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)


def test_frames_round_trip_with_their_record(tmp_path: Path) -> None:
    store = FrameStore(tmp_path / "work", "ab" * 16)
    store.open({"note": "x"})
    assert not store.is_done(0)
    store.write(0, RGB, time=0.5, iterations=7)
    assert store.is_done(0) and not store.is_done(1)
    assert np.array_equal(store.read(0), RGB)
    record = store.record(0)
    assert record is not None and record["iterations"] == 7
    assert store.manifest() == {"fingerprint": "ab" * 16, "note": "x"}
    assert store.root == tmp_path / "work" / ("ab" * 8)


def test_other_jobs_and_broken_files_do_not_count(tmp_path: Path) -> None:
    mine, other = FrameStore(tmp_path, "a" * 32), FrameStore(tmp_path, "a" * 16 + "b" * 16)
    assert mine.root == other.root  # same folder key: only the record can tell them apart
    other.open({})
    other.write(0, RGB, 0.0, 1)
    assert not mine.is_done(0)
    mine.write(1, RGB, 0.0, 1)
    mine.path(1).rename(mine.path(2))  # a frame under another index's name
    assert not mine.is_done(2)
    mine.write(3, RGB, 0.0, 1)
    mine.path(3).write_bytes(mine.path(3).read_bytes()[:40])  # cut in its header (our writes are atomic)
    assert not mine.is_done(3)


def test_open_clears_temp_files_of_a_killed_run(tmp_path: Path) -> None:
    store = FrameStore(tmp_path, "c" * 32)
    store.root.mkdir(parents=True)
    (store.root / f"{TEMP_PREFIX}123").write_bytes(b"half a frame")
    store.open({"a": 1})
    assert sorted(p.name for p in store.root.iterdir()) == [MANIFEST]
    assert json.loads((store.root / MANIFEST).read_text())["a"] == 1


def test_remove_deletes_this_jobs_frames_and_an_empty_work_dir(tmp_path: Path) -> None:
    work = tmp_path / "work"
    one, two = FrameStore(work, "1" * 32), FrameStore(work, "2" * 32)
    for store in (one, two):
        store.open({})
        store.write(0, RGB, 0.0, 1)
    one.remove()
    assert not one.root.exists() and two.is_done(0)
    two.remove()
    assert not work.exists()
