"""The optimization: pixels of the output are fitted to content features and style Grams.

No file I/O and no printing here. Progress leaves through a callback as small frozen
event objects; the caller decides what to show or save.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

import torch

from pipeline.engine.color import keep_luminance, match_color_histogram, match_luminance
from pipeline.config import EngineConfig, vgg_cut
from pipeline.engine.cudagraph import GraphedLosses
from pipeline.engine.features import Encoder, FeaturePass, resolve_precision
from pipeline.errors import NstpipeError
from pipeline.engine.lbfgs import LBFGS
from pipeline.engine.losses import gram, gram_error, gram_norm, squared_error, squared_norm, temporal_loss, tv_loss, widen
from pipeline.engine.resize import fit_long_side, resize, resize_long_side

LBFGS_HISTORY = 100  # curvature pairs kept, as in jcjohnson/neural-style
# Weight of the pull back into [0, 1] on the mean squared excess of the pixels outside it
# (see Objective.picture): a pixel 0.1 out on 1% of the picture costs 1e-3, against losses
# of order 1. Enough to keep L-BFGS's steps finite there; 100 and more made its steps
# overshoot on a small problem (tests/test_perf.py), where the loss then rose.
OUTSIDE_WEIGHT = 10.0


@dataclass(frozen=True)
class Progress:
    """Sent after every optimizer iteration."""

    scale: int  # 0 = coarsest
    scales: int
    iteration: int  # 1-based, within this scale
    iterations: int  # budget of this scale
    loss: float
    height: int
    width: int


@dataclass(frozen=True)
class ScaleDone:
    """Sent when one level of the pyramid is finished."""

    scale: int
    scales: int
    iterations: int  # actually run
    loss: float
    stopped_early: bool


Event = Union[Progress, ScaleDone]
Callback = Callable[[Event], None]


@dataclass(frozen=True)
class TemporalTarget:
    """The previous stylized frame warped onto this one, and where to trust it."""

    warped: torch.Tensor  # (N, 3, H, W) RGB in [0, 1]
    mask: torch.Tensor  # (H, W), (1, 1, H, W) or (N, 1, H, W), 1 = trust


@dataclass(frozen=True)
class Result:
    image: torch.Tensor  # (N, 3, H, W), RGB in [0, 1], on the stylizer's device
    iterations: int  # batched steps over all scales (for N = 1: the optimizer iterations)
    loss: float  # summed over the batch
    item_iterations: tuple[int, ...] = ()  # per batch item: the steps that updated it
    item_losses: tuple[float, ...] = ()


class Stylizer:
    """Holds the encoder and the style images; Gram targets are computed once per size.

    One instance serves many content images (an archive, or the frames of a video):
    the style targets depend only on the output's long side, so they are cached.
    """

    def __init__(
        self,
        encoder: Encoder,
        styles: Sequence[torch.Tensor],
        config: EngineConfig,
        device: torch.device | str = "cpu",
    ) -> None:
        if not styles:
            raise ValueError("at least one style image is needed")
        blend = config.style_blend or (1.0,) * len(styles)
        if len(blend) != len(styles):
            raise ValueError(f"{len(blend)} style weights for {len(styles)} style images")
        if sum(blend) <= 0:
            raise ValueError("style weights must not all be zero")
        self.encoder = encoder
        self.config = config
        self.device = torch.device(device)
        self.features = FeaturePass(encoder, self.device, config)
        self.styles = [s.to(self.device) for s in styles]
        self.blend = [w / sum(blend) for w in blend]
        self._gram_cache: dict[int, dict[str, torch.Tensor]] = {}

    def with_config(self, config: EngineConfig) -> Stylizer:
        """The same encoder, styles and Gram cache under another budget or temporal weight.

        For settings that do not change the style targets (iterations, scales, weights of
        the loss terms); the video path uses it for frames after the first.
        """
        other = copy.copy(self)
        other.config = config
        if (config.precision, config.compile) != (self.config.precision, self.config.compile):
            other.features = FeaturePass(self.encoder, self.device, config)
            other._gram_cache = {}  # targets computed at another precision
        return other

    @property
    def precision(self) -> str:
        """``fp32`` or ``bf16``: what ``auto`` chose on this device."""
        return self.features.precision

    # -- targets -------------------------------------------------------------------------

    def style_targets(self, long_side: int, content: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Blended Gram targets for an output whose long side is ``long_side``.

        Several styles are mixed by a weighted mean of their Gram matrices, one target
        per layer, rather than by a weighted sum of separate losses: the optimum is the
        same texture statistic and the loss stays one term per layer.
        """
        depends_on_content = self.config.preserve_color != "none"
        if not depends_on_content and long_side in self._gram_cache:
            return self._gram_cache[long_side]
        if depends_on_content and content is not None and content.shape[0] > 1:
            # A batch of photos: each recolours the painting its own way, so (N, C, C) targets.
            each = [self.style_targets(long_side, content[i : i + 1]) for i in range(content.shape[0])]
            return {layer: torch.stack([t[layer] for t in each]) for layer in self.config.style_layers}
        style_side = max(16, round(long_side * self.config.style_scale))
        targets: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for weight, style in zip(self.blend, self.styles):
                image = self._recolor(resize_long_side(style, _wide_enough(style, style_side, self.config.min_side)), content)
                feats = self.features(image)
                for layer in self.config.style_layers:
                    g = weight * gram(feats[layer])[0]
                    targets[layer] = targets[layer] + g if layer in targets else g
        if not depends_on_content:
            self._gram_cache[long_side] = targets
        return targets

    def _recolor(self, style: torch.Tensor, content: torch.Tensor | None) -> torch.Tensor:
        mode = self.config.preserve_color
        if mode == "none" or content is None:
            return style
        if mode == "histogram":
            return match_color_histogram(style, content)
        return match_luminance(style, content)

    # -- optimization ----------------------------------------------------------------------

    def run(
        self,
        content: torch.Tensor,
        init: torch.Tensor | None = None,
        callback: Callback | None = None,
        temporal: TemporalTarget | None = None,
    ) -> Result:
        """Stylize ``content`` (N, 3, H, W) RGB in [0, 1]; the output has the same size.

        ``init`` overrides the configured init (the video path passes the warped previous
        frame here); ``temporal`` adds the temporal loss toward that frame. No input is
        modified.
        """
        cfg = self.config
        content = content.to(self.device, torch.float32)
        height, width = content.shape[-2:]
        if min(height, width) < cfg.min_side:
            # A thin panorama at a small --size: VGG19 would pool a side down to nothing.
            raise NstpipeError(
                f"too thin to stylize at {width}x{height} pixels: the VGG19 layers used need at "
                f"least {cfg.min_side} on each side (raise --size)"
            )
        sizes = pyramid(height, width, cfg.scales, cfg.min_scale_size, cfg.min_side)
        image = self._initial(content, init, sizes[0])
        total = 0
        per_item = [0] * content.shape[0]
        loss = float("nan")
        # The photo is mixed into finer levels only when the run starts from the photo.
        mix = cfg.content_mix if init is None and cfg.init == "content" else 0.0
        for level, size in enumerate(sizes):
            image = resize(image, size)
            if level > 0 and mix > 0:
                # See EngineConfig.content_mix: the photo's detail, which half size lost.
                image = (1 - mix) * image + mix * resize(content, size)
            budget = cfg.iterations if level == len(sizes) - 1 else cfg.coarse_iterations
            level_temporal = _resize_temporal(temporal, size, self.device)
            image, ran, loss, items = self._optimize_level(
                resize(content, size), image, level, len(sizes), budget, callback, level_temporal
            )
            total += ran
            per_item = [done + len(item.history) for done, item in zip(per_item, items)] if ran else per_item
        if cfg.preserve_color == "luminance":
            image = keep_luminance(image, content)
        losses = tuple(item.history[-1] for item in items)
        return Result(image=image.detach(), iterations=total, loss=loss, item_iterations=tuple(per_item), item_losses=losses)

    def _initial(self, content: torch.Tensor, init: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if init is not None:
            return resize(init.to(self.device, torch.float32), size).expand(content.shape[0], -1, -1, -1)
        if self.config.init == "noise":
            # One draw shared by the batch: each picture starts from the noise it gets alone.
            gen = torch.Generator().manual_seed(self.config.seed)
            noise = torch.rand((1, 3) + size, generator=gen).to(self.device)
            return noise.expand(content.shape[0], -1, -1, -1)
        # "content", and a file path that the caller has already turned into ``init``.
        return resize(content, size)

    def _optimize_level(
        self,
        content: torch.Tensor,
        start: torch.Tensor,
        level: int,
        levels: int,
        budget: int,
        callback: Callback | None,
        temporal: TemporalTarget | None = None,
    ) -> tuple[torch.Tensor, int, float, list[_Item]]:
        cfg = self.config
        h, w = content.shape[-2:]
        with torch.no_grad():
            content_target = self.features(content)[cfg.content_layer]
        grams = self.style_targets(max(h, w), content)
        objective = Objective(self.features, cfg, content_target, grams, temporal)
        # One optimizer per batch item, all fed by one batched VGG pass: each picture
        # follows the path it would follow alone, and stops on its own.
        items = [_Item(cfg, start[i : i + 1], budget) for i in range(start.shape[0])]
        active = list(range(len(items)))
        evaluate = self._evaluator(objective, items, budget)
        steps = 0
        while active and steps < budget:
            steps += 1
            _step(items, active, evaluate)
            if callback is not None:
                total = sum(item.history[-1] for item in items if item.history)
                callback(Progress(level, levels, steps, budget, total, h, w))
            active = [i for i in active if not converged(items[i].history, cfg.patience, cfg.tolerance)]
        final = torch.cat([item.picture() for item in items]).clamp(0, 1)
        if steps == 0:
            with torch.no_grad():
                losses = objective.losses(final).tolist()
            for item, value in zip(items, losses):
                item.history.append(value)
        loss = sum(item.history[-1] for item in items)
        if callback is not None:
            callback(ScaleDone(level, levels, steps, loss, 0 < steps < budget))
        return final, steps, loss, items

    def _evaluator(self, objective: Objective, items: Sequence[_Item], budget: int) -> Evaluate:
        """How this level computes its losses and gradients: replayed from a CUDA graph on a
        GPU (where an eager pass waits on the host), else eagerly."""
        cfg = self.config
        if self.device.type == "cuda" and cfg.cuda_graphs and not cfg.compile and budget >= GRAPH_MIN_STEPS:
            return _Graphed(objective, items)
        return _eager(objective)


# A recording costs about three eager passes (two warm-ups and the capture): below this
# budget a level is cheaper eager.
GRAPH_MIN_STEPS = 8


def _resize_temporal(temporal: TemporalTarget | None, size: tuple[int, int], device: torch.device) -> TemporalTarget | None:
    if temporal is None:
        return None
    mask = temporal.mask.to(device, torch.float32)
    mask = mask.reshape((1, 1) + tuple(mask.shape)) if mask.dim() == 2 else mask
    warped = resize(temporal.warped.to(device, torch.float32), size)
    return TemporalTarget(warped=warped, mask=resize(mask, size))


class Objective:
    """content_weight * L_content + style_weight * mean_l(w_l * L_style_l) + tv_weight * L_tv
    (+ temporal_weight * L_temporal for a video frame with a warped predecessor), all of
    the picture clamped to [0, 1], plus a pull back into [0, 1] (see :meth:`picture`)."""

    def __init__(
        self,
        encoder: Encoder,
        config: EngineConfig,
        content_target: torch.Tensor,
        grams: Mapping[str, torch.Tensor],
        temporal: TemporalTarget | None = None,
    ) -> None:
        self.encoder = encoder
        self.temporal = temporal
        self.config = config
        total = sum(config.style_layer_weights)
        self.layer_weights = [w / total for w in config.style_layer_weights] if total > 0 else list(config.style_layer_weights)
        # Each relative error's weight over its target's squared norm, once for every step of
        # the level: a step then costs a squared error and a product per term. On a GPU an
        # iteration waits on the host's launches, so operators saved are time saved.
        self.content_target = widen(content_target)
        self.content_coef = config.content_weight / squared_norm(self.content_target)
        self.grams = grams
        self.style_coefs = {
            layer: config.style_weight * weight / gram_norm(grams[layer])
            for layer, weight in zip(config.style_layers, self.layer_weights)
        }

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.losses(x).sum()

    @staticmethod
    def picture(x: torch.Tensor) -> torch.Tensor:
        """The picture that the pixels ``x`` stand for: ``x`` clamped to [0, 1], as saved.

        L-BFGS knows no bounds: left to itself it pushes a few percent of the pixels out of
        range within some hundred steps, and the clamp at the end then undoes part of what
        it won (``scripts/bench_clamp.py`` measures both). Taking the loss of
        the clamped picture makes the optimizer win only what is saved. The loss alone is
        flat outside the range, though, and L-BFGS reads flat as no curvature: its steps
        there grow until most pixels are out and stuck. So a pixel outside is also pulled
        back, by ``OUTSIDE_WEIGHT`` times the mean squared excess, a smooth term that keeps
        the curvature pairs those of one function (a clamp of the pixels between steps
        would break them).
        """
        return x.clamp(0, 1)

    def losses(self, x: torch.Tensor, items: Sequence[int] | None = None) -> torch.Tensor:
        """One loss per picture of ``x``; ``items`` says which batch items ``x`` holds."""
        cfg = self.config
        pick = _picker(items)
        raw, x = x, self.picture(x)
        feats = self.encoder(x)
        # content_weight * content_loss + style_weight * sum_l w_l * style_loss_l, as in the
        # losses module, with the norms and weights folded into the coefficients.
        terms = [squared_error(feats[cfg.content_layer], pick(self.content_target)) * pick(self.content_coef, batched_dims=1)]
        for layer in cfg.style_layers:
            target = pick(self.grams[layer], batched_dims=3)
            terms.append(gram_error(feats[layer], target) * pick(self.style_coefs[layer], batched_dims=1))
        if cfg.tv_weight:
            terms.append(cfg.tv_weight * tv_loss(x))
        if self.temporal is not None:
            warped, mask = pick(self.temporal.warped), pick(self.temporal.mask)
            terms.append(cfg.temporal_weight * temporal_loss(x, warped, mask))
        terms.append(OUTSIDE_WEIGHT * (raw - x).pow(2).flatten(1).mean(1))
        return torch.stack(terms).sum(0)


def _picker(items: Sequence[int] | None) -> Callable[..., torch.Tensor]:
    """Selects batch items of a target; one shared by the whole batch is left as it is."""

    def pick(target: torch.Tensor, batched_dims: int = 4) -> torch.Tensor:
        if items is None or target.dim() < batched_dims or target.shape[0] == 1:
            return target
        return target[list(items)]

    return pick


class _Item:
    """One picture of a batch: its pixels (our own leaf), its optimizer, its loss history."""

    def __init__(self, config: EngineConfig, start: torch.Tensor, budget: int) -> None:
        # A contiguous copy (L-BFGS flattens the pixels), and the caller's tensor is not touched.
        self.x = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        self.clamp = config.optimizer == "adam"  # L-BFGS unclamped keeps its curvature pairs valid
        self.opt: LBFGS | torch.optim.Optimizer
        if config.optimizer == "lbfgs":
            # One iteration per step, no line search: every evaluation is reported and can
            # stop early, and a step costs exactly one VGG pass (the batched one in _step).
            # A level never holds more pairs than it has steps, so no more memory is taken.
            self.opt = LBFGS(self.x, history=max(1, min(LBFGS_HISTORY, budget)))
        else:
            self.opt = torch.optim.Adam([self.x], lr=config.learning_rate)
        # The lowest loss met so far, by step (what the stall rule and the reports see), and
        # the pixels that had it: a level ends with the best picture it evaluated, not with
        # the last step, whose loss nobody has seen.
        self.history: list[float] = []
        self.best: torch.Tensor | None = None

    def advance(self, loss: float) -> None:
        """One optimizer step from the gradient (and ``loss``) already computed at ``x``."""
        if self.best is None or loss < self.history[-1]:
            self.best = self.x.detach().clone()
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
        """The best pixels evaluated so far (the start, before any step)."""
        return (self.x if self.best is None else self.best).detach()


# Losses of the active items, with the gradient of each left in its ``x.grad``.
Evaluate = Callable[[Sequence[_Item], Sequence[int]], torch.Tensor]


def _eager(objective: Objective) -> Evaluate:
    def evaluate(items: Sequence[_Item], active: Sequence[int]) -> torch.Tensor:
        """One forward and backward pass over the active items."""
        xs = [items[i].x for i in active]
        for x in xs:
            x.grad = None
        batch = xs[0] if len(xs) == 1 else torch.cat(xs)
        losses = objective.losses(batch, active if len(active) < len(items) else None)
        losses.sum().backward()
        return losses.detach()

    return evaluate


class _Graphed:
    """The pass over the whole batch, replayed from a CUDA graph recorded at the start pixels.

    A picture that has converged rides along: each picture's loss depends on its own
    pixels alone, so the gradients of the others are what they would be without it, and
    one recording serves the whole level.
    """

    def __init__(self, objective: Objective, items: Sequence[_Item]) -> None:
        self.graphed = GraphedLosses(objective.losses, torch.cat([item.x.detach() for item in items]))

    def __call__(self, items: Sequence[_Item], active: Sequence[int]) -> torch.Tensor:
        with torch.no_grad():
            for i in active:
                self.graphed.x[i].copy_(items[i].x[0])
        losses, grad = self.graphed()
        for i in active:
            items[i].x.grad = grad[i : i + 1]  # a view: the optimizer copies what it keeps
        return losses[list(active)] if len(active) < len(items) else losses


def _step(items: Sequence[_Item], active: Sequence[int], evaluate: Evaluate) -> None:
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


def image_memory(side: int, config: EngineConfig) -> int:
    """Bytes of device memory that one more picture in a batch takes, at a long side of ``side``.

    A rough bound for choosing a batch size, not an account. The picture is taken square
    (the most a long side allows). Every VGG19 output up to the deepest layer used is kept
    for the backward pass, which makes a gradient of the same size (x2), counted as fp32
    (bf16 activations take half). Then the optimizer's state: L-BFGS keeps up to
    LBFGS_HISTORY curvature pairs (s, y) of the picture's size, Adam two moments.
    """
    pixels = side * side
    floats, area = 0, pixels
    for name in vgg_cut(config.layers):
        if name.startswith("pool"):
            area //= 4
        block = int(name[4])  # conv3_1, relu3_1 and pool3 are all of block 3
        floats += min(64 << (block - 1), 512) * area
    activations = 2 * floats * 4
    pairs = max(1, min(LBFGS_HISTORY, config.iterations)) if config.optimizer == "lbfgs" else 1
    return activations + pairs * 2 * 3 * pixels * 4


def _wide_enough(image: torch.Tensor, long_side: int, min_side: int) -> int:
    """``long_side``, or more for a thin picture whose short side would end up below ``min_side``."""
    height, width = image.shape[-2:]
    return max(long_side, math.ceil(min_side * max(height, width) / max(1, min(height, width))))


def pyramid(height: int, width: int, scales: int, min_size: int, min_side: int = 1) -> list[tuple[int, int]]:
    """Sizes from coarse to fine; each level halves the long side, none below ``min_size``,
    and none with a short side below ``min_side`` (what the encoder's layers need)."""
    long_side = max(height, width)
    sizes = [(height, width)]
    for k in range(1, scales):
        side = long_side // (2**k)
        size = fit_long_side(height, width, side)
        if side < min_size or min(size) < min_side:
            break
        sizes.insert(0, size)
    return sizes
