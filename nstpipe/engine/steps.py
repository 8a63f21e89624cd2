"""Gradient steps of a fixed mean size, as DeepDream takes them (Mordvintsev et al. 2015)."""

from __future__ import annotations

from typing import Iterable

import torch


class NormalizedStep(torch.optim.Optimizer):
    """x <- x - lr * g / mean|g|: every step moves the pixels by ``lr`` on average, whatever
    the scale of the objective. An activation grows by orders of magnitude over a dream,
    and so does its gradient: a plain step that suits the start overshoots by the end,
    while a step of fixed mean size climbs evenly, octave after octave.
    """

    def __init__(self, params: Iterable[torch.Tensor], lr: float = 1.5 / 255) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                # The tiny floor keeps a flat start (a gradient of zeros) where it is.
                p.sub_(grad, alpha=group["lr"] / (float(grad.abs().mean()) + 1e-12))
