"""Texture synthesis with the stand-in encoder: Gram terms alone, from noise, from a size;
variations by seed, blended paintings, and wrapping for tileable textures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from nstpipe.config import EngineConfig
from nstpipe.engine.losses import gram, style_loss
from nstpipe.engine.modes import texture
from nstpipe.engine.schedule import resize_wrapped
from nstpipe.engine.terms import ContentTerm, GramTerm, Pictures, TotalVariation
from nstpipe.engine.texture import Texturer
from nstpipe.engine.vgg import VGGFeatures, VGGWeights
from nstpipe.modes.model import read_image

CPU = torch.device("cpu")
PAINTING = stripes_image(32, 32)


def make(config: EngineConfig, styles: Any = None, tileable: bool = False, encoder: TinyEncoder | None = None) -> Texturer:
    return Texturer(encoder or TinyEncoder(), styles if styles is not None else [PAINTING], config, CPU, tileable)


def style_distance(encoder: TinyEncoder, picture: torch.Tensor, painting: torch.Tensor) -> float:
    """Sum over the stand-in's layers of the relative Gram error of ``picture`` against ``painting``."""
    ours, theirs = encoder(picture), encoder(painting)
    return sum(float(style_loss(ours[layer], gram(theirs[layer])[0])) for layer in ("relu1_1", "relu2_1"))


def seam_ratio(picture: torch.Tensor) -> float:
    """Mean absolute step across the wrap edges (where 2x2 tiles meet) over the mean step
    between neighbouring pixels inside: about 1 when the tiling shows no seam."""
    x = picture[0]
    seam = torch.cat([(x[:, :, -1] - x[:, :, 0]).abs().flatten(), (x[:, -1, :] - x[:, 0, :]).abs().flatten()]).mean()
    inside = torch.cat([(x[:, :, 1:] - x[:, :, :-1]).abs().flatten(), (x[:, 1:, :] - x[:, :-1, :]).abs().flatten()]).mean()
    return float(seam / inside)


def test_the_mode_has_gram_terms_and_no_content_term() -> None:
    config = tiny_engine(tv_weight=0.1)
    mode = texture(config)
    assert not mode.needs_content
    assert not any(isinstance(term, ContentTerm) for term in mode.terms)
    grams = [term for term in mode.terms if isinstance(term, GramTerm)]
    assert [term.layer for term in grams] == list(config.style_layers)
    assert sum(term.weight for term in grams) == pytest.approx(config.style_weight)
    assert mode.layers == config.style_layers
    assert mode.schedule.init == "noise" and mode.schedule.spread_seeds


def test_a_texture_is_made_from_a_size_alone() -> None:
    result = make(tiny_engine(iterations=5)).run((24, 40))
    assert result.image.shape == (1, 3, 24, 40)
    assert 0 <= float(result.image.min()) and float(result.image.max()) <= 1
    assert result.iterations == 5


def test_the_gram_distance_to_the_painting_falls_over_iterations() -> None:
    encoder = TinyEncoder()
    distances = [
        style_distance(encoder, make(tiny_engine(iterations=n), encoder=encoder).run((32, 32)).image, PAINTING)
        for n in (0, 5, 40)
    ]
    assert distances[0] > distances[1] > distances[2]
    assert distances[2] < 0.2 * distances[0], distances


def test_variations_differ_and_each_is_the_one_made_alone_with_its_seed() -> None:
    together = make(tiny_engine(iterations=8, seed=3)).run((32, 32), count=3).image
    assert together.shape == (3, 3, 32, 32)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert (together[a] - together[b]).abs().mean() > 0.05
    for k in range(3):
        alone = make(tiny_engine(iterations=8, seed=3 + k)).run((32, 32)).image
        assert torch.allclose(together[k : k + 1], alone, atol=1e-4), k


def test_blended_paintings() -> None:
    other = smooth_image(32, 32)
    first = make(tiny_engine(iterations=6)).run((32, 32)).image
    only_first = make(tiny_engine(iterations=6, style_blend=(1.0, 0.0)), [PAINTING, other]).run((32, 32)).image
    half = make(tiny_engine(iterations=6, style_blend=(0.5, 0.5)), [PAINTING, other]).run((32, 32)).image
    assert torch.equal(first, only_first)  # a weight of 0 leaves that painting out
    assert (half - first).abs().mean() > 0.01


def test_a_tileable_texture_needs_an_encoder_that_wraps() -> None:
    with pytest.raises(ValueError, match="wrapped"):
        config = tiny_engine(style_layers=("relu1_1",), style_layer_weights=(1.0,))
        Texturer(lambda x: {"relu1_1": x}, [PAINTING], config, CPU, True)


