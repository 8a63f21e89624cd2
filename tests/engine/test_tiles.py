"""The tiled objective: its gradient is the untiled one, its halo is as wide as the layers
read, and the memory budget chooses its tiles."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from helpers import DATA
from nstpipe.config import EngineConfig, parse_memory
from nstpipe.engine import memory
from nstpipe.engine.distribution import Gaussian, MeanCovTerm, moments
from nstpipe.engine.losses import gram
from nstpipe.engine.memory import plan_layout
from nstpipe.engine.objective import Objective
from nstpipe.engine.resize import resize
from nstpipe.engine.schedule import Schedule
from nstpipe.engine.stylize import Stylizer
from nstpipe.engine.targets import StyleTargets, feature_moments
from nstpipe.engine.terms import TemporalTarget
from nstpipe.engine.tiled import TiledObjective
from nstpipe.engine.tiledread import assemble, read_tile, sums
from nstpipe.engine.tiles import Span, halo, layer_stride, margin, tiles
from nstpipe.engine.vgg import VGGFeatures, VGGWeights
from nstpipe.errors import ConfigError, NstpipeError
from nstpipe.modes.model import read_image

DEFAULT_LAYERS = EngineConfig().layers
SHALLOW = dict(content_layer="relu3_1", style_layers=("relu1_1", "relu2_1", "relu3_1"), style_layer_weights=(1.0, 1.0, 1.0))


def photo_pair(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tubingen at a long side of ``side`` (side x 3/4) and starry_night at 64."""
    return read_image(DATA / "tubingen_64.jpg", side), read_image(DATA / "starry_night_64.jpg", 64)


