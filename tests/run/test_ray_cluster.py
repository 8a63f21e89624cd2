"""A real two-node Ray cluster, started with the ``ray`` CLI on this machine exactly as the
README tells a user to (token authentication on, as Ray's default): ``nstpipe images``
and ``nstpipe video`` with ``--address`` give a local run's outputs, and a node killed in
the middle of a job costs nothing but time.

The head has 2 CPUs and the second node 1: the two workers (1 CPU each) are spread one to
a node, and the head has room for the second when the other node is lost. The head checks
its nodes' health every half second, so that a lost node is noticed in seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from clips import make_clip
from nstpipe.media.imaging import read_rgb
from nstpipe.media.video import read_frames
from ray_nodes import NSTPIPE, RayNode, Scratch, head, nstpipe, worker_node

pytest.importorskip("ray")

pytestmark = pytest.mark.slow
FAST = ("--preset", "fast", "--size", "32", "-n", "2", "--scales", "1", "--device", "cpu", "-q")
HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_timeout_ms": "500", "RAY_health_check_failure_threshold": "4"}
NODES = (
    "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, configure_logging=False); "
    "print(sorted(int(n['Resources']['CPU']) for n in ray.nodes() if n['Alive']))"
)


class Cluster:
    def __init__(self, scratch: Scratch) -> None:
        self.env = scratch.env
        self.head, self.address = head(scratch, 2, settings=HEALTH)
        self.node: RayNode | None = None
        try:
            self.node = worker_node(scratch, self.address, 1)
        except BaseException:
            self.head.stop()
            raise

    def stop(self) -> None:
        for node in (self.node, self.head):
            if node is not None:
                node.stop()
                assert not node.alive(), node.pids()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    scratch = Scratch()
    try:
        cluster = Cluster(scratch)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        scratch.remove()


@pytest.fixture
def photos(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    for i in range(6):
        make_rgb(tmp_path / "in" / f"p{i}.png", 20, 24, seed=i)
    return tmp_path / "in"


def test_both_nodes_are_in_the_cluster(cluster: Cluster) -> None:
    nodes = subprocess.run([sys.executable, "-c", NODES, cluster.address], capture_output=True, text=True, timeout=120, env=cluster.env)
    assert nodes.stdout.strip().splitlines()[-1:] == ["[1, 2]"], nodes.stderr[-2000:]


def test_images_on_the_cluster_are_a_local_runs(cluster: Cluster, photos: Path, tmp_path: Path, painting_path: Path) -> None:
    local, _ = nstpipe(cluster.env, "images", photos, "--style", painting_path, "-o", tmp_path / "local", *FAST)
    assert local.returncode == 0, local.stderr
    args = ("images", photos, "--style", painting_path, "-o", tmp_path / "out", *FAST, "--workers", "2", "--address", cluster.address)
    joined, _ = nstpipe(cluster.env, *args)
    assert joined.returncode == 0 and not joined.stderr, joined.stderr
    assert joined.stdout.splitlines() == [f"6 stylized, 0 already done, 0 failed; outputs in {tmp_path / 'out'}"]
    for i in range(6):
        assert np.array_equal(read_rgb(tmp_path / "local" / f"p{i}.png"), read_rgb(tmp_path / "out" / f"p{i}.png")), i
    assert json.loads((tmp_path / "out" / "nstpipe-settings.json").read_text())["settings"]["size"] == 32


def test_a_video_on_the_cluster_is_a_local_runs(cluster: Cluster, tmp_path: Path, painting_path: Path) -> None:
    # 42 frames: two chains of 21 (the shortest there are), one a worker, and a seam.
    clip = make_clip(tmp_path / "clip.mp4", n_frames=42, width=32, height=24)
    args = ("video", clip, "--style", painting_path, *FAST, "--later-iterations", "1", "--temporal", "prev", "--workers", "2")
    local, _ = nstpipe(cluster.env, *args, "-o", tmp_path / "local.mp4", "--work-dir", tmp_path / "local-work")
    assert local.returncode == 0, local.stderr
    joined, _ = nstpipe(cluster.env, *args, "-o", tmp_path / "out.mp4", "--work-dir", tmp_path / "work", "--address", cluster.address)
    assert joined.returncode == 0 and not joined.stderr, joined.stderr
    assert joined.stdout.replace("out.mp4", "local.mp4") == local.stdout and len(local.stdout.splitlines()) == 1, joined.stdout
    painted = list(read_frames(tmp_path / "out.mp4"))
    assert len(painted) == 42
    for index, (a, b) in enumerate(zip(read_frames(tmp_path / "local.mp4"), painted)):
        assert np.array_equal(a.rgb, b.rgb), index


def test_a_node_lost_mid_job_costs_only_time(cluster: Cluster, photos: Path, tmp_path: Path, painting_path: Path) -> None:
    """Runs last: the second node is killed, all its processes at once, as when its machine fails."""
    node = cluster.node
    assert node is not None
    out = tmp_path / "out"
    args = ("images", photos, "--style", painting_path, "-o", out, *FAST, "--workers", "2", "--address", cluster.address)
    job = subprocess.Popen([*NSTPIPE, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster.env)
    try:
        deadline = time.monotonic() + 120
        # Mid-job: a worker runs on the second node, and a first picture is written.
        while not (node.processes("ray::ImageActor") and any(out.glob("*.png"))):
            assert job.poll() is None and time.monotonic() < deadline, job.communicate()
            time.sleep(0.1)
        node.kill()
        stdout, stderr = job.communicate(timeout=120)
    finally:
        job.kill()
    assert not node.alive()
    # One line, nstpipe's own: none of Ray's about the lost worker and node.
    assert job.returncode == 0 and not stderr, stderr
    assert stdout.splitlines() == [f"6 stylized, 0 already done, 0 failed; outputs in {out}"]
    rerun, _ = nstpipe(cluster.env, *args)
    assert rerun.returncode == 0 and not rerun.stderr, rerun.stderr
    assert rerun.stdout.splitlines() == [f"0 stylized, 6 already done, 0 failed; outputs in {out}"]
