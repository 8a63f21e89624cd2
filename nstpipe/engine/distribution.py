"""Distribution style terms: the painting's features matched as a distribution, not by Grams.

A Gram matrix is the features' second raw moment: two pictures can share it and still differ
in their mean colours and in everything beyond the second moment. These terms compare more
of the distribution:

* :class:`MeanCovTerm`, the Wasserstein-2 distance between Gaussians fitted to the features
  (means and covariances; crowsonkb/style-transfer-pytorch's ``StyleLossW2``);
* :class:`SlicedTerm`, the sliced Wasserstein distance (Heitz et al. 2021): the features
  projected on random directions, each projection's sorted values against the painting's
  quantiles, so every marginal along those directions is matched, not just two moments.

Each is divided by the painting's own spread at the layer, so that, like the relative Gram
error, it reads the same at every layer and size and one weight serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from nstpipe.engine.losses import widen
from nstpipe.engine.terms import LayerTerm, Level, Pictures

# Added to the eigenvalues under the square root: the gradient of sqrt(x) is unbounded at
# 0, and a flat region of the picture has covariances of rank below C.
EIG_EPS = 1e-8


def flat_features(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, H*W) in fp32."""
    return widen(features).flatten(2)


def moments(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (N, C) and covariance (N, C, C) of the columns of ``flat`` (N, C, M)."""
    mean = flat.mean(2)
    centred = flat - mean.unsqueeze(2)
    return mean, centred @ centred.transpose(1, 2) / flat.shape[2]


def mixture(parts: Sequence[tuple[float, torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (..., C) and covariance (..., C, C) of a mixture: each part a weight (the weights
    summing to one), its mean and its covariance. The mixture's second moment is the weighted
    sum of the parts' (covariance plus the mean's outer product), less the mean's."""
    def outer(m: torch.Tensor) -> torch.Tensor:
        return m.unsqueeze(-1) * m.unsqueeze(-2)

    (w0, m0, c0), rest = parts[0], parts[1:]
    mean, raw = w0 * m0, w0 * (c0 + outer(m0))
    for w, m, c in rest:
        mean, raw = mean + w * m, raw + w * (c + outer(m))
    return mean, raw - outer(mean)


def sqrtm_psd(matrix: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """The symmetric square root of a positive semi-definite matrix, (..., C, C), its
    eigenvalues raised to ``floor`` first (above 0 where the root is to be inverted)."""
    values, vectors = torch.linalg.eigh(matrix)
    root: torch.Tensor = vectors @ torch.diag_embed(values.clamp_min(floor).sqrt()) @ vectors.transpose(-1, -2)
    return root


@dataclass(frozen=True)
class Gaussian:
    """The painting's fitted Gaussian at one layer, with what the W2 distance reuses each step."""

    mean: torch.Tensor  # (C,) or (N, C)
    cov: torch.Tensor  # (C, C) or (N, C, C)
    root: torch.Tensor  # sqrtm(cov)
    scale: torch.Tensor  # |mean|^2 + tr(cov): the painting's second moment, () or (N,)

    @classmethod
    def of(cls, mean: torch.Tensor, cov: torch.Tensor) -> Gaussian:
        mean, cov = mean.double(), cov.double()
        scale = mean.pow(2).sum(-1) + torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
        return cls(mean.float(), cov.float(), sqrtm_psd(cov).float(), scale.float())

    def picked(self, pick: Callable[[torch.Tensor, int], torch.Tensor]) -> Gaussian:
        """Each field for the pictures of a batch, through ``pick`` (see Pictures.pick)."""
        return Gaussian(pick(self.mean, 2), pick(self.cov, 3), pick(self.root, 3), pick(self.scale, 1))


def w2_squared(mean: torch.Tensor, cov: torch.Tensor, target: Gaussian) -> torch.Tensor:
    """W2^2 between N(mean, cov) (batched, (N, C) and (N, C, C)) and the target Gaussian, per picture.

    |m - m_t|^2 + tr(S) + tr(S_t) - 2 tr((S_t^1/2 S S_t^1/2)^1/2); the last trace is the sum
    of the square roots of the eigenvalues of a symmetric matrix, whose gradient through
    ``eigvalsh`` needs no eigenvector derivatives (stable under repeated eigenvalues).
    """
    # In float64: the distance is a difference of traces several times its size, and in
    # float32 the square roots of the small eigenvalues move its gradient by percents, so no
    # two summation orders (tiles, batches) agree; a C x C eigensolve costs little beside
    # the features that fed it.
    dtype = mean.dtype
    mean, cov = mean.double(), cov.double()
    root = target.root.double()
    product = root @ cov @ root
    product = 0.5 * (product + product.transpose(-1, -2))
    cross = (torch.linalg.eigvalsh(product).clamp_min(0) + EIG_EPS).sqrt().sum(-1)
    trace = torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)
    target_trace = torch.diagonal(target.cov.double(), dim1=-2, dim2=-1).sum(-1)
    distance: torch.Tensor = (mean - target.mean.double()).pow(2).sum(-1) + trace + target_trace - 2 * cross
    return distance.to(dtype)


def random_directions(channels: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` unit vectors in R^channels, (channels, count), uniformly on the sphere."""
    directions = torch.randn((channels, count), generator=generator)
    unit: torch.Tensor = directions / directions.norm(dim=0, keepdim=True)
    return unit


def quantiles(sorted_values: torch.Tensor, count: int) -> torch.Tensor:
    """The ``count`` quantiles at (i + 0.5) / count of values sorted along the last dim, by
    linear interpolation: a painting and a picture of other sizes compared point for point."""
    m = sorted_values.shape[-1]
    if m == count:
        return sorted_values
    position = (torch.arange(count, device=sorted_values.device, dtype=torch.float64) + 0.5) * m / count - 0.5
    position = position.clamp(0, m - 1)
    low = position.floor().long()
    high = (low + 1).clamp_max(m - 1)
    frac = (position - low).to(sorted_values.dtype)
    return sorted_values[..., low] * (1 - frac) + sorted_values[..., high] * frac


def sliced_squared(points: torch.Tensor, target_sorted: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Sliced W2^2 per picture: ``points`` (N, C, M) projected on ``directions`` (C, K), each
    projection sorted, against ``target_sorted`` (K, M) or (N, K, M), the target's sorted
    projections at M quantiles; the mean over directions and points of the squared gap."""
    projected = torch.einsum("ncm,ck->nkm", points, directions)
    ordered, _ = projected.sort(dim=-1)
    return (ordered - target_sorted).pow(2).mean((-1, -2))


def sliced_distance(points: torch.Tensor, target: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Sliced W2^2 between point sets of any sizes: ``points`` (N, C, M), ``target`` (C, M')."""
    target_sorted = quantiles((directions.t() @ target).sort(dim=-1)[0], points.shape[-1])
    return sliced_squared(points, target_sorted, directions)


def mean_variance(points: torch.Tensor) -> torch.Tensor:
    """The mean variance along a direction, tr(cov) / C, of (..., C, M) points: (...)."""
    return points.var(dim=-1, unbiased=False).sum(-1) / points.shape[-2]


class MeanCovTerm(LayerTerm[Gaussian]):
    """W2^2 between Gaussians fitted to the features at ``layer`` and to the paintings',
    over the paintings' second moment (|mean|^2 + tr(cov)): a relative error, as the Gram's."""

    def prepare(self, level: Level) -> Gaussian:
        mean, cov = level.style_moments()[self.layer]
        return Gaussian.of(mean, cov)

    def value(self, pictures: Pictures, target: Gaussian) -> torch.Tensor:
        mean, cov = moments(flat_features(pictures.features[self.layer]))
        pick = target.picked(pictures.pick)
        return self.weight * w2_squared(mean, cov, pick) / pick.scale


@dataclass
class SlicedTarget:
    """The painting's features at a layer and this step's directions. ``directions`` and
    ``sorted`` are refilled in place at each step (:meth:`SlicedTerm.refresh`), so a CUDA
    graph recorded on them reads the new ones."""

    points: torch.Tensor  # (C, M) or (N, C, M): the painting's features
    directions: torch.Tensor  # (C, K)
    sorted: torch.Tensor | None  # (K, n) or (N, K, n): the painting's sorted projections at the picture's n points
    scale: torch.Tensor  # the painting's mean variance along a direction, tr(cov) / C (see energy_power): () or (N,)
    generator: torch.Generator
    count: int  # n, the picture's points per channel at this level


class SlicedTerm(LayerTerm[SlicedTarget]):
    """Sliced W2^2 of the features at ``layer`` against the paintings', over the paintings'
    mean variance along a direction; ``directions`` random directions, drawn anew at every
    step from ``seed`` (so a run is repeatable), as many as the layer has channels by default.

    ``energy_power`` p: with a photo, over painting_var^(1-p) * photo_var^p instead, so the
    term weighs (painting_var / photo_var)^p times as much (see ``EngineConfig.energy_power``).
    """

    def __init__(self, layer: str, weight: float, directions: int = 0, seed: int = 0, energy_power: float = 0.0) -> None:
        super().__init__(layer, weight)
        self.directions = directions
        self.seed = seed
        self.energy_power = energy_power

    def prepare(self, level: Level) -> SlicedTarget:
        points = level.style_samples()[self.layer]
        channels = points.shape[-2]
        count = self.directions or channels
        variance = mean_variance(points)
        if self.energy_power and level.content is not None:
            photo = mean_variance(flat_features(level.content_feature(self.layer)))  # (N,)
            variance = variance * (photo / variance.clamp_min(1e-12)) ** self.energy_power
        pools = _pools_before(self.layer)
        n = max(1, level.size[0] >> pools) * max(1, level.size[1] >> pools)
        generator = torch.Generator().manual_seed(self.seed)
        target = SlicedTarget(points, torch.empty((channels, count), device=points.device), None, variance, generator, n)
        self.refresh(target, 0)
        return target

    def refresh(self, target: SlicedTarget, step: int) -> None:
        """New directions for the next step, and the painting's sorted projections along them."""
        fresh = random_directions(target.directions.shape[0], target.directions.shape[1], target.generator)
        target.directions.copy_(fresh.to(target.directions.device))
        ordered = self._sorted_target(target, target.count)
        if target.sorted is None or target.sorted.shape != ordered.shape:
            target.sorted = ordered
        else:
            target.sorted.copy_(ordered)

    def value(self, pictures: Pictures, target: SlicedTarget) -> torch.Tensor:
        assert target.sorted is not None
        points = flat_features(pictures.features[self.layer])
        if points.shape[-1] != target.sorted.shape[-1]:
            # A level whose features are not the size prepare() expected (odd sides pool down
            # one short): the quantiles follow the picture.
            self.refresh_count(target, points.shape[-1])
        sorted_target = pictures.pick(target.sorted, 3)
        return self.weight * sliced_squared(points, sorted_target, target.directions) / pictures.pick(target.scale, 1)

    def refresh_count(self, target: SlicedTarget, count: int) -> None:
        target.sorted = self._sorted_target(target, count)
        target.count = count

    @staticmethod
    @torch.no_grad()
    def _sorted_target(target: SlicedTarget, count: int) -> torch.Tensor:
        """The painting's projections on this step's directions, sorted, at ``count`` quantiles."""
        projected = torch.einsum("...cm,ck->...km", target.points, target.directions)
        return quantiles(projected.sort(dim=-1)[0], count)


def _pools_before(layer: str) -> int:
    """How many 2x2 poolings VGG19 applies before ``layer`` (relu3_1: 2)."""
    block = int(layer.removeprefix("conv").removeprefix("relu").removeprefix("pool")[0])
    return block - 1 + (1 if layer.startswith("pool") else 0)
