"""Fuzzing the readers: mutated image and video files give the project's own errors, nothing else.

hypothesis flips, overwrites, inserts and deletes bytes of small valid files made here
(PNG 8- and 16-bit, JPEG RGB and CMYK, two-frame GIF, TIFF LZW and float, WebP; MP4,
Matroska and AVI with sound) and truncates them. Each mutated file goes through
``read_rgb``/``read_image``, or through ``probe`` and ``read_frames``: it must either
decode into a proper picture or raise an :class:`~nstpipe.errors.NstpipeError`, within
the example's deadline, and without a warning escaping.

CI runs a short version (30 examples per seed). A long run::

    NSTPIPE_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest -q -m fuzz tests/media/test_fuzz.py
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import struct
import tempfile
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nstpipe.errors import NstpipeError
from nstpipe.media.imaging import read_rgb
from nstpipe.media.video import probe, read_frames
from nstpipe.modes.model import read_image

# A warning leaking out of a reader would land on the user's terminal mid-run: an error here.
pytestmark = [pytest.mark.fuzz, pytest.mark.filterwarnings("error::UserWarning", "error::RuntimeWarning")]

EXAMPLES = int(os.environ.get("NSTPIPE_FUZZ_EXAMPLES", "30"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,  # nothing persists between runs; a failure prints its reproducing bytes
)
# Big enough for every seed, small enough that a header claiming a huge picture is refused
# rather than decoded (which would be legal, but slow).
MAX_PIXELS = 1_000_000


# (seed name, suffix): the formats, and the variants with their own decoding paths.
SEEDS = [
    ("PNG", ".png"), ("PNG-16", ".png"), ("JPEG", ".jpg"), ("JPEG-CMYK", ".jpg"), ("GIF", ".gif"),
    ("TIFF", ".tif"), ("TIFF-FLOAT", ".tif"), ("WEBP", ".webp"),
]


@functools.cache
def image_seed(name: str) -> bytes:
    """A small, busy picture (so every part of the format is exercised) as seed ``name``."""
    rng = np.random.default_rng(0)
    rgb = np.kron(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), np.ones((3, 3, 1), np.uint8))
    img = Image.fromarray(rgb)
    fmt, _, variant = name.partition("-")
    exif = Image.Exif()
    exif[0x0112] = 6  # an EXIF orientation, so the rotation path is fuzzed too
    options: dict[str, Any] = {"exif": exif.tobytes()}
    if fmt == "GIF":  # two frames: the frame-handling code is fuzzed too
        img, options = img.quantize(16), {"save_all": True, "append_images": [img.rotate(180).quantize(16)]}
    elif variant == "16":
        img = img.convert("I;16")
    elif variant == "CMYK":
        img = img.convert("CMYK")
    elif variant == "FLOAT":
        img = Image.fromarray(rgb[..., 0].astype(np.float32) * 1e30 - 1e32, "F")  # found an overflow
    per_format: dict[str, dict[str, Any]] = {"JPEG": {"quality": 90}, "WEBP": {"quality": 80}, "TIFF": {"compression": "tiff_lzw"}}
    options.update(per_format.get(fmt, {}))
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    return buffer.getvalue()


VIDEO_SUFFIXES = [".mp4", ".mkv", ".avi"]  # three demuxers; Matroska has no frame count


@functools.cache
def video_seed(suffix: str) -> bytes:
    from clips import make_clip

    with tempfile.TemporaryDirectory() as folder:
        return make_clip(Path(folder) / f"seed{suffix}", n_frames=4, width=32, height=24, fps=8, audio=1).read_bytes()


position = st.one_of(st.integers(0, 63), st.integers(0, 1 << 20))  # headers matter most
mutation = st.one_of(
    st.tuples(st.just("flip"), position, st.integers(1, 255)),
    st.tuples(st.just("set"), position, st.sampled_from([b"\x00", b"\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00", b"\xff\xff"])),
    st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), position, st.integers(1, 64)),
    st.tuples(st.just("truncate"), position, st.none()),
)
mutations = st.lists(mutation, min_size=1, max_size=6)


def mutate(data: bytes, steps: list[tuple[str, int, object]]) -> bytes:
    buf = bytearray(data)
    for kind, where, arg in steps:
        at = where % (len(buf) + 1)
        if kind == "flip" and at < len(buf):
            assert isinstance(arg, int)
            buf[at] ^= arg
        elif kind == "set":
            assert isinstance(arg, bytes)
            buf[at : at + len(arg)] = arg
        elif kind == "insert":
            assert isinstance(arg, bytes)
            buf[at:at] = arg
        elif kind == "delete":
            assert isinstance(arg, int)
            del buf[at : at + arg]
        elif kind == "truncate":
            del buf[at:]
    return bytes(buf)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC that can be found, so that mutations get past PIL's CRC
    check and into the decoder (most mutated PNGs are otherwise refused at the first chunk)."""
    buf, at = bytearray(data), 8
    while at + 12 <= len(buf):
        (length,) = struct.unpack(">I", buf[at : at + 4])
        end = at + 8 + length
        if end + 4 > len(buf):
            break
        buf[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(buf[at + 4 : end])))
        at = end + 4
    return bytes(buf)


