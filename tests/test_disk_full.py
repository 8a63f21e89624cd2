"""A really full disk: the commands write onto a small tmpfs, fail with one clear line, leave
nothing partial under a final name, and complete once there is space, without redoing work.

The tmpfs is mounted in a private mount namespace (``unshare --user --map-root-user
--mount``), so no privileges are needed and nothing outlives the test; where user
namespaces are not allowed the test is skipped (the ENOSPC paths are also covered with
injected write errors in tests/jobs/test_failures.py).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from nstpipe.media.writer import TEMP_PREFIX, read_record

NSTPIPE = Path(sys.executable).parent / "nstpipe"
FAST = "--preset fast --size 32 -n 2 --scales 1 --device cpu -q"


def namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not namespaces_work(), reason="needs unshare with user and mount namespaces")


def run_on_tmpfs(script: str, tmpfs: Path, size: str, snapshots: Path) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (bash) with a ``size`` tmpfs on ``tmpfs``; ``grow`` enlarges it and
    ``snap NAME`` copies its contents to ``snapshots/NAME`` (the mount ends with the script)."""
    prelude = f"""
set -u
mount -t tmpfs -o size={size} tmpfs {tmpfs}
grow() {{ mount -o remount,size=8m {tmpfs}; }}
snap() {{ mkdir -p {snapshots}/$1 && cp -a {tmpfs}/. {snapshots}/$1/; }}
"""
    return subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", prelude + script],
        capture_output=True, text=True, timeout=300,
    )


def full_then_with_space(command: str, tmpfs: Path, size: str, snaps: Path) -> str:
    """Run ``command`` on a full ``size`` tmpfs (snapshot ``full``), then again once it has
    grown (snapshot ``done``). The first must fail with one clear line, which is returned;
    the second must succeed."""
    script = f"""
{command} >{snaps}.1.out 2>{snaps}.1.err; echo "first=$?"
snap full
grow
{command} >{snaps}.2.out 2>{snaps}.2.err; echo "second=$?"
snap done
"""
    done = run_on_tmpfs(script, tmpfs, size, snaps)
    assert "first=2" in done.stdout and "second=0" in done.stdout, done.stdout + done.stderr
    error = Path(f"{snaps}.1.err").read_text()
    assert error.count("\n") == 1 and "No space left on device" in error and "Traceback" not in error, error
    return error


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_images_on_a_full_disk_then_with_space(tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path) -> None:
    for i in range(6):
        make_rgb(tmp_path / "in" / ("sub" if i % 2 else "") / f"p{i}.png", 24, 32, seed=i)
    out, snaps = tmp_path / "out", tmp_path / "snaps"
    out.mkdir()
    command = f"{NSTPIPE} images {tmp_path / 'in'} --style {painting_path} -o {out} {FAST}"
    full_then_with_space(command, out, "12k", snaps)
    full = files(snaps / "full")
    pngs = [p for p in full if p.suffix == ".png"]
    assert 0 < len(pngs) < 6
    assert all(read_record(p) is not None for p in pngs)  # every final name holds a whole output
    assert not [p for p in full if p.name.startswith(TEMP_PREFIX) or p.name.endswith(".failed.json")]
    second = Path(f"{snaps}.2.out").read_text()
    assert f"{6 - len(pngs)} stylized, {len(pngs)} already done, 0 failed" in second
    assert len([p for p in files(snaps / "done") if p.suffix == ".png"]) == 6


def test_video_on_a_full_disk_then_with_space(tmp_path: Path, painting_path: Path) -> None:
    from clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", n_frames=12, width=48, height=32, fps=10, audio=1)
    out, snaps = tmp_path / "out", tmp_path / "snaps"
    out.mkdir()
    command = f"{NSTPIPE} video {clip} --style {painting_path} -o {out / 'v.mp4'} {FAST} --later-iterations 1 --keep-frames"
    full_then_with_space(command, out, "16k", snaps)
    full = files(snaps / "full")
    assert not (snaps / "full" / "v.mp4").exists()
    frames = [p for p in full if p.name.startswith("frame-")]
    assert frames and all(read_record(p) is not None for p in frames)
    assert not [p for p in full if p.name.startswith(TEMP_PREFIX)]
    second = Path(f"{snaps}.2.out").read_text()
    assert f"12 frames ({len(frames)} from an earlier run)" in second, second
    assert (snaps / "done" / "v.mp4").stat().st_size > 0


def test_encoding_onto_a_full_disk_keeps_the_frames(tmp_path: Path, painting_path: Path) -> None:
    """The frames fit (work folder elsewhere) but the video does not: nothing under its name,
    and the rerun only encodes."""
    from clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", n_frames=40, width=64, height=48, fps=10, audio=1)
    out, snaps = tmp_path / "out", tmp_path / "snaps"
    out.mkdir()
    command = (f"{NSTPIPE} video {clip} --style {painting_path} -o {out / 'v.mp4'} {FAST} --size 64"
               f" --later-iterations 0 --work-dir {tmp_path / 'work'}")
    error = full_then_with_space(command, out, "4k", snaps)
    assert error.count("\n") == 1 and "v.mp4: cannot write (No space left on device)" in error, error
    assert files(snaps / "full") == []
    assert "40 frames (40 from an earlier run)" in Path(f"{snaps}.2.out").read_text()
