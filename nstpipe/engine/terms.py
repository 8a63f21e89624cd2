"""The terms an objective is made of: each reads some layers (or the pixels alone), prepares a
target for a pyramid level, and gives one value per picture of a batch.

A term's value must be a pure function of the pixels and of the fixed tensors its target
holds: the CUDA-graph path records the pass once per level and replays it
(:mod:`nstpipe.engine.cudagraph`), reading those tensors where they were at the recording.

A new kind of picture (a texture from noise, an activation to climb, a channel to show) is
a new term here, put into a :class:`~nstpipe.engine.modes.Mode` with the others.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Generic, Mapping, Protocol, Sequence, TypeVar

import torch

from nstpipe.engine.losses import (
    gram_error,
    gram_norm,
    squared_error,
    squared_norm,
    temporal_loss,
    tv_loss,
    tv_loss_wrapped,
    widen,
)
from nstpipe.engine.resize import fit_long_side, resize

Encoder = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
T = TypeVar("T")

# Weight of the pull back into [0, 1] on the mean squared excess of the pixels outside it
# (see Objective.picture): a pixel 0.1 out on 1% of the picture costs 1e-3, against losses
# of order 1. Enough to keep L-BFGS's steps finite there; 100 and more made its steps
# overshoot on a small problem (tests/test_perf.py), where the loss then rose.
OUTSIDE_WEIGHT = 10.0


@dataclass(frozen=True)
class TemporalTarget:
    """The previous stylized frame warped onto this one, and where to trust it."""

    warped: torch.Tensor  # (N, 3, H, W) RGB in [0, 1]
    mask: torch.Tensor  # (H, W), (1, 1, H, W) or (N, 1, H, W), 1 = trust

    def at(self, size: tuple[int, int], device: torch.device) -> TemporalTarget:
        """The frame and its mask resized to ``size``, the mask as (N or 1, 1, h, w)."""
        mask = self.mask.to(device, torch.float32)
        mask = mask.reshape((1, 1) + tuple(mask.shape)) if mask.dim() == 2 else mask
        warped = resize(self.warped.to(device, torch.float32), size)
        return TemporalTarget(warped=warped, mask=resize(mask, size))


class GramSource(Protocol):
    """The paintings' statistics by layer for an output whose long side is ``long_side``:
    Gram targets, the features' mean and covariance, and the features themselves (C, M)."""

    def grams(self, long_side: int, content: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]: ...

    def moments(self, long_side: int, content: torch.Tensor | None = None) -> Mapping[str, tuple[torch.Tensor, torch.Tensor]]: ...

    def samples(self, long_side: int, content: torch.Tensor | None = None) -> Mapping[str, torch.Tensor]: ...


class Level:
    """What the terms may read when they prepare their targets for one level of the pyramid.

    The photo, the paintings' Grams and the predecessor frame at this level's size, as far
    as the run has them. The photo's features and the Grams are computed once per level,
    however many terms read them.
    """

    def __init__(
        self,
        size: tuple[int, int],
        features: Encoder,
        content: torch.Tensor | None = None,
        styles: GramSource | None = None,
        temporal: TemporalTarget | None = None,
        read: Callable[[torch.Tensor, str], torch.Tensor] | None = None,
    ) -> None:
        """``read(picture, layer)``: a layer's features of a picture too large for one pass
        (read tile by tile); None: the whole picture in one pass."""
        self.size = size
        self.features = features
        self.content = content
        self.styles = styles
        self.temporal = temporal
        self.read = read
        self._content_features: Mapping[str, torch.Tensor] | None = None
        self._grams: Mapping[str, torch.Tensor] | None = None

    def content_features(self) -> Mapping[str, torch.Tensor]:
        if self.content is None:
            raise ValueError("a term reads the content photo, and this run has none")
        if self._content_features is None:
            with torch.no_grad():
                self._content_features = self.features(self.content)
        return self._content_features

    def content_feature(self, layer: str) -> torch.Tensor:
        """The photo's features at ``layer`` (tile by tile where the level reads so)."""
        if self.read is None or self.content is None:
            return self.content_features()[layer]
        return self.read(self.content, layer)

    def grams(self) -> Mapping[str, torch.Tensor]:
        if self._grams is None:
            self._grams = self._styles().grams(max(self.size), self.content)
        return self._grams

    def style_moments(self) -> Mapping[str, tuple[torch.Tensor, torch.Tensor]]:
        """The paintings' feature mean (C,) and covariance (C, C) by layer (per photo: (N, ...))."""
        return self._styles().moments(max(self.size), self.content)

    def style_samples(self) -> Mapping[str, torch.Tensor]:
        """The paintings' features by layer, (C, M) (per photo: (N, C, M))."""
        return self._styles().samples(max(self.size), self.content)

    def _styles(self) -> GramSource:
        if self.styles is None:
            raise ValueError("a term reads the style targets, and this run has none")
        return self.styles


