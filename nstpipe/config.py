"""Settings as frozen dataclasses, built from a preset, a config file and CLI overrides.

Pure Python: importing this module must not import torch (``nstpipe --help`` stays fast).
Presets are TOML files in the ``configs`` package; they are flat tables whose keys are the
field names of :class:`EngineConfig` and :class:`Settings`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from nstpipe.errors import ConfigError

CONV_LAYERS: tuple[str, ...] = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for conv in CONV_LAYERS:
        block, index = conv[4:].split("_")
        names += [conv, f"relu{block}_{index}"]
        if (block in "12" and index == "2") or (block in "345" and index == "4"):
            names.append(f"pool{block}")
    return tuple(names)


LAYERS: tuple[str, ...] = _layer_names()
"""Every VGG19 layer name in network order: conv1_1, relu1_1, conv1_2, ..., pool5."""


def vgg_cut(layers: Iterable[str]) -> tuple[str, ...]:
    """VGG19's layers from the input through the deepest of ``layers``: what a pass that reads them computes."""
    deepest = max(LAYERS.index(layer) for layer in layers)
    return LAYERS[: deepest + 1]


def smallest_side(layers: Iterable[str]) -> int:
    """The smallest width or height at which ``layers`` can be read: VGG19 halves the picture
    at every pooling layer before the deepest of them (16 pixels for relu5_1), and a side
    pooled down to nothing has no features."""
    return 2 ** sum(1 for name in vgg_cut(layers)[:-1] if name.startswith("pool"))


# Channels of each VGG19 block's convolutions (and of its relus and pooling).
BLOCK_CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}


def layer_channels(layer: str) -> int:
    """How many channels a VGG19 layer has: conv3_1, relu3_1 and pool3 have 256."""
    return BLOCK_CHANNELS[layer.removeprefix("conv").removeprefix("relu").removeprefix("pool")[0]]


def channel_range(text: str) -> tuple[int, ...]:
    """``"K"`` -> (K,); ``"A-B"`` -> (A, A + 1, ..., B); B before A is an error."""
    first, _, last = text.strip().partition("-")
    try:
        a, b = int(first), int(last or first)
    except ValueError:
        raise ConfigError(f"setting 'visualize_channels': {text!r} is not a channel K or a range A-B", "visualize_channels") from None
    if b < a:
        raise ConfigError(f"setting 'visualize_channels': the range {a}-{b} ends before it starts (write {b}-{a})", "visualize_channels")
    return tuple(range(a, b + 1))


