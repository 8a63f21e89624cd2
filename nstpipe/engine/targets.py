"""Style targets: the paintings blended into one Gram matrix per layer, for each output size."""

from __future__ import annotations

import copy
import functools
import math
import operator
from typing import Any, Callable, Mapping, Sequence

import torch

from nstpipe.config import EngineConfig, style_terms
from nstpipe.engine.color import ColourPreservation, mixture_moments, painting_pixels
from nstpipe.engine.distribution import flat_features, mixture, moments
from nstpipe.engine.losses import gram, widen
from nstpipe.engine.memory import budget_bytes
from nstpipe.engine.resize import resize_long_side
from nstpipe.engine.terms import Encoder
from nstpipe.engine.tiledread import Sums, read_tile, samples, sums


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
        self.kinds = {STATISTIC_OF_TERM[name] for name, _ in style_terms(config.style_loss)}
        self.budget = budget_bytes(config.max_memory, device)
        self._cache: dict[tuple[str, int], dict[str, Any]] = {}
        self._pixels: dict[int, torch.Tensor] = {}

    def with_features(self, features: Encoder) -> StyleTargets:
        """The same paintings seen through another pass (another precision): a cache of its own."""
        other = copy.copy(self)
        other.features = features
        other._cache = {}
        return other

    def palette(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The paintings' colour mean (1, 3, 1) and covariance (1, 3, 3), pooled by blend weight."""
        return mixture_moments(self.styles, self.blend)

    def pixels(self, long_side: int) -> torch.Tensor:
        """A fixed sample (3, M) of the paintings' pixels, pooled by blend weight, each
        painting at the scale an output of ``long_side`` is painted with (its colours as
        they are mixed at that scale): the colour distribution a transported start takes."""
        if long_side not in self._pixels:
            side = max(16, round(long_side * self.scale))
            self._pixels[long_side] = painting_pixels([resize_long_side(s, side) for s in self.styles], self.blend)
        return self._pixels[long_side]

    def grams(self, long_side: int, content: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Blended Gram targets for an output whose long side is ``long_side``.

        Several styles are mixed by a weighted mean of their Gram matrices, one target
        per layer, rather than by a weighted sum of separate losses: the optimum is the
        same texture statistic and the loss stays one term per layer.
        """
        return self._derived("grams", long_side, content)

    def moments(self, long_side: int, content: torch.Tensor | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """The features' mean (C,) and covariance (C, C) by layer, of the paintings' mixture
        (each painting a share of the points, as its blend weight says)."""
        return self._derived("moments", long_side, content)

    def samples(self, long_side: int, content: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The paintings' features by layer, (C, M) in fp32: each painting's points, a share
        of them as its blend weight says, at most ``MAX_SAMPLES`` in all."""
        return self._derived("samples", long_side, content)

    def _derived(self, kind: str, long_side: int, content: torch.Tensor | None) -> dict[str, Any]:
        """One statistic of the paintings, cached by long side unless the painting is
        recoloured after each photo; a batch of photos gets one per photo, stacked. The
        paintings are encoded once for every statistic that the style terms read, so a
        second term at the same size costs no second pass."""
        depends_on_content = self.colour.reads_content
        key = (kind, long_side)
        if not depends_on_content and key in self._cache:
            return self._cache[key]
        if depends_on_content and content is not None and content.shape[0] > 1:
            each = [self._derived(kind, long_side, content[i : i + 1]) for i in range(content.shape[0])]
            stack = STACKS.get(kind, torch.stack)
            return {layer: stack([t[layer] for t in each]) for layer in self.layers}
        kinds = {kind} if depends_on_content else {kind} | self.kinds
        with torch.no_grad():
            paintings = self._paintings(long_side, content)
            computed = {k: BLENDS[k](paintings, self.layers) for k in kinds}
        if not depends_on_content:
            self._cache.update({(k, long_side): targets for k, targets in computed.items()})
        return computed[kind]

    def _paintings(self, long_side: int, content: torch.Tensor | None) -> list[tuple[float, Painting]]:
        """Each painting's blend weight and features, at the scale that an output of
        ``long_side`` is painted with; read tile by tile where one pass over the painting
        does not fit the memory budget."""
        style_side = max(16, round(long_side * self.scale))
        out = []
        for weight, style in zip(self.blend, self.styles):
            image = self.colour.painting(resize_long_side(style, wide_enough(style, style_side, self.min_side)), content)
            tile = read_tile((image.shape[-2], image.shape[-1]), self.layers, self.budget)
            out.append((weight, Painting(self.features(image) if tile is None else None, self.features, image, self.layers, tile)))
        return out


# The paintings' points kept for a sliced term at a layer: a 1024 px painting has a million
# at relu1_1, and the quantiles of a quarter of them are the same within sampling noise.
MAX_SAMPLES = 1 << 18


class Painting:
    """One painting's features at one scale: whole (``features``), or read tile by tile
    from ``image`` through ``encoder`` when ``tile`` is given (see :mod:`nstpipe.engine.tiledread`)."""

    def __init__(
        self, features: Mapping[str, torch.Tensor] | None, encoder: Encoder, image: torch.Tensor, layers: Sequence[str],
        tile: tuple[int, int] | None,
    ) -> None:
        self.features, self.encoder, self.image, self.layers, self.tile = features, encoder, image, tuple(layers), tile
        self._sums: dict[str, Sums] | None = None

    def gram(self, layer: str) -> torch.Tensor:
        return gram(self.features[layer])[0] if self.features is not None else self.sums()[layer].gram()

    def moments(self, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        return feature_moments(self.features[layer]) if self.features is not None else self.sums()[layer].moments()

    def samples(self, layer: str, share: float, generator: torch.Generator) -> torch.Tensor:
        if self.features is not None:
            return subsample(self.features[layer], share, generator)
        assert self.tile is not None
        count = self.sums()[layer].count
        keep = min(count, max(1, round(share * min(count, MAX_SAMPLES))))
        return samples(self.encoder, self.image, [layer], self.tile, {layer: keep / count}, generator)[layer]

    def sums(self) -> dict[str, Sums]:
        if self._sums is None:
            assert self.tile is not None
            self._sums = sums(self.encoder, self.image, self.layers, self.tile)
        return self._sums


def subsample(features: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """``share`` of the points of ``features`` (1, C, H, W), as (C, m) fp32, at most
    ``share * MAX_SAMPLES``; all of them where that many fit."""
    flat = widen(features[0]).flatten(1)
    keep = min(flat.shape[1], max(1, round(share * min(flat.shape[1], MAX_SAMPLES))))
    if keep == flat.shape[1]:
        return flat
    index = torch.randperm(flat.shape[1], generator=generator)[:keep].to(flat.device)
    return flat[:, index]


def feature_moments(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (C,) and covariance (C, C) of one picture's features (1, C, H, W), in fp32."""
    mean, cov = moments(flat_features(features))
    return mean[0], cov[0]


Paintings = list[tuple[float, Painting]]


def blend_grams(paintings: Paintings, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """The blend-weighted mean of the paintings' Gram matrices, by layer."""
    return {layer: functools.reduce(operator.add, [w * feats.gram(layer) for w, feats in paintings]) for layer in layers}


def blend_moments(paintings: Paintings, layers: Sequence[str]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The mean and covariance of the paintings' features pooled as a mixture, by layer."""
    return {layer: mixture([(w, *feats.moments(layer)) for w, feats in paintings]) for layer in layers}


def blend_samples(paintings: Paintings, layers: Sequence[str]) -> dict[str, torch.Tensor]:
    """Each painting's share of the points, by layer (a fixed seed: the same points every run)."""
    gen = torch.Generator().manual_seed(0)
    return {layer: torch.cat([feats.samples(layer, w, gen) for w, feats in paintings], dim=1) for layer in layers}


def _stack_pairs(each: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([m for m, _ in each]), torch.stack([c for _, c in each])


BLENDS: dict[str, Callable[[Paintings, Sequence[str]], dict[str, Any]]] = {
    "grams": blend_grams,
    "moments": blend_moments,
    "samples": blend_samples,
}
STACKS: dict[str, Callable[[list[Any]], Any]] = {"moments": _stack_pairs}
# The statistic that each style term reads.
STATISTIC_OF_TERM = {"gram": "grams", "meancov": "moments", "sliced": "samples"}


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
