"""DeepDream with the stand-in encoder: the normalized step, the activation and guide terms,
the octave pyramid and its detail carry, and the Dreamer as a video frame's painter."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from nstpipe.config import EngineConfig
from nstpipe.engine.distances import feature_distance
from nstpipe.engine.distribution import MeanCovTerm, SlicedTerm
from nstpipe.engine.dream import Dreamer
from nstpipe.engine.modes import dream
from nstpipe.engine.resize import resize
from nstpipe.engine.schedule import Schedule, pyramid
from nstpipe.engine.steps import NormalizedStep
from nstpipe.engine.terms import ActivationTerm, GuideTerm, Level, Pictures, TemporalTarget, TemporalTerm

CPU = torch.device("cpu")


def dream_config(**overrides: object) -> EngineConfig:
    values: dict[str, object] = dict(
        optimizer="normalized", learning_rate=0.02, iterations=6, coarse_iterations=6, scales=1, min_scale_size=8
    )
    values.update(overrides)
    return tiny_engine(**values)


def gain(encoder: TinyEncoder, picture: torch.Tensor, photo: torch.Tensor, layer: str = "relu2_1") -> float:
    with torch.no_grad():
        return float(encoder(picture)[layer].pow(2).mean() / encoder(photo)[layer].pow(2).mean())


def test_a_normalized_step_moves_the_pixels_by_the_rate_on_average_against_the_gradient() -> None:
    x = torch.zeros(1, 3, 4, 4, requires_grad=True)
    grad = torch.randn(1, 3, 4, 4) * 1e3  # the scale of the objective does not matter
    x.grad = grad.clone()
    NormalizedStep([x], lr=0.01).step()
    moved = x.detach()
    assert float(moved.abs().mean()) == pytest.approx(0.01, rel=1e-5)
    assert torch.equal(torch.sign(moved), -torch.sign(grad))
    still = torch.ones(1, 3, 2, 2, requires_grad=True)
    still.grad = torch.zeros_like(still)
    NormalizedStep([still], lr=0.01).step()
    assert torch.equal(still.detach(), torch.ones(1, 3, 2, 2))


def test_the_activation_term_is_minus_the_gain_over_the_photo_per_picture_and_channel() -> None:
    photo = torch.rand(2, 4, 3, 3) + 0.1
    features = torch.rand(2, 4, 3, 3) * 3
    level = Level((6, 6), lambda x: {"relu1_1": photo})
    level.content = torch.zeros(2, 3, 6, 6)
    pictures = Pictures(pixels=torch.zeros(2, 3, 6, 6), picture=torch.zeros(2, 3, 6, 6), features={"relu1_1": features})
    term = ActivationTerm(("relu1_1",))
    expected = [-float(features[i].pow(2).mean() / photo[i].pow(2).mean()) for i in range(2)]
    assert term.value(pictures, term.prepare(level)).tolist() == pytest.approx(expected, rel=1e-5)
    some = ActivationTerm(("relu1_1",), channels=(1, 3))
    expected = [-float(features[i, [1, 3]].pow(2).mean() / photo[i, [1, 3]].pow(2).mean()) for i in range(2)]
    assert some.value(pictures, some.prepare(level)).tolist() == pytest.approx(expected, rel=1e-5)


def test_the_guide_term_pulls_each_position_toward_its_best_matching_guide_feature() -> None:
    guide_features = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # (1, C=2, 1, 2): vectors (1, 0) and (0, 2)
    level = Level((4, 4), lambda x: {"relu1_1": guide_features})
    term = GuideTerm(("relu1_1",), torch.zeros(1, 3, 4, 4))
    target = term.prepare(level)
    x = torch.tensor([[[[3.0, 0.1]], [[0.5, 1.0]]]], requires_grad=True)  # positions (3, 0.5) and (0.1, 1)
    pictures = Pictures(pixels=torch.zeros(1, 3, 4, 4), picture=torch.zeros(1, 3, 4, 4), features={"relu1_1": x})
    value = term.value(pictures, target)
    energy = (1.0 + 4.0) / 2  # the guide's mean squared feature
    # Position 0 matches (1, 0): 3; position 1 matches (0, 2): 2. Mean 2.5.
    assert value.tolist() == pytest.approx([-2.5 / energy])
    value.sum().backward()
    assert x.grad is not None
    assert x.grad[0, :, 0, 0].tolist() == pytest.approx([-0.5 / energy, 0.0])
    assert x.grad[0, :, 0, 1].tolist() == pytest.approx([0.0, -1.0 / energy])


def test_octaves_divide_the_long_side_by_the_octave_scale_and_halving_is_unchanged() -> None:
    assert pyramid(180, 256, 4, 32, ratio=1.4) == [(65, 93), (91, 130), (128, 182), (180, 256)]
    assert pyramid(180, 256, 3, 32) == pyramid(180, 256, 3, 32, ratio=2.0) == [(45, 64), (90, 128), (180, 256)]


def test_a_finer_octave_starts_from_the_photo_plus_the_coarser_octaves_change() -> None:
    photo = smooth_image(24, 32)
    schedule = Schedule(detail=True, init="content")
    coarse = resize(photo, (12, 16))
    assert torch.allclose(schedule.carry(coarse, (24, 32), photo, None), photo, atol=1e-6)  # no change: the photo, sharp
    bright = (coarse + 0.05).clamp(0, 1)
    carried = schedule.carry(bright, (24, 32), photo, None)
    change = F.interpolate(bright - coarse, size=(24, 32), mode="bilinear", align_corners=False)
    assert torch.allclose(carried, (photo + change).clamp(0, 1), atol=1e-6)
    start = torch.full_like(photo, 0.5)  # a video frame's warped predecessor is the base instead
    assert torch.allclose(schedule.carry(resize(start, (12, 16)), (24, 32), photo, start), start, atol=1e-6)


def test_the_dream_mode_climbs_from_the_photo_over_octaves_with_a_temporal_term() -> None:
    mode = dream(dream_config(scales=3), ("relu2_1",), octave_scale=1.5)
    assert [type(t) for t in mode.terms] == [ActivationTerm, TemporalTerm]
    assert mode.schedule.init == "content" and mode.schedule.detail and mode.schedule.ratio == 1.5
    guided = dream(dream_config(), ("relu2_1",), guide=torch.zeros(1, 3, 8, 8))
    assert isinstance(guided.terms[0], GuideTerm)


def test_dreaming_raises_the_gain_over_every_octave_and_keeps_the_photo_intact() -> None:
    encoder = TinyEncoder()
    photo = smooth_image(24, 32)
    before = photo.clone()
    dreamer = Dreamer(encoder, ("relu2_1",), dream_config(scales=3), CPU, octave_scale=1.5, jitter=2)
    result = dreamer.run(photo)
    assert torch.equal(photo, before)
    assert result.image.shape == photo.shape and result.iterations == 18
    assert 0.0 <= float(result.image.min()) and float(result.image.max()) <= 1.0
    assert gain(encoder, result.image, photo) > 1.5
    sizes = {shape[-2:] for shape in encoder.calls}
    assert {(10, 14), (16, 21), (24, 32)} <= sizes  # three octaves of 1.5


def test_a_picture_of_a_batch_is_the_picture_dreamed_alone() -> None:
    photos = torch.cat([smooth_image(16, 16), smooth_image(16, 16, phase=1.0)])
    dreamer = Dreamer(TinyEncoder(), ("relu2_1",), dream_config(scales=2), CPU, octave_scale=1.4, jitter=3)
    together = dreamer.run(photos).image
    alone = torch.cat([dreamer.run(photos[i : i + 1]).image for i in range(2)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_a_channel_dream_grows_that_channel_more_than_a_dream_of_all_or_of_another() -> None:
    encoder, photo = TinyEncoder(), smooth_image(16, 16)

    def channel_two(channels: tuple[int, ...]) -> float:
        out = Dreamer(encoder, ("relu2_1",), dream_config(iterations=10), CPU, channels=channels, jitter=0).run(photo).image
        with torch.no_grad():
            return float(encoder(out)["relu2_1"][:, 2].pow(2).mean())

    assert channel_two((2,)) > max(channel_two(()), channel_two((3,)))


def test_a_guide_makes_the_dream_match_the_guide_better_than_a_plain_dream() -> None:
    encoder, photo, guide = TinyEncoder(), smooth_image(16, 16), stripes_image(16, 16)
    config = dream_config(iterations=10)
    guided = Dreamer(encoder, ("relu2_1",), config, CPU, guide=guide, jitter=0).run(photo).image
    plain = Dreamer(encoder, ("relu2_1",), config, CPU, jitter=0).run(photo).image
    term = GuideTerm(("relu2_1",), guide)
    target = term.prepare(Level((16, 16), encoder))

    def match(picture: torch.Tensor) -> float:
        with torch.no_grad():
            features = encoder(picture)
        return -float(term.value(Pictures(picture, picture, features), target))

    assert match(guided) > match(plain) and match(guided) > match(photo)


def test_a_heavy_temporal_term_holds_a_later_frame_at_its_warped_predecessor() -> None:
    encoder, photo = TinyEncoder(), smooth_image(16, 16)
    start = smooth_image(16, 16, phase=0.3)
    temporal = TemporalTarget(warped=start, mask=torch.ones(16, 16))
    free = Dreamer(encoder, ("relu2_1",), dream_config(temporal_weight=0.0), CPU, jitter=0).run(photo, init=start, temporal=temporal)
    held = Dreamer(encoder, ("relu2_1",), dream_config(temporal_weight=1e4), CPU, jitter=0).run(photo, init=start, temporal=temporal)
    assert float((held.image - start).abs().mean()) < 0.5 * float((free.image - start).abs().mean())


def test_with_config_keeps_the_layers_and_guide_under_another_budget() -> None:
    guide = stripes_image(8, 8)
    dreamer = Dreamer(TinyEncoder(), ("relu2_1",), dream_config(), CPU, channels=(1,), guide=guide, jitter=4)
    later = dreamer.with_config(replace(dreamer.config, iterations=2))
    assert later.config.iterations == 2 and dreamer.config.iterations == 6
    assert later.layers == dreamer.layers and later.channels == (1,) and later.guide is dreamer.guide
    assert later.run(smooth_image(16, 16)).iterations == 2


def test_style_loss_adds_distribution_terms_towards_the_guide() -> None:
    guide = stripes_image(16, 16)
    mode = dream(dream_config(style_loss="gram:1,sliced:2,meancov:1"), ("relu1_1", "relu2_1"), guide=guide)
    kinds = [type(t) for t in mode.terms]
    assert kinds.count(GuideTerm) == 1 and kinds.count(SlicedTerm) == 2 and kinds.count(MeanCovTerm) == 2
    assert GuideTerm not in [type(t) for t in dream(dream_config(style_loss="sliced"), ("relu2_1",), guide=guide).terms]
    # The dream under the sliced term alone comes closer to the guide's feature distribution
    # than the notebook's guide term does.
    encoder, photo = TinyEncoder(), smooth_image(16, 16)
    config = dream_config(iterations=10)
    by_guide = Dreamer(encoder, ("relu2_1",), config, CPU, guide=guide, jitter=0).run(photo).image
    by_distribution = Dreamer(encoder, ("relu2_1",), replace(config, style_loss="sliced", style_weight=10.0), CPU, guide=guide,
                              jitter=0).run(photo).image
    distance = [feature_distance(encoder, p, guide, ("relu2_1",)) for p in (photo, by_guide, by_distribution)]
    assert distance[2] < distance[0] and distance[2] < distance[1]