# "normalized": steps of a fixed mean size (learning_rate) along the gradient, DeepDream's.
OPTIMIZERS = ("lbfgs", "adam", "normalized")
POOLINGS = ("max", "avg")
COLOR_MODES = ("none", "luminance", "histogram")
TEMPORAL_MODES = ("flow", "prev", "none")
PRECISIONS = ("auto", "fp32", "bf16")
STYLE_TERMS = ("gram", "meancov", "sliced")
COLOR_STARTS = ("none", "meancov")
# What a run paints: "style" (a photo in a painting's style), "texture" (a painting's texture
# from noise, no photo), "visualize" (what drives a VGG19 channel up, from noise), "dream"
# (DeepDream: a photo climbed along VGG19's activations). Outputs of
# one mode are never taken for another's: the mode is part of the fingerprint of every mode
# but "style", whose fingerprint predates it.
MODES = ("style", "texture", "visualize", "dream")
PRESET_DEFAULT = "default"
MIN_SIZE = 16  # the smallest --size: VGG19 pools a side of 16 down to 1 before relu5_1
# PIL's own default (Image.MAX_IMAGE_PIXELS): about 9500 x 9500, 256 MiB as 8-bit RGB.
DEFAULT_MAX_PIXELS = 89_478_485


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
    # Where a run from the photo starts: the photo as it is ("none"), or recoloured to the
    # paintings' colour mean and covariance ("meancov"), so the first step is already in the
    # painting's palette. Off with preserve_color, which keeps the photo's colours.
    color_start: str = "none"
    tv_weight: float = 0.0
    # Weight of the temporal term; used only when a video passes a warped previous frame.
    # The temporal loss is a mean over pixels, so 100 makes a 0.1 colour step at every
    # trusted pixel cost as much as the whole content loss at its usual size (~0.4-1):
    # scripts/bench_video.py shows E_warp falling ~100x with no loss of content fidelity.
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
    scales: int = 1
    min_scale_size: int = 64
    # Each finer level of the pyramid starts from this share of the photo plus the rest of
    # the coarser level's result, upsampled (only with init = "content"): half size cannot
    # hold the photo's fine detail, and the finer level regains it faster from the photo
    # than from a blurred upsample.
    content_mix: float = 0.0
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
    # kernel by kernel. Not with compile. Off by default until scripts/bench.py has timed it
    # on a GPU beside the eager pass. Left out of the fingerprint.
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        self._check_layers()
        self._check_numbers()
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"must be one of {', '.join(OPTIMIZERS)}")
        _check(self.pooling in POOLINGS, "pooling", f"must be one of {', '.join(POOLINGS)}")
        _check(self.preserve_color in COLOR_MODES, "preserve_color", f"must be one of {', '.join(COLOR_MODES)}")
        _check(self.precision in PRECISIONS, "precision", f"must be one of {', '.join(PRECISIONS)}")
        _check(self.color_start in COLOR_STARTS, "color_start", f"must be one of {', '.join(COLOR_STARTS)}")
        _check(self.sliced_directions >= 0, "sliced_directions", f"must not be negative (got {self.sliced_directions})")
        style_terms(self.style_loss)

    def _check_layers(self) -> None:
        _check(self.content_layer in LAYERS, "content_layer", f"unknown layer {self.content_layer!r}")
        for layer in self.style_layers:
            _check(layer in LAYERS, "style_layers", f"unknown layer {layer!r}")
        _check(len(self.style_layers) > 0, "style_layers", "at least one layer is needed")
        _check(
            len(self.style_layer_weights) == len(self.style_layers),
            "style_layer_weights",
            f"{len(self.style_layer_weights)} weights for {len(self.style_layers)} style layers",
        )
        _check_weights("style_layer_weights", self.style_layer_weights)

    def _check_numbers(self) -> None:
        # NaN and inf are floats to Python: unchecked, they reached the optimizer, which ran
        # to a NaN loss and saved a picture close to the photo. A negative weight rewards
        # moving away from its target.
        for key in ("content_weight", "style_weight", "tv_weight", "temporal_weight", "tolerance"):
            _check_weight(key, getattr(self, key))
        _check_positive("style_scale", self.style_scale)
        _check_positive("learning_rate", self.learning_rate)
        if self.style_blend:
            _check_weights("style_blend", self.style_blend)
        _check(self.iterations >= 0, "iterations", f"must not be negative (got {self.iterations})")
        _check(self.coarse_iterations >= 0, "coarse_iterations", f"must not be negative (got {self.coarse_iterations})")
        _check(self.scales >= 1, "scales", "must be at least 1")
        _check(self.min_scale_size >= 1, "min_scale_size", "must be at least 1")
        _check(0.0 <= self.content_mix <= 1.0, "content_mix", "must be between 0 and 1")
        _check(self.patience >= 1, "patience", "must be at least 1")

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
    # object that reappears, is held to what it was.
    temporal_gaps: tuple[int, ...] = (1,)
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
    crf: int = 18  # H.264 quality: 0 lossless, 18 visually lossless, 51 worst

    def __post_init__(self) -> None:
        _check(self.temporal in TEMPORAL_MODES, "temporal", f"must be one of {', '.join(TEMPORAL_MODES)}")
        _check(self.later_iterations >= 0, "later_iterations", "must not be negative")
        budget = self.first_budget
        _check(math.isfinite(budget) and budget >= 1, "first_budget", f"must be a finite number, 1 or more (got {budget})")
        gaps = self.temporal_gaps
        _check(
            bool(gaps) and gaps[0] == 1 and all(a < b for a, b in zip(gaps, gaps[1:])), "temporal_gaps",
            f"must start at 1 and increase, e.g. 1 or 1,2,4,8 (got {','.join(map(str, gaps))})",
        )
        _check(self.video_passes >= 1, "video_passes", f"must be 1 or more (got {self.video_passes})")
        _check(self.pass_iterations >= 0, "pass_iterations", "must not be negative")
        blend = self.pass_blend
        _check(0 <= blend <= 1, "pass_blend", f"must be between 0 and 1 (got {blend})")
        _check(0 <= self.crf <= 51, "crf", "must be between 0 and 51")


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
        _check(self.texture_count >= 1, "texture_count", f"must be at least 1 (got {self.texture_count})")
        for key in ("texture_width", "texture_height"):
            value = getattr(self, key)
            _check(value == 0 or value >= MIN_SIZE, key, f"must be at least {MIN_SIZE} pixels, or 0 for --size (got {value})")
        _check(
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
        _check(layer in LAYERS, "visualize_layer", f"unknown VGG19 layer {layer!r} (e.g. relu3_1, relu4_1, conv5_2)")
        channels = self.visualize_channels
        _check(bool(channels), "visualize_channels", "name at least one channel")
        count = layer_channels(layer)
        for channel in channels:
            _check(0 <= channel < count, "visualize_channels", f"{layer} has channels 0 to {count - 1} (got {channel})")
        _check(list(channels) == sorted(set(channels)), "visualize_channels", "channels must increase (a range A-B with A <= B)")
        _check(self.visualize_jitter >= 0, "visualize_jitter", f"must not be negative (got {self.visualize_jitter})")
        _check(0 <= self.visualize_scale < 1, "visualize_scale", f"must be at least 0 and below 1 (got {self.visualize_scale})")
        _check(0 <= self.visualize_degrees <= 180, "visualize_degrees", f"must be between 0 and 180 (got {self.visualize_degrees})")


@dataclass(frozen=True)
class DreamConfig:
    """What ``nstpipe dream`` climbs; the octaves are the engine's ``scales`` and each runs
    ``iterations`` steps (``coarse_iterations`` below the finest)."""

    dream_layers: tuple[str, ...] = ("relu4_2",)
    dream_channels: tuple[int, ...] = ()  # of every layer named; none: all of its channels
    octave_scale: float = 1.4  # the long side of an octave over the next coarser one's
    dream_jitter: int = 32  # pixels of random roll at each step, in x and y

    def __post_init__(self) -> None:
        _check(bool(self.dream_layers), "dream_layers", "name at least one layer")
        for layer in self.dream_layers:
            _check(layer in LAYERS, "dream_layers", f"unknown VGG19 layer {layer!r} (e.g. relu3_1, relu4_2, conv5_2)")
            count = layer_channels(layer)
            for channel in self.dream_channels:
                _check(0 <= channel < count, "dream_channels", f"{layer} has channels 0 to {count - 1} (got {channel})")
        _check(math.isfinite(self.octave_scale) and self.octave_scale > 1, "octave_scale",
               f"must be a finite number above 1 (got {self.octave_scale})")
        _check(self.dream_jitter >= 0, "dream_jitter", f"must not be negative (got {self.dream_jitter})")


@dataclass(frozen=True)
class Settings:
    """A whole run: the engine plus where it runs and at what size."""

    size: int = 256
    device: str = "auto"
    weights: str = "embedded"
    # Images with more pixels are refused before decoding (decompression bombs); 0: no limit.
    max_pixels: int = DEFAULT_MAX_PIXELS
    # Pictures of one size optimized together, one VGG19 pass for all (a GPU's throughput);
    # for a video, the chains of frames a worker paints in step. 0: as many as the device's
    # memory holds (see nstpipe.engine.device.resolve_batch).
    batch: int = 0
    engine: EngineConfig = field(default_factory=EngineConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    mode: str = "style"  # see MODES
    texture: TextureConfig = field(default_factory=TextureConfig)
    visualize: VisualizeConfig = field(default_factory=VisualizeConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)

    def __post_init__(self) -> None:
        _check(self.mode in MODES, "mode", f"must be one of {', '.join(MODES)}")
        _check(self.size >= MIN_SIZE, "size", f"must be at least {MIN_SIZE} pixels")
        _check(self.max_pixels >= 0, "max_pixels", "must not be negative (0 means no limit)")
        _check(self.batch >= 0, "batch", "must not be negative (0 means as many as fit)")

    def to_dict(self) -> dict[str, Any]:
        flat = {k: v for k, v in dataclasses.asdict(self).items() if k not in _GROUPS}
        flat.update(dataclasses.asdict(self.engine))
        flat.update(dataclasses.asdict(self.video))
        flat.update(dataclasses.asdict(self.texture))
        flat.update(dataclasses.asdict(self.visualize))
        flat.update(dataclasses.asdict(self.dream))
        return flat

    def fingerprint(self, extra: Mapping[str, Any] | None = None) -> str:
        """A stable hash of everything that changes the pixels of an output.

        ``device`` is left out on purpose: the same settings on another device give the
        same picture up to float noise, and resuming a job on a different machine must
        not redo finished work. ``max_pixels`` only decides which inputs are read at all,
        never how, so raising it to let a big photo through keeps the finished ones.
        ``batch`` only decides how many pictures share one optimization, in which each
        follows the path it would follow alone, so another batch keeps finished outputs
        too. The video settings are left out as well, so that changing them does not
        invalidate finished photos; a video job passes them in ``extra``. Style transfer
        leaves out the mode and the texture settings, which it does not read: its
        fingerprint stays what it was before there were other modes, so that finished
        outputs are kept; every other mode puts them in. A mode's own settings (texture_*,
        visualize_*, dream_*) count only in that mode, so texture's fingerprint stays what it was
        before there was feature visualization.
        """
        data = self.to_dict()
        data.pop("device")
        data.pop("max_pixels")
        data.pop("batch")  # how many at once, not what: each picture is optimized as alone
        data.pop("compile")  # how fast, not what: the same pictures either way
        data.pop("cuda_graphs")
        for key in _VIDEO_FIELDS:
            data.pop(key)
        if self.mode == "style":
            data.pop("mode")
        for fields, mode in ((_TEXTURE_FIELDS, "texture"), (_VISUALIZE_FIELDS, "visualize"), (_DREAM_FIELDS, "dream")):
            if self.mode != mode:
                for key in fields:
                    data.pop(key)
        data["engine_revision"] = ENGINE_REVISION
        if self.mode == "texture" and self.texture.tileable:
            data["tileable_revision"] = TILEABLE_REVISION
        data["extra"] = dict(extra or {})
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]


def texture_size(settings: Settings) -> tuple[int, int]:
    """(height, width) of a texture: ``texture_width`` x ``texture_height``, else a square of ``size``.

    A tileable texture is rounded to the nearest multiple of what the pooling needs to wrap
    (at least one): each 2x2 pooling before the deepest style layer halves the picture, and
    only an even side pools the wrapped edge as it pools the inside; each coarser pyramid
    level halves it once more.
    """
    texture = settings.texture
    height, width = (texture.texture_height, texture.texture_width) if texture.texture_width else (settings.size, settings.size)
    if not texture.tileable:
        return height, width
    unit = smallest_side(settings.engine.style_layers) * 2 ** (settings.engine.scales - 1)
    nearest = [max(1, int(side / unit + 0.5)) * unit for side in (height, width)]  # halves up, as a user rounds
    return nearest[0], nearest[1]


# Raised when the same settings give other pixels, so that outputs of the earlier engine are
# redone rather than mixed with new ones. 2: the loss is that of the picture clamped to
# [0, 1] (see nstpipe.engine.objective.Objective.picture). 3: the Grams of the bf16 pass in bf16; a
# level ends with its best picture; L-BFGS takes back an overshooting step (nstpipe.engine.lbfgs).
# 4: precision "auto" runs bf16 on CPUs with AVX-512 bf16 too, so a record that says "auto"
# no longer tells which arithmetic painted an output made before; and the paintings' style
# statistics are taken by one path for every term, drawn per step for a sliced term.
ENGINE_REVISION = 4
# The same, for tileable textures alone, so that plain textures and style transfer keep
# their finished outputs. 1: the paintings are read with edge padding, not wrapped; a finer
# level starts from the coarser one upsampled in the Fourier domain (see
# nstpipe.engine.schedule.resize_wrapped).
TILEABLE_REVISION = 1


def style_terms(text: str) -> tuple[tuple[str, float], ...]:
    """``"gram:0.5,sliced"`` -> (("gram", 0.5), ("sliced", 1.0)): the style terms and their shares."""
    terms: list[tuple[str, float]] = []
    for part in text.split(","):
        name, _, share = part.strip().partition(":")
        known = ", ".join(STYLE_TERMS)
        _check(name in STYLE_TERMS, "style_loss", f"unknown style term {name!r} (known: {known}; e.g. gram:1,sliced:1)")
        _check(name not in dict(terms), "style_loss", f"{name!r} given twice")
        try:
            value = float(share) if share else 1.0
        except ValueError:
            value = math.nan
        reason = f"the share of {name!r} must be a finite number, 0 or more (got {share!r})"
        _check(math.isfinite(value) and value >= 0, "style_loss", reason)
        terms.append((name, value))
    _check(sum(v for _, v in terms) > 0, "style_loss", "the shares must not all be 0")
    return tuple(terms)


def _check(ok: bool, key: str, reason: str) -> None:
    if not ok:
        raise ConfigError(f"setting {key!r}: {reason}", key)


def _check_weight(key: str, value: float) -> None:
    _check(math.isfinite(value) and value >= 0, key, f"must be a finite number, 0 or more (got {value})")


def _check_positive(key: str, value: float) -> None:
    _check(math.isfinite(value) and value > 0, key, f"must be a finite number above 0 (got {value})")


def _check_weights(key: str, values: tuple[float, ...]) -> None:
    for value in values:
        _check_weight(key, value)
    _check(sum(values) > 0, key, "the weights must not all be 0")


_ENGINE_FIELDS = {f.name: f for f in dataclasses.fields(EngineConfig)}
_VIDEO_FIELDS = {f.name: f for f in dataclasses.fields(VideoConfig)}
_TEXTURE_FIELDS = {f.name: f for f in dataclasses.fields(TextureConfig)}
_VISUALIZE_FIELDS = {f.name: f for f in dataclasses.fields(VisualizeConfig)}
_DREAM_FIELDS = {f.name: f for f in dataclasses.fields(DreamConfig)}
_GROUPS = ("engine", "video", "texture", "visualize", "dream")  # the nested dataclasses, whose keys are flat in TOML
_SETTINGS_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in _GROUPS}


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("nstpipe.configs").iterdir() if p.name.endswith(".toml"))


