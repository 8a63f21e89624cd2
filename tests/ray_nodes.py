"""Ray nodes started with the ``ray`` CLI as a user starts them, and stopped by their own
process ids: ``ray stop`` would also stop every other Ray cluster on the machine.

Each node is ``ray start --block`` in a session of its own. Ray gives its worker processes
process groups of their own, but they stay in the session, so the session's processes are
exactly the node's, and stopping a node ends each of them by pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
# The CLI as the user runs it, from this checkout (the installed script may be another's).
NSTPIPE = [sys.executable, "-c", "import sys; sys.argv[0] = 'nstpipe'; from nstpipe.cli import main; main()"]
START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_token(home: Path, env: dict[str, str]) -> Path:
    """A new token of Ray's own making, in ``home``/.ray/auth_token."""
    command = [str(BIN / "ray"), "get-auth-token", "--generate"]
    made = subprocess.run(command, capture_output=True, text=True, env={**env, "HOME": str(home)})
    assert made.returncode == 0, made.stderr
    return home / ".ray" / "auth_token"


class Scratch:
    """A short folder under /tmp for a test's clusters (Ray's socket paths must stay under
    108 characters) and the environment of a user of them: token authentication on with a
    token of the test's own, RAY_ADDRESS unset, and RAY_TMPDIR there, so that the address
    ``ray start`` leaves is found by what runs with this environment and by no other Ray
    user on the machine."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="nst-ray-", dir="/tmp"))
        plain = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.plain = {**plain, "RAY_TMPDIR": str(self.root), "PYTHONPATH": os.pathsep.join(sys.path)}
        token = make_token(self.root / "home", self.plain)
        self.env = {**self.plain, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class RayNode:
    """``ray start --block ARGS``, running until :meth:`stop`."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        with open(log, "w") as out:
            self.process = subprocess.Popen(
                [str(BIN / "ray"), "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1", *args],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while "Ray runtime started" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"ray start failed:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def pids(self) -> list[int]:
        """The node's processes: those of the session its ``ray start`` leads."""
        return [pid for pid, (_, session) in _processes().items() if session == self.process.pid]

    def processes(self, name: str) -> list[int]:
        """The pids of the node's processes called ``name`` (as ``ps`` shows it)."""
        found = []
        for pid in self.pids():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode().startswith(name):
                    found.append(pid)
            except OSError:
                continue
        return found

    def kill(self) -> None:
        """The node lost at once, as when its machine fails."""
        self._signal(signal.SIGKILL)

    def stop(self, grace: float = 5.0) -> None:
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.2)

    def alive(self) -> bool:
        """Whether any process of the node still runs (a zombie, ended but not yet reaped, does not)."""
        states = _processes()
        return any(states[pid][0] != "Z" for pid in self.pids() if pid in states)

    def _signal(self, sig: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue


def _processes() -> dict[int, tuple[str, int]]:
    """Each process's state letter and session id, from /proc/PID/stat (fields 3 and 6;
    the name, field 2, may hold spaces, so they are counted from its closing ')')."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone
            found[int(entry)] = (fields[0], int(fields[3]))
    return found


def head(scratch: Scratch, cpus: int, *args: str, settings: dict[str, str] | None = None) -> tuple[RayNode, str]:
    """A head node with token authentication on, and its address; ``settings``: Ray's
    settings (RAY_* variables) for it."""
    port = free_port()
    node = RayNode({**scratch.env, **(settings or {})}, scratch.root / f"head-{port}.log", "--head", f"--port={port}", f"--num-cpus={cpus}",
                   "--include-dashboard=false", *args)
    return node, f"127.0.0.1:{port}"


def worker_node(scratch: Scratch, address: str, cpus: int) -> RayNode:
    return RayNode(scratch.env, scratch.root / f"node-{free_port()}.log", f"--address={address}", f"--num-cpus={cpus}")


def nstpipe(env: dict[str, str], *args: object, timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    """The CLI's result, and the seconds it took."""
    start = time.monotonic()
    result = subprocess.run([*NSTPIPE, *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL)
    return result, time.monotonic() - start
