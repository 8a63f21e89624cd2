"""A cluster joined with ``--address`` that stops in the middle of a folder job (its head
stopped as ``ray stop`` stops it): the run ends in one line and exit status 2, its
finished outputs kept and no input recorded as failed, and a rerun on a cluster started
again paints only the rest.

The head is this module's own, started with the ``ray`` CLI and stopped by its process
ids (see :mod:`ray_nodes`), on loopback, with a token of the test's own.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from nstpipe.media.imaging import read_rgb
from ray_nodes import NSTPIPE, Scratch, head, nstpipe

pytest.importorskip("ray")

pytestmark = pytest.mark.slow
FAST = ("--preset", "fast", "--size", "32", "-n", "2", "--scales", "1", "--device", "cpu", "-q")
PHOTOS = 40
WAIT = 120.0  # seconds for the first output, and for the driver to end


def _first_output(out: Path, driver: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while not list(out.glob("*.png")):
        assert driver.poll() is None and time.monotonic() < deadline, driver.communicate()
        time.sleep(0.2)


def test_a_cluster_stopped_mid_job_ends_it_in_one_line_and_a_rerun_resumes(
    tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path
) -> None:
    photos, out = tmp_path / "in", tmp_path / "out"
    for i in range(PHOTOS):
        make_rgb(photos / f"p{i:02d}.png", 20, 24, seed=i)
    scratch = Scratch()
    nodes = []
    try:
        node, address = head(scratch, 2)
        nodes.append(node)
        args = ["images", photos, "--style", painting_path, "-o", out, *FAST, "--workers", "2", "--address", address]
        driver = subprocess.Popen([*NSTPIPE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=scratch.env, stdin=subprocess.DEVNULL)
        try:
            _first_output(out, driver)
            node.stop()
            stdout, stderr = driver.communicate(timeout=WAIT)
        finally:
            driver.kill()
            driver.wait()
        assert driver.returncode == 2 and not stdout, stdout + stderr
        assert len(stderr.splitlines()) == 1 and stderr.startswith("nstpipe: error: lost the Ray cluster at "), stderr
        assert not list(out.glob("*.failed.json")), sorted(p.name for p in out.iterdir())
        kept = sorted(out.glob("*.png"))
        assert 0 < len(kept) < PHOTOS
        for path in kept:
            assert max(read_rgb(path).shape[:2]) == 32, path

        node, address = head(scratch, 2)
        nodes.append(node)
        args[-1] = address
        rerun, _ = nstpipe(scratch.env, *args, timeout=WAIT)
        assert rerun.returncode == 0, rerun.stderr
        assert rerun.stdout.splitlines() == [f"{PHOTOS - len(kept)} stylized, {len(kept)} already done, 0 failed; outputs in {out}"]
    finally:
        for node in nodes:
            node.stop()
            assert not node.alive(), node.pids()
        scratch.remove()
