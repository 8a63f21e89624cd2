"""One nstpipe run per output at a time: a second run of any command that would write an
output another process is writing is refused in one line, before any work, and leaves that
run's files alone; a lock whose process was killed blocks nothing; a finished run leaves no
lock file, and one a killed run left is no leftover to a rerun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest
from typer.testing import Result

from helpers import invoke
from nstpipe.errors import InputError
from nstpipe.media.lock import FOLDER_LOCK, lock_path, output_lock
from nstpipe.media.writer import create_temp, temp_tag

ROOT = Path(__file__).resolve().parents[1]
FAST = ("--preset", "fast", "--size", "32", "-n", "2", "-q")
BUSY = "another nstpipe run is writing it"

HOLDER = """
import sys
from pathlib import Path
from nstpipe.media.lock import output_lock
with output_lock(Path(sys.argv[1]), Path(sys.argv[2])):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.fixture
def hold() -> Iterator[Callable[[Path, Path], subprocess.Popen[str]]]:
    """Start another process that takes a lock (the output, its lock file) and holds it
    until its stdin closes, as a run painting that output does."""
    holders: list[subprocess.Popen[str]] = []

    def start(output: Path, lock: Path) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(output), str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        holders.append(holder)
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        return holder

    yield start
    for holder in holders:
        if holder.poll() is None:
            assert holder.stdin is not None
            holder.stdin.close()
            holder.wait(timeout=60)


def in_making(folder: Path, output: Path) -> Path:
    """A temp file of ``output`` in ``folder``, as the holder's run has while writing it."""
    fd, tmp = create_temp(folder, temp_tag(output))
    os.close(fd)
    return Path(tmp)


def refused(result: Result, named: Path) -> None:
    """Exit status 2 and one line, naming ``named`` and the run that holds it."""
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"nstpipe: error: {named}: another nstpipe run is"), result.output


def test_a_lock_is_refused_while_another_process_holds_it_and_taken_once_it_is_killed(
    tmp_path: Path, hold: Callable[[Path, Path], subprocess.Popen[str]]
) -> None:
    out = tmp_path / "o.png"
    holder = hold(out, lock_path(out))
    with pytest.raises(InputError, match=BUSY):
        with output_lock(out):
            pass
    holder.kill()  # SIGKILL: no clean-up runs, the file stays; the kernel lets the lock go
    holder.wait(timeout=60)
    assert lock_path(out).exists()
    with output_lock(out):
        assert lock_path(out).exists()
    assert not lock_path(out).exists()  # a finished run leaves nothing beside its output


def test_the_lock_of_a_long_name_fits_and_is_taken(tmp_path: Path) -> None:
    """An output whose name (with its record) fits has a lock file that fits too, whatever
    bytes its letters take: 59 four-byte letters cut by letters alone would not."""
    from nstpipe.app.checks import check_name_fits
    from nstpipe.media.names import name_bytes, name_max

    for name in ("\U0001f3a8" * 59 + ".png", "a" * 237 + ".png"):
        out = tmp_path / name
        check_name_fits(out)
        assert name_bytes(lock_path(out)) <= name_max(tmp_path)
        with output_lock(out):
            assert lock_path(out).exists()


