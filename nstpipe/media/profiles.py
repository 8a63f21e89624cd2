"""A picture's ICC colour profile applied: its values taken as the profile says, in sRGB.

The engine and the outputs take every value as sRGB, and a Display P3 or Adobe RGB photo
read as it is comes out dull. A profile is known for sRGB by what it does, not by its name:
a few hundred test colours go through it to sRGB and come back within
:data:`SRGB_TOLERANCE`; such a picture is taken as it is (the conversion could only add
rounding), any other converted. A profile LittleCMS cannot read leaves the values as they
are, as a viewer without colour management shows them. What a profile does is worked out
once per profile (by a hash of its bytes): a folder of one camera's photos pays it once.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from typing import Callable

import numpy as np
from PIL import Image, ImageCms

# The modes whose colour profile LittleCMS applies, with the profile's colour space each
# needs; a profile that does not fit the mode (an RGB profile on a grey picture) is passed over.
_PROFILED_MODES = {"RGB": "RGB", "RGBA": "RGB", "CMYK": "CMYK"}
# Grey pictures, and the grey ones of more than 8 bits: their GRAY profile's tone curve is
# applied through :func:`grey_curve`. Pillow hands LittleCMS "LA", "I" and "F" pixels as if
# they were other types, and the colours come out scrambled, so only 8-bit grey goes in.
GREY_MODES = frozenset({"L", "LA", "I;16", "I;16B", "I;16L", "I;16N", "I", "F"})
_SRGB = ImageCms.createProfile("sRGB")
# Levels of 255 by which a profile may move a test colour and still be taken for sRGB: its
# curve or primaries stored with less precision (a u8.8 gamma, s15.16 colorants) move
# nothing further than this; a plain 2.2 curve in place of sRGB's moves dark greys by 9.
SRGB_TOLERANCE = 2
_CACHE_MOST = 256


def _test_colours() -> Image.Image:
    """Every grey, and the corners and inner points of the RGB cube (8 levels a channel)."""
    levels = np.linspace(0, 255, 8).round().astype(np.uint8)
    cube = np.array(list(itertools.product(levels, repeat=3)), np.uint8)
    greys = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    return Image.fromarray(np.concatenate([cube, greys])[None], "RGB")


_TEST_COLOURS = _test_colours()
_GREY_RAMP = Image.frombytes("L", (256, 1), bytes(range(256)))
_known: dict[tuple[bytes, str], object] = {}


def _cached(icc: bytes, kind: str, work: Callable[[], object]) -> object:
    """``work()``'s answer for this profile, kept by a hash of its bytes."""
    key = (hashlib.sha256(icc).digest(), kind)
    if key not in _known:
        if len(_known) >= _CACHE_MOST:  # a folder of pictures from as many cameras: start again
            _known.clear()
        _known[key] = work()
    return _known[key]


def _profile(icc: bytes, space: str) -> ImageCms.ImageCmsProfile | None:
    """The profile in ``icc`` where LittleCMS reads it and its colour space is ``space``."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return profile if profile.profile.xcolor_space.strip() == space else None
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):
        return None


def _to_srgb(img: Image.Image, profile: ImageCms.ImageCmsProfile | None, mode: str = "RGB") -> Image.Image | None:
    """``img`` taken from ``profile`` to sRGB, in ``mode``; None where there is no profile
    or LittleCMS cannot convert it."""
    if profile is None:
        return None
    try:
        converted = ImageCms.profileToProfile(img, profile, _SRGB, outputMode=mode)
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):
        return None
    return converted if isinstance(converted, Image.Image) else None


def _acts_as_srgb(icc: bytes) -> bool:
    converted = _to_srgb(_TEST_COLOURS, _profile(icc, "RGB"))
    if converted is None:
        return False
    moved = np.abs(np.asarray(converted, np.int16) - np.asarray(_TEST_COLOURS, np.int16))
    return int(moved.max()) <= SRGB_TOLERANCE


def in_srgb(img: Image.Image) -> Image.Image:
    """``img`` converted to sRGB from the ICC profile it carries (RGB, RGBA, CMYK); a grey
    one ("L", "LA") through its profile's tone curve, still grey. Any other, or one without
    a profile, or with one that is sRGB or cannot be read, is returned as it is."""
    icc = img.info.get("icc_profile")
    if not icc:
        return img
    if img.mode in ("L", "LA"):
        curve = grey_curve(img)
        if curve is None:
            return img
        table = [int(v) for v in curve.round()]
        return img.point(table if img.mode == "L" else table + list(range(256)))
    space = _PROFILED_MODES.get(img.mode)
    if space is None or (space == "RGB" and _cached(icc, "srgb", lambda: _acts_as_srgb(icc))):
        return img
    converted = _to_srgb(img, _profile(icc, space), "RGBA" if img.mode == "RGBA" else "RGB")
    return converted if converted is not None else img


def grey_curve(img: Image.Image) -> np.ndarray | None:
    """For a grey picture with a GRAY profile: the sRGB grey (0..255, float) of each of the
    256 grey levels 0..255 as the profile takes them, from which a picture of more than 8
    bits is read by interpolation. None where there is nothing to apply: no profile, one of
    another colour space or that LittleCMS cannot read, or one whose curve is sRGB's."""
    icc = img.info.get("icc_profile")
    if img.mode not in GREY_MODES or not icc:
        return None
    curve = _cached(icc, "grey", lambda: _grey_curve(icc))
    return curve if isinstance(curve, np.ndarray) else None


def _grey_curve(icc: bytes) -> np.ndarray | None:
    converted = _to_srgb(_GREY_RAMP, _profile(icc, "GRAY"))
    if converted is None:
        return None
    curve = np.asarray(converted, np.float64)[0].mean(axis=1)  # a grey profile's greys are neutral in sRGB
    curve.flags.writeable = False
    return None if np.abs(curve - np.arange(256)).max() <= SRGB_TOLERANCE else curve
