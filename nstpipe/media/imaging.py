"""Reading pictures into HxWx3 RGB arrays: :func:`read_rgb` applies EXIF orientation, turns
grey, RGBA, palette, CMYK and 16-bit inputs into RGB, and a picture with a colour profile
(Display P3, Adobe RGB, a printer's CMYK, a grey one's tone curve) into sRGB
(:mod:`nstpipe.media.profiles`).

Every failure becomes an :class:`InputError` naming the file and the reason. The engine's
tensor layout is made from the array above this layer (:func:`nstpipe.modes.model.read_image`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import struct
import threading
import warnings
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image, ImageOps, TiffImagePlugin, UnidentifiedImageError

from nstpipe.config import DEFAULT_MAX_PIXELS
from nstpipe.errors import OS_INPUT_ERRORS, InputError, is_passing, os_reason
from nstpipe.files import refuse_special_file
from nstpipe.media.profiles import grey_curve, in_srgb

# Raised when the same picture file may be read as other pixels. A picture's output follows
# what the reader gives, not the number: a photo's output records the revision and
# :func:`pixels_hash` of the photo as painted, and after a raise a rerun decodes the photo
# and paints it again only where the hash differs; a style's or an init image's pixels are
# in the job's fingerprint (see nstpipe.jobs.records.make_job). A video's job keeps the
# number in its identity. 1: a picture with a colour profile other than sRGB is
# converted to sRGB, not read as if its values were sRGB. 2: an uncompressed TIFF shown a
# quarter turn round is decoded whole, not with its rows scrambled. 3: a 16-bit PGM and a
# 32-bit grey picture within 16 bits are read against 65535, not stretched to their own
# maximum; a float picture within 0..1 is read as it is, not stretched. 4: a profile is
# known for sRGB by what it does, not by its name (one named sRGB with other curves is
# converted, an unnamed sRGB one is not); a grey picture's grey profile is applied.
PICTURE_READER_REVISION = 4


def read_rgb(path: Path, draft_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """HxWx3 sRGB array (uint8, or float32 for 16-bit and float inputs), EXIF-upright.

    ``draft_side``: the long side the caller will resize to; a much bigger picture is
    reduced while it is decoded (JPEG) or right after (other formats), so it is never held
    at full resolution as floats (a few times ``draft_side`` is kept for the final resize).
    ``max_pixels`` (0: no limit) refuses larger pictures from their header, before any
    pixel is decoded.
    """
    try:
        refuse_special_file(path)
        with _pil_pixel_limit(max_pixels), Image.open(path) as img:
            _refuse_bomb(path, img.size, max_pixels)
            if draft_side and img.format in ("JPEG", "MPO"):
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a huge photo never
                # reaches memory at full resolution when only a small output is wanted.
                img.draft("RGB", (draft_side, draft_side))
            _decode_turned_tiff_from_file(img)
            # In place: no full-size copy when there is nothing to turn (most files).
            ImageOps.exif_transpose(img, in_place=True)
            return _to_rgb_array(_shrink(img, draft_side) if draft_side else img)
    except InputError:
        raise
    except OS_INPUT_ERRORS as exc:
        raise InputError(path, os_reason(exc) or str(exc), lasting=not is_passing(exc)) from None
    except Image.DecompressionBombError as exc:
        # PIL's own check, inside Image.open, set to the same limit (see _pil_pixel_limit).
        raise InputError(path, _bomb_reason(_pixels_in(str(exc)), max_pixels)) from None
    except UnidentifiedImageError:
        if path.exists() and path.stat().st_size == 0:
            raise InputError(path, "empty file") from None
        raise InputError(path, "not an image file PIL can read") from None
    except DECODER_ERRORS as exc:
        if is_passing(exc):  # the machine's refusal (too many open files), not the data's fault
            raise InputError(path, f"cannot be read now ({getattr(exc, 'strerror', None) or _first_line(exc)})", lasting=False) from None
        raise InputError(path, f"corrupt or truncated image ({_first_line(exc)})") from None
    except MemoryError:
        raise InputError(path, "not enough memory to decode it") from None


def pixels_hash(rgb: np.ndarray) -> str:
    """What a decoded picture is, for a record or a fingerprint: its shape, its type and
    every value (two arrays of one hash are the same pixels)."""
    digest = hashlib.sha256(f"{rgb.shape}:{rgb.dtype.str}:".encode())
    digest.update(np.ascontiguousarray(rgb).data)
    return digest.hexdigest()


# What PIL's decoders raise on malformed data besides OSError: its plugins parse headers
# with struct and indexing, and not every path turns the failure into an OSError.
DECODER_ERRORS: tuple[type[BaseException], ...] = (
    OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
    ZeroDivisionError, OverflowError, RecursionError,
)

# PIL keeps its decompression bomb limit in a module global, checked inside Image.open
# (refusing at twice the value) and again by some decoders while loading; there is no
# per-call setting. Readers set it to their own limit for the duration of one read, under
# this lock, so that concurrent reads in one process cannot restore each other's value.
_PIL_LIMIT_LOCK = threading.Lock()


@contextlib.contextmanager
def _pil_pixel_limit(max_pixels: int) -> Iterator[None]:
    """PIL's own bomb checks follow ``max_pixels`` (0: none) within the block.

    With the default limit PIL's global already has the same value and is left alone. Our
    own check (:func:`_refuse_bomb`) runs right after the header is read and is the one
    that counts; PIL's bomb warnings are silenced, its errors mapped to the same message.
    """
    wanted = max_pixels or None
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        # "Corrupt EXIF data" and the like: the file either decodes or fails with our error;
        # PIL's multi-line warnings in the middle of a run would tell the user nothing more.
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        saved = Image.MAX_IMAGE_PIXELS
        if saved == wanted:
            yield
            return
        Image.MAX_IMAGE_PIXELS = wanted
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _refuse_bomb(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if max_pixels and width * height > max_pixels:
        raise InputError(path, _bomb_reason(f"{width}x{height} = {width * height:,} pixels", max_pixels))


def _bomb_reason(pixels: str, max_pixels: int) -> str:
    return (
        f"{pixels} is over the limit of {max_pixels:,} (refused as a possible decompression bomb; "
        "raise the limit with --max-pixels N, or 0 for none)"
    )


def _pixels_in(message: str) -> str:
    found = re.search(r"\((\d+) pixels\)", message)
    return f"{int(found.group(1)):,} pixels" if found else "the image"


class PictureHeader(NamedTuple):
    """What a picture's header says of it: its format (PIL's name) and how many frames it holds."""

    format: str | None
    frames: int

    @property
    def still(self) -> bool:
        """One frame (FFmpeg reads a JPEG or PNG as a video of one frame; an animated GIF is
        left to the video reader)."""
        return self.frames == 1

    @property
    def animated_webp(self) -> bool:
        """A WebP of several frames, which FFmpeg cannot decode: it is read as a picture (its
        first frame), never as a video."""
        return self.format == "WEBP" and self.frames > 1


def picture_header(path: Path) -> PictureHeader | None:
    """The header of the picture at ``path``, read once for every question a caller has of
    it; None where PIL cannot read it."""
    try:
        refuse_special_file(path)
        with _pil_pixel_limit(0), Image.open(path) as img:
            return PictureHeader(img.format, getattr(img, "n_frames", 1))
    except DECODER_ERRORS + (UnidentifiedImageError, InputError):
        return None


def shown_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of the picture at ``path`` as it is shown, EXIF orientation applied, from
    its header alone; None where the header cannot be read (the read proper names the reason)."""
    try:
        refuse_special_file(path)
        with _pil_pixel_limit(0), Image.open(path) as img:
            # Shown a quarter turn round, and not reported so already (as Pillow reports a TIFF).
            turned = img.getexif().get(ORIENTATION) in (5, 6, 7, 8) and img.size == _stored_size(img)
            return (img.height, img.width) if turned else img.size
    except DECODER_ERRORS + (UnidentifiedImageError, InputError):
        return None


