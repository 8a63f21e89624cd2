"""pipeline.engine.cudagraph off the GPU: the setting's defaults and reach, and an out-of-memory while
recording kept recognisable. The recording itself is checked on a GPU in tests/test_cuda.py."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

import pipeline.engine.optimize
from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from pipeline.config import build_settings
from pipeline.engine.cudagraph import _as_oom
from pipeline.engine.optimize import GRAPH_MIN_STEPS, Graphed
from pipeline.engine.stylize import Stylizer


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


class StaticBuffers:
    """GraphedLosses' contract without a GPU: the input, the losses and the gradient live in
    buffers that every call overwrites, as a replay does; the pass itself runs eagerly."""

    def __init__(self, losses: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor) -> None:
        self.fn = losses
        self.x = example.detach().clone().requires_grad_(True)
        self.losses = torch.zeros(example.shape[0])
        self.grad = torch.zeros_like(example)

    def __call__(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if x is not None:
            with torch.no_grad():
                self.x.copy_(x)
        self.x.grad = None
        losses = self.fn(self.x)
        losses.sum().backward()
        assert self.x.grad is not None
        self.losses.copy_(losses.detach())
        self.grad.copy_(self.x.grad)
        return self.losses, self.grad


def test_a_batch_fed_from_static_buffers_follows_the_eager_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the graphed path adds around the recording: each picture's pixels copied in, the
    # gradients handed out as views of one buffer that the next pass overwrites, and
    # pictures that have stopped riding along. Early stopping makes them stop apart.
    cfg = tiny_engine(iterations=40, tolerance=2e-2, patience=3)
    style = stripes_image(16, 16)
    photos = torch.cat([smooth_image(16, 16), style, torch.full((1, 3, 16, 16), 0.5)])
    eager = Stylizer(TinyEncoder(), [style], cfg).run(photos)
    monkeypatch.setattr(pipeline.engine.optimize, "GraphedLosses", StaticBuffers)
    monkeypatch.setattr(pipeline.engine.optimize, "choose_evaluator", lambda objective, items, *_: Graphed(objective, items))
    graphed = Stylizer(TinyEncoder(), [style], cfg).run(photos)
    assert len(set(eager.item_iterations)) > 1, eager.item_iterations  # they did stop apart
    assert graphed.item_iterations == eager.item_iterations
    assert graphed.item_losses == pytest.approx(eager.item_losses, rel=1e-5)
    assert torch.allclose(graphed.image, eager.image, atol=1e-5)
