"""What a private local Ray instance exposes: its listening sockets, reported, and the token
authentication that guards those Ray cannot keep on loopback.

Ray (2.60) rewrites a loopback node address to the machine's own and its servers listen on
every interface, so "loopback only" is not available; token authentication is what stands
between those ports and the network. This test lists every socket the instance opened
(``pytest -s -k sockets`` prints the table), checks that the dashboard is off, and checks
that a client without the token is refused while one with it gets in.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ray = pytest.importorskip("ray")

CONNECT = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print('connected')"


class Listener(NamedTuple):
    address: str
    port: int
    process: str


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    # /proc/net/tcp* print the address as 32-bit words in host (little-endian) order.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port, 16)


def _socket_owners() -> dict[str, str]:
    owners = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    owners[target[8:-1]] = f"{name} ({pid})"
        except OSError:
            continue  # gone, or not ours to look at
    return owners


def listening() -> set[Listener]:
    owners = _socket_owners()
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                address, port = _address(fields[1])
                found.add(Listener(address, port, owners.get(fields[9], "?")))
    return found


def connect(gcs: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CONNECT, gcs], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net")
def test_local_instance_sockets_are_reported_and_guarded_by_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nstpipe.run.ray_executor import ray_session

    # Where Ray is installed without the dashboard's packages no dashboard can listen, so the
    # port check below passes whatever is asked: the request itself is checked too.
    asked: list[dict[str, object]] = []
    init = ray.init

    def spy(*args: object, **kwargs: object) -> object:
        asked.append(kwargs)
        return init(*args, **kwargs)

    monkeypatch.setattr(ray, "init", spy)
    before = listening()
    with ray_session(cpus=1):
        opened = sorted(listening() - before)
        gcs = ray.get_runtime_context().gcs_address
        print("\nlistening sockets of the private Ray instance:")
        for s in opened:
            print(f"  {s.address:>15}:{s.port:<6} {s.process}")
        assert opened, "the instance should listen somewhere (GCS, raylet, object manager)"
        assert [kwargs.get("include_dashboard") for kwargs in asked] == [False], "the dashboard must be off"
        assert all(s.port != 8265 for s in opened), "the dashboard must be off"
        exposed = [s for s in opened if not ipaddress.ip_address(s.address).is_loopback]
        if exposed:
            plain = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
            refused = connect(gcs, {**plain, "HOME": str(tmp_path)})  # no token anywhere
            assert refused.returncode != 0 and "InvalidAuthToken" in refused.stderr, refused.stderr[-2000:]
            admitted = connect(gcs, dict(os.environ))  # the token Ray keeps in ~/.ray
            assert admitted.returncode == 0 and "connected" in admitted.stdout, admitted.stderr[-2000:]
