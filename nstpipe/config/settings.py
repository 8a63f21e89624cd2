"""A whole run's settings, its fingerprint and the revisions that redo finished outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from nstpipe.config.layers import smallest_side
from nstpipe.config.rules import DEFAULT_MAX_PIXELS, MIN_SIZE, check, style_terms
from nstpipe.config.sections import DreamConfig, EngineConfig, TextureConfig, VideoConfig, VisualizeConfig

DEVICE = re.compile(r"auto|cpu|mps|cuda(:[0-9]+)?")


@dataclass(frozen=True)
class Settings:
    """A whole run: the engine plus where it runs and at what size."""

    size: int = 256
    device: str = "auto"
    weights: str = "embedded"
    # Images with more pixels are refused before decoding (decompression bombs); 0: no limit.
    max_pixels: int = DEFAULT_MAX_PIXELS
    # The longest side a picture is painted at: without --size, a GPU paints a photo at its own
    # size up to this; --size above it is refused (a typo's 40000 would run for days).
    max_size: int = 4096
    # Each picture of a folder at its own size, at most max_size, rather than at ``size``: what a
    # GPU does without --size (see nstpipe.app.folder).
    own_size: bool = False
    # Pictures of one size optimized together, one VGG19 pass for all (a GPU's throughput);
    # for a video, the chains of frames a worker paints in step. 0: as many as the device's
    # memory holds (see nstpipe.engine.device.resolve_batch).
    batch: int = 0
    engine: EngineConfig = field(default_factory=EngineConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    # What a run paints: a mode of nstpipe.modes (style, texture, visualize, dream, ...).
    # Outputs of one mode are never taken for another's: the mode is part of the
    # fingerprint of every mode but "style", whose fingerprint predates it.
    mode: str = "style"
    texture: TextureConfig = field(default_factory=TextureConfig)
    visualize: VisualizeConfig = field(default_factory=VisualizeConfig)
    dream: DreamConfig = field(default_factory=DreamConfig)

    def __post_init__(self) -> None:
        check(self.mode.isidentifier(), "mode", f"must name a mode (got {self.mode!r})")
        check(self.size >= MIN_SIZE, "size", f"must be at least {MIN_SIZE} pixels")
        # Checked here, not only where the device is opened: a run that keeps its finished
        # output opens none, and took a typo ("gpu", "cuda:x") without a word.
        check(DEVICE.fullmatch(self.device) is not None, "device", f"unknown device {self.device!r} (auto, cpu, cuda, cuda:1, mps)")
        check(self.max_pixels >= 0, "max_pixels", "must not be negative (0 means no limit)")
        check(self.max_size >= MIN_SIZE, "max_size", f"must be at least {MIN_SIZE} pixels")
        check(self.batch >= 0, "batch", "must not be negative (0 means as many as fit)")

    def to_dict(self) -> dict[str, Any]:
        flat = {k: v for k, v in dataclasses.asdict(self).items() if k not in GROUPS}
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
        too. The video settings, and the temporal weight that only a video reads, are left
        out as well, so that changing them does not invalidate finished photos; a video job
        passes them in ``extra``. Style transfer leaves out the mode and the texture
        settings, which it does not read: its fingerprint stays what it was before there
        were other modes, so that finished outputs are kept; every other mode puts them in.
        A mode's own settings (texture_*, visualize_*, dream_*) count only in that mode, so
        texture's fingerprint stays what it was before there was feature visualization.
        """
        data = self.to_dict()
        data.pop("device")
        data.pop("max_pixels")
        if not self.own_size:
            data.pop("own_size")  # off, as before there was such a setting: finished outputs stay
            data.pop("max_size")  # a cap on the size, which counts itself
        data.pop("batch")  # how many at once, not what: each picture is optimized as alone
        data.pop("compile")  # how fast, not what: the same pictures either way
        data.pop("cuda_graphs")
        data.pop("max_memory")  # how much at once, not what: tiles give the untiled gradient
        for key in LATER_ENGINE_SETTINGS:
            if not getattr(self.engine, key):
                data.pop(key)  # off, as before there was such a setting: finished outputs stay
        for key in VIDEO_FIELDS:
            data.pop(key)
        # Photos hash the engine's 100, the temporal weight style transfer's photos were
        # hashed with while it counted, so that a new weight for videos keeps them.
        data["temporal_weight"] = 100.0
        if self.mode == "style":
            data.pop("mode")
        for fields, mode in ((TEXTURE_FIELDS, "texture"), (VISUALIZE_FIELDS, "visualize"), (DREAM_FIELDS, "dream")):
            if self.mode != mode:
                for key in fields:
                    data.pop(key)
        data.update(self._revisions())
        data["extra"] = dict(extra or {})
        blob = json.dumps(data, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:32]

    def _revisions(self) -> dict[str, int]:
        """The revisions of the engine, and of the parts these settings use, that the fingerprint counts."""
        revisions = {"engine_revision": ENGINE_REVISION}
        if self.engine.fine_side:
            revisions["fine_revision"] = FINE_REVISION
        if self.mode == "texture" and self.texture.tileable:
            revisions["tileable_revision"] = TILEABLE_REVISION
        if "meancov" in dict(style_terms(self.engine.style_loss)):
            revisions["meancov_revision"] = MEANCOV_REVISION
        return revisions


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
# 5: a run from noise with a colour start recolours each level's start, not only the photo's.
# Engine settings added after outputs were first fingerprinted: off (0), each is left out of
# the fingerprint, which then stays what it was before the setting existed.
LATER_ENGINE_SETTINGS = ("fine_side", "half_size_style", "energy_power", "half_size_layers")
ENGINE_REVISION = 5
# The same, for tileable textures alone, so that plain textures and style transfer keep
# their finished outputs. 1: the paintings are read with edge padding, not wrapped; a finer
# level starts from the coarser one upsampled in the Fourier domain (see
# nstpipe.engine.schedule.resize_wrapped).
TILEABLE_REVISION = 1
# The same, for settings whose style loss has the W2 term ("meancov"). 1: the distance and
# its matrix square roots in float64 (see nstpipe.engine.distribution.w2_squared).
MEANCOV_REVISION = 1
# The same, for settings with fine levels (fine_side). 1: a fine level starts from the coarser
# result plus the photo's detail, not a share of the photo (see Schedule.carry).
FINE_REVISION = 1


# Each section's fields by name: the keys a preset or config file may set, flat in TOML.
ENGINE_FIELDS = {f.name: f for f in dataclasses.fields(EngineConfig)}
VIDEO_FIELDS = {f.name: f for f in dataclasses.fields(VideoConfig)}
TEXTURE_FIELDS = {f.name: f for f in dataclasses.fields(TextureConfig)}
VISUALIZE_FIELDS = {f.name: f for f in dataclasses.fields(VisualizeConfig)}
DREAM_FIELDS = {f.name: f for f in dataclasses.fields(DreamConfig)}
GROUPS = ("engine", "video", "texture", "visualize", "dream")  # the nested dataclasses, whose keys are flat in TOML
SETTINGS_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in GROUPS}
