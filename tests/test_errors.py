"""The project's errors: each crosses a process boundary (Ray pickles a worker's error for the
driver) as itself, with its message and its fields."""

from __future__ import annotations

import errno
import pickle
from pathlib import Path

import pytest

from nstpipe.errors import ClusterError, ConfigError, InputError, NstpipeError, OutputError, WeightsError, is_passing


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("size: must be at least 16 pixels", "size"),
        InputError(Path("/photos/a.jpg"), "not an image"),
        InputError(Path("/photos/b.jpg"), "permission denied", lasting=False),
        OutputError(Path("/out/a.png"), "No space left on device"),
        WeightsError("the weights' SHA-256 differs"),
        ClusterError("10.0.0.1:6379: no answer"),
    ],
)
def test_an_error_unpickles_as_itself(error: NstpipeError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert vars(again) == vars(error)


def test_what_the_machine_refuses_is_passing() -> None:
    assert is_passing(PermissionError(errno.EACCES, "Permission denied")) and is_passing(PermissionError("no errno"))
    assert is_passing(OSError(errno.EMFILE, "Too many open files")) and is_passing(OSError(errno.ESTALE, "Stale file handle"))
    assert is_passing(OSError(errno.EIO, "Input/output error")) and is_passing(OSError(errno.ENOTCONN, "not connected"))
    assert not is_passing(OSError("image file is truncated")) and not is_passing(FileNotFoundError(errno.ENOENT, "gone"))
    assert not is_passing(ValueError("bad header"))
