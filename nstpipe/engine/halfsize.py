"""The style terms on the picture at half its size: the shapes that the strokes make together.

At the full size, VGG19's style layers see a picture's strokes and, at relu4_1 and relu5_1,
parts of the shapes they make; the picture's larger shapes, as the painting's at the same
scale, are seen only whole at half the size. So a level may also hold the picture, brought
to half its size by 2x2 averaging, to the paintings brought to half their size, by the same
style terms (Snelgrove 2017 does so for textures, over a whole Gaussian pyramid).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from nstpipe.config.layers import vgg_cut
from nstpipe.engine.features import stops_short
from nstpipe.engine.resize import resize
from nstpipe.engine.terms import Encoder, Level, Pictures, Term


@dataclass(frozen=True)
class HalfSizeTarget:
    encoder: Encoder
    parts: tuple[tuple[Term[Any], Any], ...]  # each style term with its target at half the size


class HalfSizeTerm(Term[HalfSizeTarget]):
    """The sum of ``terms`` (style terms, their weights as given) over the picture at half its
    size, each with its target prepared at half the level's size; one more encoder pass, on a
    quarter of the pixels.

    Left out of a level whose half would be smaller than ``min_side`` on a side (it would
    see little more than the coarser levels did), and of a level read tile by tile (a
    picture too large for one pass: its half would be read in one).
    """

    def __init__(self, terms: Sequence[Term[Any]], min_side: int) -> None:
        super().__init__(sum(term.weight for term in terms))
        self.terms = tuple(terms)
        self.min_side = min_side
        read = [layer for term in self.terms for layer in term.layers]
        # The deepest layer the terms read: the half-size pass stops there (see read()).
        self.deepest = vgg_cut(read)[-1] if read else None

    @staticmethod
    def half(size: tuple[int, int]) -> tuple[int, int]:
        return size[0] // 2, size[1] // 2

    def applies(self, level: Level) -> bool:
        return bool(self.terms) and min(self.half(level.size)) >= self.min_side and level.read is None

    def prepare(self, level: Level) -> HalfSizeTarget:
        size = self.half(level.size)
        content = None if level.content is None else resize(level.content, size)
        half = Level(size, level.features, content=content, styles=level.styles)
        return HalfSizeTarget(level.features, tuple((term, term.prepare(half)) for term in self.terms))

    def refresh(self, target: HalfSizeTarget, step: int) -> None:
        for term, part in target.parts:
            term.refresh(part, step)

    def value(self, pictures: Pictures, target: HalfSizeTarget) -> torch.Tensor:
        small = F.avg_pool2d(pictures.picture, 2)
        seen = Pictures(pixels=small, picture=small, features=self.read(target.encoder, small), items=pictures.items)
        return torch.stack([term.value(seen, part) for term, part in target.parts]).sum(0)

    def read(self, encoder: Encoder, small: torch.Tensor) -> Mapping[str, torch.Tensor]:
        """The features of the half-size picture, the pass stopped at the deepest layer that
        these terms read where that leaves some of the encoder's layers unrun: with the
        shallow layers alone (``half_size_layers``) the deep blocks, most of the pass's
        cost, are not run. Otherwise the whole pass, as the picture's own."""
        if self.deepest is not None and stops_short(encoder, self.deepest):
            features: Mapping[str, torch.Tensor] = encoder.stage(small, None, self.deepest)[0]  # type: ignore[attr-defined]
            return features
        return encoder(small)