def check_picture(rgb: np.ndarray) -> None:
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] >= 1 and rgb.shape[1] >= 1
    if rgb.dtype != np.uint8:
        assert rgb.dtype == np.float32 and np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1


@pytest.mark.parametrize(("seed", "suffix"), SEEDS, ids=[seed for seed, _ in SEEDS])
@FUZZ
@given(steps=mutations, fix_crcs=st.booleans())
def test_mutated_images_give_input_errors_only(
    tmp_path: Path, seed: str, suffix: str, steps: list[tuple[str, int, object]], fix_crcs: bool
) -> None:
    data = mutate(image_seed(seed), steps)
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(fix_png_crcs(data) if suffix == ".png" and fix_crcs else data)
    try:
        check_picture(read_rgb(path, max_pixels=MAX_PIXELS))
        check_picture(read_rgb(path, draft_side=4, max_pixels=MAX_PIXELS))
        image = read_image(path, long_side=16, max_pixels=MAX_PIXELS)
        assert image.shape[:2] == (1, 3) and max(image.shape[2:]) == 16 and bool(image.isfinite().all())
    except NstpipeError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


def test_image_seeds_are_valid(tmp_path: Path) -> None:
    """The fuzzer starts from files that do decode (else it would only test error paths)."""
    for seed, suffix in SEEDS:
        path = tmp_path / f"seed{suffix}"
        path.write_bytes(image_seed(seed))
        with Image.open(path) as img:
            assert img.format is not None and seed.startswith(img.format), seed
        upright = (18, 24, 3) if seed == "GIF" else (24, 18, 3)  # turned by the EXIF orientation
        assert read_rgb(path).shape == upright, seed


@pytest.mark.parametrize("suffix", VIDEO_SUFFIXES)
@FUZZ
@given(steps=mutations)
def test_mutated_videos_give_input_errors_only(tmp_path: Path, suffix: str, steps: list[tuple[str, int, object]]) -> None:
    path = tmp_path / f"fuzzed{suffix}"
    path.write_bytes(mutate(video_seed(suffix), steps))
    try:
        info = probe(path)
        assert info.width > 0 and info.height > 0
    except NstpipeError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    try:
        for frame in itertools.islice(read_frames(path), 20):
            assert frame.rgb.ndim == 3 and frame.rgb.shape[2] == 3 and frame.rgb.dtype == np.uint8
    except NstpipeError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)


@pytest.mark.parametrize("suffix", VIDEO_SUFFIXES)
def test_video_seeds_are_valid(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"seed{suffix}"
    path.write_bytes(video_seed(suffix))
    info = probe(path)
    assert (info.frame_count, info.audio_streams, len(list(read_frames(path)))) == (4, 1, 4)
