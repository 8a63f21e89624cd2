"""An objective evaluated tile by tile, with the gradient an untiled pass gives.

Two passes over the tiles of :mod:`nstpipe.engine.tiles`:

1. without a graph, each tile's share of every term's statistic
   (:mod:`nstpipe.engine.tilestats`); their sum is the whole picture's statistic, from which
   come the loss and dL/dS, the loss's gradient with respect to each statistic;
2. each tile again, forward and backward, on the surrogate <dL/dS, S_tile>: its gradient
   with respect to the tile's pixels is the tile's share of the whole gradient, halo
   included, and the shares add up (overlapping halos too) to the untiled gradient.

Only one tile's activations are alive at a time, so the memory is that of a tile plus the
whole picture's pixels and statistics. The terms that read the pixels alone (total
variation, the temporal term, the range pull) are cheap and run on the whole picture.
"""

from __future__ import annotations

from typing import Sequence

import torch

from nstpipe.engine.heap import trim_heap
from nstpipe.engine.objective import Objective
from nstpipe.engine.terms import Pictures
from nstpipe.engine.tiles import Tile, layer_stride, tiles
from nstpipe.engine.tilestats import Statistic, statistic
from nstpipe.errors import NstpipeError


class TiledObjective:
    """``objective`` evaluated over tiles whose interiors are at most ``tile`` (height, width);
    ``reach``: the halo in pixels (default: what the layers read, see :func:`tiles.halo`)."""

    def __init__(self, objective: Objective, tile: tuple[int, int], reach: int | None = None) -> None:
        if objective.view is not None:
            raise NstpipeError("the picture is too large for the memory budget, and this mode's view cannot be tiled")
        self.objective = objective
        self.tile = tile
        self.reach = reach
        self.features = [(term, target) for term, target in objective.parts if term.layers]
        self.pixel_terms = [(term, target) for term, target in objective.parts if not term.layers]
        for term, target in self.features:
            statistic(term, target, _keep)  # an untileable term is refused before the first step

    def refresh(self, step: int) -> None:
        self.objective.refresh(step)

    def grid(self, x: torch.Tensor) -> list[Tile]:
        return tiles((x.shape[-2], x.shape[-1]), self.tile, self.objective.layers, self.reach)

    def losses(self, x: torch.Tensor, items: Sequence[int] | None = None) -> torch.Tensor:
        """One loss per picture, without a gradient."""
        with torch.no_grad():
            stats = self._statistics(x, items)
            totals, _, counts = self._gather(x, self.grid(x), stats)
            feature = self._feature_losses(stats, totals, counts, x)
            return feature + self._pixel_losses(x, items, grad=False)[0]

    def losses_and_grad(self, x: torch.Tensor, items: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One loss per picture of ``x`` and the gradient of their sum with respect to ``x``
        (which is not modified); ``items``: which batch items ``x`` holds."""
        x = x.detach()
        # The pixel terms first, while no tile is alive: their gradient is the buffer that
        # the tiles' shares are added into (one whole-picture gradient, not two and a sum).
        pixel, grad = self._pixel_losses(x, items, grad=True)
        stats = self._statistics(x, items)
        grid = self.grid(x)
        totals, sizes, counts = self._gather(x, grid, stats)
        leaves = [total.detach().requires_grad_(True) for total in totals]
        with torch.enable_grad():
            feature = self._feature_losses(stats, leaves, counts, x)
            cotangents = torch.autograd.grad(feature.sum(), leaves) if leaves else ()
        for index, tile in enumerate(grid):
            shares = [_share(cot, sizes[k], index) if stat.joined else cot for k, (stat, cot) in enumerate(zip(stats, cotangents))]
            self._backward(x, tile, stats, shares, grad)
        return feature.detach() + pixel, grad

    def _statistics(self, x: torch.Tensor, items: Sequence[int] | None) -> list[Statistic]:
        pick = Pictures(pixels=x, picture=x, features={}, items=items).pick
        return [statistic(term, target, pick) for term, target in self.features]

    def _encode(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(self.objective.encoder(Objective.picture(pixels)))

    def _gather(
        self, x: torch.Tensor, grid: list[Tile], stats: list[Statistic]
    ) -> tuple[list[torch.Tensor], list[list[int]], list[int]]:
        """Pass 1: each statistic of the whole picture, the size of each tile's part along
        the last dimension (for the concatenated ones) and each layer's feature count."""
        parts: list[list[torch.Tensor]] = [[] for _ in stats]
        counts = [0] * len(stats)
        with torch.no_grad():
            for tile in grid:
                features = self._encode(tile.crop(x))
                for k, stat in enumerate(stats):
                    owned, region = tile.interior(features[stat.layer], layer_stride(stat.layer))
                    parts[k].append(stat.part(owned, region))
                    counts[k] += owned.shape[-2] * owned.shape[-1]
                del features
                _release(x)
        sizes = [[part.shape[-1] for part in each] for each in parts]
        return [stat.total(each) for stat, each in zip(stats, parts)], sizes, counts

    def _feature_losses(self, stats: list[Statistic], totals: list[torch.Tensor], counts: list[int], x: torch.Tensor) -> torch.Tensor:
        if not stats:
            return x.new_zeros(x.shape[0])
        return torch.stack([stat.loss(total, count) for stat, total, count in zip(stats, totals, counts)]).sum(0)

    def _backward(self, x: torch.Tensor, tile: Tile, stats: list[Statistic], cotangents: list[torch.Tensor], grad: torch.Tensor) -> None:
        """Pass 2 for one tile: its share of the gradient, added into ``grad`` where it reads."""
        if not stats:
            return
        crop = tile.crop(x).detach().requires_grad_(True)
        with torch.enable_grad():
            features = self._encode(crop)
            surrogate = crop.new_zeros(())
            for stat, cotangent in zip(stats, cotangents):
                owned, region = tile.interior(features[stat.layer], layer_stride(stat.layer))
                surrogate = surrogate + (cotangent * stat.part(owned, region)).sum()
            torch.autograd.backward(surrogate)
        assert crop.grad is not None
        grad[..., tile.rows.low : tile.rows.high, tile.cols.low : tile.cols.high] += crop.grad
        del features, surrogate
        _release(x)

    def _pixel_losses(self, x: torch.Tensor, items: Sequence[int] | None, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The terms that read the pixels alone, on the whole picture, and their gradient
        (zeros without such terms; an empty tensor when ``grad`` is false)."""
        if not self.pixel_terms:
            return x.new_zeros(x.shape[0]), torch.zeros_like(x) if grad else x.new_zeros(0)
        pixels = x.detach().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            pictures = Pictures(pixels=pixels, picture=Objective.picture(pixels), features={}, items=items)
            losses = torch.stack([term.value(pictures, target) for term, target in self.pixel_terms]).sum(0)
            if not grad:
                return losses, x.new_zeros(0)
            torch.autograd.backward(losses.sum())
        assert pixels.grad is not None
        return losses.detach(), pixels.grad


def _share(cotangent: torch.Tensor, sizes: list[int], index: int) -> torch.Tensor:
    """Tile ``index``'s slice of a concatenated statistic's gradient."""
    start = sum(sizes[:index])
    return cotangent[..., start : start + sizes[index]]


def _release(x: torch.Tensor) -> None:
    """A tile's activations, just freed, back to the system: on a CPU they came from the C
    heap (see :func:`trim_heap`); a GPU's come from its own allocator."""
    if x.device.type == "cpu":
        trim_heap()


def _keep(target: torch.Tensor, batched_dims: int = 4) -> torch.Tensor:
    return target

