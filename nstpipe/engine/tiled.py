"""An objective evaluated tile by tile, with the gradient an untiled pass gives.

Two passes over the tiles of :mod:`nstpipe.engine.tiles`:

1. without a graph, each tile's share of every term's statistic
   (:mod:`nstpipe.engine.tilestats`); their sum is the whole picture's statistic, from which
   come the loss and dL/dS, the loss's gradient with respect to each statistic;
2. each tile again, forward and backward, on the surrogate <dL/dS, S_tile>: its gradient
   with respect to the tile's pixels is the tile's share of the whole gradient, halo
   included, and the shares add up (overlapping halos too) to the untiled gradient.

The last tile of pass 1 keeps its graph, and pass 2 begins with its backward: one forward
fewer per evaluation (a quarter of pass 1 in four tiles), in the memory pass 2 takes anyway.

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
            totals, _, counts, _ = self._gather(x, self.grid(x), stats)
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
        totals, sizes, counts, kept = self._gather(x, grid, stats, keep_last=True)
        leaves = [total.detach().requires_grad_(True) for total in totals]
        with torch.enable_grad():
            feature = self._feature_losses(stats, leaves, counts, x)
            cotangents = torch.autograd.grad(feature.sum(), leaves) if leaves else ()

        def shares(index: int) -> list[torch.Tensor]:
            return [_share(cot, sizes[k], index) if stat.joined else cot for k, (stat, cot) in enumerate(zip(stats, cotangents))]

        if kept is not None:  # None: no statistic, nothing to add to the pixel terms' gradient
            self._accumulate(x, grid[-1], kept, shares(len(grid) - 1), grad)
            del kept
            for index, tile in enumerate(grid[:-1]):
                self._accumulate(x, tile, self._parts(x, tile, stats, graph=True), shares(index), grad)
        return feature.detach() + pixel, grad

    def _statistics(self, x: torch.Tensor, items: Sequence[int] | None) -> list[Statistic]:
        pick = Pictures(pixels=x, picture=x, features={}, items=items).pick
        return [statistic(term, target, pick) for term, target in self.features]

    def _encode(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(self.objective.encoder(Objective.picture(pixels)))

    def _gather(
        self, x: torch.Tensor, grid: list[Tile], stats: list[Statistic], keep_last: bool = False
    ) -> tuple[list[torch.Tensor], list[list[int]], list[int], _Kept | None]:
        """Pass 1: each statistic of the whole picture, the size of each tile's part along
        the last dimension (for the concatenated ones), each layer's feature count, and with
        ``keep_last`` the last tile's parts with their graph (None without statistics)."""
        parts: list[list[torch.Tensor]] = [[] for _ in stats]
        counts = [0] * len(stats)
        kept = None
        for index, tile in enumerate(grid):
            if keep_last and stats and index == len(grid) - 1:
                kept = self._parts(x, tile, stats, graph=True)
                found = [part.detach() for part in kept[1]]
            else:
                found = self._parts(x, tile, stats, graph=False)[1]
                _release(x)
            for k, (stat, part) in enumerate(zip(stats, found)):
                parts[k].append(part)
                counts[k] += tile.owned_count(layer_stride(stat.layer))
        sizes = [[part.shape[-1] for part in each] for each in parts]
        return [stat.total(each) for stat, each in zip(stats, parts)], sizes, counts, kept

    def _feature_losses(self, stats: list[Statistic], totals: list[torch.Tensor], counts: list[int], x: torch.Tensor) -> torch.Tensor:
        if not stats:
            return x.new_zeros(x.shape[0])
        return torch.stack([stat.loss(total, count) for stat, total, count in zip(stats, totals, counts)]).sum(0)

    def _parts(self, x: torch.Tensor, tile: Tile, stats: list[Statistic], graph: bool) -> _Kept:
        """The tile's crop and its part of every statistic, with ``graph``: with the graph
        back to the crop."""
        crop = tile.crop(x).detach().requires_grad_(graph)
        with torch.set_grad_enabled(graph):
            features = self._encode(crop)
            found = []
            for stat in stats:
                owned, region = tile.interior(features[stat.layer], layer_stride(stat.layer))
                found.append(stat.part(owned, region))
        return crop, found

    def _accumulate(self, x: torch.Tensor, tile: Tile, kept: _Kept, cotangents: list[torch.Tensor], grad: torch.Tensor) -> None:
        """Pass 2 for one tile: the backward of the surrogate <dL/dS, S_tile> from its parts,
        its gradient added into ``grad`` where the tile reads."""
        crop, parts = kept
        with torch.enable_grad():
            surrogate = sum(((cotangent * part).sum() for cotangent, part in zip(cotangents, parts)), crop.new_zeros(()))
            torch.autograd.backward(surrogate)
        assert crop.grad is not None
        grad[..., tile.rows.low : tile.rows.high, tile.cols.low : tile.cols.high] += crop.grad
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


_Kept = tuple[torch.Tensor, list[torch.Tensor]]  # a tile's crop and its parts of the statistics


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

