"""Style targets: the paintings blended into one Gram matrix per layer, for each output size."""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch

from pipeline.config import EngineConfig
from pipeline.engine.color import ColourPreservation
from pipeline.engine.losses import gram
from pipeline.engine.resize import resize_long_side
from pipeline.engine.terms import Encoder


class StyleTargets:
    """The style images and their blend weights; Gram targets computed once per long side.

    One instance serves many content images (an archive, or the frames of a video): the
    targets depend only on the output's long side, so they are cached, except where the
    painting is recoloured after each photo (``preserve_color``).
    """

    def __init__(
        self,
        styles: Sequence[torch.Tensor],
        features: Encoder,
        config: EngineConfig,
        min_side: int,
        device: torch.device,
    ) -> None:
        self.blend = blend_weights(len(styles), config.style_blend)
        self.styles = [s.to(device) for s in styles]
        self.features = features
        self.layers = config.style_layers
        self.scale = config.style_scale
        self.colour = ColourPreservation(config.preserve_color)
        self.min_side = min_side
        self._cache: dict[int, dict[str, torch.Tensor]] = {}

    def with_features(self, features: Encoder) -> StyleTargets:
        """The same paintings seen through another pass (another precision): a cache of its own."""
        other = copy.copy(self)
        other.features = features
        other._cache = {}
        return other

    def grams(self, long_side: int, content: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Blended Gram targets for an output whose long side is ``long_side``.

        Several styles are mixed by a weighted mean of their Gram matrices, one target
        per layer, rather than by a weighted sum of separate losses: the optimum is the
        same texture statistic and the loss stays one term per layer.
        """
        depends_on_content = self.colour.reads_content
        if not depends_on_content and long_side in self._cache:
            return self._cache[long_side]
        if depends_on_content and content is not None and content.shape[0] > 1:
            # A batch of photos: each recolours the painting its own way, so (N, C, C) targets.
            each = [self.grams(long_side, content[i : i + 1]) for i in range(content.shape[0])]
            return {layer: torch.stack([t[layer] for t in each]) for layer in self.layers}
        style_side = max(16, round(long_side * self.scale))
        targets: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for weight, style in zip(self.blend, self.styles):
                image = self.colour.painting(resize_long_side(style, wide_enough(style, style_side, self.min_side)), content)
                feats = self.features(image)
                for layer in self.layers:
                    g = weight * gram(feats[layer])[0]
                    targets[layer] = targets[layer] + g if layer in targets else g
        if not depends_on_content:
            self._cache[long_side] = targets
        return targets


def blend_weights(count: int, blend: Sequence[float]) -> list[float]:
    """The styles' shares of the blend, summing to one (equal where ``blend`` is empty)."""
    if not count:
        raise ValueError("at least one style image is needed")
    weights = tuple(blend) or (1.0,) * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} style weights for {count} style images")
    if sum(weights) <= 0:
        raise ValueError("style weights must not all be zero")
    return [w / sum(weights) for w in weights]


def wide_enough(image: torch.Tensor, long_side: int, min_side: int) -> int:
    """``long_side``, or more for a thin picture whose short side would end up below ``min_side``."""
    height, width = image.shape[-2:]
    return max(long_side, math.ceil(min_side * max(height, width) / max(1, min(height, width))))
