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

With a ``split`` (a pooling layer, see :func:`nstpipe.engine.memory.plan_layout`), only the
encoder's *head*, up to that layer, runs in tiles; the *tail* after it runs once on the
whole picture's output of the head, put together from the tiles' interiors. The head holds
most of a pass's memory (full-size features of few channels) and the tail most of its
arithmetic (many channels on a small map), so the tail neither repeats its forward pass nor
reads a halo, and the head's halo is what the head alone reads (24 pixels up to pool3,
where the whole encoder reads 80). The tail's backward gives the gradient at the head's
output, which pass 2 adds to each tile's surrogate.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from nstpipe.engine.heap import trim_heap
from nstpipe.engine.objective import Objective
from nstpipe.engine.terms import Pictures
from nstpipe.engine.tiles import Tile, head_layers, in_head, layer_stride, tiles
from nstpipe.engine.tilestats import Statistic, statistic
from nstpipe.errors import NstpipeError


class TiledObjective:
    """``objective`` evaluated over tiles whose interiors are at most ``tile`` (height, width);
    ``reach``: the halo in pixels (default: what the tiled layers read, see :func:`tiles.halo`);
    ``split``: the pooling layer after which the encoder runs whole (None: all in tiles)."""

    def __init__(self, objective: Objective, tile: tuple[int, int], reach: int | None = None, split: str | None = None) -> None:
        if objective.view is not None:
            raise NstpipeError("the picture is too large for the memory budget, and this mode's view cannot be tiled")
        self.objective = objective
        self.tile = tile
        self.reach = reach
        self.split = split
        self.features = [(term, target) for term, target in objective.parts if term.layers]
        self.pixel_terms = [(term, target) for term, target in objective.parts if not term.layers]
        for term, target in self.features:
            statistic(term, target, _keep)  # an untileable term is refused before the first step
        self.tiled_layers = head_layers(objective.layers, split)

    def refresh(self, step: int) -> None:
        self.objective.refresh(step)

    def grid(self, x: torch.Tensor) -> list[Tile]:
        return tiles((x.shape[-2], x.shape[-1]), self.tile, self.tiled_layers, self.reach)

    def losses(self, x: torch.Tensor, items: Sequence[int] | None = None) -> torch.Tensor:
        """One loss per picture, without a gradient."""
        with torch.no_grad():
            stats = self._statistics(x, items)
            totals, _, counts, _, head = self._gather(x, self.grid(x), stats)
            tail = _tail(self.objective.encoder, self.split, stats, head)
            if tail is not None:
                _add_tail(stats, tail, totals, counts)
            feature = _feature_losses(stats, totals, counts, x)
            return feature + _pixel_losses(self.pixel_terms, x, items, grad=False)[0]

    def losses_and_grad(self, x: torch.Tensor, items: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One loss per picture of ``x`` and the gradient of their sum with respect to ``x``
        (which is not modified); ``items``: which batch items ``x`` holds."""
        x = x.detach()
        # The pixel terms first, while no tile is alive: their gradient is the buffer that
        # the tiles' shares are added into (one whole-picture gradient, not two and a sum).
        pixel, grad = _pixel_losses(self.pixel_terms, x, items, grad=True)
        stats = self._statistics(x, items)
        grid = self.grid(x)
        totals, sizes, counts, kept, head = self._gather(x, grid, stats, keep_last=True)
        tail = _tail(self.objective.encoder, self.split, stats, head, graph=True)
        if tail is not None:
            _add_tail(stats, tail, totals, counts)
        leaves = [total.detach().requires_grad_(True) for total in totals]
        with torch.enable_grad():
            feature = _feature_losses(stats, leaves, counts, x)
            cotangents = torch.autograd.grad(feature.sum(), leaves) if leaves else ()
        outgoing = None  # the gradient at the head's output, from the tail's backward
        if tail is not None:
            outgoing = _tail_backward(tail, cotangents)
            del tail

        joined = [stat.joined and self._tiled(stat) for stat in stats]  # a tail's statistic is one part

        def shares(index: int) -> list[torch.Tensor]:
            return [_share(cot, sizes[k], index) if joined[k] else cot for k, cot in enumerate(cotangents)]

        if kept is not None:  # None: no statistic, nothing to add to the pixel terms' gradient
            self._accumulate(x, grid[-1], kept, shares(len(grid) - 1), grad, outgoing)
            del kept
            for index, tile in enumerate(grid[:-1]):
                self._accumulate(x, tile, self._parts(x, tile, stats, graph=True), shares(index), grad, outgoing)
        return feature.detach() + pixel, grad

    def _statistics(self, x: torch.Tensor, items: Sequence[int] | None) -> list[Statistic]:
        pick = Pictures(pixels=x, picture=x, features={}, items=items).pick
        return [statistic(term, target, pick) for term, target in self.features]

    def _tiled(self, stat: Statistic) -> bool:
        return in_head(stat.layer, self.split)

    def _encode(self, pixels: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The tiled part of the encoder on a crop: its features, and its last output where
        the tail runs apart (None without a split)."""
        picture = Objective.picture(pixels)
        if self.split is None:
            return dict(self.objective.encoder(picture)), None
        features, out = self.objective.encoder.stage(picture, None, self.split)  # type: ignore[attr-defined]
        return dict(features), out

    def _gather(
        self, x: torch.Tensor, grid: list[Tile], stats: list[Statistic], keep_last: bool = False
    ) -> tuple[list[torch.Tensor], list[list[int]], list[int], _Kept | None, torch.Tensor | None]:
        """Pass 1: each tiled statistic of the whole picture (the tail's come later), the
        size of each tile's part along the last dimension (for the concatenated ones), each
        layer's feature count, with ``keep_last`` the last tile's parts with their graph
        (None without statistics), and the head's output put together (None without a split)."""
        parts: list[list[torch.Tensor]] = [[] for _ in stats]
        counts = [0] * len(stats)
        kept = None
        head: torch.Tensor | None = None
        for index, tile in enumerate(grid):
            if keep_last and stats and index == len(grid) - 1:
                kept = self._parts(x, tile, stats, graph=True)
                found, out = [None if part is None else part.detach() for part in kept[1]], kept[2]
            else:
                _, found, out = self._parts(x, tile, stats, graph=False)
                _release(x)
            if out is not None:
                assert self.split is not None
                owned, (r0, r1, c0, c1) = tile.interior(out, layer_stride(self.split))
                if head is None:
                    rows, cols = (length // layer_stride(self.split) for length in x.shape[-2:])
                    head = owned.new_empty(*owned.shape[:2], rows, cols)
                head[..., r0:r1, c0:c1] = owned.detach()
            for k, (stat, part) in enumerate(zip(stats, found)):
                if part is not None:
                    parts[k].append(part)
                    counts[k] += tile.owned_count(layer_stride(stat.layer))
        sizes = [[part.shape[-1] for part in each] for each in parts]
        return [stat.total(each) if each else x.new_zeros(0) for stat, each in zip(stats, parts)], sizes, counts, kept, head

    def _parts(self, x: torch.Tensor, tile: Tile, stats: list[Statistic], graph: bool) -> _Kept:
        """The tile's crop, its part of every tiled statistic (None for the tail's), and its
        head output (None without a split); with ``graph``: with the graph back to the crop."""
        crop = tile.crop(x).detach().requires_grad_(graph)
        with torch.set_grad_enabled(graph):
            features, out = self._encode(crop)
            found: list[torch.Tensor | None] = []
            for stat in stats:
                if not self._tiled(stat):
                    found.append(None)
                    continue
                owned, region = tile.interior(features[stat.layer], layer_stride(stat.layer))
                found.append(stat.part(owned, region))
        return crop, found, out

    def _accumulate(
        self, x: torch.Tensor, tile: Tile, kept: _Kept, cotangents: list[torch.Tensor], grad: torch.Tensor, outgoing: torch.Tensor | None
    ) -> None:
        """Pass 2 for one tile: the backward of the surrogate <dL/dS, S_tile> from its parts
        (and <dL/dH, H_tile> from its head output ``H``, where the tail runs apart), its
        gradient added into ``grad`` where the tile reads."""
        crop, parts, out = kept
        with torch.enable_grad():
            terms = [(cotangent * part).sum() for cotangent, part in zip(cotangents, parts) if part is not None]
            if out is not None and outgoing is not None:
                assert self.split is not None
                owned, (r0, r1, c0, c1) = tile.interior(out, layer_stride(self.split))
                terms.append((outgoing[..., r0:r1, c0:c1] * owned).sum())
            torch.autograd.backward(sum(terms, crop.new_zeros(())))
        assert crop.grad is not None
        grad[..., tile.rows.low : tile.rows.high, tile.cols.low : tile.cols.high] += crop.grad
        _release(x)


# A tile's crop, its parts of the tiled statistics, and its head output.
_Kept = tuple[torch.Tensor, list[torch.Tensor | None], torch.Tensor | None]
# The head output put together (a leaf), and the untiled statistics' parts and counts by index.
_Tail = tuple[torch.Tensor, dict[int, tuple[torch.Tensor, int]]]


def _pixel_losses(
    pixel_terms: list[tuple[Any, Any]], x: torch.Tensor, items: Sequence[int] | None, grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The terms that read the pixels alone, on the whole picture, and their gradient
    (zeros without such terms; an empty tensor when ``grad`` is false)."""
    if not pixel_terms:
        return x.new_zeros(x.shape[0]), torch.zeros_like(x) if grad else x.new_zeros(0)
    pixels = x.detach().requires_grad_(grad)
    with torch.set_grad_enabled(grad):
        pictures = Pictures(pixels=pixels, picture=Objective.picture(pixels), features={}, items=items)
        losses = torch.stack([term.value(pictures, target) for term, target in pixel_terms]).sum(0)
        if not grad:
            return losses, x.new_zeros(0)
        torch.autograd.backward(losses.sum())
    assert pixels.grad is not None
    return losses.detach(), pixels.grad


def _feature_losses(stats: list[Statistic], totals: list[torch.Tensor], counts: list[int], x: torch.Tensor) -> torch.Tensor:
    if not stats:
        return x.new_zeros(x.shape[0])
    return torch.stack([stat.loss(total, count) for stat, total, count in zip(stats, totals, counts)]).sum(0)


def _tail(encoder: Any, split: str | None, stats: list[Statistic], head: torch.Tensor | None, graph: bool = False) -> _Tail | None:
    """``encoder`` after ``split`` on the whole head output: that output (a leaf with
    ``graph``), and each untiled statistic's whole part and feature count, by index."""
    if head is None:
        return None
    leaf = head.requires_grad_(graph)
    found: dict[int, tuple[torch.Tensor, int]] = {}
    with torch.set_grad_enabled(graph):
        features = encoder.stage(leaf, split)[0]
        for k, stat in enumerate(stats):
            if not in_head(stat.layer, split):
                whole = features[stat.layer]
                rows, cols = whole.shape[-2:]
                found[k] = stat.part(whole, (0, rows, 0, cols)), rows * cols
    return leaf, found


def _add_tail(stats: list[Statistic], tail: _Tail, totals: list[torch.Tensor], counts: list[int]) -> None:
    """The untiled statistics into ``totals`` and ``counts``, in place."""
    for k, (part, count) in tail[1].items():
        totals[k], counts[k] = stats[k].total([part.detach()]), count


def _tail_backward(tail: _Tail, cotangents: Sequence[torch.Tensor]) -> torch.Tensor:
    """The tail's backward of <dL/dS, S> over its statistics: the gradient at the head's output."""
    leaf, found = tail
    with torch.enable_grad():
        surrogate = sum(((cotangents[k] * part).sum() for k, (part, _) in found.items()), leaf.new_zeros((), dtype=torch.float32))
        torch.autograd.backward(surrogate)
    assert leaf.grad is not None
    return leaf.grad


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

