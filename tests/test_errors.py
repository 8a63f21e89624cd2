"""The project's errors: each crosses a process boundary (Ray pickles a worker's error for the
driver) as itself, with its message and its fields."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from nstpipe.errors import ClusterError, ConfigError, InputError, NstpipeError, OutputError, WeightsError


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("size: must be at least 16 pixels", "size"),
        InputError(Path("/photos/a.jpg"), "not an image"),
        OutputError(Path("/out/a.png"), "No space left on device"),
        WeightsError("the weights' SHA-256 differs"),
        ClusterError("10.0.0.1:6379: no answer"),
    ],
)
def test_an_error_unpickles_as_itself(error: NstpipeError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error) and str(again) == str(error)
    assert vars(again) == vars(error)
