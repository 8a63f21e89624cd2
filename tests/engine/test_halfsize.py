"""The style terms at half the size and the sliced term's photo-relative scale: each against a
hand computation on tiny tensors, a gradient check, where they apply, and their settings."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from nstpipe.config import EngineConfig, build_settings
from nstpipe.engine.distribution import SlicedTerm, flat_features, mean_variance
from nstpipe.engine.halfsize import HalfSizeTerm
from nstpipe.engine.losses import gram_error, gram_norm
from nstpipe.engine.modes import style_transfer, texture
from nstpipe.engine.targets import StyleTargets
from nstpipe.engine.terms import GramTerm, Level, Pictures
from nstpipe.engine.vgg import VGGFeatures, VGGWeights
from nstpipe.errors import ConfigError

CPU = torch.device("cpu")


def level_for(encoder: TinyEncoder, size: tuple[int, int] = (24, 32), content: bool = True) -> Level:
    targets = StyleTargets([stripes_image(32, 32)], encoder, tiny_engine(), 2, CPU)
    return Level(size, encoder, content=smooth_image(*size) if content else None, styles=targets)


def see(encoder: TinyEncoder, x: torch.Tensor) -> Pictures:
    return Pictures(pixels=x, picture=x, features=encoder(x))


def test_half_size_term_is_the_gram_term_of_the_averaged_picture_against_the_half_size_target() -> None:
    encoder = TinyEncoder()
    level = level_for(encoder)
    term = HalfSizeTerm([GramTerm("relu1_1", 2.0)], min_side=8)
    x = smooth_image(24, 32, phase=1.5)
    value = term.value(see(encoder, x), term.prepare(level))
    # By hand: 2x2 means of the picture, its Gram against the painting's at a long side of 16.
    small = x.reshape(1, 3, 12, 2, 16, 2).mean(dim=(3, 5))
    target = level.styles.grams(16)["relu1_1"]  # type: ignore[union-attr]
    want = 2.0 * gram_error(encoder(small)["relu1_1"], target) / gram_norm(target)
    assert value.item() == pytest.approx(want.item(), rel=1e-5)
    full = GramTerm("relu1_1", 2.0)
    assert value.item() != pytest.approx(full.value(see(encoder, x), full.prepare(level)).item(), rel=1e-2)


def test_half_size_term_has_the_gradient_of_its_value() -> None:
    encoder = TinyEncoder()
    for name in ("w1", "b1", "w2"):
        setattr(encoder, name, getattr(encoder, name).double())
    targets = StyleTargets([stripes_image(16, 16).double()], encoder, tiny_engine(), 2, CPU)
    level = Level((8, 8), encoder, content=smooth_image(8, 8).double(), styles=targets)
    term = HalfSizeTerm([GramTerm("relu1_1", 1.0), GramTerm("relu2_1", 0.5)], min_side=2)
    target = term.prepare(level)
    x = smooth_image(8, 8, phase=0.7).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: term.value(see(encoder, p), target), (x,))


def test_half_size_term_is_left_out_below_the_smallest_level_and_where_read_by_tiles() -> None:
    encoder = TinyEncoder()
    term = HalfSizeTerm([GramTerm("relu1_1", 1.0)], min_side=12)
    assert term.applies(level_for(encoder, (24, 32)))
    assert not term.applies(level_for(encoder, (22, 32)))  # half: 11 x 16
    tiled = level_for(encoder)
    tiled.read = lambda picture, layer: encoder(picture)[layer]
    assert not term.applies(tiled)


def test_half_size_style_adds_the_style_terms_at_their_share_in_style_transfer_and_texture() -> None:
    assert not any(isinstance(t, HalfSizeTerm) for t in style_transfer(tiny_engine()).terms)
    for mode in (style_transfer, texture):
        (half,) = [t for t in mode(tiny_engine(half_size_style=0.5, style_loss="gram:1,sliced:2")).terms if isinstance(t, HalfSizeTerm)]
        weights = sorted(t.weight for t in half.terms)
        assert weights == pytest.approx([5.0 * 0.5 * 0.5] * 2 + [5.0 * 0.5 * 2 * 0.5] * 2)  # style * half * share * layer
        assert half.min_side == 8


def test_sliced_scale_moves_to_the_photos_variance_by_the_energy_power() -> None:
    encoder = TinyEncoder()
    level = level_for(encoder)
    level.content = smooth_image(24, 32) * 0.3  # a photo of less contrast than the painting
    painting = mean_variance(level.style_samples()["relu2_1"])
    photo = mean_variance(flat_features(encoder(level.content)["relu2_1"]))
    assert not torch.allclose(painting, photo, rtol=0.05)
    for power in (0.0, 1.0, 2.0):
        scale = SlicedTerm("relu2_1", 1.0, energy_power=power).prepare(level).scale
        want = painting ** (1 - power) * photo ** power
        assert torch.allclose(scale.reshape(-1), want.reshape(-1), rtol=1e-5)
    # Without a photo (a texture), the painting's own.
    alone = SlicedTerm("relu2_1", 1.0, energy_power=2.0).prepare(level_for(encoder, content=False)).scale
    assert torch.allclose(alone, painting)


def test_each_photo_of_a_batch_has_its_own_scale() -> None:
    encoder = TinyEncoder()
    level = level_for(encoder)
    level.content = torch.cat([smooth_image(24, 32), smooth_image(24, 32, phase=2.0) * 0.5])
    scale = SlicedTerm("relu2_1", 1.0, energy_power=1.0).prepare(level).scale
    assert scale.shape == (2,) and scale[0] > scale[1]


def test_a_run_with_both_settings_paints_closer_to_the_painting_at_half_size() -> None:
    encoder = TinyEncoder()
    from nstpipe.engine.stylize import Stylizer

    photo, painting = smooth_image(24, 32), stripes_image(32, 32)
    base = tiny_engine(style_loss="gram:1,sliced:1", iterations=40)
    config = replace(base, half_size_style=1.0, energy_power=1.0)
    judge = HalfSizeTerm([GramTerm("relu1_1", 1.0), GramTerm("relu2_1", 1.0)], min_side=8)
    target = judge.prepare(Level((24, 32), encoder, content=photo, styles=StyleTargets([painting], encoder, base, 2, CPU)))
    plain = Stylizer(encoder, [painting], base, CPU).run(photo).image
    both = Stylizer(encoder, [painting], config, CPU).run(photo).image
    assert judge.value(see(encoder, both), target).item() < 0.8 * judge.value(see(encoder, plain), target).item()


def test_the_settings_are_checked_and_off_they_leave_the_fingerprint() -> None:
    for key, bad in (("half_size_style", -1.0), ("half_size_style", float("nan")), ("energy_power", 5.0), ("energy_power", -0.5)):
        with pytest.raises(ConfigError, match=key):
            tiny_engine(**{key: bad})
    base = build_settings("default")
    assert build_settings("default", None, {"half_size_style": 0.0, "energy_power": 0.0}).fingerprint() == base.fingerprint()
    assert build_settings("default", None, {"half_size_style": 0.5}).fingerprint() != base.fingerprint()
    assert build_settings("default", None, {"energy_power": 1.0}).fingerprint() != base.fingerprint()


def test_half_size_term_averages_the_picture_it_is_given_and_leaves_it_alone() -> None:
    encoder = TinyEncoder()
    term = HalfSizeTerm([GramTerm("relu1_1", 1.0)], min_side=8)
    target = term.prepare(level_for(encoder))
    x = smooth_image(24, 32)
    before = x.clone()
    term.value(see(encoder, x), target)
    assert torch.equal(x, before)
    assert encoder.calls[-1] == tuple(F.avg_pool2d(x, 2).shape)


def test_the_opening_estimate_counts_the_half_size_pass() -> None:
    from nstpipe.app.sizes import cpu_estimate

    def minutes(overrides: dict[str, object]) -> int:
        said = cpu_estimate((1000, 750), build_settings("default", None, overrides))
        return int(said.split("about ")[1].split()[0]) * (60 if said.endswith(" h") else 1)

    assert minutes({"half_size_style": 1.0}) > minutes({})
    # A pass that stops at relu1_1 costs less than one through relu5_1.
    assert minutes({"half_size_style": 1.0}) > minutes({"half_size_style": 1.0, "half_size_layers": "relu1_1"})


def test_the_memory_plan_counts_the_half_size_pass() -> None:
    from nstpipe.engine.memory import image_memory, pass_bytes, plan_layout

    layers = ("relu1_1", "relu2_1")
    plain, half = tiny_engine(), tiny_engine(half_size_style=1.0)
    extra = pass_bytes(64 * 64 // 4, layers)
    def peak(config: EngineConfig) -> int:
        return plan_layout((64, 64), 1, config, layers, 1 << 40, 10).estimate

    assert peak(half) == peak(plain) + extra
    assert image_memory(64, half) > image_memory(64, plain)
    shallow = replace(half, half_size_layers=("relu1_1",))  # the pass stops at relu1_1
    assert peak(shallow) == peak(plain) + pass_bytes(64 * 64 // 4, ("relu1_1",)) < peak(half)


def test_half_size_layers_keep_those_layers_terms_at_their_full_size_weights() -> None:
    config = tiny_engine(half_size_style=0.5, style_loss="gram:1,sliced:2", half_size_layers=("relu1_1",))
    (half,) = [t for t in style_transfer(config).terms if isinstance(t, HalfSizeTerm)]
    assert [t.layers for t in half.terms] == [("relu1_1",), ("relu1_1",)]
    # The weights those terms have with every layer at half the size: dropping a layer does
    # not hand its share to the others.
    assert sorted(t.weight for t in half.terms) == pytest.approx([5.0 * 0.5 * 0.5, 5.0 * 0.5 * 2 * 0.5])
    assert half.deepest == "relu1_1"
    (every,) = [t for t in style_transfer(tiny_engine(half_size_style=0.5)).terms if isinstance(t, HalfSizeTerm)]
    assert every.deepest == "relu2_1"


def test_half_size_layers_are_checked_and_empty_they_leave_the_fingerprint() -> None:
    with pytest.raises(ConfigError, match="half_size_layers.*relu3_1"):
        tiny_engine(half_size_layers=("relu3_1",))  # not a style layer of the tiny engine
    base = build_settings("quality")
    same = build_settings("default", None, {"half_size_style": 0.5, "half_size_layers": ""})
    assert same.fingerprint() == build_settings("default", None, {"half_size_style": 0.5}).fingerprint()
    fewer = build_settings("default", None, {"half_size_style": 0.5, "half_size_layers": "relu1_1,relu2_1"})
    assert fewer.engine.half_size_layers == ("relu1_1", "relu2_1")
    assert fewer.fingerprint() != same.fingerprint()
    assert base.engine.half_size_layers


def test_the_half_size_pass_stops_at_the_deepest_layer_its_terms_read(vgg_weights: VGGWeights) -> None:
    encoder = VGGFeatures(vgg_weights, ("relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"))
    calls: list[str] = []
    for module, name in zip(encoder.net, encoder.names):
        module.register_forward_hook(lambda *_, name=name: calls.append(name))
    term = HalfSizeTerm([GramTerm("relu1_1", 1.0), GramTerm("relu2_1", 1.0)], min_side=8)
    small = smooth_image(16, 24)
    features = term.read(encoder, small)
    assert calls[-1] == "relu2_1" and "conv3_1" not in calls
    whole = encoder(small)
    assert set(features) == {"relu1_1", "relu2_1"}
    for layer in features:
        assert torch.equal(features[layer], whole[layer])
    # A stand-in encoder that cannot stop part-way is run whole.
    tiny = TinyEncoder()
    assert set(term.read(tiny, small)) == set(tiny(small))
    # Terms that read the encoder's deepest layer run its whole pass (forward, which compile
    # may have compiled), not a part of it.
    whole_calls: list[int] = []
    encoder.register_forward_hook(lambda *_: whole_calls.append(1))
    term.read(encoder, small)
    assert not whole_calls
    HalfSizeTerm([GramTerm("relu1_1", 1.0), GramTerm("relu5_1", 1.0)], min_side=8).read(encoder, small)
    assert whole_calls == [1]


def test_with_no_half_size_layers_the_terms_memory_and_estimate_stop_at_the_deepest_style_layer() -> None:
    """Every style layer shallower than the content layer and ``half_size_layers`` empty: the
    terms, the memory plan and the opening estimate all take the pass to the deepest style
    layer, not to the content layer that the whole picture's pass also reads."""
    from nstpipe.app.sizes import cpu_estimate
    from nstpipe.engine.memory import half_pass_bytes, pass_bytes

    config = tiny_engine(half_size_style=1.0, style_layers=("relu1_1",), style_layer_weights=(1.0,))  # content: relu2_1
    (half,) = [t for t in style_transfer(config).terms if isinstance(t, HalfSizeTerm)]
    assert half.deepest == "relu1_1"
    pixels = 64 * 64
    assert half_pass_bytes(pixels, config) == pass_bytes(pixels // 4, ("relu1_1",)) < pass_bytes(pixels // 4, config.layers)

    def estimate(overrides: dict[str, str]) -> str:
        return cpu_estimate((2000, 1500), build_settings("default", None, {"half_size_style": 1.0, **overrides}))

    shallow = {"style_layers": "relu1_1,relu2_1", "style_layer_weights": "1,1"}  # content: relu4_2
    deep = {"style_layers": "relu1_1,relu2_1,relu4_1", "style_layer_weights": "1,1,1"}
    assert estimate(shallow) == estimate({**shallow, "half_size_layers": "relu1_1,relu2_1"})
    assert estimate(shallow) != estimate(deep)  # a pass through relu4_1, near the content layer, costs more
