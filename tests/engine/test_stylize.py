"""The optimization engine, driven by a tiny stand-in encoder (no VGG19 needed)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from helpers import TinyEncoder, grad_of, smooth_image, stripes_image, tiny_engine
from nstpipe.config import EngineConfig
from nstpipe.engine.color import colour_moments, rgb_to_yiq
from nstpipe.engine.optimize import Item
from nstpipe.engine.resize import resize
from nstpipe.engine.schedule import Schedule
from nstpipe.engine.stylize import Stylizer, converged, pyramid
from nstpipe.errors import ConfigError
from nstpipe.events import Progress, ScaleDone


def engine(**overrides: Any) -> EngineConfig:
    return tiny_engine(**{"iterations": 8, "coarse_iterations": 4, "learning_rate": 0.05, **overrides})


def run_collect(
    stylizer: Stylizer, content: torch.Tensor, **kwargs: Any
) -> tuple[torch.Tensor, list[Progress], list[ScaleDone], int, float]:
    events: list[object] = []
    result = stylizer.run(content, callback=events.append, **kwargs)
    progress = [e for e in events if isinstance(e, Progress)]
    done = [e for e in events if isinstance(e, ScaleDone)]
    return result.image, progress, done, result.iterations, result.loss


@pytest.fixture
def content() -> torch.Tensor:
    return smooth_image(24, 32)


@pytest.fixture
def style() -> torch.Tensor:
    return stripes_image(32, 32)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_loss_decreases(optimizer: str, tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    stylizer = Stylizer(tiny_encoder, [style], engine(optimizer=optimizer, iterations=10))
    image, progress, done, iterations, loss = run_collect(stylizer, content)
    losses = [p.loss for p in progress]
    assert losses[0] > 0.05
    assert losses[-1] < 0.7 * losses[0]
    assert loss == pytest.approx(losses[-1]) == pytest.approx(done[-1].loss)
    assert image.shape == content.shape
    assert image.min() >= 0 and image.max() <= 1
    assert not torch.allclose(image, content, atol=1e-3)


@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_inputs_are_not_modified(optimizer: str, tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    content_before, style_before = content.clone(), style.clone()
    init = smooth_image(24, 32, phase=1.0)
    init_before = init.clone()
    stylizer = Stylizer(tiny_encoder, [style], engine(optimizer=optimizer, iterations=3))
    stylizer.run(content)
    stylizer.run(content, init=init)
    assert torch.equal(content, content_before)
    assert torch.equal(style, style_before)
    assert torch.equal(init, init_before)
    assert not content.requires_grad


def test_progress_and_scale_done_events(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    stylizer = Stylizer(tiny_encoder, [style], engine(iterations=7))
    _, progress, done, iterations, _ = run_collect(stylizer, content)
    assert [p.iteration for p in progress] == list(range(1, 8))
    assert {(p.scale, p.scales, p.iterations, p.height, p.width) for p in progress} == {(0, 1, 7, 24, 32)}
    assert len(done) == 1
    assert (done[0].scale, done[0].scales, done[0].iterations, done[0].stopped_early) == (0, 1, 7, False)
    assert iterations == 7


def test_multi_scale_runs_coarse_to_fine(tiny_encoder: TinyEncoder, style: torch.Tensor) -> None:
    content = smooth_image(48, 64)
    stylizer = Stylizer(tiny_encoder, [style], engine(scales=3, min_scale_size=16, coarse_iterations=3, iterations=4))
    image, progress, done, iterations, _ = run_collect(stylizer, content)
    sizes = [(p.scale, p.height, p.width) for p in progress]
    assert sizes == [(0, 12, 16)] * 3 + [(1, 24, 32)] * 3 + [(2, 48, 64)] * 4
    assert [(d.scale, d.scales, d.iterations) for d in done] == [(0, 3, 3), (1, 3, 3), (2, 3, 4)]
    assert iterations == 10
    assert image.shape == (1, 3, 48, 64)


def test_pyramid_sizes() -> None:
    assert pyramid(48, 64, 3, 16) == [(12, 16), (24, 32), (48, 64)]
    assert pyramid(48, 64, 3, 20) == [(24, 32), (48, 64)]  # 16 would be below the minimum
    assert pyramid(100, 50, 1, 64) == [(100, 50)]
    assert pyramid(300, 200, 2, 64) == [(150, 100), (300, 200)]
    assert pyramid(48, 48, 4, 64) == [(48, 48)]


def test_converged() -> None:
    assert not converged([10.0, 9.9, 9.89], window=2, tolerance=0.0)  # off when tolerance is 0
    assert not converged([10.0, 9.99], window=2, tolerance=0.1)  # not enough history yet
    assert converged([10.0, 9.95, 9.92], window=2, tolerance=0.01)  # fell 0.8% < 1%
    assert not converged([10.0, 9.0, 8.0], window=2, tolerance=0.01)  # fell 20%
    assert not converged([5.0, 10.0, 9.5, 9.45], window=2, tolerance=0.01)  # only the window counts
    assert converged([10.0, 10.5, 10.2], window=2, tolerance=0.01)  # rising counts as stalled


def test_a_level_ends_with_the_best_picture_it_evaluated() -> None:
    # The stall rule and the reports see the lowest loss so far; the picture returned is
    # the one that had it, not the last step (whose loss nobody has seen).
    item = Item(engine(optimizer="adam"), torch.full((1, 3, 4, 4), 0.5), budget=5)
    start = item.x.detach().clone()
    for loss, grad in ((2.0, 1.0), (3.0, -1.0), (1.0, 1.0), (1.5, 1.0)):
        item.x.grad = torch.full_like(item.x, grad)
        before = item.x.detach().clone()
        item.advance(loss)
        if loss == 1.0:
            best = before
    assert item.history == [2.0, 2.0, 1.0, 1.0]
    assert torch.equal(item.picture(), best) and not torch.equal(best, start)
    assert not torch.equal(item.x.detach(), best)  # it moved on, but the best is kept


def test_early_stopping(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    # tolerance 1.0: any loss that did not fall to zero over the window counts as converged.
    stylizer = Stylizer(tiny_encoder, [style], engine(iterations=10, tolerance=1.0, patience=2))
    _, progress, done, iterations, _ = run_collect(stylizer, content)
    assert len(progress) == 3
    assert (done[0].iterations, done[0].stopped_early) == (3, True)
    assert iterations == 3


def test_no_early_stop_reported_when_budget_is_reached(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    stylizer = Stylizer(tiny_encoder, [style], engine(iterations=3, tolerance=1.0, patience=2))
    _, _, done, iterations, _ = run_collect(stylizer, content)
    assert (done[0].iterations, done[0].stopped_early, iterations) == (3, False, 3)


def test_zero_iterations_returns_the_init_and_a_loss(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    init = smooth_image(12, 16, phase=2.0)
    result = Stylizer(tiny_encoder, [style], engine(iterations=0)).run(content, init=init)
    assert torch.allclose(result.image, resize(init, (24, 32)))
    assert result.iterations == 0
    assert result.loss > 0


def test_noise_init_is_reproducible(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    def start(seed: int) -> torch.Tensor:
        return Stylizer(tiny_encoder, [style], engine(init="noise", seed=seed, iterations=0)).run(content).image

    first, again, other = start(3), start(3), start(4)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert torch.equal(first, torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(3)))
    assert (first - content).abs().mean() > 0.1  # really noise, not the photo

    def stylized(seed: int) -> torch.Tensor:
        cfg = engine(init="noise", seed=seed, iterations=3, optimizer="adam")
        return Stylizer(TinyEncoder(), [style], cfg).run(content).image

    assert torch.equal(stylized(3), stylized(3))


def test_style_targets_are_cached_per_long_side(tiny_encoder: TinyEncoder, content: torch.Tensor) -> None:
    style = stripes_image(40, 40)  # square, so its resized shapes never match the content's
    stylizer = Stylizer(tiny_encoder, [style], engine(iterations=2))
    first = stylizer.style_targets(32)
    assert stylizer.style_targets(32) is first
    assert tiny_encoder.count((1, 3, 32, 32)) == 1
    stylizer.run(content)
    stylizer.run(content)
    assert tiny_encoder.count((1, 3, 32, 32)) == 1  # both runs reused the cached Grams
    stylizer.style_targets(16)
    assert tiny_encoder.count((1, 3, 16, 16)) == 1
    assert set(first) == {"relu1_1", "relu2_1"}
    assert first["relu1_1"].shape == (6, 6) and first["relu2_1"].shape == (8, 8)


def test_style_scale_sets_the_style_size(tiny_encoder: TinyEncoder) -> None:
    stylizer = Stylizer(tiny_encoder, [stripes_image(40, 40)], engine(style_scale=0.5))
    stylizer.style_targets(32)
    assert tiny_encoder.calls == [(1, 3, 16, 16)]


def test_colour_dependent_targets_are_not_cached(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    stylizer = Stylizer(tiny_encoder, [style], engine(preserve_color="histogram"))
    plain = Stylizer(TinyEncoder(), [style], engine()).style_targets(32)
    recoloured = stylizer.style_targets(32, content)
    stylizer.style_targets(32, content)
    assert len(tiny_encoder.calls) == 2
    assert not torch.allclose(recoloured["relu1_1"], plain["relu1_1"], rtol=1e-3)


def test_blend_weights_one_zero_equal_the_first_style_alone(tiny_encoder: TinyEncoder, style: torch.Tensor) -> None:
    other = smooth_image(32, 32, phase=3.0)
    alone = Stylizer(tiny_encoder, [style], engine()).style_targets(32)
    blended = Stylizer(tiny_encoder, [style, other], engine(style_blend=(1.0, 0.0))).style_targets(32)
    others = Stylizer(tiny_encoder, [other], engine()).style_targets(32)
    for layer in ("relu1_1", "relu2_1"):
        assert torch.allclose(blended[layer], alone[layer], rtol=1e-6, atol=0)
        assert not torch.allclose(others[layer], alone[layer], rtol=1e-2)


def test_blend_is_a_normalized_weighted_mean_of_grams(tiny_encoder: TinyEncoder, style: torch.Tensor) -> None:
    other = smooth_image(32, 32, phase=3.0)
    a = Stylizer(tiny_encoder, [style], engine()).style_targets(32)
    b = Stylizer(tiny_encoder, [other], engine()).style_targets(32)
    mixed = Stylizer(tiny_encoder, [style, other], engine(style_blend=(3.0, 1.0))).style_targets(32)
    assert torch.allclose(mixed["relu2_1"], 0.75 * a["relu2_1"] + 0.25 * b["relu2_1"], rtol=1e-5)


def test_bad_style_lists(tiny_encoder: TinyEncoder, style: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="at least one style"):
        Stylizer(tiny_encoder, [], engine())
    with pytest.raises(ValueError, match="2 style weights for 1 style images"):
        Stylizer(tiny_encoder, [style], engine(style_blend=(0.5, 0.5)))
    # All-zero blend weights no longer reach the stylizer: the settings refuse them.
    with pytest.raises(ConfigError, match="'style_blend': the weights must not all be 0"):
        engine(style_blend=(0.0, 0.0))


def test_preserve_luminance_keeps_content_chroma(tiny_encoder: TinyEncoder, style: torch.Tensor) -> None:
    content = 0.5 + 0.3 * (smooth_image(24, 32) - 0.5)
    result = Stylizer(tiny_encoder, [style], engine(preserve_color="luminance", iterations=4)).run(content)
    assert result.image.min() > 0 and result.image.max() < 1
    assert torch.allclose(rgb_to_yiq(result.image)[:, 1:], rgb_to_yiq(content)[:, 1:], atol=1e-4)
    assert not torch.allclose(rgb_to_yiq(result.image)[:, 0], rgb_to_yiq(content)[:, 0], atol=1e-3)


def test_tv_weight_smooths(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    from nstpipe.engine.losses import tv_loss

    rough = Stylizer(tiny_encoder, [style], engine(optimizer="adam", iterations=8)).run(content).image
    smooth = Stylizer(tiny_encoder, [style], engine(optimizer="adam", iterations=8, tv_weight=50.0)).run(content).image
    assert tv_loss(smooth).item() < tv_loss(rough).item()


def test_lbfgs_accepts_a_channels_last_content(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    channels_last = content.contiguous(memory_format=torch.channels_last)
    result = Stylizer(tiny_encoder, [style], engine(optimizer="lbfgs", iterations=2)).run(channels_last)
    assert result.iterations == 2


def test_temporal_term_pulls_toward_the_warped_frame_where_the_mask_trusts_it(
    tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor
) -> None:
    from nstpipe.engine.stylize import TemporalTarget

    # Only the temporal term: the optimum is the warped frame inside the mask, and the
    # start (the content) is left alone outside it, where the term has no gradient.
    cfg = engine(content_weight=0.0, style_weight=0.0, temporal_weight=1.0, optimizer="adam",
                 learning_rate=0.05, iterations=60)
    target = stripes_image(24, 32)
    mask = torch.zeros(24, 32)
    mask[:, 16:] = 1.0
    before = content.clone()
    out = Stylizer(tiny_encoder, [style], cfg).run(content, temporal=TemporalTarget(target, mask)).image
    right_err = (out[..., 16:] - target[..., 16:]).abs().mean()
    start_err = (content[..., 16:] - target[..., 16:]).abs().mean()
    assert right_err < 0.2 * start_err
    assert torch.allclose(out[..., :15], content[..., :15], atol=1e-6)
    assert torch.equal(content, before)


def test_temporal_target_is_resized_for_each_pyramid_level(
    tiny_encoder: TinyEncoder, style: torch.Tensor
) -> None:
    from nstpipe.engine.stylize import TemporalTarget

    content = smooth_image(32, 48)
    cfg = engine(scales=2, min_scale_size=8, iterations=3, coarse_iterations=3, temporal_weight=10.0)
    temporal = TemporalTarget(stripes_image(32, 48), torch.ones(32, 48))
    result = Stylizer(tiny_encoder, [style], cfg).run(content, temporal=temporal)
    assert result.image.shape == content.shape
    assert result.iterations == 6


def test_the_loss_is_that_of_the_picture_clamped_as_saved(tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor) -> None:
    """Pixels out of [0, 1] count as clamped, plus a pull back into the range: the
    optimizer cannot win anything by leaving the range that the saved picture is clamped
    to, and a pixel outside is steered back in."""
    from nstpipe.engine.stylize import OUTSIDE_WEIGHT

    objective = Stylizer(tiny_encoder, [style], engine()).objective(content)
    x = (content * 1.6 - 0.3).requires_grad_(True)  # a good share of it out of range
    above, below = x > 1, x < 0
    assert 0.1 < (above | below).float().mean() < 0.9
    loss = objective(x)
    excess = (x.detach() - x.detach().clamp(0, 1)).pow(2).mean()
    assert loss.item() == pytest.approx(objective(x.detach().clamp(0, 1)).item() + OUTSIDE_WEIGHT * excess.item(), rel=1e-5)
    loss.backward()
    # Outside, only the pull back acts: 2 * OUTSIDE_WEIGHT * excess / n, toward the range.
    n = x.numel()
    assert torch.allclose(grad_of(x)[above], 2 * OUTSIDE_WEIGHT * (x.detach()[above] - 1) / n, rtol=1e-4)
    assert torch.allclose(grad_of(x)[below], 2 * OUTSIDE_WEIGHT * x.detach()[below] / n, rtol=1e-4)


def test_the_objective_is_the_weighted_sum_of_the_loss_functions(tiny_encoder: TinyEncoder, style: torch.Tensor) -> None:
    """The objective folds each target's norm and weight into one coefficient per level;
    per picture, and for a subset of a batch with a target for each picture, it is still
    content_weight * content_loss + style_weight * sum_l w_l * style_loss_l + tv_weight * tv."""
    from nstpipe.engine.losses import content_loss, style_loss, tv_loss
    from nstpipe.engine.objective import Objective
    from nstpipe.engine.terms import ContentTerm, GramTerm, Level, Term

    cfg = engine(content_weight=0.7, style_weight=3.0, style_layer_weights=(2.0, 1.0), tv_weight=0.5)
    photos = torch.cat([smooth_image(32, 32, phase) for phase in (0.0, 1.0, 2.0)])
    stylizer = Stylizer(tiny_encoder, [style], cfg)
    with torch.no_grad():
        content_target = stylizer.features(photos)[cfg.content_layer]  # one target per picture
        grams = stylizer.style_targets(32)
        grams = {layer: torch.stack([g, 0.5 * g, 2 * g]) for layer, g in grams.items()}  # and per picture
    level = Level((32, 32), stylizer.features)

    def target(term: Term[Any]) -> Any:
        if isinstance(term, ContentTerm):
            return term.fold(content_target)
        if isinstance(term, GramTerm):
            return term.fold(grams[term.layer])
        return term.prepare(level)

    objective = Objective(stylizer.features, [(term, target(term)) for term in stylizer.mode.terms if term.applies(level)])
    x = 0.8 * photos + 0.1
    for items in (None, [0, 2], [1]):
        chosen = list(range(3)) if items is None else items
        got = objective.losses(x[chosen], items)
        feats = stylizer.features(x[chosen])
        want = cfg.content_weight * content_loss(feats[cfg.content_layer], content_target[chosen]) + cfg.tv_weight * tv_loss(x[chosen])
        for layer, weight in zip(cfg.style_layers, (2 / 3, 1 / 3)):
            want = want + cfg.style_weight * weight * style_loss(feats[layer], grams[layer][chosen])
        assert got.tolist() == pytest.approx(want.tolist(), rel=1e-5), items


def test_content_mix_starts_a_finer_level_between_the_coarse_result_and_the_photo(
    tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor
) -> None:
    """With no iterations at the fine level, the result is where that level started."""
    def fine_start(mix: float, init: str = "content") -> torch.Tensor:
        cfg = engine(scales=2, coarse_iterations=5, iterations=0, content_mix=mix, init=init)
        return Stylizer(tiny_encoder, [style], cfg).run(content).image

    coarse = fine_start(0.0)
    assert not torch.allclose(coarse, content, atol=1e-2)
    assert torch.allclose(fine_start(0.5), (0.5 * coarse + 0.5 * content).clamp(0, 1), atol=1e-5)
    assert torch.allclose(fine_start(1.0), content, atol=1e-6)
    # A noise start stays the user's: no photo mixed in.
    assert torch.allclose(fine_start(0.5, "noise"), fine_start(0.0, "noise"))


def test_a_noise_start_with_a_photo_share_holds_that_share_of_the_photo(
    tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor
) -> None:
    """With no iterations, the result is the start: share x photo + (1 - share) x the seed's noise."""
    cfg = engine(init="noise", photo_share=0.8, iterations=0, seed=3)
    image = Stylizer(tiny_encoder, [style], cfg).run(content).image
    noise = torch.rand((1, 3, 24, 32), generator=torch.Generator().manual_seed(3))
    assert torch.allclose(image, 0.8 * content + 0.2 * noise, atol=1e-6)
    assert torch.allclose(Stylizer(tiny_encoder, [style], engine(init="noise", iterations=0, seed=3)).run(content).image, noise)


