"""Shared fixtures: tiny images, a stand-in encoder, and the embedded VGG19 weights (loaded once)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from helpers import DATA, TinyEncoder, write_rgb
from nstpipe.engine.memory import plan_layout
from nstpipe.engine.stylize import Stylizer
from nstpipe.media.weights import LoadedWeights, load_weights

# The tensors here are tiny: one thread is as fast, and several threads slow down by an
# order of magnitude when another process is busy on the same cores.
torch.set_num_threads(1)


@pytest.fixture
def tiny_encoder() -> TinyEncoder:
    return TinyEncoder()


@pytest.fixture(scope="session")
def vgg_weights() -> LoadedWeights:
    """About a second to load; cached by ``load_weights`` for the whole session anyway."""
    return load_weights("embedded")


@pytest.fixture
def photo_path() -> Path:
    """64x48 copy of tubingen.jpg (CC BY 3.0, Andreas Praefcke); see tests/data/README.md."""
    return DATA / "tubingen_64.jpg"


@pytest.fixture
def painting_path() -> Path:
    """64x40 copy of starry_night.jpg (public domain); see tests/data/README.md."""
    return DATA / "starry_night_64.jpg"


@pytest.fixture
def make_rgb() -> Callable[..., Path]:
    return write_rgb


@pytest.fixture
def engine_batches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shape of every content batch that reaches the engine."""
    seen: list[tuple[int, ...]] = []
    real = Stylizer.run

    def run(self: Stylizer, content: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        seen.append(tuple(content.shape))
        return real(self, content, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "run", run)
    return seen


@pytest.fixture
def layouts(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every memory layout the painter plans for a level (whole, or tiles), as it plans it."""
    seen: list[Any] = []

    def spy(*args: Any) -> Any:
        seen.append(plan_layout(*args))
        return seen[-1]

    monkeypatch.setattr("nstpipe.engine.stylize.plan_layout", spy)
    return seen