def test_a_second_image_run_is_refused_and_touches_nothing(
    tmp_path: Path, photo_path: Path, painting_path: Path, hold: Callable[[Path, Path], subprocess.Popen[str]]
) -> None:
    out = tmp_path / "o.png"
    hold(out, lock_path(out))
    theirs = in_making(tmp_path, out)
    result = invoke("image", photo_path, "--style", painting_path, "-o", out, *FAST)
    refused(result, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([theirs.name, lock_path(out).name])


def test_a_second_texture_run_is_refused_and_touches_nothing(
    tmp_path: Path, painting_path: Path, hold: Callable[[Path, Path], subprocess.Popen[str]]
) -> None:
    out = tmp_path / "t.png"
    hold(out, lock_path(out))
    theirs = in_making(tmp_path, out)
    result = invoke("texture", painting_path, "--size", "32", "-n", "2", "-o", out, "-q")
    refused(result, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([theirs.name, lock_path(out).name])


def test_a_second_folder_run_is_refused_and_touches_nothing(
    tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path, hold: Callable[[Path, Path], subprocess.Popen[str]]
) -> None:
    make_rgb(tmp_path / "in" / "a.jpg", 24, 32, seed=1)
    out = tmp_path / "out"
    out.mkdir()
    hold(out, out / FOLDER_LOCK)
    theirs = in_making(out, out / "a.jpg")
    result = invoke("images", tmp_path / "in", "--style", painting_path, "-o", out, *FAST)
    refused(result, out)
    assert sorted(p.name for p in out.iterdir()) == sorted([theirs.name, FOLDER_LOCK])


def test_a_second_video_run_is_refused_and_leaves_the_first_ones_work(
    tmp_path: Path, painting_path: Path, hold: Callable[[Path, Path], subprocess.Popen[str]]
) -> None:
    from clips import make_clip

    (tmp_path / "in").mkdir()
    clip = make_clip(tmp_path / "in" / "clip.mp4", n_frames=3, width=48, height=32, fps=10)
    out = tmp_path / "v.mp4"
    hold(out, lock_path(out))
    theirs = in_making(tmp_path, out)
    work = tmp_path / "v.mp4.nstpipe-work" / "0123456789abcdef"  # the first run's frames
    work.mkdir(parents=True)
    (work / "frame-000000.png").write_bytes(b"frame")
    in_work = in_making(work, work / "frame-000001.png")
    result = invoke("video", clip, "--style", painting_path, "-o", out, *FAST, "--later-iterations", "1")
    refused(result, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in", theirs.name, lock_path(out).name, "v.mp4.nstpipe-work"])
    assert sorted(p.name for p in work.iterdir()) == sorted(["frame-000000.png", in_work.name])


def test_a_video_run_into_a_work_folder_another_run_paints_in_is_refused(
    tmp_path: Path, painting_path: Path, hold: Callable[[Path, Path], subprocess.Popen[str]]
) -> None:
    from clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", n_frames=3, width=48, height=32, fps=10)
    work = tmp_path / "work"
    hold(work, work / FOLDER_LOCK)  # a run of another output, given the same --work-dir
    result = invoke("video", clip, "--style", painting_path, "-o", tmp_path / "v.mp4", "--work-dir", work, *FAST)
    refused(result, work)
    assert "--work-dir" in result.output and not (tmp_path / "v.mp4").exists()
    assert sorted(p.name for p in work.iterdir()) == [FOLDER_LOCK]


def test_runs_leave_no_lock_and_a_killed_runs_lock_file_is_no_leftover(
    tmp_path: Path, photo_path: Path, painting_path: Path, make_rgb: Callable[..., Path]
) -> None:
    out = tmp_path / "o.png"
    lock_path(out).touch()  # what a killed run leaves: the file, no lock
    run = ("image", photo_path, "--style", painting_path, "-o", out, *FAST)
    assert invoke(*run).exit_code == 0
    assert not lock_path(out).exists()
    lock_path(out).touch()
    again = invoke(*run)
    assert again.exit_code == 0 and f"kept {out}" in again.stdout, again.output
    assert not lock_path(out).exists()

    make_rgb(tmp_path / "in" / "a.jpg", 24, 32, seed=1)
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / FOLDER_LOCK).touch()
    images = ("images", tmp_path / "in", "--style", painting_path, "-o", folder, *FAST)
    first = invoke(*images)
    assert first.exit_code == 0 and "1 stylized, 0 already done, 0 failed" in first.stdout, first.output
    (folder / FOLDER_LOCK).touch()
    rerun = invoke(*images)
    assert rerun.exit_code == 0 and "0 stylized, 1 already done, 0 failed" in rerun.stdout, rerun.output
    assert not (folder / FOLDER_LOCK).exists()


def test_a_video_run_and_its_rerun_leave_no_lock(tmp_path: Path, painting_path: Path) -> None:
    from clips import make_clip

    (tmp_path / "in").mkdir()
    clip = make_clip(tmp_path / "in" / "clip.mp4", n_frames=3, width=48, height=32, fps=10)
    out, work = tmp_path / "v.mp4", tmp_path / "work"
    run = ("video", clip, "--style", painting_path, "-o", out, "--work-dir", work, *FAST, "--later-iterations", "1")
    assert invoke(*run).exit_code == 0
    again = invoke(*run)
    assert again.exit_code == 0 and f"kept {out}" in again.stdout, again.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["in", "v.mp4", "v.mp4.settings.json"])
