"""The optimization: pixels of the output are fitted to content features and style Grams.

No file I/O and no printing here. Progress leaves through a callback as small frozen
event objects; the caller decides what to show or save.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Union

import torch

from pipeline.color import keep_luminance, match_color_histogram, match_luminance
from pipeline.config import EngineConfig
from pipeline.losses import content_loss, gram, style_loss, temporal_loss, tv_loss
from pipeline.resize import fit_long_side, resize, resize_long_side

Encoder = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


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
    iterations: int  # over all scales
    loss: float


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
        return other

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
        style_side = max(16, round(long_side * self.config.style_scale))
        targets: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for weight, style in zip(self.blend, self.styles):
                image = self._recolor(resize_long_side(style, style_side), content)
                feats = self.encoder(image)
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
        sizes = pyramid(content.shape[-2], content.shape[-1], cfg.scales, cfg.min_scale_size)
        image = self._initial(content, init, sizes[0])
        total = 0
        loss = float("nan")
        for level, size in enumerate(sizes):
            image = resize(image, size)
            budget = cfg.iterations if level == len(sizes) - 1 else cfg.coarse_iterations
            level_temporal = _resize_temporal(temporal, size, self.device)
            image, ran, loss = self._optimize_level(
                resize(content, size), image, level, len(sizes), budget, callback, level_temporal
            )
            total += ran
        if cfg.preserve_color == "luminance":
            image = keep_luminance(image, content)
        return Result(image=image.detach(), iterations=total, loss=loss)

    def _initial(self, content: torch.Tensor, init: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if init is not None:
            return resize(init.to(self.device, torch.float32), size)
        if self.config.init == "noise":
            gen = torch.Generator().manual_seed(self.config.seed)
            return torch.rand(content.shape[:2] + size, generator=gen).to(self.device)
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
    ) -> tuple[torch.Tensor, int, float]:
        cfg = self.config
        h, w = content.shape[-2:]
        with torch.no_grad():
            content_target = self.encoder(content)[cfg.content_layer]
        grams = self.style_targets(max(h, w), content)
        # A contiguous copy: L-BFGS flattens gradients with view(-1), which a channels-last
        # input would break, and the caller's tensor must not be touched.
        x = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)
        objective = Objective(self.encoder, cfg, content_target, grams, temporal)
        step = make_step(cfg, x, objective)
        history: list[float] = []
        stopped_early = False
        for it in range(1, budget + 1):
            history.append(step())
            if callback is not None:
                callback(Progress(level, levels, it, budget, history[-1], h, w))
            if converged(history, cfg.patience, cfg.tolerance):
                stopped_early = it < budget
                break
        final = x.detach().clamp(0, 1)
        loss = history[-1] if history else float(objective(final).item())
        if callback is not None:
            callback(ScaleDone(level, levels, len(history), loss, stopped_early))
        return final, len(history), loss


def _resize_temporal(temporal: TemporalTarget | None, size: tuple[int, int], device: torch.device) -> TemporalTarget | None:
    if temporal is None:
        return None
    mask = temporal.mask.to(device, torch.float32)
    mask = mask.reshape((1, 1) + tuple(mask.shape)) if mask.dim() == 2 else mask
    warped = resize(temporal.warped.to(device, torch.float32), size)
    return TemporalTarget(warped=warped, mask=resize(mask, size))


class Objective:
    """content_weight * L_content + style_weight * mean_l(w_l * L_style_l) + tv_weight * L_tv
    (+ temporal_weight * L_temporal for a video frame with a warped predecessor)."""

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
        self.content_target = content_target
        self.grams = grams
        total = sum(config.style_layer_weights)
        self.layer_weights = [w / total for w in config.style_layer_weights] if total > 0 else list(config.style_layer_weights)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        feats = self.encoder(x)
        loss = cfg.content_weight * content_loss(feats[cfg.content_layer], self.content_target)
        for layer, weight in zip(cfg.style_layers, self.layer_weights):
            loss = loss + cfg.style_weight * weight * style_loss(feats[layer], self.grams[layer])
        if cfg.tv_weight:
            loss = loss + cfg.tv_weight * tv_loss(x)
        if self.temporal is not None:
            loss = loss + cfg.temporal_weight * temporal_loss(x, self.temporal.warped, self.temporal.mask)
        return loss.sum()


def make_step(config: EngineConfig, x: torch.Tensor, objective: Objective) -> Callable[[], float]:
    """One optimizer iteration (one forward and backward pass); returns the loss before it."""
    if config.optimizer == "lbfgs":
        # One iteration per step() so that every evaluation is reported and can stop early.
        # The tolerances are off: convergence is decided by ``converged`` over a window.
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [x], lr=1.0, max_iter=1, history_size=100, tolerance_grad=-1.0, tolerance_change=-1.0
        )
    else:
        opt = torch.optim.Adam([x], lr=config.learning_rate)

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = objective(x)
        loss.backward()
        return loss

    def step() -> float:
        loss = opt.step(closure).item()
        if config.optimizer == "adam":
            with torch.no_grad():
                x.clamp_(0, 1)  # x is our own leaf; L-BFGS is left unclamped to keep its curvature pairs valid
        return loss

    return step


def converged(history: Sequence[float], window: int, tolerance: float) -> bool:
    """True when the loss fell by less than ``tolerance`` (relative) over the last ``window`` steps."""
    if tolerance <= 0 or len(history) <= window:
        return False
    before, now = history[-1 - window], history[-1]
    return (before - now) <= tolerance * abs(before)


def pyramid(height: int, width: int, scales: int, min_size: int) -> list[tuple[int, int]]:
    """Sizes from coarse to fine; each level halves the long side, none below ``min_size``."""
    long_side = max(height, width)
    sizes = [(height, width)]
    for k in range(1, scales):
        side = long_side // (2**k)
        if side < min_size:
            break
        sizes.insert(0, fit_long_side(height, width, side))
    return sizes
