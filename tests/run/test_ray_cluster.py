"""Joining an existing Ray cluster: two nodes started with the ``ray`` CLI on this machine,
exactly as the README tells a user to, then ``nstpipe images --address``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

pytest.importorskip("ray")

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ray"), *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def cluster_env(tmp_path: Path) -> dict[str, str]:
    """Token authentication on, with a token of the test's own, as on a real cluster."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    made = ray_cli({**env, "HOME": str(tmp_path)}, "get-auth-token", "--generate")
    assert made.returncode == 0, made.stderr
    return {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / ".ray" / "auth_token")}


@pytest.fixture
def two_node_cluster(cluster_env: dict[str, str]) -> Iterator[str]:
    env = cluster_env
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = ray_cli(env, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false", "--disable-usage-stats")
    assert head.returncode == 0, head.stderr
    try:
        node = ray_cli(env, "start", f"--address={address}", "--num-cpus=1", "--disable-usage-stats")
        assert node.returncode == 0, node.stderr
        yield address
    finally:
        ray_cli(env, "stop", "--force")


@pytest.mark.slow
def test_images_on_a_two_node_cluster(
    two_node_cluster: str, cluster_env: dict[str, str], tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path
) -> None:
    count = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(len([n for n in ray.nodes() if n['Alive']]))"
    )
    nodes = subprocess.run([sys.executable, "-c", count, two_node_cluster], capture_output=True, text=True, timeout=120, env=cluster_env)
    assert nodes.stdout.split()[-1] == "2", nodes.stderr
    for i in range(4):
        make_rgb(tmp_path / "in" / f"p{i}.png", 20, 24, seed=i)
    args = ["images", str(tmp_path / "in"), "--style", str(painting_path), "-o", str(tmp_path / "out"),
            "--preset", "fast", "--size", "32", "-n", "2", "--scales", "1", "--device", "cpu", "-q",
            "--workers", "2", "--address", two_node_cluster]
    result = subprocess.run([str(BIN / "nstpipe"), *args], capture_output=True, text=True, timeout=300, env=cluster_env)
    assert result.returncode == 0, result.stderr
    assert "4 stylized, 0 already done, 0 failed" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [f"p{i}.png" for i in range(4)]
    assert json.loads((tmp_path / "out" / "nstpipe-settings.json").read_text())["settings"]["size"] == 32