def read_preset(name: str) -> dict[str, Any]:
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r} (known: {', '.join(preset_names())})")
    text = resources.files("nstpipe.configs").joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return _parse_toml(text, f"preset {name}")


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror or exc})") from None
    return _parse_toml(text, str(path))


def config_sets(config_file: Path | None, key: str) -> bool:
    """Whether the config file gives ``key`` itself (rather than leaving it to the preset)."""
    return config_file is not None and key in read_config_file(config_file)


def _parse_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None


def build_settings(
    preset: str = PRESET_DEFAULT,
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Layer preset < config file < overrides (CLI flags; ``None`` values are ignored)."""
    merged: dict[str, Any] = dict(read_preset(preset))
    if config_file is not None:
        merged.update(read_config_file(config_file))
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return settings_from_dict(merged)


def settings_from_dict(data: Mapping[str, Any]) -> Settings:
    groups: list[tuple[dict[str, dataclasses.Field[Any]], dict[str, Any]]] = [
        (_ENGINE_FIELDS, {}), (_VIDEO_FIELDS, {}), (_TEXTURE_FIELDS, {}), (_VISUALIZE_FIELDS, {}), (_DREAM_FIELDS, {}),
        (_SETTINGS_FIELDS, {}),
    ]
    for key, value in data.items():
        fields, kwargs = next(((f, kw) for f, kw in groups if key in f), (None, None))
        if fields is None or kwargs is None:
            raise ConfigError(f"unknown setting {key!r}", key)
        kwargs[key] = _coerce(key, value, fields[key].default)
    (_, engine_kwargs), (_, video_kwargs), (_, texture_kwargs), (_, visualize_kwargs), (_, dream_kwargs), (_, settings_kwargs) = groups
    if "style_layers" in engine_kwargs and "style_layer_weights" not in engine_kwargs:
        engine_kwargs["style_layer_weights"] = (1.0,) * len(engine_kwargs["style_layers"])
    return Settings(
        engine=EngineConfig(**engine_kwargs), video=VideoConfig(**video_kwargs), texture=TextureConfig(**texture_kwargs),
        visualize=VisualizeConfig(**visualize_kwargs), dream=DreamConfig(**dream_kwargs), **settings_kwargs,
    )


def _boolean(value: Any) -> bool:
    # bool("false") is True: a string from the command line or a quoted TOML value must
    # say which it means.
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(value)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Turn TOML/CLI values into the field's type, with an error that names the key."""
    if key == "visualize_channels" and isinstance(value, str):
        return channel_range(value)  # "K" or "A-B", as --channel and --channels give them
    try:
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            whole = key in ("visualize_channels", "dream_channels", "temporal_gaps")
            kind = float if "weights" in key or "blend" in key else int if whole else str
            return tuple(kind(str(v).strip()) if kind is str else kind(v) for v in items if str(v).strip())
        if isinstance(default, bool):
            return _boolean(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {key!r}: cannot use {value!r}", key) from None
