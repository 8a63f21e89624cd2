"""Joining a Ray cluster, checked before ``ray.init`` so that each way it fails is one line.

``ray.init`` on an address that cannot be joined retries for tens of seconds, printing
Ray's own log lines as it goes, and ends with a message that names neither the cause
nor the address the user typed. :func:`join_address` checks in turn that the token is
readable, that the address answers, and that the cluster accepts this token (in a child
process: Ray's client can crash, hang or print where a check must stay silent and
short), and raises :class:`~nstpipe.errors.ClusterError` naming the first that fails.
:func:`check_fits` is the last check, once joined: the workers' resources against the
cluster's, before any worker waits for what the cluster cannot give.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from nstpipe.errors import ClusterError

CONNECT_TIMEOUT = 5.0  # seconds for the address to accept a connection
PROBE_TIMEOUT = 20.0  # seconds for the cluster to answer one request
EXIT_REFUSED_TOKEN = 3
EXIT_NOT_RAY = 4
# One request to the cluster's GCS, with the token (if any) that ray.init would send.
_PROBE = f"""
import sys
from ray._raylet import GcsClient
from ray.exceptions import AuthenticationError
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"nstpipe", None, timeout={PROBE_TIMEOUT / 2})
except AuthenticationError:
    sys.exit({EXIT_REFUSED_TOKEN})
except Exception as exc:
    print(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, file=sys.stderr)
    sys.exit({EXIT_NOT_RAY})
"""
_RESOURCES = (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory"))


def token_on() -> bool:
    return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"


def token_source() -> str:
    """Where Ray takes this process's token from, in the order its loader looks."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return f"RAY_AUTH_TOKEN_PATH={os.environ['RAY_AUTH_TOKEN_PATH']}"
    return "~/.ray/auth_token"


def check_token_path() -> None:
    """RAY_AUTH_TOKEN_PATH, when set, names a readable token: Ray's loader aborts the
    process (a C++ check, with a stack trace) on a missing or empty one."""
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if not path or os.environ.get("RAY_AUTH_TOKEN"):
        return
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise ClusterError(f"RAY_AUTH_TOKEN_PATH={path}: cannot read the Ray token ({exc.strerror or exc})") from None
    if not token:
        raise ClusterError(f"RAY_AUTH_TOKEN_PATH={path}: the file is empty, where Ray's token should be")


def join_address(address: str, verbose: bool = False) -> str:
    """The address to give ``ray.init`` to join ``address`` (``auto``, or HOST:PORT of the
    head), once the cluster there has been seen to answer and to accept this token; the
    check's own Ray log lines are printed when ``verbose``."""
    if address.startswith("ray://"):
        return address  # Ray Client: another protocol, with checks of its own
    check_token_path()
    if address == "auto":
        address = _find_local_cluster()
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

        # As ray.init does for a cluster it finds on this machine (never for a typed address).
        maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    if token_on() and token_source() == "~/.ray/auth_token" and not (Path.home() / ".ray" / "auth_token").is_file():
        raise ClusterError(
            "RAY_AUTH_MODE=token but there is no Ray token here: put the cluster's token in ~/.ray/auth_token, "
            "or name its file with RAY_AUTH_TOKEN_PATH"
        )
    _check_answers(address)
    _check_accepted(address, verbose)
    return address


def _find_local_cluster() -> str:
    from ray._private.services import canonicalize_bootstrap_address_or_die

    try:
        return str(canonicalize_bootstrap_address_or_die("auto"))
    except ConnectionError as exc:
        if "multiple" in str(exc):  # Ray found several and would not guess
            raise ClusterError("--address auto: several Ray clusters run on this machine; name one with --address HOST:PORT") from None
        raise ClusterError("--address auto: no Ray cluster runs on this machine (start one with 'ray start --head')") from None


