"""pipeline.cudagraph off the GPU: the setting's defaults and reach, and an out-of-memory while
recording kept recognisable. The recording itself is checked on a GPU in tests/test_cuda.py."""

from __future__ import annotations

import pytest
import torch

from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from pipeline.config import build_settings
from pipeline.cudagraph import _as_oom
from pipeline.stylize import GRAPH_MIN_STEPS, Stylizer


def test_cuda_graphs_are_opt_in_and_left_out_of_the_fingerprint() -> None:
    plain = build_settings("default")
    graphed = build_settings("default", None, {"cuda_graphs": True})
    assert plain.engine.cuda_graphs is False and graphed.engine.cuda_graphs is True
    assert graphed.fingerprint() == plain.fingerprint()  # the same pictures, faster


def test_off_cuda_the_setting_changes_nothing() -> None:
    # A recording needs CUDA streams: had the CPU run tried one, it would have raised.
    style, photo = stripes_image(16, 16), smooth_image(16, 16)
    results = [Stylizer(TinyEncoder(), [style], tiny_engine(iterations=GRAPH_MIN_STEPS, cuda_graphs=on)).run(photo) for on in (True, False)]
    assert torch.equal(results[0].image, results[1].image)
    assert results[0].item_losses == results[1].item_losses


def test_an_out_of_memory_that_broke_off_a_recording_is_raised_as_one() -> None:
    # Ending a recording that an allocation broke off can fail in turn; the callers retry
    # a smaller batch on OutOfMemoryError only.
    with pytest.raises(RuntimeError) as caught:
        try:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        except torch.cuda.OutOfMemoryError:
            raise RuntimeError("operation not permitted when stream is capturing")  # noqa: B904
    assert isinstance(_as_oom(caught.value), torch.cuda.OutOfMemoryError)
    other = RuntimeError("an error of another kind")
    assert _as_oom(other) is other
