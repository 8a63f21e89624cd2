"""Where the tiles of a picture lie, and how wide a halo each needs for exact features.

A picture too large for the memory budget is run through the encoder tile by tile (see
:mod:`nstpipe.engine.tiled`). Each tile owns an *interior*: the interiors partition the
picture's pixels, and at every layer read they partition that layer's features too, because
their edges lie on multiples of the layers' largest stride (16 pixels for relu5_1), where
every 2x2 pooling of the whole picture starts a window. Around the interior the tile reads
a *halo* of the picture, wide enough that each interior feature sees exactly the pixels it
sees in the whole picture: the convolutions' zero padding then falls only where the whole
picture has it, at its own border, or where no interior feature reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from nstpipe.config import LAYERS, vgg_cut


def layer_stride(layer: str) -> int:
    """How many picture pixels one feature of ``layer`` steps over (relu3_1: 4; pool3, whose
    own pooling counts: 8)."""
    pools: int = sum(1 for name in vgg_cut([layer]) if name.startswith("pool"))
    return 1 << pools


def in_head(layer: str, split: str | None) -> bool:
    """Whether ``layer`` is read by the encoder's head up to ``split``, a pooling layer (None:
    the head is the whole encoder; see :mod:`nstpipe.engine.tiled`)."""
    return split is None or LAYERS.index(layer) <= LAYERS.index(split)


def head_layers(layers: Iterable[str], split: str | None) -> tuple[str, ...]:
    """The ``layers`` that the head up to ``split`` reads, and ``split`` itself, whose output
    the head hands on: what its tiles' stride and halo follow."""
    return tuple(layer for layer in layers if in_head(layer, split)) + ((split,) if split is not None else ())


def tile_stride(layers: Iterable[str]) -> int:
    """The largest stride among ``layers``: tile edges on its multiples keep the poolings aligned."""
    return max(layer_stride(layer) for layer in layers)


def margin(layers: Iterable[str]) -> int:
    """The pixels beyond a feature's own that the deepest of ``layers`` reads, on each side.

    Traced back from the deepest layer: a 3x3 convolution reads one more feature on each
    side, a 2x2 pooling doubles the reach (70 pixels for relu5_1).
    """
    reach = 0
    for name in reversed(vgg_cut(layers)):
        if name.startswith("conv"):
            reach += 1
        elif name.startswith("pool"):
            reach *= 2
    return reach


def halo(layers: Iterable[str]) -> int:
    """The halo a tile reads around its interior: the margin, raised to a multiple of the
    stride so that a tile's crop starts where a pooling window of the whole picture does
    (80 pixels for relu5_1)."""
    layers = tuple(layers)
    stride = tile_stride(layers)
    return math.ceil(margin(layers) / stride) * stride


@dataclass(frozen=True)
class Span:
    """One axis of a tile: its interior [start, stop) and the crop [low, high) it reads."""

    start: int
    stop: int
    low: int
    high: int

    def features(self, stride: int) -> tuple[slice, tuple[int, int]]:
        """The interior at a layer of ``stride``: as a slice of the crop's features, and as
        the whole picture's feature indices [first, last)."""
        first, last = self.start // stride, self.stop // stride
        offset = self.low // stride
        return slice(first - offset, last - offset), (first, last)


@dataclass(frozen=True)
class Tile:
    rows: Span
    cols: Span

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """The pixels of ``x`` (N, C, H, W) that this tile reads."""
        return x[..., self.rows.low : self.rows.high, self.cols.low : self.cols.high]

    def interior(self, features: torch.Tensor, stride: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        """The crop's ``features`` at a layer of ``stride`` that this tile owns, and where
        they lie in the whole picture's features (first row, last row, first col, last col)."""
        rows, (r0, r1) = self.rows.features(stride)
        cols, (c0, c1) = self.cols.features(stride)
        return features[..., rows, cols], (r0, r1, c0, c1)

    def owned_count(self, stride: int) -> int:
        """How many feature positions at a layer of ``stride`` this tile owns."""
        (r0, r1), (c0, c1) = self.rows.features(stride)[1], self.cols.features(stride)[1]
        return (r1 - r0) * (c1 - c0)

    @property
    def crop_pixels(self) -> int:
        return (self.rows.high - self.rows.low) * (self.cols.high - self.cols.low)


def cuts(length: int, tile: int, stride: int) -> list[int]:
    """Edges from 0 to ``length`` on multiples of ``stride``, pieces of at most about
    ``tile`` (a multiple of ``stride``), as even as the stride allows."""
    count = max(1, math.ceil(length / tile))
    edges = [0]
    for k in range(1, count):
        edge = round(k * length / count / stride) * stride
        if edges[-1] < edge < length:
            edges.append(edge)
    return edges + [length]


def spans(length: int, tile: int, stride: int, reach: int) -> list[Span]:
    edges = cuts(length, tile, stride)
    return [Span(a, b, max(0, a - reach), min(length, b + reach)) for a, b in zip(edges, edges[1:])]


def tiles(size: tuple[int, int], tile: tuple[int, int], layers: Iterable[str], reach: int | None = None) -> list[Tile]:
    """The tiles of a picture of ``size`` (height, width), interiors of at most ``tile``
    (rounded to the stride), each with the halo the ``layers`` need (or ``reach``)."""
    layers = tuple(layers)
    stride = tile_stride(layers)
    reach = halo(layers) if reach is None else reach
    height, width = (max(stride, round(side / stride) * stride) for side in tile)
    rows = spans(size[0], height, stride, reach)
    cols = spans(size[1], width, stride, reach)
    return [Tile(r, c) for r in rows for c in cols]


@dataclass(frozen=True)
class Layout:
    """How a level fits its memory budget: the tiles' interior (None: the whole picture in
    one pass), the L-BFGS curvature pairs kept, and where the encoder's tiled head ends (None:
    the whole encoder in tiles; see :mod:`nstpipe.engine.tiled`)."""

    tile: tuple[int, int] | None
    history: int
    estimate: int  # bytes the level is expected to take at its peak
    split: str | None = None
    cost: float = 1.0  # the encoder's arithmetic per evaluation over an untiled pass's
