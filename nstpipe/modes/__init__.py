"""The modes, one file each, and their registry: a new mode is a file here and a line in MODES."""

from __future__ import annotations

from nstpipe.errors import ConfigError
from nstpipe.modes import dream, style, texture, visualize
from nstpipe.modes.base import Canvas, Command, Flag, ModeSpec, retell

MODES: dict[str, ModeSpec] = {spec.name: spec for spec in (style.SPEC, texture.SPEC, visualize.SPEC, dream.SPEC)}


def spec_of(name: str) -> ModeSpec:
    """The spec of the mode ``name`` (an unknown mode, from a record or a config file, is named)."""
    try:
        return MODES[name]
    except KeyError:
        raise ConfigError(f"setting 'mode': unknown mode {name!r} (known: {', '.join(MODES)})", "mode") from None


__all__ = ["MODES", "Canvas", "Command", "Flag", "ModeSpec", "retell", "spec_of"]
