"""The settings' sections: the engine's, a video's and each mode's, frozen dataclasses."""

from __future__ import annotations

import math
from dataclasses import dataclass

from nstpipe.config.layers import LAYERS, layer_channels, smallest_side
from nstpipe.config.rules import (
    COLOR_MODES,
    COLOR_STARTS,
    MIN_SIZE,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    TEMPORAL_HOLDS,
    TEMPORAL_MODES,
    check,
    check_positive,
    check_weight,
    check_weights,
    parse_memory,
    style_terms,
)

SEED_LIMIT = 2**63  # a texture's picture k is seeded seed + k, still below torch's 2**64


@dataclass(frozen=True)
class EngineConfig:
    """Everything the optimization needs; no paths except an optional init image."""

    content_layer: str = "relu4_2"
    content_weight: float = 1.0
    style_layers: tuple[str, ...] = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    style_weight: float = 1.0
    # The style terms and their shares of style_weight, "kind:share" separated by commas
    # (share 1 where left out): "gram" (Gatys et al.'s Gram matrices), "meancov" (W2 between
    # Gaussians fitted to the features), "sliced" (sliced Wasserstein over random directions).
    style_loss: str = "gram"
    # Random directions per step of a sliced term; 0: as many as the layer has channels.
    sliced_directions: int = 0
    # The style terms again on the picture brought to half its size, against the paintings
    # at half their size, at this share of style_weight (0: off): the shapes that the strokes
    # make together, which the full size's layers see only in part. Left out at a level
    # whose half is below min_scale_size, and at a level read tile by tile.
    half_size_style: float = 0.0
    # The style layers that the terms at half the size read, each at its full-size weight
    # (empty: all). The deep ones there see the layout that the full size's already match.
    half_size_layers: tuple[str, ...] = ()
    # A sliced term weighs (painting's feature variance / photo's) ** this, per layer (0: every
    # painting alike): a painting of stronger contrast than the photo is matched harder, as
    # an unnormalized loss would, while one near the photo's keeps the photo's shapes.
    energy_power: float = 0.0
    # Where a run from the photo starts: the photo as it is ("none"), or recoloured to the
    # paintings' colour mean and covariance ("meancov") or to their whole colour distribution
    # by sliced optimal transport ("transport"), so the first step is already in the
    # painting's palette. Off with preserve_color, which keeps the photo's colours.
    color_start: str = "none"
    tv_weight: float = 0.0
    # Weight of the temporal term; used only when a video passes a warped previous frame.
    # The temporal loss is a mean over pixels, so 100 makes a 0.1 colour step at every
    # trusted pixel cost as much as the whole content loss at its usual size (~0.4-1).
    temporal_weight: float = 100.0
    style_scale: float = 1.0
    style_blend: tuple[float, ...] = ()
    preserve_color: str = "none"
    pooling: str = "max"
    init: str = "content"
    optimizer: str = "lbfgs"
    learning_rate: float = 0.02
    iterations: int = 300
    coarse_iterations: int = 200
    # The coarsest level's budget (0: coarse_iterations). It is the cheapest level, and the
    # one where the picture's larger shapes form.
    coarsest_iterations: int = 0
    scales: int = 1
    min_scale_size: int = 64
    # Each finer level of the pyramid starts from this share of the photo plus the rest of
    # the coarser level's result, upsampled (only with init = "content"): half size cannot
    # hold the photo's fine detail, and the finer level regains it faster from the photo
    # than from a blurred upsample.
    content_mix: float = 0.0
    # With init = "noise" and a photo: the photo's share of the first level's start, the rest
    # noise. Where the start is the photo alone, the optimizer keeps its shapes (a window, a
    # plain sky) that the painting does not have; from noise alone, it loses the layout.
    photo_share: float = 0.0
    tolerance: float = 0.0
    patience: int = 20
    seed: int = 0
    # Arithmetic of the VGG19 pass: "fp32"; "bf16" (autocast: the image, the losses and the
    # optimizer stay fp32); "auto": bf16 where the hardware has bf16 matrix units (CUDA
    # GPUs that support it, CPUs with AMX), else fp32. bf16 changes the output slightly.
    precision: str = "fp32"
    # torch.compile the VGG19 pass: one compilation per image size, then faster steps on a
    # GPU. Same pictures, so it is left out of the fingerprint.
    compile: bool = False
    # On CUDA, record each pyramid level's VGG19 pass (forward and backward) as a CUDA graph
    # and replay it (nstpipe.engine.cudagraph): the same arithmetic, launched once instead of
    # kernel by kernel. Not with compile. Opt-in: `python -m bench hardware --device cuda`
    # times it beside the eager pass, which stays the default. Left out of the fingerprint.
    cuda_graphs: bool = False
    # The memory a run may take, e.g. "6G" or "512M"; "auto": a share of the device's free
    # memory (of the available RAM on a CPU). A level that does not fit runs its encoder
    # tile by tile, with the gradient of the whole (nstpipe.engine.tiled): the same pictures
    # up to float rounding, so it is left out of the fingerprint.
    max_memory: str = "auto"
    # A picture whose long side is above this (0: never) is painted up a pyramid to its full
    # size: the preset's levels up to this long side, then levels each twice the one before,
    # each with half the iterations of the one below it, since the finest levels only
    # refine detail that the coarser ones placed.
    fine_side: int = 0

    def __post_init__(self) -> None:
        self._check_layers()
        self._check_numbers()
        check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        check(self.pooling in POOLINGS, "pooling", f"must be one of {', '.join(POOLINGS)}")
        check(self.preserve_color in COLOR_MODES, "preserve_color", f"must be one of {', '.join(COLOR_MODES)}")
        check(self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}")
        check(self.color_start in COLOR_STARTS, "color_start", f"must be one of {', '.join(COLOR_STARTS)}")
        check(self.sliced_directions >= 0, "sliced_directions", f"must not be negative (got {self.sliced_directions})")
        style_terms(self.style_loss)
        parse_memory(self.max_memory)

    def _check_layers(self) -> None:
        check(self.content_layer in LAYERS, "content_layer", f"unknown layer {self.content_layer!r}")
        for layer in self.style_layers:
            check(layer in LAYERS, "style_layers", f"unknown layer {layer!r}")
        check(len(self.style_layers) > 0, "style_layers", "at least one layer is needed")
        check(
            len(self.style_layer_weights) == len(self.style_layers),
            "style_layer_weights",
            f"{len(self.style_layer_weights)} weights for {len(self.style_layers)} style layers",
        )
        check_weights("style_layer_weights", self.style_layer_weights)
        for layer in self.half_size_layers:
            check(layer in self.style_layers, "half_size_layers", f"{layer!r} is not one of the style layers")

    def _check_numbers(self) -> None:
        # NaN and inf are floats to Python: unchecked, they reached the optimizer, which ran
        # to a NaN loss and saved a picture close to the photo. A negative weight rewards
        # moving away from its target.
        for key in ("content_weight", "style_weight", "tv_weight", "temporal_weight", "tolerance", "half_size_style"):
            check_weight(key, getattr(self, key))
        check_positive("style_scale", self.style_scale)
        power = self.energy_power
        check(math.isfinite(power) and 0 <= power <= 4, "energy_power", f"must be between 0 and 4 (got {power})")
        check_positive("learning_rate", self.learning_rate)
        if self.style_blend:
            check_weights("style_blend", self.style_blend)
        check(self.iterations >= 0, "iterations", f"must not be negative (got {self.iterations})")
        check(self.coarse_iterations >= 0, "coarse_iterations", f"must not be negative (got {self.coarse_iterations})")
        check(self.coarsest_iterations >= 0, "coarsest_iterations", f"must not be negative (got {self.coarsest_iterations})")
        check(self.scales >= 1, "scales", "must be at least 1")
        check(self.min_scale_size >= 1, "min_scale_size", "must be at least 1")
        check(0.0 <= self.content_mix <= 1.0, "content_mix", "must be between 0 and 1")
        check(0.0 <= self.photo_share <= 1.0, "photo_share", "must be between 0 and 1")
        check(self.patience >= 1, "patience", "must be at least 1")
        check(self.fine_side >= 0, "fine_side", f"must not be negative (got {self.fine_side})")
        # torch's generators take a 64-bit seed; a larger one failed at the first noise drawn.
        check(-SEED_LIMIT <= self.seed < SEED_LIMIT, "seed", f"must be from {-SEED_LIMIT} to {SEED_LIMIT - 1} (got {self.seed})")

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the losses read, content first."""
        return tuple(dict.fromkeys((self.content_layer, *self.style_layers)))

    @property
    def min_side(self) -> int:
        """The smallest width or height the layers read can take (see :func:`smallest_side`)."""
        return smallest_side(self.layers)

    @property
    def init_is_file(self) -> bool:
        """Whether ``init`` names a picture to start from, rather than ``content`` or ``noise``."""
        return self.init not in ("content", "noise")


def half_size_read(engine: EngineConfig) -> tuple[str, ...]:
    """The style layers that the terms at half the size read: ``half_size_layers``, or every
    style layer where that is empty. The terms, the memory plan and the time estimate all
    take it from here, so that they agree on how deep the half-size pass goes."""
    return engine.half_size_layers or engine.style_layers


@dataclass(frozen=True)
class VideoConfig:
    """How a video's frames are chained; the engine settings apply to every frame.

    The first frame of a chain gets the engine's full budget, the pyramid,
    ``coarse_iterations`` and ``iterations``, times ``first_budget``. A later frame starts
    from its stylized predecessor, which is already most of the way there, so it runs
    ``later_iterations`` at full size only, with the same early stopping. With
    ``temporal = "none"`` every frame is painted alone, with the engine's budget.
    """

    temporal: str = "flow"
    later_iterations: int = 40
    # Every later frame of a chain inherits its first frame: one left short of settled
    # keeps moving toward the settled picture over the frames after it, and that motion
    # is flicker (see configs/default.toml). A multiple, so that -n still scales it.
    first_budget: float = 1.0
    # Frame distances of the temporal loss (flow): (1,) holds a frame to its predecessor;
    # (1, 2, 4, 8) also to frames further back, each pixel to the most recent where it was
    # visible (Ruder et al. 2018's long-term loss), so a painting that slowly drifts, or an
    # object that reappears, is held to what it was. On by default: a painting held only to
    # its predecessor drifts over the seconds where the footage stands still, and the frames
    # further back cost warps, not VGG19 passes.
    temporal_gaps: tuple[int, ...] = (1, 2, 4, 8)
    # How those frames share a pixel: "recent", to the most recent where it was visible
    # (Ruder et al.), so that a pixel seen by the predecessor is held to it alone; "fading",
    # to every one where it was visible, each half as strongly as the nearer one, so that the
    # little that each frame's iterations move a pixel does not add up over the frames. Fading
    # by default: steadier at gaps 5 to 30 on both bundled clips, by the two judges that the
    # painter is not held to as well (docs/benchmarks.md).
    temporal_hold: str = "fading"
    # Passes over each chain, alternating in direction (Ruder et al. 2018's multi-pass): 1
    # paints forward only; 2 then walks back from the chain's last frame to its first, each
    # frame starting from its painting blended with its successor warped back along the
    # flow (``pass_blend`` of the successor where the flow is trusted) and held to it by the
    # temporal loss for ``pass_iterations``; 3 walks forward again, and so on. The forward
    # pass leaves the start of a chain the least settled; the pass back carries the settled
    # end to it. Ruder et al. blend half and half over many passes; with one or two, a
    # frame starts wholly from its successor where the flow is trusted, and keeps its own
    # painting only where the successor did not see it. Chained modes only (flow, prev).
    video_passes: int = 1
    pass_iterations: int = 10
    pass_blend: float = 1.0
    # After a later frame's iterations, its pixels move this share of the way back toward
    # the earlier frames warped onto it (the temporal loss's target), where the flow trusts
    # them: a pixel-space step of Bonneel et al.'s (2015) blind temporal consistency. The
    # iterations leave strokes in still parts of the footage moving a little each frame;
    # this takes back that share of the motion, and the next frame starts from the result.
    temporal_blend: float = 0.0
    # Where the footage stands still, in place, against every earlier frame that the temporal
    # loss reads (within the flow's still margin, nstpipe.engine.flow.unchanged_in_place), a
    # later frame keeps its predecessor's painting exactly (flow only). The temporal loss holds
    # those pixels only as hard as its weight, and the style terms are global: while something
    # moves elsewhere in the picture, each frame's iterations repaint a still wall a little.
    hold_still: bool = False
    crf: int = 18  # H.264 quality: 0 lossless, 18 visually lossless, 51 worst

    def __post_init__(self) -> None:
        check(self.temporal in TEMPORAL_MODES, "temporal", f"must be one of {', '.join(TEMPORAL_MODES)}")
        check(self.later_iterations >= 0, "later_iterations", "must not be negative")
        budget = self.first_budget
        check(math.isfinite(budget) and budget >= 1, "first_budget", f"must be a finite number, 1 or more (got {budget})")
        gaps = self.temporal_gaps
        check(
            bool(gaps) and gaps[0] == 1 and all(a < b for a, b in zip(gaps, gaps[1:])), "temporal_gaps",
            f"must start at 1 and increase, e.g. 1 or 1,2,4,8 (got {','.join(map(str, gaps)) or 'none'})",
        )
        check(self.temporal_hold in TEMPORAL_HOLDS, "temporal_hold", f"must be one of {', '.join(TEMPORAL_HOLDS)}")
        check(self.video_passes >= 1, "video_passes", f"must be 1 or more (got {self.video_passes})")
        check(self.pass_iterations >= 0, "pass_iterations", "must not be negative")
        check(0 <= self.pass_blend <= 1, "pass_blend", f"must be between 0 and 1 (got {self.pass_blend})")
        check(0 <= self.temporal_blend < 1, "temporal_blend", f"must be at least 0 and below 1 (got {self.temporal_blend})")
        check(0 <= self.crf <= 51, "crf", "must be between 0 and 51")


@dataclass(frozen=True)
class TextureConfig:
    """What ``nstpipe texture`` paints besides the engine's settings. The keys carry a prefix
    where a bare name (count, width) would say nothing in a flat TOML file of all settings."""

    texture_count: int = 1  # variations, one seed each (seed, seed + 1, ...), optimized together
    # The texture's size; 0 and 0: a square of ``size``. Both or neither.
    texture_width: int = 0
    texture_height: int = 0
    # Wraps around: VGG19's convolutions pad circularly, so the left edge continues the right.
    tileable: bool = False

    def __post_init__(self) -> None:
        check(self.texture_count >= 1, "texture_count", f"must be at least 1 (got {self.texture_count})")
        for key in ("texture_width", "texture_height"):
            value = getattr(self, key)
            check(value == 0 or value >= MIN_SIZE, key, f"must be at least {MIN_SIZE} pixels, or 0 for --size (got {value})")
        check(
            (self.texture_width == 0) == (self.texture_height == 0),
            "texture_width" if self.texture_height else "texture_height",
            "--width and --height go together (or --size alone for a square)",
        )


@dataclass(frozen=True)
class VisualizeConfig:
    """What ``nstpipe visualize`` shows: channels of one VGG19 layer, one picture each."""

    visualize_layer: str = "relu4_1"
    visualize_channels: tuple[int, ...] = (0,)  # picture i shows channel i, optimized together
    # The random transformation the encoder sees each step through (see nstpipe.engine.transforms).
    visualize_jitter: int = 4  # pixels of roll, in x and y
    visualize_scale: float = 0.0  # scaled by 1 +- this
    visualize_degrees: float = 0.0  # turned by +- this many degrees

    def __post_init__(self) -> None:
        layer = self.visualize_layer
        check(layer in LAYERS, "visualize_layer", f"unknown VGG19 layer {layer!r} (e.g. relu3_1, relu4_1, conv5_2)")
        channels = self.visualize_channels
        check(bool(channels), "visualize_channels", "name at least one channel")
        count = layer_channels(layer)
        asked = f"{channels[0]}-{channels[-1]}" if len(channels) > 1 else f"{channels[0]}"
        inside = all(0 <= channel < count for channel in channels)
        check(inside, "visualize_channels", f"{layer} has {count} channels, 0 to {count - 1} (got {asked})")
        check(list(channels) == sorted(set(channels)), "visualize_channels", "channels must increase (a range A-B with A <= B)")
        check(self.visualize_jitter >= 0, "visualize_jitter", f"must not be negative (got {self.visualize_jitter})")
        check(0 <= self.visualize_scale < 1, "visualize_scale", f"must be at least 0 and below 1 (got {self.visualize_scale})")
        check(0 <= self.visualize_degrees <= 180, "visualize_degrees", f"must be between 0 and 180 (got {self.visualize_degrees})")


@dataclass(frozen=True)
class DreamConfig:
    """What ``nstpipe dream`` climbs; the octaves are the engine's ``scales`` and each runs
    ``iterations`` steps (``coarse_iterations`` below the finest)."""

    dream_layers: tuple[str, ...] = ("relu4_2",)
    dream_channels: tuple[int, ...] = ()  # of every layer named; none: all of its channels
    octave_scale: float = 1.4  # the long side of an octave over the next coarser one's
    dream_jitter: int = 32  # pixels of random roll at each step, in x and y

    def __post_init__(self) -> None:
        check(bool(self.dream_layers), "dream_layers", "name at least one layer")
        for layer in self.dream_layers:
            check(layer in LAYERS, "dream_layers", f"unknown VGG19 layer {layer!r} (e.g. relu3_1, relu4_2, conv5_2)")
            count = layer_channels(layer)
            for channel in self.dream_channels:
                check(0 <= channel < count, "dream_channels", f"{layer} has channels 0 to {count - 1} (got {channel})")
        check(math.isfinite(self.octave_scale) and self.octave_scale > 1, "octave_scale",
               f"must be a finite number above 1 (got {self.octave_scale})")
        check(self.dream_jitter >= 0, "dream_jitter", f"must not be negative (got {self.dream_jitter})")
