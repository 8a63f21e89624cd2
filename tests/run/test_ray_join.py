"""nstpipe beside a Ray cluster that runs on the machine, as a user's often does: started by
this module with the ``ray`` CLI, 1 CPU, token authentication on (Ray's default).

A run without ``--address`` stays in an instance of its own and ends it; joining a cluster
that cannot be joined (no token mode, a wrong token, a closed port, too few CPUs) is one
line and exit status 2 within 30 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pytest

from nstpipe.errors import ClusterError
from nstpipe.media.imaging import read_rgb
from ray_nodes import Scratch, free_port, head, make_token, nstpipe

pytest.importorskip("ray")

from nstpipe.run.ray_join import check_fits  # noqa: E402

pytestmark = pytest.mark.slow
FAST = ("--preset", "fast", "--size", "32", "-n", "2", "--scales", "1", "--device", "cpu")
# The instance ray_session makes beside the cluster: its CPUs and its GCS port.
SESSION = (
    "import ray, sys; from nstpipe.run.ray_executor import ray_session\n"
    "with ray_session(cpus=2):\n"
    "    print(int(ray.cluster_resources()['CPU']), ray.get_runtime_context().gcs_address.rsplit(':', 1)[1])"
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    scratch = Scratch()
    yield scratch
    scratch.remove()


@pytest.fixture(scope="module")
def users_cluster(scratch: Scratch) -> Iterator[str]:
    node, address = head(scratch, 1)
    try:
        yield address
    finally:
        node.stop()
        assert not node.alive(), node.pids()


@pytest.fixture
def photos(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    for i in range(3):
        make_rgb(tmp_path / "in" / f"p{i}.png", 20, 24, seed=i)
    return tmp_path / "in"


def test_a_session_without_address_starts_its_own_instance_beside_a_cluster(users_cluster: str, scratch: Scratch) -> None:
    # In a child process: Ray's token, once read, stays for the life of a process.
    made = subprocess.run([sys.executable, "-c", SESSION], capture_output=True, text=True, env=scratch.env, timeout=120)
    assert made.returncode == 0, made.stderr[-2000:]
    cpus, port = made.stdout.split()
    assert cpus == "2" and port != users_cluster.rsplit(":", 1)[1]


def test_workers_beside_a_cluster_finish_as_on_an_idle_machine(
    users_cluster: str, scratch: Scratch, photos: Path, tmp_path: Path, painting_path: Path
) -> None:
    alone, _ = nstpipe(scratch.env, "images", photos, "--style", painting_path, "-o", tmp_path / "alone", *FAST, "-q")
    assert alone.returncode == 0, alone.stderr
    beside, _ = nstpipe(scratch.env, "images", photos, "--style", painting_path, "-o", tmp_path / "beside", *FAST, "-q", "--workers", "2")
    assert beside.returncode == 0 and not beside.stderr, beside.stderr
    assert beside.stdout.splitlines() == [f"3 stylized, 0 already done, 0 failed; outputs in {tmp_path / 'beside'}"]
    for name in ("p0.png", "p1.png", "p2.png"):
        assert np.array_equal(read_rgb(tmp_path / "alone" / name), read_rgb(tmp_path / "beside" / name)), name


def _wrong_token(scratch: Scratch) -> dict[str, str]:
    other = make_token(scratch.root / "other-home", scratch.plain)
    return {**scratch.env, "RAY_AUTH_TOKEN_PATH": str(other)}


def _found_token(scratch: Scratch) -> dict[str, str]:
    return {**scratch.plain, "RAY_AUTH_TOKEN_PATH": scratch.env["RAY_AUTH_TOKEN_PATH"]}


FAILURES = {
    "no token mode": (lambda s: s.plain, None, "2", "the Ray cluster at {address} wants token authentication: export RAY_AUTH_MODE=token"),
    "wrong token": (_wrong_token, None, "2", "the Ray cluster at {address} refused the token of RAY_AUTH_TOKEN_PATH="),
    "closed port": (lambda s: s.env, "closed", "2", "no Ray cluster answers at {address} (connection refused)"),
    # A Ray Client address: without ray[client] (the locked install), Ray raises ValueError.
    "ray client": (lambda s: s.env, "ray://127.0.0.1:1", "2", "cannot join the Ray cluster at ray://127.0.0.1:1: "),
    "too few CPUs": (lambda s: s.env, None, "2", "asked for 2 workers of 1 CPU each, the cluster has 1 CPU"),
    # Found through the address 'ray start' left, its token sent as Ray sends it to a found cluster.
    "auto, too few CPUs": (_found_token, "auto", "2", "asked for 2 workers of 1 CPU each, the cluster has 1 CPU"),
    "unreadable token": (
        lambda s: {**s.env, "RAY_AUTH_TOKEN_PATH": str(s.root / "no-such-token")}, "", "2",
        "RAY_AUTH_TOKEN_PATH={root}/no-such-token: cannot read the Ray token",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_cluster_that_cannot_be_joined_is_one_line_within_30_s(
    case: str, users_cluster: str, scratch: Scratch, photos: Path, tmp_path: Path, painting_path: Path
) -> None:
    make_env, address, workers, expected = FAILURES[case]
    address = {None: users_cluster, "closed": f"127.0.0.1:{free_port()}"}.get(address, address)
    joining = ("--address", address) if address else ()
    args = ("images", photos, "--style", painting_path, "-o", tmp_path / "out", *FAST, "--workers", workers, *joining)
    result, seconds = nstpipe(make_env(scratch), *args, timeout=60)
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and len(lines) == 1 and not result.stdout, result.stdout + result.stderr
    assert lines[0].startswith("nstpipe: error: " + expected.format(address=address, root=scratch.root)), lines[0]
    assert seconds < 30


def test_verbose_shows_rays_own_lines_above_the_one_line(
    users_cluster: str, scratch: Scratch, photos: Path, tmp_path: Path, painting_path: Path
) -> None:
    args = ("images", photos, "--style", painting_path, "-o", tmp_path / "out", *FAST, "--workers", "2", "--address", users_cluster)
    result, _ = nstpipe(scratch.plain, *args, "--verbose", timeout=60)
    *ray_lines, last = result.stderr.splitlines()
    assert result.returncode == 2 and last.startswith(f"nstpipe: error: the Ray cluster at {users_cluster} wants token authentication")
    assert any("InvalidAuthToken" in line for line in ray_lines), result.stderr


@pytest.mark.parametrize(
    "count, options, nodes, message",
    [
        (2, {"num_gpus": 1}, [{"GPU": 1}], "asked for 2 workers of 1 GPU each, the cluster has 1 GPU"),
        (3, {"num_cpus": 1}, [{"CPU": 1}, {"CPU": 1}], "asked for 3 workers of 1 CPU each, the cluster has 2 CPUs"),
        (1, {"num_cpus": 2}, [{"CPU": 1}, {"CPU": 1}], "asked for workers of 2 CPUs each, the cluster's largest node has 1 CPU"),
        (2, {"memory": 2**31}, [{"memory": 2**31}], "asked for 2 workers of 2.0 GiB of memory each, the cluster has 2.0 GiB of memory"),
    ],
)
def test_workers_that_the_cluster_cannot_hold_are_refused_before_they_start(
    count: int, options: dict[str, float], nodes: list[dict[str, float]], message: str
) -> None:
    cluster = {key: sum(node.get(key, 0) for node in nodes) for key in ("CPU", "GPU", "memory")}
    with pytest.raises(ClusterError, match=f"^{message}$"):
        check_fits(count, options, cluster, nodes)
    check_fits(1, {k: v / 2 for k, v in options.items()}, cluster, nodes)  # what fits passes