@dataclass(frozen=True)
class Pictures:
    """A batch of pictures as the terms see them."""

    pixels: torch.Tensor  # what the optimizer moves, unbounded
    picture: torch.Tensor  # the pixels clamped to [0, 1], as saved
    features: Mapping[str, torch.Tensor]  # of ``picture``
    items: Sequence[int] | None = None  # which batch items these are (None: all of them)

    def pick(self, target: torch.Tensor, batched_dims: int = 4) -> torch.Tensor:
        """The rows of a per-picture target for these items; one shared by the batch as it is."""
        if self.items is None or target.dim() < batched_dims or target.shape[0] == 1:
            return target
        return target[list(self.items)]


class Term(ABC, Generic[T]):
    """One part of an objective: ``weight`` times a distance, per picture.

    ``layers``: the encoder layers the term reads (none: it reads the pixels alone); the
    encoder is cut after the deepest layer that any term of a mode reads.
    ``needs_content``: whether it cannot be prepared without a content photo.
    """

    layers: tuple[str, ...] = ()
    needs_content: bool = False

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def applies(self, level: Level) -> bool:
        """Whether the term counts at this level (off: left out of the sum altogether)."""
        return True

    @abstractmethod
    def prepare(self, level: Level) -> T:
        """The fixed tensors of this level's target, with the weight folded in where that
        saves work in every step."""

    @abstractmethod
    def value(self, pictures: Pictures, target: T) -> torch.Tensor:
        """One loss per picture, (N,) in fp32."""

    def refresh(self, target: T, step: int) -> None:
        """Before optimizer step ``step`` (from 1): a stochastic term redraws what it draws
        (in place, so a recorded CUDA graph reads it); the others keep their target."""


class LayerTerm(Term[T]):
    """A term that reads the features of one encoder layer, ``layer``."""

    def __init__(self, layer: str, weight: float) -> None:
        super().__init__(weight)
        self.layer = layer
        self.layers = (layer,)


@dataclass(frozen=True)
class Folded:
    """A target and the term's weight over the target's squared norm: a relative error then
    costs a squared error and one product per step. On a GPU an iteration waits on the
    host's launches, so operators saved are time saved."""

    target: torch.Tensor
    coef: torch.Tensor  # () shared, or (N,) with a target per picture


class ContentTerm(LayerTerm[Folded]):
    """Relative squared error of the features at ``layer`` against the photo's."""

    needs_content = True

    def prepare(self, level: Level) -> Folded:
        return self.fold(level.content_feature(self.layer))

    def fold(self, features: torch.Tensor) -> Folded:
        target = widen(features)
        return Folded(target, self.weight / squared_norm(target))

    def value(self, pictures: Pictures, target: Folded) -> torch.Tensor:
        error = squared_error(pictures.features[self.layer], pictures.pick(target.target))
        return error * pictures.pick(target.coef, batched_dims=1)


class GramTerm(LayerTerm[Folded]):
    """Relative squared error of the Gram matrix at ``layer`` against the paintings' blended one."""

    def prepare(self, level: Level) -> Folded:
        return self.fold(level.grams()[self.layer])

    def fold(self, target_gram: torch.Tensor) -> Folded:
        """``target_gram`` (C, C) shared by the batch, or (N, C, C) one per picture."""
        return Folded(target_gram, self.weight / gram_norm(target_gram))

    def value(self, pictures: Pictures, target: Folded) -> torch.Tensor:
        error = gram_error(pictures.features[self.layer], pictures.pick(target.target, batched_dims=3))
        return error * pictures.pick(target.coef, batched_dims=1)


class TotalVariation(Term[None]):
    """Mean squared difference of neighbouring pixels; off at weight 0. ``wrap``: across the
    edges too (a tileable picture, whose edges are neighbours)."""

    def __init__(self, weight: float, wrap: bool = False) -> None:
        super().__init__(weight)
        self.wrap = wrap

    def applies(self, level: Level) -> bool:
        return bool(self.weight)

    def prepare(self, level: Level) -> None:
        return None

    def value(self, pictures: Pictures, target: None) -> torch.Tensor:
        return self.weight * (tv_loss_wrapped if self.wrap else tv_loss)(pictures.picture)


class TemporalTerm(Term[TemporalTarget]):
    """Masked mean squared difference to the warped predecessor frame, where a run has one."""

    def applies(self, level: Level) -> bool:
        return level.temporal is not None

    def prepare(self, level: Level) -> TemporalTarget:
        assert level.temporal is not None
        return level.temporal

    def value(self, pictures: Pictures, target: TemporalTarget) -> torch.Tensor:
        warped, mask = pictures.pick(target.warped), pictures.pick(target.mask)
        return self.weight * temporal_loss(pictures.picture, warped, mask)


