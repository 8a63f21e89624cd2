"""Settings as frozen dataclasses, built from a preset, a config file and CLI overrides.

Pure Python: importing this package must not import torch (``nstpipe --help`` stays fast).
Presets are TOML files in the ``configs`` package; they are flat tables whose keys are the
field names of :class:`EngineConfig`, its sibling sections and :class:`Settings`.
"""

from nstpipe.config.layers import BLOCK_CHANNELS, CONV_LAYERS, LAYERS, channel_range, layer_channels, smallest_side, vgg_cut
from nstpipe.config.presets import build_settings, config_sets, preset_names, read_config_file, read_preset, settings_from_dict
from nstpipe.config.rules import (
    COLOR_MODES,
    COLOR_STARTS,
    DEFAULT_MAX_PIXELS,
    MIN_SIZE,
    OPTIMIZERS,
    POOLINGS,
    PRECISIONS,
    PRESET_DEFAULT,
    STYLE_TERMS,
    TEMPORAL_HOLDS,
    TEMPORAL_MODES,
    parse_memory,
    style_terms,
)
from nstpipe.config.sections import DreamConfig, EngineConfig, TextureConfig, VideoConfig, VisualizeConfig, half_size_read
from nstpipe.config.settings import ENGINE_REVISION, TILEABLE_REVISION, Settings, texture_size

__all__ = [
    "BLOCK_CHANNELS", "COLOR_MODES", "COLOR_STARTS", "CONV_LAYERS", "DEFAULT_MAX_PIXELS", "ENGINE_REVISION", "LAYERS",
    "MIN_SIZE", "OPTIMIZERS", "POOLINGS", "PRECISIONS", "PRESET_DEFAULT", "STYLE_TERMS", "TEMPORAL_HOLDS",
    "TEMPORAL_MODES", "TILEABLE_REVISION", "DreamConfig", "EngineConfig", "Settings", "TextureConfig", "VideoConfig", "VisualizeConfig",
    "build_settings", "channel_range", "config_sets", "half_size_read", "layer_channels", "parse_memory", "preset_names",
    "read_config_file", "read_preset", "settings_from_dict", "smallest_side", "style_terms", "texture_size", "vgg_cut",
]
