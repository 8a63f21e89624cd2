"""The distribution style terms against hand computations on tiny tensors, their gradients,
their targets from the paintings, the per-step redraw, and the colour start."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from nstpipe.config import style_terms
from nstpipe.engine.color import colour_moments, match_moments, painting_pixels, transport_colours
from nstpipe.engine.distribution import (
    Gaussian,
    MeanCovTerm,
    SlicedTerm,
    moments,
    quantiles,
    sliced_distance,
    sliced_squared,
    w2_squared,
)
from nstpipe.engine.modes import style_transfer
from nstpipe.engine.resize import resize_long_side
from nstpipe.engine.stylize import Stylizer
from nstpipe.engine.targets import StyleTargets
from nstpipe.engine.terms import Level, Pictures
from nstpipe.errors import ConfigError

CPU = torch.device("cpu")


def test_w2_of_two_gaussians_by_hand() -> None:
    # Target N((1, 0), [[2, 1], [1, 2]]) against N(0, I): |dm|^2 + tr(S) + tr(I) - 2 tr(S^1/2),
    # the eigenvalues of S being 3 and 1.
    target = Gaussian.of(torch.tensor([1.0, 0.0]), torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    value = w2_squared(torch.zeros(1, 2), torch.eye(2)[None], target)
    assert value.item() == pytest.approx(1 + 4 + 2 - 2 * (math.sqrt(3) + 1), abs=1e-4)
    assert target.scale.item() == pytest.approx(1 + 4)


def test_w2_is_zero_at_the_target_and_not_elsewhere() -> None:
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    target = Gaussian.of(torch.tensor([0.3, -0.2]), cov)
    assert w2_squared(target.mean[None], cov[None], target).item() == pytest.approx(0.0, abs=1e-3)
    assert w2_squared(target.mean[None], (2 * cov)[None], target).item() > 0.1


def test_moments_by_hand() -> None:
    points = torch.tensor([[[0.0, 2.0, 0.0, 2.0], [0.0, 0.0, 2.0, 2.0]]])  # the corners of a square
    mean, cov = moments(points)
    assert torch.allclose(mean, torch.tensor([[1.0, 1.0]]))
    assert torch.allclose(cov, torch.eye(2)[None])


def test_sliced_distance_of_known_point_sets() -> None:
    # Along e1 every point is one further; along e2 the sets agree: the mean of 1 and 0.
    x = torch.tensor([[[0.0, 1.0, 2.0], [0.0, 5.0, 1.0]]])
    y = torch.tensor([[1.0, 2.0, 3.0], [1.0, 0.0, 5.0]])
    directions = torch.eye(2)
    assert sliced_distance(x, y, directions).item() == pytest.approx(0.5)
    # The order of the points does not matter; a diagonal direction sees (x + y) / sqrt(2).
    diagonal = torch.tensor([[1.0], [1.0]]) / math.sqrt(2)
    assert sliced_distance(x.flip(-1), y, diagonal).item() == pytest.approx(
        ((torch.tensor([0.0, 3.0, 6.0]) - torch.tensor([2.0, 2.0, 8.0])) ** 2).mean().item() / 2
    )


def test_quantiles_compare_sets_of_other_sizes() -> None:
    values = torch.arange(8.0)[None]  # 0..7
    assert torch.allclose(quantiles(values, 4), torch.tensor([[0.5, 2.5, 4.5, 6.5]]))
    assert torch.equal(quantiles(values, 8), values)
    # A set against itself, repeated: distance 0.
    x = torch.tensor([[[0.0, 1.0, 3.0, 7.0]]])
    assert sliced_distance(x, torch.tensor([[0.0, 0.0, 1.0, 1.0, 3.0, 3.0, 7.0, 7.0]]), torch.ones(1, 1)).item() == pytest.approx(
        0.0, abs=1e-6
    )


def test_gradients_of_both_distances() -> None:
    gen = torch.Generator().manual_seed(0)
    cov_points = torch.randn(1, 3, 40, generator=gen, dtype=torch.float64)
    target_points = torch.randn(1, 3, 50, generator=gen, dtype=torch.float64) * 2 + 1
    tm, tc = moments(target_points)
    target = Gaussian(tm[0], tc[0], _root(tc[0]), tm.pow(2).sum() + tc[0].trace())

    def w2(points: torch.Tensor) -> torch.Tensor:
        mean, cov = moments(points)
        return w2_squared(mean, cov, target)

    assert torch.autograd.gradcheck(w2, (cov_points.clone().requires_grad_(True),))
    directions = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    sorted_target = quantiles((directions.t() @ target_points[0]).sort(-1)[0], 40)
    assert torch.autograd.gradcheck(lambda p: sliced_squared(p, sorted_target, directions), (cov_points.clone().requires_grad_(True),))


def _root(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.sqrt()) @ vectors.t()


# -- the terms on the stand-in encoder -------------------------------------------------------------


@pytest.fixture
def painting() -> torch.Tensor:
    return stripes_image(16, 16)


def level_for(painting: torch.Tensor, encoder: TinyEncoder, size: tuple[int, int] = (12, 16)) -> Level:
    targets = StyleTargets([painting], encoder, tiny_engine(), 2, CPU)
    return Level(size, encoder, content=smooth_image(*size), styles=targets)


def test_meancov_term_is_its_relative_w2(painting: torch.Tensor) -> None:
    encoder = TinyEncoder()
    term = MeanCovTerm("relu1_1", weight=2.0)
    level = level_for(painting, encoder)
    x = smooth_image(12, 16, phase=1.5)
    value = term.value(Pictures(pixels=x, picture=x, features=encoder(x)), term.prepare(level))
    feats = encoder(painting)["relu1_1"].flatten(2)
    pm, pc = moments(feats)
    mean, cov = moments(encoder(x)["relu1_1"].flatten(2))
    want = 2.0 * w2_squared(mean, cov, Gaussian.of(pm[0], pc[0])) / (pm.pow(2).sum() + pc[0].trace())
    assert value.item() == pytest.approx(want.item(), rel=1e-4)
    # The painting itself (at its own size) is at distance ~0.
    own = term.prepare(level_for(painting, encoder, (16, 16)))
    same = term.value(Pictures(pixels=painting, picture=painting, features=encoder(painting)), own)
    assert same.item() < 1e-3 * value.item()


def test_sliced_term_redraws_its_directions_each_step_and_repeats_with_its_seed(painting: torch.Tensor) -> None:
    encoder = TinyEncoder()
    term = SlicedTerm("relu2_1", weight=1.0, seed=3)
    level = level_for(painting, encoder)
    target = term.prepare(level)
    assert target.directions.shape == (8, 8)  # as many as the layer has channels
    first = target.directions.clone()
    term.refresh(target, 2)
    assert not torch.allclose(first, target.directions)
    again = SlicedTerm("relu2_1", weight=1.0, seed=3).prepare(level)
    assert torch.equal(again.directions, first)
    x = smooth_image(12, 16, phase=1.5)
    value = term.value(Pictures(pixels=x, picture=x, features=encoder(x)), target)
    assert value.item() > 0
    # Against the painting's own points, with the painting at its own size: ~0.
    own = term.prepare(level_for(painting, encoder, (16, 16)))
    assert term.value(Pictures(pixels=painting, picture=painting, features=encoder(painting)), own).item() < 1e-6


def test_objective_refreshes_its_terms_before_each_step(painting: torch.Tensor) -> None:
    encoder = TinyEncoder()
    config = tiny_engine(style_loss="sliced", iterations=3)
    stylizer = Stylizer(encoder, [painting], config, CPU)
    objective = stylizer.objective(smooth_image(12, 16))
    (term, target), = [(t, g) for t, g in objective.parts if isinstance(t, SlicedTerm)][:1]
    before = target.directions.clone()
    objective.refresh(2)
    assert not torch.allclose(before, target.directions)


def test_style_loss_setting_composes_the_terms() -> None:
    kinds = [type(t).__name__ for t in style_transfer(tiny_engine(style_loss="gram:1,meancov:0.5,sliced:2")).terms]
    assert kinds.count("GramTerm") == kinds.count("MeanCovTerm") == kinds.count("SlicedTerm") == 2
    weights = {type(t).__name__: t.weight for t in style_transfer(tiny_engine(style_loss="gram:1,meancov:0.5,sliced:2")).terms}
    assert weights["MeanCovTerm"] == pytest.approx(5.0 * 0.5 * 0.5)  # style_weight * share * layer weight
    assert "GramTerm" not in [type(t).__name__ for t in style_transfer(tiny_engine(style_loss="sliced")).terms]
    assert style_terms("gram:0.5, sliced") == (("gram", 0.5), ("sliced", 1.0))
    for bad in ("grams", "gram:x", "gram:-1", "gram:0", "gram,gram", "gram:nan"):
        with pytest.raises(ConfigError, match="style_loss"):
            tiny_engine(style_loss=bad)


@pytest.mark.parametrize("loss", ["meancov", "sliced", "gram:1,meancov:1,sliced:1"])
def test_each_style_loss_paints_closer_to_the_painting(loss: str, painting: torch.Tensor) -> None:
    encoder = TinyEncoder()
    photo = smooth_image(12, 16)
    config = tiny_engine(style_loss=loss, iterations=30)
    stylizer = Stylizer(encoder, [painting], config, CPU)
    objective = stylizer.objective(photo)
    before = float(objective(photo))
    result = stylizer.run(photo)
    after = float(stylizer.objective(photo)(result.image))
    assert after < 0.7 * before
    assert not torch.equal(result.image, photo)


def test_colour_start_carries_the_paintings_palette(painting: torch.Tensor) -> None:
    photo = smooth_image(12, 16)
    # A painting whose palette a linear map reaches without clamping: its moments exactly.
    mild = smooth_image(16, 16, phase=0.7).flip(1) * 0.5 + torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    mean, cov = colour_moments(match_moments(photo, *colour_moments(mild)))
    want_mean, want_cov = colour_moments(mild)
    assert torch.allclose(mean, want_mean, atol=1e-4) and torch.allclose(cov, want_cov, atol=1e-4)
    start = match_moments(photo, *colour_moments(painting))
    encoder = TinyEncoder()
    on = Stylizer(encoder, [painting], tiny_engine(color_start="meancov", iterations=0), CPU)
    off = Stylizer(encoder, [painting], tiny_engine(iterations=0), CPU)
    started = on.run(photo).image
    assert torch.allclose(started, start, atol=1e-5)  # no steps: the start is the result
    assert torch.allclose(off.run(photo).image, photo, atol=1e-6)
    # preserve_color keeps the photo's colours: no recoloured start.
    kept = Stylizer(encoder, [painting], tiny_engine(color_start="meancov", preserve_color="histogram", iterations=0), CPU)
    assert kept.start(photo) is None
    assert torch.equal(photo, smooth_image(12, 16))  # the caller's photo is untouched


def test_a_transported_start_takes_the_paintings_colours_at_the_outputs_scale() -> None:
    photo = smooth_image(12, 16)
    painting = stripes_image(40, 40)
    encoder = TinyEncoder()
    on = Stylizer(encoder, [painting], tiny_engine(color_start="transport", iterations=0), CPU)
    # The painting's pixels as they are at the output's long side (16), not at its own size.
    want = transport_colours(photo, painting_pixels([resize_long_side(painting, 16)[0]], [1.0]))
    assert torch.allclose(on.run(photo).image, want, atol=1e-5)  # no steps: the start is the result
    assert not torch.allclose(want, transport_colours(photo, painting_pixels([painting[0]], [1.0])), atol=1e-2)
    assert not torch.allclose(want, match_moments(photo, *colour_moments(painting)), atol=1e-2)
    kept = Stylizer(encoder, [painting], tiny_engine(color_start="transport", preserve_color="luminance", iterations=0), CPU)
    assert kept.start(photo) is None
