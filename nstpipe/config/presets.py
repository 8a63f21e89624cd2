"""Settings built from a preset, a config file and overrides: TOML read, keys checked, values coerced."""

from __future__ import annotations

import dataclasses
import difflib
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from nstpipe.config.layers import channel_range
from nstpipe.config.rules import PRESET_DEFAULT
from nstpipe.config.settings import (
    DREAM_FIELDS,
    ENGINE_FIELDS,
    SETTINGS_FIELDS,
    TEXTURE_FIELDS,
    VIDEO_FIELDS,
    VISUALIZE_FIELDS,
    DreamConfig,
    EngineConfig,
    Settings,
    TextureConfig,
    VideoConfig,
    VisualizeConfig,
)
from nstpipe.errors import ConfigError


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
    except UnicodeDecodeError as exc:
        # TOML is UTF-8 by definition; a file saved in Latin-1 or UTF-16 is refused by name.
        raise ConfigError(f"{path}: not valid TOML (not UTF-8 text: byte {exc.start} is {exc.object[exc.start]:#04x})") from None
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
    from_file = read_config_file(config_file) if config_file is not None else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    merged.update(from_file)
    merged.update(given)
    try:
        return settings_from_dict(merged)
    except ConfigError as exc:
        # A value the file gave is the file's fault: the line names the file, not the flag
        # that would have set it (and that the user never gave).
        if exc.key in from_file and exc.key not in given:
            raise ConfigError(f"{config_file}: {exc}", exc.key) from None
        raise


def settings_from_dict(data: Mapping[str, Any]) -> Settings:
    groups: list[tuple[dict[str, dataclasses.Field[Any]], dict[str, Any]]] = [
        (ENGINE_FIELDS, {}), (VIDEO_FIELDS, {}), (TEXTURE_FIELDS, {}), (VISUALIZE_FIELDS, {}), (DREAM_FIELDS, {}),
        (SETTINGS_FIELDS, {}),
    ]
    for key, value in data.items():
        fields, kwargs = next(((f, kw) for f, kw in groups if key in f), (None, None))
        if fields is None or kwargs is None:
            raise ConfigError(f"unknown setting {key!r}{_hint(key, value, groups)}", key)
        kwargs[key] = _coerce(key, value, fields[key].default)
    (_, engine_kwargs), (_, video_kwargs), (_, texture_kwargs), (_, visualize_kwargs), (_, dream_kwargs), (_, settings_kwargs) = groups
    if "style_layers" in engine_kwargs and "style_layer_weights" not in engine_kwargs:
        engine_kwargs["style_layer_weights"] = (1.0,) * len(engine_kwargs["style_layers"])
    return Settings(
        engine=EngineConfig(**engine_kwargs), video=VideoConfig(**video_kwargs), texture=TextureConfig(**texture_kwargs),
        visualize=VisualizeConfig(**visualize_kwargs), dream=DreamConfig(**dream_kwargs), **settings_kwargs,
    )


def _hint(key: str, value: Any, groups: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    """What an unknown key was likely meant as: a table ([engine]), or a near name (a typo)."""
    if isinstance(value, dict):
        return " (a [table]: settings are plain keys at the top of the file, e.g. size = 256)"
    near = difflib.get_close_matches(key, [name for fields, _ in groups for name in fields], n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


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


def _item(kind: type, value: Any) -> Any:
    """One item of a list setting as ``kind``; ValueError for an empty one, a fraction where
    a whole number is meant, or true/false where a number is."""
    if isinstance(value, bool) or not str(value).strip():
        raise ValueError(value)
    if kind is str:
        return str(value).strip()
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return kind(str(value).strip()) if isinstance(value, str) else kind(value)


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Turn TOML/CLI values into the field's type, with an error that names the key."""
    if key == "visualize_channels" and isinstance(value, str):
        return channel_range(value)  # "K" or "A-B", as --channel and --channels give them
    try:
        if isinstance(default, tuple):
            items = value.split(",") if isinstance(value, str) else list(value)
            if isinstance(value, str) and not value.strip():
                items = []  # an empty list, as [] in a config file
            whole = key in ("visualize_channels", "dream_channels", "temporal_gaps")
            kind = float if "weights" in key or "blend" in key else int if whole else str
            # An empty item (1,,5) is a slip, not a wish to leave one out.
            return tuple(_item(kind, v) for v in items)
        if isinstance(default, bool):
            return _boolean(value)
        if isinstance(default, (int, float)) and isinstance(value, bool):
            raise ValueError(value)  # true is no number, though Python counts it as 1
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(value, (list, dict, bool)):
            raise ValueError(value)  # str(["gram"]) would be refused later as the term "['gram']"
        return str(value)
    except (TypeError, ValueError):
        expected = ": on or off (true or false)" if isinstance(default, bool) else ""
        raise ConfigError(f"setting {key!r}: cannot use {value!r}{expected}", key) from None
