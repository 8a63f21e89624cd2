"""The values a setting may take, and the checks that raise one :class:`ConfigError` line."""

from __future__ import annotations

import math

from nstpipe.errors import ConfigError

# "normalized": steps of a fixed mean size (learning_rate) along the gradient, DeepDream's.
OPTIMIZERS = ("lbfgs", "adam", "normalized")
POOLINGS = ("max", "avg")
COLOR_MODES = ("none", "luminance", "histogram")
TEMPORAL_MODES = ("flow", "prev", "none")
TEMPORAL_HOLDS = ("recent", "fading")
PRECISIONS = ("auto", "fp32", "bf16")
STYLE_TERMS = ("gram", "meancov", "sliced")
COLOR_STARTS = ("none", "meancov", "transport")
PRESET_DEFAULT = "default"
MIN_SIZE = 16  # the smallest --size: VGG19 pools a side of 16 down to 1 before relu5_1
# PIL's own default (Image.MAX_IMAGE_PIXELS): about 9500 x 9500, 256 MiB as 8-bit RGB.
DEFAULT_MAX_PIXELS = 89_478_485


def style_terms(text: str) -> tuple[tuple[str, float], ...]:
    """``"gram:0.5,sliced"`` -> (("gram", 0.5), ("sliced", 1.0)): the style terms and their shares."""
    terms: list[tuple[str, float]] = []
    for part in text.split(","):
        name, colon, share = (piece.strip() for piece in part.partition(":"))
        known = ", ".join(STYLE_TERMS)
        check(name in STYLE_TERMS, "style_loss", f"unknown style term {name!r} (known: {known}; e.g. gram:1,sliced:1)")
        check(name not in dict(terms), "style_loss", f"{name!r} given twice")
        try:
            # "gram:" is a share cut off, refused as "gram:x" is, not read as "gram"
            value = float(share) if share or colon else 1.0
        except ValueError:
            value = math.nan
        reason = f"the share of {name!r} must be a finite number, 0 or more (got {share!r})"
        check(math.isfinite(value) and value >= 0, "style_loss", reason)
        terms.append((name, value))
    check(sum(v for _, v in terms) > 0, "style_loss", "the shares must not all be 0")
    return tuple(terms)


def check(ok: bool, key: str, reason: str) -> None:
    if not ok:
        raise ConfigError(f"setting {key!r}: {reason}", key)


def check_weight(key: str, value: float) -> None:
    check(math.isfinite(value) and value >= 0, key, f"must be a finite number, 0 or more (got {value})")


def check_positive(key: str, value: float) -> None:
    check(math.isfinite(value) and value > 0, key, f"must be a finite number above 0 (got {value})")


def check_weights(key: str, values: tuple[float, ...]) -> None:
    for value in values:
        check_weight(key, value)
    check(sum(values) > 0, key, "the weights must not all be 0")


_MEMORY_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_memory(text: str) -> int | None:
    """Bytes from "6G", "512M", "1.5G" or a plain number of bytes; None for "auto"."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    if value == "AUTO":
        return None
    number, unit = (value[:-1], value[-1]) if value and value[-1] in _MEMORY_UNITS else (value, "")
    try:
        amount = float(number) * _MEMORY_UNITS[unit]
    except ValueError:
        amount = math.nan
    check(math.isfinite(amount) and amount > 0, "max_memory", f"must be 'auto' or an amount such as 6G or 512M (got {text!r})")
    return int(amount)
