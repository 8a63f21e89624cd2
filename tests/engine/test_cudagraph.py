"""nstpipe.engine.cudagraph off the GPU: the setting's defaults and reach, and an out-of-memory while
recording kept recognisable. The recording itself is checked on a GPU in tests/test_cuda.py."""

from __future__ import annotations

from typing import Callable, Sequence

import pytest
import torch

import nstpipe.engine.optimize
from helpers import TinyEncoder, grad_of, smooth_image, stripes_image, tiny_engine
from nstpipe.config import build_settings
from nstpipe.engine.cudagraph import _as_oom
from nstpipe.engine.objective import Objective
from nstpipe.engine.optimize import GRAPH_MIN_STEPS, Graphed, Item, eager
from nstpipe.engine.stylize import Result, Stylizer


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


class CheckedAgainstEager(Graphed):
    """The graphed path, each of whose passes is checked against an eager pass at the same
    pixels (over the active pictures only, as the eager path runs them)."""

    def __init__(self, objective: Objective, items: Sequence[Item]) -> None:
        super().__init__(objective, items)
        self.eager = eager(objective)
        self.passes = 0
        self.scale: tuple[float, float] | None = None

    def __call__(self, items: Sequence[Item], active: Sequence[int]) -> torch.Tensor:
        expected = self.eager(items, active)
        grads = [items[i].x.grad.clone() for i in active]  # type: ignore[union-attr]
        losses = super().__call__(items, active)
        # The same arithmetic over another batch (the eager pass leaves stopped pictures
        # out) may run in another order, and float32 sums then differ in their last bits:
        # some ulps (eps = 1.2e-7) of the terms summed. Those terms keep the size they have
        # at the start while the loss and its gradient, what is left of them, shrink toward
        # convergence; so the bound is 1e-5 of the first pass's largest loss and gradient.
        # A picture fed another's pixels or handed another's (or a stale) gradient is off
        # by a thousand times that.
        if self.scale is None:
            self.scale = (expected.abs().max().item(), max(grad.norm().item() for grad in grads))
        loss_scale, grad_scale = self.scale
        assert (losses - expected).abs().max().item() <= 1e-5 * loss_scale, (self.passes, losses, expected)
        for i, grad in zip(active, grads):
            assert (grad_of(items[i].x) - grad).norm().item() <= 1e-5 * grad_scale, (self.passes, i)
        self.passes += 1
        return losses


class HandedCopies(Graphed):
    """The graphed path with each gradient handed out as a copy of its own, not as a view."""

    def __call__(self, items: Sequence[Item], active: Sequence[int]) -> torch.Tensor:
        losses = super().__call__(items, active)
        for i in active:
            items[i].x.grad = items[i].x.grad.clone()  # type: ignore[union-attr]
        return losses


def test_a_batch_fed_from_static_buffers_follows_the_eager_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the graphed path adds around the recording: each picture's pixels copied in, the
    # gradients handed out as views of one buffer that the next pass overwrites, and
    # pictures that have stopped riding along. Early stopping makes them stop apart.
    #
    # Each pass is compared with an eager pass at the same pixels, not the end of a graphed
    # run with the end of an eager one: L-BFGS on this objective is chaotic (a start moved
    # by one float32 ulp ends up to 0.1 away after 30 steps), so two runs whose passes differ
    # in their last bits, as batches of different sizes may, end apart on some machines.
    cfg = tiny_engine(iterations=40, tolerance=2e-2, patience=3)
    style = stripes_image(16, 16)
    photos = torch.cat([smooth_image(16, 16), style, torch.full((1, 3, 16, 16), 0.5)])
    monkeypatch.setattr(nstpipe.engine.optimize, "GraphedLosses", StaticBuffers)
    made: list[Graphed] = []

    def run(kind: type[Graphed]) -> Result:
        def evaluator(objective: Objective, items: Sequence[Item], *_: object) -> Graphed:
            made.append(kind(objective, items))
            return made[-1]

        monkeypatch.setattr(nstpipe.engine.optimize, "choose_evaluator", evaluator)
        return Stylizer(TinyEncoder(), [style], cfg).run(photos)

    checked = run(CheckedAgainstEager)
    assert len(made) == 1 and isinstance(made[0], CheckedAgainstEager)
    assert made[0].passes == max(checked.item_iterations)  # every pass was checked
    assert len(set(checked.item_iterations)) > 1, checked.item_iterations  # they did stop apart
    # The optimizer copies what it keeps of a gradient: handed views that the next pass
    # overwrites, it takes the very steps it takes when handed copies. The same passes in
    # the same order: equal to the last bit.
    views, copies = run(Graphed), run(HandedCopies)
    assert views.item_iterations == copies.item_iterations == checked.item_iterations
    assert views.item_losses == copies.item_losses
    assert torch.equal(views.image, copies.image)
