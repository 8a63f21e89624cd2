"""The real thing at 48 px: embedded VGG19, a photo and a painting, a short optimization."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nstpipe.config import EngineConfig
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS, Distances, distances
from nstpipe.engine.resize import resize_long_side
from nstpipe.engine.stylize import Stylizer
from nstpipe.engine.vgg import VGGFeatures, VGGWeights
from nstpipe.modes.model import read_image

SIZE = 48


@pytest.fixture(scope="module")
def metric_encoder(vgg_weights: VGGWeights) -> VGGFeatures:
    return VGGFeatures(vgg_weights, (*STYLE_LAYERS, CONTENT_LAYER))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_stylizing_lowers_the_style_distance(
    optimizer: str, vgg_weights: VGGWeights, metric_encoder: VGGFeatures, photo_path: Path, painting_path: Path
) -> None:
    config = EngineConfig(
        content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS, style_weight=5.0,
        optimizer=optimizer, learning_rate=0.03, iterations=20, scales=1,
    )
    photo = read_image(photo_path, SIZE)
    painting = read_image(painting_path)
    assert photo.shape == (1, 3, 36, 48)
    encoder = VGGFeatures(vgg_weights, config.layers)
    result = Stylizer(encoder, [painting], config).run(photo)
    assert result.iterations == 20 and torch.isfinite(result.image).all()

    style_at_size = resize_long_side(painting, SIZE)  # what the stylizer matched (style_scale 1)
    before: Distances = distances(metric_encoder, photo, photo, style_at_size)
    after: Distances = distances(metric_encoder, result.image, photo, style_at_size)
    assert before.content == 0.0
    assert after.style < 0.7 * before.style, (before, after)
    assert 0.01 < after.content < 0.8, after  # moved away from the photo, but not lost