def test_from_noise_every_levels_start_is_recoloured_to_the_paintings_palette(
    tiny_encoder: TinyEncoder, content: torch.Tensor, style: torch.Tensor
) -> None:
    """The fine level runs no step, so the result is its start: the coarse result upsampled,
    then given the painting's colour mean and covariance (a colour start by "meancov")."""
    painting = 0.2 + 0.5 * smooth_image(32, 32, phase=2.0)  # colours well inside [0, 1]: none clamped

    def fine_start(color_start: str) -> torch.Tensor:
        cfg = engine(init="noise", photo_share=0.5, scales=2, coarse_iterations=4, iterations=0, color_start=color_start)
        return Stylizer(tiny_encoder, [painting], cfg).run(content).image

    want_mean, want_cov = colour_moments(painting)
    mean, cov = colour_moments(fine_start("meancov"))
    assert torch.allclose(mean, want_mean, atol=0.02) and torch.allclose(cov, want_cov, atol=0.01)
    left_mean, _ = colour_moments(fine_start("none"))
    assert (left_mean - want_mean).abs().max() > 0.05


def test_the_coarsest_level_has_a_budget_of_its_own() -> None:
    def budgets(**kw: Any) -> list[int]:
        return [plan.budget for plan in Schedule(**kw).levels(256, 256, 1)]

    assert budgets(scales=3, coarsest_iterations=120, coarse_iterations=60, iterations=50) == [120, 60, 50]
    assert budgets(scales=3, coarse_iterations=60, iterations=50) == [60, 60, 50]
    assert budgets(scales=1, coarsest_iterations=120, iterations=50) == [50]
