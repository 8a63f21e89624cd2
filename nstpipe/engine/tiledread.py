"""A picture's features read tile by tile, without a graph: the photo's content features and
the paintings' statistics at sizes whose whole pass does not fit the memory budget.

The tiles are those of the tiled objective (:mod:`nstpipe.engine.tiles`): each interior
feature is the one a pass over the whole picture gives, so a feature map put together from
the tiles, or a sum over them, is the whole picture's up to float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import torch

from nstpipe.engine.losses import widen
from nstpipe.engine.memory import pass_floats
from nstpipe.engine.terms import Encoder
from nstpipe.engine.tiles import Tile, halo, layer_stride, tile_stride, tiles

FLOAT = 4


def forward_bytes(pixels: int, layers: Sequence[str]) -> int:
    """A bound on a pass without a graph: every output up to the deepest layer read."""
    return int(pass_floats(layers) * pixels * FLOAT)


def read_tile(size: tuple[int, int], layers: Sequence[str], budget: int) -> tuple[int, int] | None:
    """None where a whole pass over a picture of ``size`` takes at most half of ``budget``
    bytes (the rest is the run's); else the square tile interior whose pass takes a quarter."""
    if forward_bytes(size[0] * size[1], layers) <= budget // 2:
        return None
    per_pixel = pass_floats(layers) * FLOAT
    side = int((budget / 4 / per_pixel) ** 0.5) - 2 * halo(layers)
    stride = tile_stride(layers)
    side = max(stride, side // stride * stride)
    return side, side


def interiors(
    encoder: Encoder, image: torch.Tensor, layers: Sequence[str], tile: tuple[int, int]
) -> Iterator[tuple[Tile, dict[str, torch.Tensor]]]:
    """Each tile of ``image`` and the features it owns at ``layers`` (read through ``encoder``)."""
    with torch.no_grad():
        for piece in tiles((image.shape[-2], image.shape[-1]), tile, layers):
            features = encoder(piece.crop(image))
            yield piece, {layer: piece.interior(features[layer], layer_stride(layer))[0] for layer in layers}


def assemble(encoder: Encoder, image: torch.Tensor, layer: str, tile: tuple[int, int], deepest: Sequence[str]) -> torch.Tensor:
    """The whole picture's features at ``layer``, put together from tiles (``deepest``: the
    layers the encoder reads, whose stride the tiles keep)."""
    out: torch.Tensor | None = None
    stride = layer_stride(layer)
    for piece, owned in interiors(encoder, image, tuple(dict.fromkeys([*deepest, layer])), tile):
        part = owned[layer]
        if out is None:
            height, width = image.shape[-2] // stride, image.shape[-1] // stride
            out = part.new_empty((part.shape[0], part.shape[1], height, width))
        r0, c0 = piece.rows.start // stride, piece.cols.start // stride
        out[..., r0 : r0 + part.shape[-2], c0 : c0 + part.shape[-1]] = part
    assert out is not None
    return out


@dataclass
class Sums:
    """Sums over a layer's features: sum f f^T (C, C), sum f (C,) in float64, and their count."""

    outer: torch.Tensor
    total: torch.Tensor
    count: int

    def gram(self) -> torch.Tensor:
        """The Gram matrix F F^T / (C M), fp32 (C, C)."""
        return (self.outer / (self.outer.shape[0] * self.count)).float()

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (C,) and covariance (C, C), fp32."""
        mean = self.total / self.count
        return mean.float(), (self.outer / self.count - torch.outer(mean, mean)).float()


def sums(encoder: Encoder, image: torch.Tensor, layers: Sequence[str], tile: tuple[int, int]) -> dict[str, Sums]:
    """The sums of one picture (1, 3, H, W) at each of ``layers``, tile by tile."""
    out: dict[str, Sums] = {}
    for _, owned in interiors(encoder, image, layers, tile):
        for layer, features in owned.items():
            flat = widen(features[0]).flatten(1).double()
            part = Sums(flat @ flat.T, flat.sum(1), flat.shape[1])
            if layer in out:
                done = out[layer]
                part = Sums(done.outer + part.outer, done.total + part.total, done.count + part.count)
            out[layer] = part
    return out


def samples(
    encoder: Encoder, image: torch.Tensor, layers: Sequence[str], tile: tuple[int, int], keep: Mapping[str, float],
    generator: torch.Generator,
) -> dict[str, torch.Tensor]:
    """A random share ``keep[layer]`` of each layer's features, (C, m) fp32, drawn tile by tile."""
    parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for _, owned in interiors(encoder, image, layers, tile):
        for layer, features in owned.items():
            flat = widen(features[0]).flatten(1)
            count = max(1, round(keep[layer] * flat.shape[1]))
            index = torch.randperm(flat.shape[1], generator=generator)[:count].to(flat.device)
            parts[layer].append(flat[:, index])
    return {layer: torch.cat(each, dim=1) for layer, each in parts.items()}
