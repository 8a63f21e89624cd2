"""One pyramid level optimized: one optimizer per picture, one batched pass per step, early
stopping, and the pass eager or replayed from a CUDA graph."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from nstpipe.config import EngineConfig
from nstpipe.engine.cudagraph import GraphedLosses
from nstpipe.engine.lbfgs import LBFGS
from nstpipe.engine.objective import Objective
from nstpipe.engine.steps import NormalizedStep
from nstpipe.engine.tiled import TiledObjective
from nstpipe.engine.tiles import Layout

LBFGS_HISTORY = 100  # curvature pairs kept, as in jcjohnson/neural-style
# A recording costs about three eager passes (two warm-ups and the capture): below this
# budget a level is cheaper eager.
GRAPH_MIN_STEPS = 8


class Item:
    """One picture of a batch: its pixels (our own leaf), its optimizer, its loss history."""

    def __init__(self, config: EngineConfig, start: torch.Tensor, budget: int, history: int = LBFGS_HISTORY) -> None:
        # A contiguous copy (L-BFGS flattens the pixels), and the caller's tensor is not touched.
        self.x = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        self.clamp = config.optimizer != "lbfgs"  # L-BFGS unclamped keeps its curvature pairs valid
        # A normalized-step run (DeepDream) ends with its last step, as the original does:
        # under a random jitter its loss is a noisy reading, and the last step is the one
        # that climbed furthest.
        self.keep_last = config.optimizer == "normalized"
        self.opt: LBFGS | torch.optim.Optimizer
        if config.optimizer == "normalized":
            self.opt = NormalizedStep([self.x], lr=config.learning_rate)
        elif config.optimizer == "lbfgs":
            # One iteration per step, no line search: every evaluation is reported and can
            # stop early, and a step costs exactly one encoder pass (the batched one in step()).
            # A level never holds more pairs than it has steps, so no more memory is taken.
            self.opt = LBFGS(self.x, history=max(1, min(history, budget)))
        else:
            self.opt = torch.optim.Adam([self.x], lr=config.learning_rate)
        # The lowest loss met so far, by step (what the stall rule and the reports see), and
        # the pixels that had it: a level ends with the best picture it evaluated, not with
        # the last step, whose loss nobody has seen.
        self.history: list[float] = []
        self.best: torch.Tensor | None = None

    def advance(self, loss: float) -> None:
        """One optimizer step from the gradient (and ``loss``) already computed at ``x``."""
        if self.best is None:
            self.best = self.x.detach().clone()
            self.history.append(loss)
        elif loss < self.history[-1]:
            self.best.copy_(self.x.detach())  # in place: a new copy would hold two at once
            self.history.append(loss)
        else:
            self.history.append(self.history[-1])
        if isinstance(self.opt, LBFGS):
            self.opt.step(loss=loss)
        else:
            self.opt.step()
        if self.clamp:
            with torch.no_grad():
                self.x.clamp_(0, 1)

    def picture(self) -> torch.Tensor:
        """The best pixels evaluated so far (the start, before any step); the last ones for
        a normalized-step run."""
        return (self.x if self.best is None or self.keep_last else self.best).detach()


# Losses of the active items, with the gradient of each left in its ``x.grad``.
Evaluate = Callable[[Sequence[Item], Sequence[int]], torch.Tensor]


def eager(objective: Objective) -> Evaluate:
    def evaluate(items: Sequence[Item], active: Sequence[int]) -> torch.Tensor:
        """One forward and backward pass over the active items."""
        xs = [items[i].x for i in active]
        for x in xs:
            x.grad = None
        batch = xs[0] if len(xs) == 1 else torch.cat(xs)
        losses = objective.losses(batch, active if len(active) < len(items) else None)
        torch.autograd.backward(losses.sum())
        return losses.detach()

    return evaluate


def tiled(objective: TiledObjective) -> Evaluate:
    def evaluate(items: Sequence[Item], active: Sequence[int]) -> torch.Tensor:
        """One pass over the active items, tile by tile, with the untiled gradient."""
        for i in active:
            items[i].x.grad = None  # the last step's gradient is not held beside the new one
        xs = [items[i].x.detach() for i in active]
        batch = xs[0] if len(xs) == 1 else torch.cat(xs)
        losses, grad = objective.losses_and_grad(batch, active if len(active) < len(items) else None)
        for k, i in enumerate(active):
            items[i].x.grad = grad[k : k + 1]
        return losses

    return evaluate


class Graphed:
    """The pass over the whole batch, replayed from a CUDA graph recorded at the start pixels.

    A picture that has converged rides along: each picture's loss depends on its own
    pixels alone, so the gradients of the others are what they would be without it, and
    one recording serves the whole level.
    """

    def __init__(self, objective: Objective, items: Sequence[Item]) -> None:
        self.graphed = GraphedLosses(objective.losses, torch.cat([item.x.detach() for item in items]))

    def __call__(self, items: Sequence[Item], active: Sequence[int]) -> torch.Tensor:
        with torch.no_grad():
            for i in active:
                self.graphed.x[i].copy_(items[i].x[0])
        losses, grad = self.graphed()
        for i in active:
            items[i].x.grad = grad[i : i + 1]  # a view: the optimizer copies what it keeps
        return losses[list(active)] if len(active) < len(items) else losses


def choose_evaluator(objective: Objective, items: Sequence[Item], budget: int, device: torch.device, config: EngineConfig) -> Evaluate:
    """Replayed from a CUDA graph on a GPU (where an eager pass waits on the host), else eager."""
    if device.type == "cuda" and config.cuda_graphs and not config.compile and budget >= GRAPH_MIN_STEPS:
        return Graphed(objective, items)
    return eager(objective)


def step(items: Sequence[Item], active: Sequence[int], evaluate: Evaluate) -> None:
    """One forward and backward pass over the active items, then one step of each."""
    losses = evaluate(items, active)
    for i, value in zip(active, losses.tolist()):
        items[i].advance(value)


def converged(history: Sequence[float], window: int, tolerance: float) -> bool:
    """True when the loss fell by less than ``tolerance`` (relative) over the last ``window`` steps."""
    if tolerance <= 0 or len(history) <= window:
        return False
    before, now = history[-1 - window], history[-1]
    return (before - now) <= tolerance * abs(before)


@dataclass(frozen=True)
class LevelOutcome:
    image: torch.Tensor  # (N, 3, h, w): each picture's best, clamped to [0, 1]
    steps: int  # batched steps run
    loss: float  # summed over the batch
    # Each picture's lowest loss by step. Only these outlive the level: its pictures' pixels,
    # best copies and L-BFGS pairs are freed before the next level makes its own (at
    # 2000x1500, fifteen pairs are 1.1G).
    histories: tuple[list[float], ...]


def optimize_level(
    objective: Objective,
    start: torch.Tensor,
    budget: int,
    config: EngineConfig,
    device: torch.device,
    report: Callable[[int, float], None] | None = None,
    layout: Layout | None = None,
) -> LevelOutcome:
    """At most ``budget`` steps from ``start``; ``report(step, loss)`` after each.

    One optimizer per batch item, all fed by one batched pass: each picture follows the
    path it would follow alone, and stops on its own. ``layout``: tiles and L-BFGS pairs
    that fit the memory budget (see :func:`nstpipe.engine.memory.plan_layout`).
    """
    history = LBFGS_HISTORY if layout is None else layout.history
    items = [Item(config, start[i : i + 1], budget, history) for i in range(start.shape[0])]
    active = list(range(len(items)))
    whole: Objective | TiledObjective = objective
    if layout is not None and layout.tile is not None:
        whole = TiledObjective(objective, layout.tile, split=layout.split)
        evaluate = tiled(whole)
    else:
        evaluate = choose_evaluator(objective, items, budget, device, config)
    steps = 0
    while active and steps < budget:
        steps += 1
        if steps > 1:
            whole.refresh(steps)  # the first step reads the targets as prepared
        step(items, active, evaluate)
        if report is not None:
            report(steps, sum(item.history[-1] for item in items if item.history))
        active = [i for i in active if not converged(items[i].history, config.patience, config.tolerance)]
    final = torch.cat([item.picture() for item in items]).clamp(0, 1)
    if steps == 0:
        with torch.no_grad():
            losses = whole.losses(final).tolist()
        for item, value in zip(items, losses):
            item.history.append(value)
    return LevelOutcome(final, steps, sum(item.history[-1] for item in items), tuple(item.history for item in items))