def test_a_tileable_texture_reads_the_paintings_edge_padded_and_not_wrapped() -> None:
    # A painting does not wrap: its Grams come through edge padding, so the jump from
    # one edge to the opposite one is not a feature the texture must paint.
    encoder, config = TinyEncoder(), tiny_engine()
    tileable = make(config, tileable=True, encoder=encoder).targets.grams(32)
    replicated = make(config, encoder=encoder.replicated()).targets.grams(32)
    wrapped = make(config, encoder=encoder.wrapped()).targets.grams(32)
    for layer in config.style_layers:
        assert torch.allclose(tileable[layer], replicated[layer], atol=1e-6)
        assert not torch.allclose(tileable[layer], wrapped[layer], atol=1e-4)


def test_the_stand_in_encoder_wraps_as_the_network_does() -> None:
    """The stand-in that the tileable tests use pads circularly as the network's wrapped copy
    does (that one: test_the_vgg_copy_wraps_and_the_network_stays_as_it_was): only the edge
    features change, and a rolled picture has rolled features."""
    encoder = TinyEncoder()
    picture = smooth_image(16, 16)
    plain, wrapped = encoder(picture)["relu1_1"], encoder.wrapped()(picture)["relu1_1"]
    assert torch.equal(plain[..., 1:-1, 1:-1], wrapped[..., 1:-1, 1:-1])
    assert not torch.allclose(plain[..., :, 0], wrapped[..., :, 0])
    # A picture rolled by a few pixels has the rolled features of the wrapped encoder.
    rolled = encoder.wrapped()(picture.roll(5, dims=-1))["relu1_1"]
    assert torch.allclose(rolled, wrapped.roll(5, dims=-1), atol=1e-6)


def test_wrapped_total_variation_reads_across_the_edges() -> None:
    picture = torch.zeros(1, 3, 8, 8)
    picture[..., :, -1] = 1.0  # a step only where the right edge meets the left one
    plain, wrapped = TotalVariation(1.0), TotalVariation(1.0, wrap=True)
    args: Any = None
    pictures = Pictures(pixels=picture, picture=picture, features={})
    assert float(wrapped.value(pictures, args)) > float(plain.value(pictures, args))


def test_wrapped_upsampling_is_periodic() -> None:
    picture = smooth_image(8, 8)
    up = resize_wrapped(picture, (16, 16))
    shifted = resize_wrapped(picture.roll(2, dims=-1), (16, 16))
    assert torch.allclose(shifted, up.roll(4, dims=-1), atol=1e-5)


def test_wrapped_upsampling_keeps_the_coarse_pixels_and_has_no_pair_rhythm() -> None:
    """Bicubic steps more across pairs of fine pixels than inside them; the wrapped upsampling must not."""
    noise = 0.25 + 0.5 * torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    up = resize_wrapped(noise, (64, 64))
    assert torch.allclose(up[..., ::2, ::2], noise, atol=1e-5)

    def across_over_inside(picture: torch.Tensor) -> float:
        steps = (picture[..., 1:] - picture[..., :-1]).abs().mean(dim=(0, 1, 2))
        return float(steps[1::2].mean() / steps[0::2].mean())

    bicubic = F.interpolate(noise, size=(64, 64), mode="bicubic", align_corners=False)
    assert across_over_inside(bicubic) > 1.3
    assert 0.9 < across_over_inside(up) < 1.1


def test_a_tileable_texture_shows_no_seam_with_the_stand_in() -> None:
    config = tiny_engine(iterations=60, tv_weight=0.0)
    tiled = make(config, tileable=True).run((32, 32)).image
    plain = make(config).run((32, 32)).image
    assert seam_ratio(tiled) <= 1.2
    assert seam_ratio(tiled) < seam_ratio(plain)


def test_the_vgg_copy_wraps_and_the_network_stays_as_it_was(vgg_weights: VGGWeights) -> None:
    encoder = VGGFeatures(vgg_weights, ("relu1_1", "relu2_1"))
    picture = smooth_image(32, 32)
    wrapped = encoder.wrapped()
    assert all(getattr(layer, "padding_mode", "zeros") == "zeros" for layer in encoder.net)
    ours, plain = wrapped(picture)["relu2_1"], encoder(picture)["relu2_1"]
    assert torch.allclose(ours[..., 2:-2, 2:-2], plain[..., 2:-2, 2:-2], atol=1e-2)  # features of order 100
    assert not torch.allclose(ours[..., 0, :], plain[..., 0, :], atol=1.0)
    rolled = wrapped(picture.roll(8, dims=-1))["relu2_1"]  # 8 pixels: 4 after the pooling
    assert torch.allclose(rolled, ours.roll(4, dims=-1), atol=1e-2)


def test_a_tileable_texture_shows_no_seam_on_vgg19(vgg_weights: VGGWeights, painting_path: Path) -> None:
    """64 px, 30 iterations, fp32: about 2 s on two CPU cores."""
    config = EngineConfig(style_weight=5.0, iterations=30, scales=1, tolerance=0.0, precision="fp32")
    encoder = VGGFeatures(vgg_weights, config.style_layers)
    tiled = Texturer(encoder, [read_image(painting_path)], config, CPU, tileable=True).run((64, 64)).image
    assert seam_ratio(tiled) <= 1.2