class RangePull(Term[None]):
    """The mean squared excess of the pixels outside [0, 1] (see ``Objective.picture``)."""

    def __init__(self, weight: float = OUTSIDE_WEIGHT) -> None:
        super().__init__(weight)

    def prepare(self, level: Level) -> None:
        return None

    def value(self, pictures: Pictures, target: None) -> torch.Tensor:
        # The clamped picture is constant here: where it moves with the pixels (inside the
        # range) the excess is 0, so the gradient is 2 * excess either way, and the graph
        # keeps one whole-picture tensor where autograd's subtraction and square kept four.
        pixels = pictures.pixels
        return self.weight * squared_error(pixels, pictures.picture.detach()) / pixels[0].numel()


class ChannelTerm(LayerTerm[torch.Tensor]):
    """Minus the mean activation of one channel of ``layer``, per picture: minimized, the
    channel is driven up (feature visualization). ``channels``: one index shared by the
    batch, or one per picture (picture i shows channel ``channels[i]``)."""

    def __init__(self, layer: str, channels: Sequence[int], weight: float = 1.0) -> None:
        super().__init__(layer, weight)
        self.channels = tuple(channels)

    def prepare(self, level: Level) -> torch.Tensor:
        return torch.tensor(self.channels, dtype=torch.long)  # (N,) or (1,): fixed, never changed

    def value(self, pictures: Pictures, target: torch.Tensor) -> torch.Tensor:
        features = pictures.features[self.layer]
        n = features.shape[0]
        index = pictures.pick(target, batched_dims=1).to(features.device).reshape(-1, 1).expand(n, 1)
        means = features.float().mean(dim=(2, 3))  # (N, C)
        return -self.weight * means.gather(1, index).squeeze(1)


class ActivationTerm(Term[dict[str, torch.Tensor]]):
    """Minus the mean squared activation of ``layers`` (of their ``channels`` only, where
    given), each over the photo's own: what DeepDream climbs (its 0.5 |F|^2), as a gain.

    Over the photo's, so that the value reads the same at every octave and in every frame
    (1 at the start, the dream gain after), and a temporal term's weight means the same
    against it whatever the layer. The layers count equally.
    """

    needs_content = True

    def __init__(self, layers: Sequence[str], channels: Sequence[int] = (), weight: float = 1.0) -> None:
        super().__init__(weight)
        self.layers = tuple(layers)
        self.channels = tuple(channels)

    def energy(self, features: torch.Tensor) -> torch.Tensor:
        """Mean squared activation per picture, (N,) in fp32, of the chosen channels."""
        chosen = features[:, list(self.channels)] if self.channels else features
        return chosen.float().pow(2).flatten(1).mean(1)

    def prepare(self, level: Level) -> dict[str, torch.Tensor]:
        photo = level.content_features()
        share = self.weight / len(self.layers)
        return {layer: share / self.energy(photo[layer]).clamp_min(1e-12) for layer in self.layers}

    def value(self, pictures: Pictures, target: dict[str, torch.Tensor]) -> torch.Tensor:
        gains = [self.energy(pictures.features[layer]) * pictures.pick(coef, batched_dims=1) for layer, coef in target.items()]
        return -torch.stack(gains).sum(0)


class GuideTerm(Term[dict[str, torch.Tensor]]):
    """DeepDream guided by a picture (the original notebook's ``objective_guide``): minus
    the mean, over the positions of ``layers``, of the best dot product of the feature
    there with any of the guide's features. Its gradient at each position is the guide's
    best-matching feature, so the dream grows what the guide shows rather than whatever
    the layer answers most. Over the guide's mean squared feature, so that it reads as a
    gain, as :class:`ActivationTerm` does.
    """

    def __init__(self, layers: Sequence[str], guide: torch.Tensor, weight: float = 1.0) -> None:
        super().__init__(weight)
        self.layers = tuple(layers)
        self.guide = guide  # (1, 3, H, W) RGB in [0, 1], on the encoder's device

    def prepare(self, level: Level) -> dict[str, torch.Tensor]:
        # The guide at the level's long side: its features then have the scale of the dream's.
        height, width = self.guide.shape[-2:]
        guide = resize(self.guide, fit_long_side(height, width, max(level.size)))
        with torch.no_grad():
            features = level.features(guide)
        share = self.weight / len(self.layers)
        targets = {}
        for layer in self.layers:
            matrix = features[layer].float().flatten(2)[0]  # (C, m)
            targets[layer] = matrix * (share / matrix.pow(2).sum(0).mean().clamp_min(1e-12))
        return targets

    def value(self, pictures: Pictures, target: dict[str, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros((), device=pictures.picture.device)
        for layer, guide in target.items():
            features = pictures.features[layer].float().flatten(2).transpose(1, 2)  # (N, hw, C)
            total = total + (features @ guide).amax(dim=2).mean(dim=1)  # (N,)
        return -total
