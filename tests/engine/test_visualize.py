"""Feature visualization with the stand-in encoder (and once with the real VGG19): the
channel term, the mode, a batch of channels, and the seeded jitter."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pytest
import torch

from helpers import TinyEncoder, tiny_engine
from nstpipe.config import EngineConfig
from nstpipe.engine.losses import tv_loss
from nstpipe.engine.modes import visualize
from nstpipe.engine.objective import Objective
from nstpipe.engine.terms import ChannelTerm, Pictures, RangePull, TotalVariation
from nstpipe.engine.transforms import Jitter
from nstpipe.engine.vgg import VGGFeatures
from nstpipe.engine.visualize import Visualizer
from nstpipe.media.weights import load_weights
from nstpipe.modes.model import read_image

CPU = torch.device("cpu")
DATA = Path(__file__).resolve().parent.parent / "data"


def adam(**overrides: object) -> EngineConfig:
    values: dict[str, object] = dict(optimizer="adam", learning_rate=0.05, iterations=20, tv_weight=0.0, init="noise")
    values.update(overrides)
    return tiny_engine(**values)


def channel_mean(encoder: TinyEncoder, picture: torch.Tensor, layer: str, channel: int) -> float:
    return float(encoder(picture)[layer][:, channel].mean())


def test_the_value_is_minus_the_mean_of_the_channel() -> None:
    features = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    pictures = Pictures(pixels=torch.zeros(2, 3, 4, 4), picture=torch.zeros(2, 3, 4, 4), features={"relu1_1": features})
    before = features.clone()
    term = ChannelTerm("relu1_1", (1, 2), weight=2.0)
    value = term.value(pictures, term.prepare(None))  # type: ignore[arg-type]  # the term reads nothing of the level
    assert value.tolist() == pytest.approx([-2.0 * float(features[0, 1].mean()), -2.0 * float(features[1, 2].mean())])
    shared = ChannelTerm("relu1_1", (2,))
    assert shared.value(pictures, shared.prepare(None)).tolist() == pytest.approx(  # type: ignore[arg-type]
        [-float(features[0, 2].mean()), -float(features[1, 2].mean())]
    )
    assert torch.equal(features, before)
    # A batch item picked alone (an active subset) gets its own channel.
    one = Pictures(pixels=torch.zeros(1, 3, 4, 4), picture=torch.zeros(1, 3, 4, 4), features={"relu1_1": features[1:]}, items=[1])
    assert term.value(one, term.prepare(None)).tolist() == pytest.approx([-2.0 * float(features[1, 2].mean())])  # type: ignore[arg-type]


def test_the_mode_climbs_one_channel_from_noise_with_a_small_tv() -> None:
    mode = visualize(tiny_engine(tv_weight=0.5), "relu2_1", (3,))
    assert [type(term) for term in mode.terms] == [ChannelTerm, TotalVariation, RangePull]
    assert mode.layers == ("relu2_1",) and not mode.needs_content
    assert mode.schedule.init == "noise" and not mode.schedule.spread_seeds


def test_optimizing_drives_the_channel_up() -> None:
    encoder = TinyEncoder()
    start = Visualizer(encoder, "relu2_1", (3,), adam(iterations=0), CPU).run((32, 32)).image
    end = Visualizer(encoder, "relu2_1", (3,), adam(iterations=30), CPU, (2, 0.0, 0.0)).run((32, 32)).image
    assert channel_mean(encoder, end, "relu2_1", 3) > 2 * channel_mean(encoder, start, "relu2_1", 3)


def test_the_real_vgg19_channel_goes_well_above_a_photo() -> None:
    encoder = VGGFeatures(load_weights("embedded"), ("relu3_1",), "max")
    photo = read_image(DATA / "tubingen_64.jpg")
    config = adam(iterations=25, learning_rate=0.05)
    picture = Visualizer(encoder, "relu3_1", (5,), config, CPU, (2, 0.0, 0.0)).run((64, 64)).image
    with torch.no_grad():
        ours, theirs = (float(encoder(x)["relu3_1"][0, 5].mean()) for x in (picture, photo))
    assert ours > 5 * theirs, (ours, theirs)


def test_picture_i_of_a_batch_shows_channel_i_as_made_alone() -> None:
    encoder = TinyEncoder()
    config = adam(iterations=12)
    together = Visualizer(encoder, "relu2_1", (1, 4), config, CPU, (2, 0.1, 10.0)).run((32, 32)).image
    assert together.shape == (2, 3, 32, 32)
    for i, channel in enumerate((1, 4)):
        alone = Visualizer(encoder, "relu2_1", (channel,), config, CPU, (2, 0.1, 10.0)).run((32, 32)).image
        assert torch.allclose(together[i], alone[0], atol=1e-4)
        mine, theirs = together[i : i + 1], together[1 - i : 2 - i]
        assert channel_mean(encoder, mine, "relu2_1", channel) > channel_mean(encoder, theirs, "relu2_1", channel)


def test_the_jitter_is_seeded_and_leaves_the_input_alone() -> None:
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    before = x.clone()
    draws = [[Jitter(3, 0.1, 15.0, seed)(x) for _ in range(3)] for seed in (7, 7, 8)]
    assert all(torch.equal(a, b) for a, b in zip(draws[0], draws[1]))
    assert not all(torch.equal(a, b) for a, b in zip(draws[0], draws[2]))
    assert torch.equal(x, before)
    rolled = Jitter(3, seed=7)(x)
    # No shift of (0, 0): a jitter that never moves the picture fails here.
    shifts = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4) if (dy, dx) != (0, 0)]
    assert any(torch.equal(rolled, torch.roll(x, shift, (-2, -1))) for shift in shifts)  # moved, not resampled


def test_same_seed_same_picture_and_another_seed_another() -> None:
    encoder = TinyEncoder()
    make = lambda seed: Visualizer(encoder, "relu1_1", (2,), adam(iterations=8, seed=seed), CPU, (2, 0.05, 5.0)).run((24, 24)).image  # noqa: E731
    assert torch.equal(make(3), make(3))
    assert not torch.equal(make(3), make(4))


def test_the_encoder_sees_the_jittered_picture_and_the_pixel_terms_the_picture() -> None:
    seen: list[torch.Tensor] = []

    def encoder(x: torch.Tensor) -> Mapping[str, torch.Tensor]:
        seen.append(x)
        return TinyEncoder()(x)

    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    channel = (ChannelTerm("relu1_1", (0,)), torch.tensor([0]))
    together = Objective(encoder, [channel, (TotalVariation(1.0), None)], Jitter(2, seed=5)).losses(x)
    assert not torch.equal(seen[0], x) and torch.equal(seen[0], Jitter(2, seed=5)(x))
    # The same draw without the smoothness term: what is left is that term, of the picture unmoved.
    smoothness = together - Objective(encoder, [channel], Jitter(2, seed=5)).losses(x)
    assert torch.allclose(smoothness, tv_loss(x), rtol=1e-5)
    assert not torch.allclose(smoothness, tv_loss(Jitter(2, seed=5)(x)), rtol=1e-3)
