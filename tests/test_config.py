"""Presets, config files and overrides; validation; fingerprints."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from nstpipe.config import (
    LAYERS,
    EngineConfig,
    Settings,
    build_settings,
    preset_names,
    read_preset,
    settings_from_dict,
    texture_size,
)
from nstpipe.errors import ConfigError

PRESETS = ("fast", "default", "quality", "texture")


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_layer_names_follow_vgg19() -> None:
    assert len(LAYERS) == 16 + 16 + 5
    assert LAYERS[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYERS[LAYERS.index("relu3_4") + 1] == "pool3"
    assert LAYERS[-3:] == ("conv5_4", "relu5_4", "pool5")


def test_presets_exist() -> None:
    assert set(PRESETS) <= set(preset_names())


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_with_its_values(name: str) -> None:
    values = read_preset(name)
    assert values, "a preset must set something"
    flat = build_settings(name).to_dict()
    for key, value in values.items():
        assert flat[key] == pytest.approx(value), key


def test_presets_differ() -> None:
    assert build_settings("fast").fingerprint() != build_settings("quality").fingerprint()


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'turbo'"):
        build_settings("turbo")


def test_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError, match="'style_wieght'"):
        settings_from_dict({"style_wieght": 3.0})


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "c.toml", "iterations = 3\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match="'colour'"):
        build_settings("fast", config)


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        ({"style_wieght": 3.0}, "unknown setting 'style_wieght' (did you mean 'style_weight'?)"),
        ({"engine": {"size": 32}}, "unknown setting 'engine' (a [table]: settings are plain keys at the top of the file, e.g. size = 256)"),
        ({"zzz": 1}, "unknown setting 'zzz'"),
    ],
)
def test_an_unknown_key_says_what_it_was_likely_meant_as(data: dict[str, Any], hint: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from_dict(data)
    assert str(error.value) == hint


def test_a_list_where_a_text_is_meant_is_refused_as_given() -> None:
    with pytest.raises(ConfigError, match=r"^setting 'style_loss': cannot use \['gram'\]$"):
        settings_from_dict({"style_loss": ["gram"]})


def test_override_beats_preset_and_none_is_ignored() -> None:
    preset = build_settings("fast")
    settings = build_settings("fast", None, {"size": 48, "iterations": 5, "seed": None})
    assert settings.size == 48 and preset.size != 48
    assert settings.engine.iterations == 5
    assert settings.engine.seed == preset.engine.seed


def test_config_file_beats_preset_but_loses_to_overrides(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "mine.toml", "size = 40\niterations = 7\noptimizer = 'adam'\n")
    settings = build_settings("fast", config, {"size": 48})
    assert settings.size == 48  # flag wins
    assert settings.engine.iterations == 7  # file beats the preset
    assert settings.engine.optimizer == "adam"
    assert settings.engine.style_weight == build_settings("fast").engine.style_weight  # untouched: preset


def test_bad_config_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.toml"):
        build_settings("fast", tmp_path / "missing.toml")
    broken = write_toml(tmp_path / "broken.toml", "size = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        build_settings("fast", broken)


def test_a_config_file_not_in_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes("init = 'caf\u00e9.png'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin\.toml: not valid TOML \(not UTF-8 text: byte 11 is 0xe9\)"):
        build_settings("fast", latin)


def test_style_layers_without_weights_get_unit_weights() -> None:
    settings = settings_from_dict({"style_layers": "relu1_1, relu3_1,relu5_1"})
    assert settings.engine.style_layers == ("relu1_1", "relu3_1", "relu5_1")
    assert settings.engine.style_layer_weights == (1.0, 1.0, 1.0)
    from_list = settings_from_dict({"style_layers": ["relu2_1"], "style_layer_weights": [0.5]})
    assert from_list.engine.style_layer_weights == (0.5,)


def test_style_blend_from_a_flag_string() -> None:
    assert settings_from_dict({"style_blend": "0.7,0.3"}).engine.style_blend == (0.7, 0.3)


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"optimizer": "sgd"}, "optimizer"),
        ({"content_layer": "relu9_1"}, "content_layer"),
        ({"style_layers": "relu1_1,conv6_1"}, "style_layers"),
        ({"style_layers": "relu1_1,relu2_1", "style_layer_weights": [1.0]}, "style_layer_weights"),
        ({"pooling": "median"}, "pooling"),
        ({"preserve_color": "sepia"}, "preserve_color"),
        ({"iterations": -1}, "iterations"),
        ({"iterations": 2.5}, "iterations"),
        ({"iterations": "many"}, "iterations"),
        ({"scales": 0}, "scales"),
        ({"style_scale": 0.0}, "style_scale"),
        ({"style_blend": [1.0, -0.5]}, "style_blend"),
        ({"patience": 0}, "patience"),
        ({"size": 8}, "size"),
        ({"style_weight": float("nan")}, "style_weight"),
        ({"style_weight": -1.0}, "style_weight"),
        ({"content_weight": float("inf")}, "content_weight"),
        ({"tv_weight": "nan"}, "tv_weight"),
        ({"temporal_weight": -0.1}, "temporal_weight"),
        ({"tolerance": float("nan")}, "tolerance"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"style_scale": float("inf")}, "style_scale"),
        ({"style_blend": "0,0"}, "style_blend"),
        ({"style_blend": "0.5,nan"}, "style_blend"),
        ({"style_layer_weights": [0.0] * 5}, "style_layer_weights"),
        ({"coarse_iterations": -1}, "coarse_iterations"),
        ({"content_mix": float("nan")}, "content_mix"),
        ({"min_scale_size": 0}, "min_scale_size"),
        ({"later_iterations": -1}, "later_iterations"),
        ({"first_budget": 0.5}, "first_budget"),
        ({"first_budget": float("inf")}, "first_budget"),
        ({"crf": 52}, "crf"),
        ({"temporal_gaps": "2,4"}, "temporal_gaps"),
        ({"temporal_gaps": [1, 4, 2]}, "temporal_gaps"),
        ({"temporal_gaps": "1,1"}, "temporal_gaps"),
        ({"temporal_gaps": "1,two"}, "temporal_gaps"),
        # An empty item is a slip, a fraction no whole number, true no number: none is dropped or cut.
        ({"temporal_gaps": "1,,2"}, "temporal_gaps"),
        ({"temporal_gaps": [1, 2.5]}, "temporal_gaps"),
        ({"style_layers": ["relu1_1", ""]}, "style_layers"),
        ({"style_blend": "1,,2"}, "style_blend"),
        ({"patience": True}, "patience"),
        ({"style_weight": True}, "style_weight"),
        ({"video_passes": 0}, "video_passes"),
        ({"pass_iterations": -1}, "pass_iterations"),
        ({"pass_blend": 1.5}, "pass_blend"),
        ({"pass_blend": float("nan")}, "pass_blend"),
        ({"temporal_blend": 1.0}, "temporal_blend"),
        ({"temporal_blend": -0.1}, "temporal_blend"),
        ({"temporal_blend": float("nan")}, "temporal_blend"),
        ({"style_loss": "gram:"}, "style_loss"),
        ({"style_loss": "gram:1,sliced: "}, "style_loss"),
        ({"init": True}, "init"),
        ({"device": "gpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"device": "cpu:1"}, "device"),
        ({"seed": 2**64}, "seed"),
        ({"seed": -(2**63) - 1}, "seed"),
    ],
)
def test_bad_values_raise_config_error_naming_the_setting(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'") as error:
        settings_from_dict(data)
    assert error.value.key == key


def test_a_config_file_is_checked_like_a_flag(tmp_path: Path) -> None:
    """TOML has nan and inf literals: a file reaches the same checks as the command line."""
    config = write_toml(tmp_path / "c.toml", "style_weight = nan\n")
    with pytest.raises(ConfigError, match="'style_weight': must be a finite number, 0 or more"):
        build_settings("fast", config)


def test_numbers_are_coerced() -> None:
    settings = settings_from_dict({"size": 64.0, "style_weight": 3, "seed": "7"})
    assert settings.size == 64 and isinstance(settings.size, int)
    assert settings.engine.style_weight == 3.0 and isinstance(settings.engine.style_weight, float)
    assert settings.engine.seed == 7


@pytest.mark.parametrize(
    ("value", "expected"), [(True, True), (False, False), ("false", False), ("0", False), ("True", True), ("yes", True)]
)
def test_switches_read_words_not_truthiness(value: object, expected: bool) -> None:
    # bool("false") would be True.
    assert settings_from_dict({"compile": value}).engine.compile is expected


def test_a_switch_that_is_neither_raises_naming_it() -> None:
    with pytest.raises(ConfigError, match="'compile'"):
        settings_from_dict({"compile": "maybe"})


def test_batch_is_checked_and_left_out_of_the_fingerprint(tmp_path: Path) -> None:
    base = build_settings("fast")
    assert base.batch == 0  # auto
    four = build_settings("fast", write_toml(tmp_path / "b.toml", "batch = 4\n"))
    assert four.batch == 4 and four.fingerprint() == base.fingerprint()
    with pytest.raises(ConfigError, match="'batch'"):
        build_settings("fast", None, {"batch": -1})


def test_engine_layers_content_first_without_duplicates() -> None:
    engine = EngineConfig(content_layer="relu2_1", style_layers=("relu1_1", "relu2_1"), style_layer_weights=(1.0, 1.0))
    assert engine.layers == ("relu2_1", "relu1_1")


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().size = 12  # type: ignore[misc]


def test_fingerprint_tracks_settings_but_not_device() -> None:
    base = build_settings("fast", None, {"size": 48})
    assert len(base.fingerprint()) == 32
    assert base.fingerprint() == build_settings("fast", None, {"size": 48}).fingerprint()
    assert base.fingerprint() == build_settings("fast", None, {"size": 48, "device": "cpu"}).fingerprint()
    assert base.fingerprint() != build_settings("fast", None, {"size": 48, "seed": base.engine.seed + 1}).fingerprint()
    assert base.fingerprint() != build_settings("fast", None, {"size": 64}).fingerprint()
    assert base.fingerprint() != base.fingerprint({"styles": ["abc"]})
    # Only a video's later frames read the temporal weight: a video job counts it
    # (tests/jobs/test_video_job.py), a photo's fingerprint leaves it out.
    assert base.fingerprint() == build_settings("fast", None, {"size": 48, "temporal_weight": 7.0}).fingerprint()


def test_an_engine_revision_redoes_earlier_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    import nstpipe.config

    now = build_settings("fast").fingerprint()
    monkeypatch.setattr(nstpipe.config.settings, "ENGINE_REVISION", nstpipe.config.ENGINE_REVISION - 1)
    assert build_settings("fast").fingerprint() != now


def test_a_tileable_revision_redoes_tileable_textures_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import nstpipe.config

    kinds = [build_settings("texture", overrides={"mode": "texture", "tileable": t}) for t in (True, False)]
    kinds.append(build_settings())
    before = [s.fingerprint() for s in kinds]
    monkeypatch.setattr(nstpipe.config.settings, "TILEABLE_REVISION", nstpipe.config.TILEABLE_REVISION + 1)
    after = [s.fingerprint() for s in kinds]
    assert [b != a for b, a in zip(before, after)] == [True, False, False]


def test_a_meancov_revision_redoes_w2_outputs_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    import nstpipe.config.settings

    kinds = [build_settings(overrides={"style_loss": loss}) for loss in ("gram:1,meancov:1", "meancov", "gram:1,sliced:1")]
    kinds.append(build_settings())
    before = [s.fingerprint() for s in kinds]
    monkeypatch.setattr(nstpipe.config.settings, "MEANCOV_REVISION", nstpipe.config.settings.MEANCOV_REVISION + 1)
    after = [s.fingerprint() for s in kinds]
    assert [b != a for b, a in zip(before, after)] == [True, True, False, False]


@pytest.mark.parametrize("mix", [-0.1, 1.5])
def test_content_mix_is_a_share(mix: float) -> None:
    with pytest.raises(ConfigError, match="content_mix"):
        build_settings("default", None, {"content_mix": mix})


def test_style_transfer_fingerprints_are_pinned() -> None:
    # Pins finished outputs: a change here redoes every finished photo, folder and video of
    # style transfer. Engine revision 5 moved them on purpose (see ENGINE_REVISION: a run
    # from noise recolours each level's start; and the settings gained a start from noise
    # with the photo in it), so no output of revision 3 or 4 (below) is taken for one of today's.
    earlier = {"75f05e3e2e8e38c0669124ed2e2d692f", "5b05b7cd28e0ba6c46b39af105ba9b78", "89b077077b4d8e5b9e3d05eca8c17ef2",
               "0fdec7c39145ee059cbe46c0af5680d2",  # revision 3
               "5323af55edf6c4f32fcb3ccb97cd99c1", "87b8d036215201c38bba0db48b2dcd41", "8b4727a1d22522e887c9d7e45514e5bd",
               "87f8d891d0389e1f8994fd8bb6a4e925", "f945a9d3fb69cf4372c6d8715c685cce"}  # revision 4
    pinned = {
        Settings().fingerprint(): "9a1e0edb0dd4684020d00674928a3755",
        Settings().fingerprint({"styles": ["x"]}): "c14b64fcd101c8caa88abb2549bde52d",
        # The default before it started from noise: from the photo, two levels (docs/benchmarks.md,
        # "A start from noise"); its finished outputs stay valid for a run that asks for it.
        build_settings(overrides={"init": "content", "photo_share": 0.0, "content_weight": 1.0, "scales": 2,
                                  "coarsest_iterations": 0, "coarse_iterations": 40, "iterations": 60,
                                  "content_mix": 0.7}).fingerprint(): "3334717cce5f0ab7f1c945770b27f990",
        build_settings().fingerprint(): DEFAULT_FINGERPRINT,
    }
    for got, want in pinned.items():
        assert got == want
        assert got not in earlier
    # Texture settings are not read by style transfer, so they leave its fingerprint alone.
    tiled = settings_from_dict({"tileable": True, "texture_count": 3})
    assert tiled.fingerprint() == Settings().fingerprint()


DEFAULT_FINGERPRINT = "b22e2e5a2d0d4ed24b44c41a0a8a974e"


def test_the_fingerprint_tells_modes_and_texture_settings_apart() -> None:
    style, texture = build_settings("texture"), build_settings("texture", overrides={"mode": "texture"})
    assert style.fingerprint() != texture.fingerprint()
    others: list[dict[str, Any]] = [{"tileable": True}, {"texture_count": 2}, {"texture_width": 64, "texture_height": 32}, {"seed": 1}]
    prints = {build_settings("texture", overrides={"mode": "texture", **o}).fingerprint() for o in others}
    assert len(prints | {texture.fingerprint()}) == len(others) + 1


@pytest.mark.parametrize(
    "data, key",
    [
        ({"mode": "sleep well"}, "mode"),  # which modes exist is the registry's to say (nstpipe.modes.spec_of)
        ({"texture_count": 0}, "texture_count"),
        ({"texture_width": 64}, "texture_height"),
        ({"texture_height": 64}, "texture_width"),
        ({"texture_width": 8, "texture_height": 64}, "texture_width"),
        ({"tileable": "sometimes"}, "tileable"),
    ],
)
def test_texture_settings_are_checked(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(data)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_dream_settings_count_only_in_the_dream_and_tell_it_from_style_transfer() -> None:
    dream = build_settings("dream", overrides={"mode": "dream"})
    assert dream.dream.dream_layers == ("relu4_2",) and dream.engine.optimizer == "normalized"
    # Style transfer's fingerprint ignores the dream settings; the dream's holds them all.
    assert build_settings(overrides={"octave_scale": 2.0}).fingerprint() == build_settings().fingerprint()
    others: list[dict[str, Any]] = [{"dream_layers": "relu3_1"}, {"dream_channels": "3"}, {"octave_scale": 1.6}, {"dream_jitter": 0}]
    prints = {build_settings("dream", overrides={"mode": "dream", **o}).fingerprint() for o in others}
    assert len(prints | {dream.fingerprint()}) == len(others) + 1
    as_style = build_settings("dream", overrides={"mode": "style"})
    assert as_style.fingerprint() != dream.fingerprint()


@pytest.mark.parametrize(
    "data, key",
    [
        ({"dream_layers": "relu9_9"}, "dream_layers"),
        ({"dream_layers": ""}, "dream_layers"),
        ({"dream_layers": "relu2_1", "dream_channels": "128"}, "dream_channels"),
        ({"dream_channels": "-1"}, "dream_channels"),
        ({"octave_scale": 1.0}, "octave_scale"),
        ({"octave_scale": float("inf")}, "octave_scale"),
        ({"dream_jitter": -1}, "dream_jitter"),
        ({"optimizer": "sgd"}, "optimizer"),
    ],
)
def test_dream_settings_are_checked(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(data)
    assert caught.value.key == key
    assert "\n" not in str(caught.value)


def test_texture_size_is_rounded_for_wrapping() -> None:
    square = build_settings("texture", overrides={"mode": "texture", "size": 100})
    assert texture_size(square) == (100, 100)
    tiled = build_settings("texture", overrides={"mode": "texture", "size": 100, "tileable": True, "scales": 2})
    assert texture_size(tiled) == (96, 96)  # a multiple of 32: 16 for relu5_1's pooling, 2 for one coarser level
    wide = {"mode": "texture", "texture_width": 70, "texture_height": 44, "tileable": True, "scales": 1}
    assert texture_size(build_settings("texture", overrides=wide)) == (48, 64)  # to the nearest multiple of 16


def test_temporal_gaps_count_for_a_video_not_for_a_photo(tmp_path: Path) -> None:
    from nstpipe.jobs.records import make_video_job
    from nstpipe.media.video import VideoInfo

    short, long = build_settings("fast", None, {"temporal_gaps": "1"}), build_settings("fast")
    assert long.video.temporal_gaps == (1, 2, 4, 8, 16) and short.video.temporal_gaps == (1,)  # the default holds frames further back
    assert short.fingerprint() == long.fingerprint()  # a photo is painted the same
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"frames")
    info = VideoInfo(width=32, height=24, frame_count=3, fps=Fraction(10), rotation=0, audio_streams=0, duration=0.3)
    assert make_video_job(short, [], clip, info).fingerprint != make_video_job(long, [], clip, info).fingerprint
    # So do the passes over a chain: another value paints the video anew.
    # Each against ``short`` with that one setting changed (fast keeps the still pixels, so
    # the hold is turned off), not against the preset's other temporal gaps.
    for change in ({"video_passes": 2}, {"pass_iterations": 5}, {"pass_blend": 0.9}, {"temporal_blend": 0.3}, {"hold_still": False}):
        other = build_settings("fast", None, {"temporal_gaps": "1", **change})
        assert other.fingerprint() == short.fingerprint(), change
        assert make_video_job(other, [], clip, info).fingerprint != make_video_job(short, [], clip, info).fingerprint, change


def test_no_temporal_gaps_are_named_as_none() -> None:
    with pytest.raises(ConfigError, match=r"temporal_gaps.*\(got none\)"):
        settings_from_dict({"temporal_gaps": []})