def objective_for(weights: VGGWeights, config: EngineConfig, side: int) -> tuple[Objective, torch.Tensor]:
    photo, painting = photo_pair(side)
    stylizer = Stylizer(VGGFeatures(weights, config.layers), [painting], config)
    start = (photo + 0.05 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    return stylizer.objective(photo), start


def untiled(objective: Objective, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = x.clone().requires_grad_(True)
    losses = objective.losses(pixels)
    losses.sum().backward()
    assert pixels.grad is not None
    return losses.detach(), pixels.grad


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_halo_is_what_the_deepest_layer_reads() -> None:
    # relu5_1 reads 70 pixels beyond its own on each side; the halo rounds that up to the
    # stride of 16, so that each crop starts where a pooling window of the picture does.
    assert margin(DEFAULT_LAYERS) == 70
    assert halo(DEFAULT_LAYERS) == 80
    assert (margin(["relu3_1"]), halo(["relu3_1"])) == (10, 12)
    assert margin(["relu1_1"]) == 1


def test_tiles_partition_the_picture_on_the_stride() -> None:
    grid = tiles((120, 200), (48, 48), DEFAULT_LAYERS)
    rows = sorted({(t.rows.start, t.rows.stop) for t in grid})
    cols = sorted({(t.cols.start, t.cols.stop) for t in grid})
    for spans, length in ((rows, 120), (cols, 200)):
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(a[1] == b[0] and a[1] % 16 == 0 for a, b in zip(spans, spans[1:]))
    # Each tile reads its interior and the 80 px halo around it, cut at the picture's edges;
    # some crops start and some end inside the picture, so both cuts and the halo are seen.
    for axis, length in (("rows", 120), ("cols", 200)):
        crops: set[Span] = {getattr(t, axis) for t in grid}
        assert all(s.low == max(0, s.start - 80) and s.high == min(length, s.stop + 80) for s in crops)
    col_crops = {t.cols for t in grid}
    assert any(s.low > 0 for s in col_crops) and any(s.high < 200 for s in col_crops)


@pytest.mark.parametrize("style_loss", ["gram", "sliced", "meancov"])
def test_tiled_gradient_is_the_untiled_one(vgg_weights: VGGWeights, style_loss: str) -> None:
    # Shallow layers (a halo of 12) so that the 32 px tiles read real crops of a 128 px picture,
    # and the default layers, whose 80 px halo spans most of it; the sliced term's directions
    # stay those it drew (no refresh between the two passes); the W2 term takes its matrix
    # square roots in float64, so its float32 gradient agrees too.
    for overrides in (SHALLOW, {}):
        config = EngineConfig(style_loss=style_loss, tv_weight=0.5, **overrides)  # type: ignore[arg-type]
        objective, x = objective_for(vgg_weights, config, 128)
        losses, grad = untiled(objective, x)
        tiled_losses, tiled_grad = TiledObjective(objective, (32, 32)).losses_and_grad(x)
        assert len(TiledObjective(objective, (32, 32)).grid(x)) == 12
        assert relative(tiled_grad, grad) < 1e-4
        assert torch.allclose(tiled_losses, losses, rtol=1e-5)


@pytest.mark.parametrize("style_loss", ["gram", "sliced", "meancov"])
@pytest.mark.parametrize("split", ["pool1", "pool3"])
def test_a_tiled_head_and_a_whole_tail_give_the_untiled_gradient(vgg_weights: VGGWeights, style_loss: str, split: str) -> None:
    # The head up to the split in tiles of its own halo (24 pixels up to pool3), the tail
    # after it once on the head's output put together: the content layer (relu4_2) and the
    # deep style layers are the tail's, relu1_1 to relu3_1 the head's (relu1_1 only, at pool1).
    config = EngineConfig(style_loss=style_loss, tv_weight=0.5)
    objective, x = objective_for(vgg_weights, config, 128)
    losses, grad = untiled(objective, x)
    split_tiles = TiledObjective(objective, (32, 32), split=split)
    assert halo(split_tiles.tiled_layers) == {"pool1": 2, "pool3": 24}[split]
    assert len(split_tiles.grid(x)) == 12
    tiled_losses, tiled_grad = split_tiles.losses_and_grad(x)
    assert relative(tiled_grad, grad) < 1e-4
    assert torch.allclose(tiled_losses, losses, rtol=1e-5)
    assert torch.allclose(split_tiles.losses(x), losses, rtol=1e-5)
    # The head's output at a tile's border is not the whole picture's: a halo one stride short breaks it.
    stride = 8 if split == "pool3" else 2
    _, short = TiledObjective(objective, (32, 32), reach=halo(split_tiles.tiled_layers) - stride, split=split).losses_and_grad(x)
    assert relative(short, grad) > 1e-3


def test_the_last_tile_runs_forward_once(vgg_weights: VGGWeights) -> None:
    # Pass 1 keeps the last tile's graph and pass 2 starts from it: 2n - 1 forward passes
    # over n tiles for the gradient, where the two passes alone would take 2n; the loss
    # alone, without a graph, takes n.
    config = EngineConfig(**SHALLOW)  # type: ignore[arg-type]
    objective, x = objective_for(vgg_weights, config, 128)
    tiled = TiledObjective(objective, (32, 32))
    count = len(tiled.grid(x))
    calls = 0
    encode = tiled._encode

    def counting(pixels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        nonlocal calls
        calls += 1
        return encode(pixels)

    tiled._encode = counting  # type: ignore[method-assign]
    _, grad = tiled.losses_and_grad(x)
    assert calls == 2 * count - 1
    assert relative(grad, untiled(objective, x)[1]) < 1e-4
    calls = 0
    tiled.losses(x)
    assert calls == count


def test_a_halo_one_stride_short_breaks_the_gradient(vgg_weights: VGGWeights) -> None:
    config = EngineConfig(**SHALLOW)  # type: ignore[arg-type]
    objective, x = objective_for(vgg_weights, config, 128)
    _, grad = untiled(objective, x)
    _, short = TiledObjective(objective, (32, 32), reach=halo(config.layers) - 4).losses_and_grad(x)
    assert relative(short, grad) > 1e-3


def test_content_and_pixel_terms_tile(vgg_weights: VGGWeights) -> None:
    # A video frame's terms: the content, the total variation, the range pull and the
    # temporal term towards the warped predecessor, masked.
    config = EngineConfig(style_weight=0.0, tv_weight=1.0, **SHALLOW)  # type: ignore[arg-type]
    photo, painting = photo_pair(128)
    mask = (torch.arange(128) < 80).float().expand(96, 128)
    temporal = TemporalTarget(warped=photo.flip(-1), mask=mask)
    objective = Stylizer(VGGFeatures(vgg_weights, config.layers), [painting], config).objective(photo, temporal)
    x = photo
    _, grad = untiled(objective, x * 1.2 - 0.1)  # some pixels outside [0, 1]: the range pull counts
    _, tiled_grad = TiledObjective(objective, (48, 48)).losses_and_grad(x * 1.2 - 0.1)
    assert relative(tiled_grad, grad) < 1e-4


def test_meancov_tiled_gradient_in_float64(vgg_weights: VGGWeights) -> None:
    # In float64 throughout, the tiles' sums and the W2 gradient agree with the whole
    # picture's to a few ulps.
    encoder = VGGFeatures(vgg_weights, ("relu1_1", "relu2_1", "relu3_1")).double()
    photo, painting = (p.double() for p in photo_pair(128))
    terms: list[tuple[Any, Any]] = []
    for layer in encoder.layers:
        mean, cov = moments(encoder(painting)[layer].flatten(2))
        target = Gaussian.of(mean[0], cov[0])
        terms.append((MeanCovTerm(layer, 1.0), Gaussian(*(t.double() for t in (target.mean, target.cov, target.root, target.scale)))))
    objective = Objective(encoder, terms)
    _, grad = untiled(objective, photo)
    _, tiled_grad = TiledObjective(objective, (32, 32)).losses_and_grad(photo)
    assert relative(tiled_grad, grad) < 1e-8


def test_a_painted_picture_tiled_is_the_untiled_one(vgg_weights: VGGWeights, monkeypatch: pytest.MonkeyPatch, layouts: list[Any]) -> None:
    # Few steps: L-BFGS's path is chaotic in float32 rounding. After 20 steps a change of
    # 1e-7 in the photo moves the untiled picture by up to 0.08 (half its pixels by more
    # than 1/255), as much as tiling does; after 4 steps both stay under 1/1000.
    config = EngineConfig(iterations=4, style_weight=5.0, **SHALLOW)  # type: ignore[arg-type]
    photo, painting = photo_pair(128)
    stylizer = Stylizer(VGGFeatures(vgg_weights, config.layers), [painting], config)
    whole = stylizer.run(photo).image
    monkeypatch.setattr(memory, "BASE_BYTES", 0)
    tiled = stylizer.with_config(replace(config, max_memory="12M")).run(photo).image
    assert layouts[0].tile is None and layouts[-1].tile is not None and layouts[-1].split is not None
    assert (tiled - whole).abs().max() <= 2 / 255


def test_the_tile_follows_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    config = EngineConfig()
    monkeypatch.setattr(memory, "BASE_BYTES", 0)
    # The whole encoder in tiles (no split): the budget sets the tile's area.
    big, small = (plan_layout((1536, 2048), 1, config, DEFAULT_LAYERS, budget << 20, 300, splits=False) for budget in (4096, 2048))
    assert big.tile is not None and small.tile is not None and big.split is None and small.split is None
    assert area(small.tile) < area(big.tile) and all(side % 16 == 0 for side in big.tile + small.tile)
    assert big.estimate <= 4096 << 20 and small.estimate <= 2048 << 20
    assert plan_layout((192, 256), 1, config, DEFAULT_LAYERS, 4096 << 20, 300).tile is None
    # A sliced term holds every feature's projections whole: less room for the tiles.
    sliced_config = replace(config, style_loss="sliced", sliced_directions=8)
    sliced = plan_layout((1536, 2048), 1, sliced_config, DEFAULT_LAYERS, 4096 << 20, 300, splits=False)
    assert sliced.tile is not None and area(sliced.tile) < area(big.tile)
    # bf16 activations take half the bytes: larger tiles under the same budget.
    half = plan_layout((1536, 2048), 1, config, DEFAULT_LAYERS, 2048 << 20, 300, "bf16", splits=False)
    assert half.tile is not None and area(half.tile) > area(small.tile) and half.estimate <= 2048 << 20


def area(tile: tuple[int, int]) -> int:
    return tile[0] * tile[1]


def test_the_plan_runs_the_tail_whole_where_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2048x1536 in 4G: the tail after a pooling layer fits whole beside the head's tiles,
    # which then read a narrow halo and cost less arithmetic than tiles of the whole encoder.
    monkeypatch.setattr(memory, "BASE_BYTES", 0)
    config, size, budget = EngineConfig(), (1536, 2048), 4096 << 20
    split = plan_layout(size, 1, config, DEFAULT_LAYERS, budget, 300)
    whole_encoder = plan_layout(size, 1, config, DEFAULT_LAYERS, budget, 300, splits=False)
    assert split.split is not None and split.split.startswith("pool") and split.tile is not None and split.estimate <= budget
    assert split.history == whole_encoder.history and all(side % layer_stride(split.split) == 0 for side in split.tile)
    assert 1 < split.cost < whole_encoder.cost
    # The cost counts the convolutions' multiply-adds per input pixel: 3x3, at a quarter of
    # the pixels after each pooling.
    assert memory.pass_flops(["relu1_1"]) == 9 * 3 * 64
    assert memory.pass_flops(["pool2"]) == 9 * (3 * 64 + 64 * 64) + 9 * (64 * 128 + 128 * 128) / 4


def test_a_budget_too_small_for_one_tile_is_one_line() -> None:
    with pytest.raises(NstpipeError, match=r"--max-memory 700M is too small for a 2048x1536 picture") as caught:
        plan_layout((1536, 2048), 1, EngineConfig(), DEFAULT_LAYERS, 700 << 20, 300)
    assert "\n" not in str(caught.value)


def test_max_memory_amounts() -> None:
    assert parse_memory("6G") == 6 << 30
    assert parse_memory("512m") == 512 << 20
    assert parse_memory("1.5GiB") == 3 << 29
    assert parse_memory("auto") is None
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(ConfigError, match="max_memory"):
            EngineConfig(max_memory=bad)


def test_features_read_tile_by_tile_are_the_whole_ones(vgg_weights: VGGWeights) -> None:
    # The photo's content features and a painting's statistics at a size whose one pass
    # does not fit the budget: put together from tiles, as a pass over the whole gives them.
    encoder = VGGFeatures(vgg_weights, DEFAULT_LAYERS)
    photo, _ = photo_pair(192)
    whole = encoder(photo)
    for layer in ("relu4_2", "relu1_1"):
        assert relative(assemble(encoder, photo, layer, (32, 32), DEFAULT_LAYERS), whole[layer]) < 1e-5
    read = sums(encoder, photo, ("relu1_1", "relu5_1"), (32, 32))
    for layer in ("relu1_1", "relu5_1"):
        assert relative(read[layer].gram(), gram(whole[layer])[0]) < 1e-5
        mean, cov = read[layer].moments()
        whole_mean, whole_cov = feature_moments(whole[layer])
        assert relative(mean, whole_mean) < 1e-5 and relative(cov, whole_cov) < 1e-4


def test_a_painting_too_large_for_one_pass_is_read_in_tiles(vgg_weights: VGGWeights, monkeypatch: pytest.MonkeyPatch) -> None:
    config = EngineConfig()
    _, painting = photo_pair(128)
    encoder = VGGFeatures(vgg_weights, config.layers)
    whole = StyleTargets([painting], encoder, config, 16, torch.device("cpu")).grams(192)
    assert read_tile((144, 192), config.style_layers, 40 << 20) is not None
    tiled = StyleTargets([painting], encoder, replace(config, max_memory="40M"), 16, torch.device("cpu")).grams(192)
    for layer in config.style_layers:
        assert relative(tiled[layer], whole[layer]) < 1e-5


def test_a_pyramid_up_to_the_full_size() -> None:
    # Above fine_side, levels double up to the full size, each with half the steps of the one
    # below; the preset's own levels (scales) run up to fine_side as before.
    schedule = Schedule(scales=2, iterations=300, coarse_iterations=200, fine_side=500)
    levels = schedule.levels(3000, 4000, 16)
    assert [max(level.size) for level in levels] == [250, 500, 1000, 2000, 4000]
    assert [level.budget for level in levels] == [200, 300, 150, 75, 37]
    assert all(b.size[1] <= 2 * a.size[1] for a, b in zip(levels, levels[1:]))
    same = [(level.size, level.budget) for level in replace(schedule, fine_side=0).levels(300, 400, 16)]
    assert [(level.size, level.budget) for level in schedule.levels(300, 400, 16)] == same == [((150, 200), 200), ((300, 400), 300)]
    assert [level.fine for level in levels] == [False, False, True, True, True]


def test_a_fine_level_keeps_the_coarse_painting_and_takes_the_photos_detail() -> None:
    # The photo mixed in (content_mix) at each of several fine levels would wash out what the
    # coarse levels painted; a fine level's start is the painting upsampled plus the photo's
    # detail: a flat photo leaves the painting upsampled, and a detailed one adds its detail.
    schedule = Schedule(scales=2, content_mix=0.7, fine_side=16)
    painted = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))

    def upsampled(change: torch.Tensor) -> torch.Tensor:
        return F.interpolate(change, size=(32, 32), mode="bilinear", align_corners=False)

    flat = torch.full((1, 3, 32, 32), 0.5)
    up = (0.5 + upsampled(painted - 0.5)).clamp(0, 1)
    assert torch.allclose(schedule.carry(painted, (32, 32), flat, None, fine=True), up, atol=1e-5)
    mixed = schedule.carry(painted, (32, 32), flat, None)  # a preset's level: 70% of the photo
    assert (mixed - 0.5).abs().max() < 0.31 < (up - 0.5).abs().max()
    checks = (torch.arange(32)[None, :] + torch.arange(32)[:, None]) % 2 * 0.2 + 0.4  # detail lost at 16 px
    detailed = checks.expand(1, 3, 32, 32)
    want = (detailed + upsampled(painted - resize(detailed, (16, 16)))).clamp(0, 1)
    assert torch.allclose(schedule.carry(painted, (32, 32), detailed, None, fine=True), want, atol=1e-5)
    assert (want - up).abs().mean() > 0.05  # the checks are there


@pytest.mark.parametrize("split", [None, "pool2"])
def test_one_item_of_a_batch_with_targets_of_its_own(vgg_weights: VGGWeights, split: str | None) -> None:
    # preserve_color histogram: a Gram target per photo; the optimizer passes the items
    # still active, here the second alone, then both (the content layer, relu3_1, is the
    # tail's where the head ends at pool2).
    config = EngineConfig(preserve_color="histogram", **SHALLOW)  # type: ignore[arg-type]
    photo, painting = photo_pair(128)
    objective = Stylizer(VGGFeatures(vgg_weights, config.layers), [painting], config).objective(torch.cat([photo, photo.flip(-1)]))
    for items, start in (([1], photo.flip(-1)), ([0, 1], torch.cat([photo.flip(-2), photo.flip(-1)]))):
        x = start.clone().requires_grad_(True)
        objective.losses(x, items).sum().backward()
        assert x.grad is not None
        _, tiled = TiledObjective(objective, (32, 32), split=split).losses_and_grad(x.detach(), items)
        assert relative(tiled, x.grad) < 1e-4


def test_the_half_size_terms_read_the_whole_picture_beside_the_tiles(vgg_weights: VGGWeights) -> None:
    # A level optimized in tiles whose photo is read whole keeps its half-size terms: they
    # run once on the whole picture, as the pixel terms do, with its exact gradient.
    from nstpipe.engine.halfsize import HalfSizeTerm

    config = EngineConfig(style_loss="gram:1,sliced:1", half_size_style=1.0, min_scale_size=32, **SHALLOW)  # type: ignore[arg-type]
    objective, x = objective_for(vgg_weights, config, 128)
    assert any(isinstance(term, HalfSizeTerm) for term, _ in objective.parts)
    losses, grad = untiled(objective, x)
    tiled_losses, tiled_grad = TiledObjective(objective, (32, 32)).losses_and_grad(x)
    assert relative(tiled_grad, grad) < 1e-4
    assert torch.allclose(tiled_losses, losses, rtol=1e-5)