ORIENTATION = 0x0112  # the EXIF and TIFF tag


def _stored_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of the pixels as the file stores them: Pillow reports a TIFF's size as
    shown, turned by its orientation tag, and turns the pixels itself when it loads them."""
    if isinstance(img, TiffImagePlugin.TiffImageFile):
        width, height = img.tag_v2.get(TiffImagePlugin.IMAGEWIDTH), img.tag_v2.get(TiffImagePlugin.IMAGELENGTH)
        if isinstance(width, int) and isinstance(height, int):
            return width, height
    return img.size


def _decode_turned_tiff_from_file(img: Image.Image) -> None:
    """Keep Pillow from memory-mapping a TIFF with an orientation tag: it maps an uncompressed
    one (grey, 16-bit, RGBA, CMYK, palette) at the size as shown, not as stored, so the rows
    of a picture shown a quarter turn round come out scrambled, and then drops the tag. Decoded
    from the file, as a compressed TIFF always is, the rows are right and Pillow turns them."""
    if isinstance(img, TiffImagePlugin.TiffImageFile) and img.getexif().get(ORIENTATION, 1) != 1:
        img.filename = ""  # what ImageFile.load memory-maps from; the open file is read instead


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# Modes Image.reduce() takes; palette and 1-bit images are widened first. 16-bit grey
# ("I;16") is left as it is: reduce() refuses it, and widening it would lose the mode
# that tells _to_rgb_array its white point.
_REDUCIBLE = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "F", "PA"})


# How much bigger than the wanted size a picture stays after the box reduction: with 4x
# to spare, the antialiased resize that follows gives the same picture as from full size
# (mean difference < 1% on a worst case of sharp colour blocks; 0.1% on photos).
_SHRINK_MARGIN = 4


def _shrink(img: Image.Image, long_side: int) -> Image.Image:
    """Box-average ``img`` by a whole factor that keeps its long side at least 4x ``long_side``.

    The exact, antialiased resize to ``long_side`` still follows (on the float tensor);
    this only spares holding a huge picture as floats. JPEGs mostly arrive reduced already.
    """
    factor = max(img.size) // (_SHRINK_MARGIN * long_side)
    if factor < 2:
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    return img.reduce(factor) if img.mode in _REDUCIBLE else img


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # High bit depth grey: keep the precision instead of PIL's clipping convert("RGB").
        grey = np.asarray(img, dtype=np.float32) / _white_of_integers(img)
        return _grey_in_srgb(grey.clip(0, 1), grey_curve(img))
    if img.mode == "F":
        return _grey_in_srgb(_float_grey(img), grey_curve(img))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    img = in_srgb(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent areas have no defined colour; composite them on white as viewers do.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))


def _white_of_integers(img: Image.Image) -> float:
    """The value of white in a 16- or 32-bit integer grey picture. 16-bit ones have 65535:
    Pillow reads them so ("I;16"), and scales a PGM's samples to it whatever the file's own
    maximum ("I"). A 32-bit picture ("I") with values beyond 16 bits has no white point to
    know (scientific data, mostly), and is stretched to its own maximum."""
    if img.mode.startswith("I;16"):
        return 65535.0
    return max(65535.0, float(np.asarray(img).max()))


def _grey_in_srgb(grey: np.ndarray, curve: np.ndarray | None) -> np.ndarray:
    """HxWx3 float32 from grey values within 0..1, through the tone curve of the picture's
    grey profile (:func:`~nstpipe.media.profiles.grey_curve`), between its 256 points."""
    if curve is not None:
        grey = np.interp(grey, np.arange(256) / 255.0, curve / 255.0)
    return np.repeat(grey.astype(np.float32)[..., None], 3, axis=2)


def _float_grey(img: Image.Image) -> np.ndarray:
    """A float picture with its values within 0..1 as it is (black to white, as an editor
    writes a float TIFF); one with values beyond, stretched to 0..1. NaN and infinities (a
    float TIFF can hold them) have no place on the grey scale and become black."""
    with np.errstate(all="ignore"):  # NaN and infinities are expected here, and handled
        # In float64: the span of two float32 values (-3e38 .. 3e38) can overflow float32.
        grey = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(grey)
        lo, hi = (float(grey[finite].min()), float(grey[finite].max())) if finite.any() else (0.0, 0.0)
        if lo < 0 or hi > 1:
            grey = np.where(finite, grey, lo)
            grey = (grey - lo) / (hi - lo) if hi > lo else np.zeros_like(grey)
        else:
            grey = np.where(finite, grey, 0.0)
    return grey.clip(0, 1)
