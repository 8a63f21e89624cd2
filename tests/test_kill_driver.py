"""The driver killed with SIGKILL at random points, ten times over one folder job, rerun after
each kill: in the end every input has exactly one valid output or a recorded failure, no
final name ever holds a partial file, and no finished output is ever written again."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
from PIL import Image

from nstpipe.jobs.failures import FAILED_SUFFIX
from nstpipe.media.writer import TEMP_PREFIX, read_record

NSTPIPE = Path(sys.executable).parent / "nstpipe"
KILLS = 10
INPUTS = 16


def outputs(out: Path) -> dict[Path, tuple[int, int]]:
    """Every output PNG with its (inode, mtime): a rewrite, even atomic, changes both."""
    found = {}
    for path in out.rglob("*.png"):
        if not path.name.startswith(TEMP_PREFIX):
            stat = path.stat()
            found[path] = (stat.st_ino, stat.st_mtime_ns)
    return found


def valid(path: Path) -> bool:
    """A whole output: its record, and every pixel decodes."""
    try:
        with Image.open(path) as image:
            image.load()
    except OSError:
        return False
    return read_record(path) is not None


def kill_when(process: subprocess.Popen[bytes], out: Path, new_outputs: int, delay: float) -> None:
    """SIGKILL once ``new_outputs`` more outputs exist, ``delay`` seconds later (or at exit)."""
    start = len(outputs(out))
    while process.poll() is None and len(outputs(out)) < start + new_outputs:
        time.sleep(0.02)
    time.sleep(delay)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)


@pytest.mark.slow
def test_ten_driver_kills_lose_no_finished_work(tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path) -> None:
    archive, out = tmp_path / "in", tmp_path / "out"
    for i in range(INPUTS - 1):
        make_rgb(archive / ("sub" if i % 3 == 0 else "") / f"p{i:02d}.jpg", 24, 32, seed=i)
    (archive / "sub" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    command = [str(NSTPIPE), "images", str(archive), "--style", str(painting_path), "-o", str(out),
               "--preset", "fast", "--size", "32", "-n", "20", "--scales", "1", "--device", "cpu", "-q"]
    rng = random.Random(5)
    seen: dict[Path, tuple[int, int]] = {}
    killed_mid_job = 0
    for _ in range(KILLS):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # 0 new outputs: killed while starting or in its first image; 1: after one more.
        kill_when(process, out, rng.randint(0, 1), rng.uniform(0.0, 0.4))
        killed_mid_job += process.returncode == -signal.SIGKILL
        now = outputs(out)
        assert all(valid(path) for path in now), "a final name holds a partial output"
        assert all(now[path] == seen[path] for path in seen), "a finished output was written again"
        seen.update(now)
    assert killed_mid_job == KILLS  # every kill interrupted the job
    assert 0 < len(seen) < INPUTS - 1  # and some of them landed after finished work

    final = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert final.returncode == 1, final.stderr  # the broken input
    now = outputs(out)
    assert all(now[path] == seen[path] for path in seen), "a finished output was written again"
    stems = sorted(p.stem for p in now)
    assert stems == sorted(f"p{i:02d}" for i in range(INPUTS - 1))
    assert all(valid(path) for path in now)
    assert [p.name for p in out.rglob(f"*{FAILED_SUFFIX}")] == [f"broken.png{FAILED_SUFFIX}"]
    assert not [p for p in out.rglob(f"{TEMP_PREFIX}*")], "temp files of killed runs were left behind"
    assert "broken.jpg" in final.stderr
    assert os.listdir(out)  # sanity: the job wrote where we looked
