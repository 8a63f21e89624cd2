"""The objective's terms on tiny tensors with the stand-in encoder, the objective as their sum,
and a run that starts from a size, with no content photo."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from nstpipe.config import EngineConfig, smallest_side, vgg_cut
from nstpipe.engine.modes import Mode, style_transfer
from nstpipe.engine.objective import Objective
from nstpipe.engine.schedule import Schedule
from nstpipe.engine.stylize import Painter, Stylizer, encoder_layers
from nstpipe.engine.targets import StyleTargets
from nstpipe.engine.terms import (
    OUTSIDE_WEIGHT,
    ContentTerm,
    GramTerm,
    Level,
    Pictures,
    RangePull,
    TemporalTarget,
    TemporalTerm,
    Term,
    TotalVariation,
)
from nstpipe.events import Progress

CPU = torch.device("cpu")


def hand_gram(features: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def pictures_of(x: torch.Tensor, encoder: TinyEncoder) -> Pictures:
    picture = x.clamp(0, 1)
    return Pictures(pixels=x, picture=picture, features=encoder(picture))


def value_at(term: Term[Any], level: Level, x: torch.Tensor, encoder: TinyEncoder) -> torch.Tensor:
    return term.value(pictures_of(x, encoder), term.prepare(level))


@pytest.fixture
def photo() -> torch.Tensor:
    return smooth_image(12, 16)


@pytest.fixture
def x() -> torch.Tensor:
    return smooth_image(12, 16, phase=1.5)


# -- what each term reads ------------------------------------------------------------------------


def test_each_term_names_the_layers_it_reads() -> None:
    assert ContentTerm("relu2_1", 1.0).layers == ("relu2_1",)
    assert GramTerm("relu1_1", 1.0).layers == ("relu1_1",)
    assert TotalVariation(1.0).layers == TemporalTerm(1.0).layers == RangePull().layers == ()
    assert ContentTerm("relu2_1", 1.0).needs_content and not GramTerm("relu1_1", 1.0).needs_content


def test_a_mode_reads_the_union_of_its_terms_layers_and_the_encoder_is_cut_after_the_deepest() -> None:
    cfg = EngineConfig(content_layer="relu4_2", style_layers=("relu1_1", "relu4_2", "relu3_1"), style_layer_weights=(1.0, 1.0, 1.0))
    mode = style_transfer(cfg)
    assert mode.layers == ("relu4_2", "relu1_1", "relu3_1") == cfg.layers == encoder_layers(cfg)
    assert vgg_cut(mode.layers)[-1] == "relu4_2" and vgg_cut(("relu1_1",)) == ("conv1_1", "relu1_1")
    assert mode.min_side == smallest_side(mode.layers) == cfg.min_side == 8  # three poolings before relu4_2
    assert smallest_side(("relu5_1",)) == 16 and smallest_side(("relu1_1",)) == 1
    texture = Mode((GramTerm("relu1_1", 1.0), RangePull()), Schedule(init="noise"))
    assert texture.layers == ("relu1_1",) and not texture.needs_content
    assert Mode((TotalVariation(1.0),), Schedule()).min_side == 1  # pixels alone: no pass at all


def test_init_is_a_file_unless_it_says_content_or_noise() -> None:
    assert not EngineConfig(init="content").init_is_file and not EngineConfig(init="noise").init_is_file
    assert EngineConfig(init="start.png").init_is_file


# -- each term's value against a hand computation --------------------------------------------------


def test_content_term_is_its_weight_times_the_relative_feature_error(photo: torch.Tensor, x: torch.Tensor) -> None:
    encoder = TinyEncoder()
    level = Level((12, 16), encoder, content=photo)
    got = value_at(ContentTerm("relu2_1", 0.7), level, x, encoder)
    target, ours = encoder(photo)["relu2_1"], encoder(x)["relu2_1"]
    want = 0.7 * (ours - target).pow(2).sum() / target.pow(2).sum()
    assert got.shape == (1,) and got.item() == pytest.approx(want.item(), rel=1e-5)
    assert value_at(ContentTerm("relu2_1", 0.7), level, photo, encoder).item() == 0.0


def test_gram_term_is_its_weight_times_the_relative_gram_error(photo: torch.Tensor, x: torch.Tensor) -> None:
    encoder = TinyEncoder()
    painting = stripes_image(16, 16)
    styles = StyleTargets([painting], encoder, tiny_engine(), min_side=2, device=CPU)
    level = Level((12, 16), encoder, content=photo, styles=styles)
    got = value_at(GramTerm("relu1_1", 3.0), level, x, encoder)
    target = hand_gram(encoder(painting)["relu1_1"])[0]  # the painting at the output's long side, 16
    ours = hand_gram(encoder(x)["relu1_1"])[0]
    want = 3.0 * (ours - target).pow(2).sum() / target.pow(2).sum()
    assert got.item() == pytest.approx(want.item(), rel=1e-4)


def test_total_variation_term_is_its_weight_times_the_mean_squared_neighbour_step(x: torch.Tensor) -> None:
    encoder = TinyEncoder()
    level = Level((12, 16), encoder)
    got = value_at(TotalVariation(0.5), level, x, encoder)
    dx, dy = x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]
    assert got.item() == pytest.approx(0.5 * (dx.pow(2).mean() + dy.pow(2).mean()).item(), rel=1e-5)
    assert TotalVariation(1.0).applies(level) and not TotalVariation(0.0).applies(level)


def test_temporal_term_is_its_weight_times_the_masked_mean_squared_step(x: torch.Tensor) -> None:
    encoder = TinyEncoder()
    warped, mask = stripes_image(12, 16), torch.zeros(12, 16)
    mask[:, 8:] = 1.0
    level = Level((12, 16), encoder, temporal=TemporalTarget(warped, mask).at((12, 16), CPU))
    got = value_at(TemporalTerm(4.0), level, x, encoder)
    want = 4.0 * (mask * (x - warped).pow(2)).sum() / x.numel()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    assert not TemporalTerm(4.0).applies(Level((12, 16), encoder))  # no predecessor: off


def test_range_pull_is_its_weight_times_the_mean_squared_excess() -> None:
    encoder = TinyEncoder()
    x = torch.full((2, 3, 4, 4), 0.5)
    x[0, 0, 0, 0], x[0, 1, 2, 3], x[1, 2, 1, 1] = 1.5, -0.25, 0.75
    got = value_at(RangePull(), Level((4, 4), encoder), x, encoder)
    want = OUTSIDE_WEIGHT * torch.tensor([0.5**2 + 0.25**2, 0.0]) / 48
    assert torch.allclose(got, want)


def test_a_picked_batch_reads_the_rows_of_per_picture_targets_and_the_shared_ones_whole() -> None:
    rows, shared = torch.arange(3.0).view(3, 1, 1, 1), torch.ones(1, 1, 1, 1)
    pictures = Pictures(torch.zeros(2, 3, 1, 1), torch.zeros(2, 3, 1, 1), {}, items=[0, 2])
    assert pictures.pick(rows).flatten().tolist() == [0.0, 2.0]
    assert pictures.pick(shared) is shared
    assert pictures.pick(torch.tensor(2.0), batched_dims=1).item() == 2.0  # a scalar coefficient


# -- the objective ---------------------------------------------------------------------------------


def test_the_objective_is_the_sum_of_its_terms_values(photo: torch.Tensor) -> None:
    encoder = TinyEncoder()
    styles = StyleTargets([stripes_image(16, 16)], encoder, tiny_engine(), min_side=2, device=CPU)
    temporal = TemporalTarget(stripes_image(12, 16), torch.ones(12, 16)).at((12, 16), CPU)
    level = Level((12, 16), encoder, content=photo, styles=styles, temporal=temporal)
    terms: list[Term[Any]] = [ContentTerm("relu2_1", 0.7), GramTerm("relu1_1", 2.0), GramTerm("relu2_1", 1.0),
                              TotalVariation(0.0), TotalVariation(0.3), TemporalTerm(5.0), RangePull()]
    objective = Objective.at(level, terms)
    assert [term for term, _ in objective.parts] == [t for t in terms if t.weight != 0.0]  # the weight-0 one is left out
    assert objective.layers == ("relu2_1", "relu1_1")
    x = torch.cat([photo * 1.4 - 0.2, smooth_image(12, 16, phase=2.0)])
    want = torch.stack([value_at(term, level, x, encoder) for term in terms if term.applies(level)]).sum(0)
    assert torch.allclose(objective.losses(x), want, rtol=1e-6)
    assert objective(x).item() == pytest.approx(want.sum().item(), rel=1e-6)


def test_each_level_computes_the_photos_features_and_the_grams_once() -> None:
    encoder = TinyEncoder()
    styles = StyleTargets([stripes_image(20, 20)], encoder, tiny_engine(preserve_color="histogram"), min_side=2, device=CPU)
    level = Level((12, 16), encoder, content=smooth_image(12, 16), styles=styles)
    Objective.at(level, [ContentTerm("relu1_1", 1.0), ContentTerm("relu2_1", 1.0), GramTerm("relu1_1", 1.0), GramTerm("relu2_1", 1.0)])
    assert encoder.count((1, 3, 12, 16)) == 1  # the photo
    assert encoder.count((1, 3, 16, 16)) == 1  # the painting, recoloured after the photo, so not cached


# -- a run from a size ------------------------------------------------------------------------------


def texture_painter(encoder: TinyEncoder, painting: torch.Tensor, **overrides: Any) -> Painter:
    cfg = tiny_engine(**{"init": "noise", "iterations": 12, **overrides})
    mode = Mode((GramTerm("relu1_1", 1.0), GramTerm("relu2_1", 1.0), RangePull()), Schedule.of(cfg))
    return Painter(encoder, mode, cfg, CPU, StyleTargets([painting], encoder, cfg, mode.min_side, CPU))


def test_a_run_without_a_photo_starts_from_noise_at_the_size_given() -> None:
    encoder, painting = TinyEncoder(), stripes_image(32, 32)
    events: list[Any] = []
    result = texture_painter(encoder, painting, scales=2, coarse_iterations=4).run(size=(20, 28), callback=events.append)
    assert result.image.shape == (1, 3, 20, 28) and result.iterations == 16
    assert [(e.height, e.width) for e in events if isinstance(e, Progress)] == [(10, 14)] * 4 + [(20, 28)] * 12
    losses = [e.loss for e in events if isinstance(e, Progress) and e.scale == 1]
    assert losses[-1] < 0.5 * losses[0]
    assert encoder.count((1, 3, 20, 28)) == 12 and encoder.count((1, 3, 10, 14)) == 4  # no photo ever passed
    noise = torch.rand(1, 3, 10, 14, generator=torch.Generator().manual_seed(0))
    zero = texture_painter(TinyEncoder(), painting, scales=2, coarse_iterations=0, iterations=0).run(size=(20, 28))
    assert torch.allclose(zero.image, torch.nn.functional.interpolate(noise, size=(20, 28), mode="bicubic", antialias=True).clamp(0, 1))


def test_a_run_without_a_photo_is_refused_where_a_term_reads_one_or_nothing_says_where_to_start() -> None:
    encoder, painting = TinyEncoder(), stripes_image(32, 32)
    cfg = tiny_engine(init="noise")
    with pytest.raises(ValueError, match="reads a content photo"):
        Stylizer(encoder, [painting], cfg).painter().run(size=(16, 16))
    with pytest.raises(ValueError, match="needs a size"):
        texture_painter(encoder, painting).run()
    with pytest.raises(ValueError, match="starts from noise"):
        texture_painter(encoder, painting, init="content").run(size=(16, 16))
    start = smooth_image(16, 16)
    from_init = texture_painter(encoder, painting, init="content", iterations=0).run(size=(16, 16), init=start)
    assert torch.equal(from_init.image, start)
