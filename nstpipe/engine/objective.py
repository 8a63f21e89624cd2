"""An objective: the sum of its terms' values, each prepared for one pyramid level."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from nstpipe.engine.terms import Encoder, Level, Pictures, Term


class Objective:
    """sum_t value_t(x) over the terms that apply at a level, one loss per picture.

    Every term sees the picture clamped to [0, 1] (see :meth:`picture`); the range pull
    also sees the pixels themselves. One encoder pass serves all the terms.
    """

    def __init__(
        self, encoder: Encoder, parts: Sequence[tuple[Term[Any], Any]], view: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> None:
        """``parts``: each term with the target it prepared; ``view``: what the encoder sees
        of the picture (see :attr:`nstpipe.engine.modes.Mode.view`)."""
        self.encoder = encoder
        self.view = view
        self.parts = tuple(parts)
        self.layers = tuple(dict.fromkeys(layer for term, _ in self.parts for layer in term.layers))

    @classmethod
    def at(cls, level: Level, terms: Sequence[Term[Any]], view: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Objective:
        """The terms that apply at ``level``, their targets prepared there."""
        return cls(level.features, [(term, term.prepare(level)) for term in terms if term.applies(level)], view)

    def refresh(self, step: int) -> None:
        """Before optimizer step ``step``: each term redraws what it draws (see :meth:`Term.refresh`)."""
        for term, target in self.parts:
            term.refresh(target, step)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.losses(x).sum()

    @staticmethod
    def picture(x: torch.Tensor) -> torch.Tensor:
        """The picture that the pixels ``x`` stand for: ``x`` clamped to [0, 1], as saved.

        L-BFGS knows no bounds: left to itself it pushes a few percent of the pixels out of
        range within some hundred steps, and the clamp at the end then undoes part of what
        it won (``python -m bench clamp`` measures both). Taking the loss of
        the clamped picture makes the optimizer win only what is saved. The loss alone is
        flat outside the range, though, and L-BFGS reads flat as no curvature: its steps
        there grow until most pixels are out and stuck. So a pixel outside is also pulled
        back, by the range pull (:class:`~nstpipe.engine.terms.RangePull`), a smooth term
        that keeps the curvature pairs those of one function (a clamp of the pixels between
        steps would break them).
        """
        return x.clamp(0, 1)

    def losses(self, x: torch.Tensor, items: Sequence[int] | None = None) -> torch.Tensor:
        """One loss per picture of ``x``; ``items`` says which batch items ``x`` holds."""
        picture = self.picture(x)
        seen = picture if self.view is None else self.view(picture)
        features = self.encoder(seen) if self.layers else {}
        pictures = Pictures(pixels=x, picture=picture, features=features, items=items)
        # One stack and one sum rather than an addition per term; the terms' order decides
        # how the float sum rounds, so a mode keeps its terms in a fixed order.
        return torch.stack([term.value(pictures, target) for term, target in self.parts]).sum(0)