def _check_answers(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--address {address}: not a Ray address (HOST:PORT of the cluster's head, or 'auto')")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except ConnectionRefusedError:
        raise ClusterError(f"no Ray cluster answers at {address} (connection refused): is its head running, with --port={port}?") from None
    except TimeoutError:
        raise ClusterError(f"no Ray cluster answers at {address} (no reply in {CONNECT_TIMEOUT:.0f} s)") from None
    except OSError as exc:
        raise ClusterError(f"no Ray cluster answers at {address} ({exc.strerror or exc})") from None


def _check_accepted(address: str, verbose: bool) -> None:
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE, address], capture_output=True, text=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise ClusterError(f"{address} answers, but not as a Ray cluster (no reply in {PROBE_TIMEOUT:.0f} s)") from None
    if verbose:
        sys.stderr.write(probe.stderr)
    if probe.returncode == EXIT_REFUSED_TOKEN and not token_on():
        raise ClusterError(
            f"the Ray cluster at {address} wants token authentication: export RAY_AUTH_MODE=token, "
            "with the cluster's token in ~/.ray/auth_token (or RAY_AUTH_TOKEN_PATH=FILE)"
        )
    if probe.returncode == EXIT_REFUSED_TOKEN:
        raise ClusterError(
            f"the Ray cluster at {address} refused the token of {token_source()}: "
            "give the cluster's own ('ray get-auth-token' on its head prints it)"
        )
    if probe.returncode != 0:
        reason = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
        raise ClusterError(f"{address} answers, but not as a Ray cluster ({reason})")


def check_fits(count: int, options: Mapping[str, Any], cluster: Mapping[str, float], nodes: Sequence[Mapping[str, float]]) -> None:
    """``count`` workers, each asking for the resources of actor ``options``, fit the
    ``cluster``'s totals and each fits one of its ``nodes``; else a worker would wait for
    ever for resources that never come."""
    for option, key in _RESOURCES:
        each = float(options.get(option) or 0)
        if not each:
            continue
        has = float(cluster.get(key, 0))
        if count * each > has:
            raise ClusterError(f"asked for {count} workers of {_amount(each, key)} each, the cluster has {_amount(has, key)}")
        largest = max((float(node.get(key, 0)) for node in nodes), default=0.0)
        if each > largest:
            raise ClusterError(f"asked for workers of {_amount(each, key)} each, the cluster's largest node has {_amount(largest, key)}")


def _amount(value: float, key: str) -> str:
    if key == "memory":
        return f"{value / 2**30:.1f} GiB of memory"
    return f"{value:g} {key}" + ("" if value == 1 else "s")


@contextlib.contextmanager
def quiet(verbose: bool) -> Iterator[None]:
    """Ray's own lines kept off the terminal unless ``verbose``: its Python log lines (its
    logger prints to stderr from import on) and the cluster's error messages, which the
    driver prints to stdout as '(raylet) ...' (a worker lost, a node marked dead). What
    fails is said in nstpipe's own line."""
    import ray._private.worker as driver

    logger, printer = logging.getLogger("ray"), driver.print_to_stdstream
    level = logger.level
    if not verbose:
        logger.setLevel(logging.CRITICAL + 1)
        driver.print_to_stdstream = _drop
    try:
        yield
    finally:
        logger.setLevel(level)
        driver.print_to_stdstream = printer


def _drop(data: Any, ignore_prefix: bool) -> None:
    """What nstpipe prints instead of a message from the cluster: nothing."""


@contextlib.contextmanager
def backend_quiet(verbose: bool) -> Iterator[None]:
    """This process's Ray client, made within, prints only its fatal lines, unless
    ``verbose`` or RAY_BACKEND_LOG_LEVEL says otherwise: it prints to stderr, for as long
    as the process is joined, a line for each error it cannot report to a lost cluster.
    The level is read as the client starts; the environment is left as it was."""
    if verbose or "RAY_BACKEND_LOG_LEVEL" in os.environ:
        yield
        return
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    try:
        yield
    finally:
        del os.environ["RAY_BACKEND_LOG_LEVEL"]


@contextlib.contextmanager
def stderr_hidden(verbose: bool) -> Iterator[None]:
    """File descriptor 2 sent to a scratch file unless ``verbose``, for the C++ lines Ray
    prints while it connects."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as scratch:
            os.dup2(scratch.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)
