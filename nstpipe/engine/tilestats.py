"""The terms of an objective as functions of statistics that tiles add up.

A style term reads the whole picture's features through a statistic: the Gram term through
sum F F^T, the mean-and-covariance term through sum f and sum f f^T, the sliced term through
every feature's projections (which it sorts). Each statistic is a sum (or, for projections,
a concatenation) over feature positions, so tiles that partition the features can each give
their part (:meth:`Statistic.part`) and the parts make the whole picture's statistic. The
loss is then a function of that statistic (:meth:`Statistic.loss`), and its gradient with
respect to a tile's features is dL/dS . dS_tile/dF: what :mod:`nstpipe.engine.tiled` runs
backward through each tile.

Content terms are sums over positions already: their statistic is the tile's share of the
squared error. Terms that read the pixels alone are not here: they run on the whole picture.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import torch

from nstpipe.engine.distribution import Gaussian, MeanCovTerm, SlicedTarget, SlicedTerm, flat_features, w2_squared
from nstpipe.engine.losses import gram_sum, squared_error
from nstpipe.engine.terms import ContentTerm, Folded, GramTerm, Term
from nstpipe.errors import NstpipeError

# Picks a per-picture target's rows for the pictures of a pass (see Pictures.pick).
Pick = Callable[[torch.Tensor, int], torch.Tensor]
Region = tuple[int, int, int, int]  # first row, last row, first col, last col of a layer's features


class Statistic(ABC):
    """One term of an objective, read through a statistic that tiles add up."""

    joined = False  # the parts are concatenated along their last dimension, not summed

    def __init__(self, layer: str, pick: Pick) -> None:
        self.layer = layer
        self.pick = pick

    @abstractmethod
    def part(self, features: torch.Tensor, region: Region) -> torch.Tensor:
        """A tile's share of the statistic, from the features (N, C, h, w) it owns at
        ``region`` of the layer; differentiable in the features."""

    @abstractmethod
    def loss(self, total: torch.Tensor, count: int) -> torch.Tensor:
        """The term's value per picture (N,) from the whole statistic; ``count``: the
        layer's feature positions in the whole picture."""

    def total(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The whole picture's statistic from the tiles' parts (summed in float64: many
        tiles of large sums; :meth:`loss` takes it in the parts' dtype)."""
        if self.joined:
            return torch.cat(parts, dim=-1)
        whole = parts[0].double()
        for part in parts[1:]:
            whole = whole + part.double()
        return whole.to(parts[0].dtype)


class GramStatistic(Statistic):
    """S = sum F F^T; the Gram matrix is S / (C * count)."""

    def __init__(self, term: GramTerm, target: Folded, pick: Pick) -> None:
        super().__init__(term.layer, pick)
        self.target = target

    def part(self, features: torch.Tensor, region: Region) -> torch.Tensor:
        # As the untiled term takes it: in the features' dtype, with no copy of channels-last
        # features (a tile's interior is a view of them; the product reads it in place).
        return gram_sum(features)

    def loss(self, total: torch.Tensor, count: int) -> torch.Tensor:
        gram = total / (total.shape[-1] * count)
        target = self.pick(self.target.target, 3).expand(total.shape[0], -1, -1)
        return squared_error(gram, target) * self.pick(self.target.coef, 1)


class MeanCovStatistic(Statistic):
    """[sum f f^T | sum f], (N, C, C + 1): the features' mean and covariance follow."""

    def __init__(self, term: MeanCovTerm, target: Gaussian, pick: Pick) -> None:
        super().__init__(term.layer, pick)
        self.weight = term.weight
        self.target = target

    def part(self, features: torch.Tensor, region: Region) -> torch.Tensor:
        # In float64: the covariance is the raw second moment less the mean's square, and
        # in float32 that difference keeps too few of the digits that the W2 distance reads.
        flat = flat_features(features).double()
        return torch.cat([flat @ flat.transpose(1, 2), flat.sum(2, keepdim=True)], dim=2)

    def loss(self, total: torch.Tensor, count: int) -> torch.Tensor:
        mean = total[..., -1] / count
        cov = total[..., :-1] / count - mean.unsqueeze(2) * mean.unsqueeze(1)
        # Kept in float64 into w2_squared, which takes the distance in float64 anyway.
        target = self.target.picked(self.pick)
        return (self.weight * w2_squared(mean, cov, target) / target.scale).to(target.cov.dtype)


class SlicedStatistic(Statistic):
    """Every feature projected on this step's directions, (N, K, count): sorted whole, as
    the untiled term sorts them, against the painting's quantiles."""

    joined = True

    def __init__(self, term: SlicedTerm, target: SlicedTarget, pick: Pick) -> None:
        super().__init__(term.layer, pick)
        self.term = term
        self.target = target

    def part(self, features: torch.Tensor, region: Region) -> torch.Tensor:
        return torch.einsum("ncm,ck->nkm", flat_features(features), self.target.directions)

    def loss(self, total: torch.Tensor, count: int) -> torch.Tensor:
        target = self.target
        if target.sorted is None or target.sorted.shape[-1] != count:
            self.term.refresh_count(target, count)
        assert target.sorted is not None
        ordered, _ = total.sort(dim=-1)
        gap = (ordered - self.pick(target.sorted, 3)).pow(2).mean((-1, -2))
        return self.term.weight * gap / self.pick(target.scale, 1)


class ContentStatistic(Statistic):
    """The tile's share of ||F - F_photo||^2: a sum over positions already."""

    def __init__(self, term: ContentTerm, target: Folded, pick: Pick) -> None:
        super().__init__(term.layer, pick)
        self.target = target

    def part(self, features: torch.Tensor, region: Region) -> torch.Tensor:
        r0, r1, c0, c1 = region
        return squared_error(features, self.pick(self.target.target, 4)[..., r0:r1, c0:c1])

    def loss(self, total: torch.Tensor, count: int) -> torch.Tensor:
        return total * self.pick(self.target.coef, 1)


def statistic(term: Term[Any], target: Any, pick: Pick) -> Statistic:
    """The statistic a tiled pass reads ``term`` through; one clear error for a term that
    reads the whole picture in a way no statistic of tiles gives."""
    if isinstance(term, GramTerm):
        return GramStatistic(term, target, pick)
    if isinstance(term, MeanCovTerm):
        return MeanCovStatistic(term, target, pick)
    if isinstance(term, SlicedTerm):
        return SlicedStatistic(term, target, pick)
    if isinstance(term, ContentTerm):
        return ContentStatistic(term, target, pick)
    raise NstpipeError(f"the picture is too large for the memory budget, and its {type(term).__name__} cannot be tiled: "
                       "raise --max-memory or lower --size")
