"""Colour profiles: a picture's values taken as its ICC profile says, in sRGB; a profile
known for sRGB by what it does, and a grey picture's grey profile applied."""

from __future__ import annotations

import io
import itertools
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageCms

from nstpipe.media import profiles
from nstpipe.media.imaging import read_rgb

D50 = (0.9642, 1.0, 0.8249)
# Adobe RGB (1998)'s and sRGB's primaries, adapted to D50 as ICC profiles hold them (columns X, Y, Z).
ADOBE_RGB = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
SRGB = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def icc_profile(device_class: bytes, space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 profile of ``tags`` (signature, data), built by hand: Pillow makes none but sRGB's."""
    table, data, offset = b"", b"", 128 + 4 + 12 * len(tags)
    for signature, tag in tags:
        tag += b"\0" * (-len(tag) % 4)
        table += signature + struct.pack(">II", offset + len(data), len(tag))
        data += tag
    body = struct.pack(">I", len(tags)) + table + data
    header = (
        struct.pack(">I", 128 + len(body)) + b"none" + bytes([2, 0x10, 0, 0]) + device_class + space + b"XYZ "
        + b"\0" * 12 + b"acspAPPL" + b"\0" * 24 + b"".join(map(_s15, D50)) + b"\0" * 48
    )
    assert len(header) == 128
    return header + body


def _common_tags(name: str) -> list[tuple[bytes, bytes]]:
    text = name.encode() + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 78
    return [(b"desc", desc), (b"wtpt", b"XYZ \0\0\0\0" + b"".join(map(_s15, D50))), (b"cprt", b"text\0\0\0\0none\0")]


def tone_curve(gamma: float | None) -> bytes:
    """A plain gamma curve (stored as u8.8), or, for None, sRGB's curve as a table of 1024."""
    if gamma is not None:
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))
    x = np.arange(1024) / 1023
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    return b"curv\0\0\0\0" + struct.pack(">I", 1024) + struct.pack(">1024H", *np.round(linear * 65535).astype(int).tolist())


def rgb_profile(name: str, primaries: tuple[tuple[float, float, float], ...], gamma: float | None) -> bytes:
    """A matrix profile: three primaries and one curve for all channels (see :func:`tone_curve`)."""
    curve = tone_curve(gamma)
    colorants = [(sig, b"XYZ \0\0\0\0" + b"".join(map(_s15, xyz))) for sig, xyz in zip((b"rXYZ", b"gXYZ", b"bXYZ"), primaries)]
    return icc_profile(b"mntr", b"RGB ", _common_tags(name) + colorants + [(sig, curve) for sig in (b"rTRC", b"gTRC", b"bTRC")])


def cmyk_profile() -> bytes:
    """A printer profile whose inks print muted colours: each corner of the CMYK cube maps to
    half the naive colour plus a quarter, in linear light (a 2-point lut16 to XYZ)."""
    to_xyz = np.array(SRGB).T
    grid = []
    for c, m, y, k in itertools.product((0, 1), repeat=4):
        linear = np.array([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)]) * 0.5 + 0.25
        grid += [round(v * 32768) for v in to_xyz @ linear]
    identity = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = (
        b"mft2\0\0\0\0" + bytes([4, 3, 2, 0]) + identity + struct.pack(">HH", 2, 2) + struct.pack(">8H", *[0, 65535] * 4)
        + struct.pack(f">{len(grid)}H", *grid) + struct.pack(">6H", *[0, 65535] * 3)
    )
    return icc_profile(b"prtr", b"CMYK", _common_tags("muted inks") + [(b"A2B0", lut)])


def grey_profile(name: str, gamma: float | None) -> bytes:
    """A grey display profile: its tone curve (kTRC) alone."""
    return icc_profile(b"mntr", b"GRAY", _common_tags(name) + [(b"kTRC", tone_curve(gamma))])


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = linear.clip(0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055) * 255


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_a_picture_in_adobe_rgb_is_read_in_srgb(tmp_path: Path, suffix: str) -> None:
    """Adobe RGB's wider primaries: the same values are more saturated colours, which sRGB
    holds as farther apart values (worked out here from the primaries and curves)."""
    colours = np.array([[[100, 150, 50], [200, 80, 120], [128, 128, 128], [30, 60, 220]]], np.uint8)
    path = tmp_path / f"adobe{suffix}"
    options: dict[str, Any] = {"icc_profile": rgb_profile("Adobe RGB (1998)", ADOBE_RGB, 2.2)}
    if suffix == ".jpg":
        options["quality"] = 100
    Image.fromarray(np.kron(colours, np.ones((8, 8, 1), np.uint8))).save(path, **options)
    linear = (colours[0] / 255.0) ** (563 / 256)  # the curve as the profile stores it (u8.8)
    expected = srgb_encode(linear @ np.array(ADOBE_RGB) @ np.linalg.inv(np.array(SRGB)))
    rgb = read_rgb(path).astype(float)[4, 4::8]
    assert rgb == pytest.approx(expected, abs=2 if suffix == ".png" else 4)
    assert np.abs(rgb - colours[0]).max() > 30  # not the values as stored


def test_a_cmyk_picture_with_a_profile_is_read_through_it(tmp_path: Path) -> None:
    profile = cmyk_profile()
    picture = Image.new("CMYK", (16, 8), (0, 255, 255, 0))  # red ink, and no ink at all to the right
    picture.paste((0, 0, 0, 0), (8, 0, 16, 8))
    path = tmp_path / "print.jpg"
    picture.save(path, icc_profile=profile, quality=100)
    printer = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    expected = ImageCms.profileToProfile(picture, printer, ImageCms.createProfile("sRGB"), outputMode="RGB")
    assert expected is not None
    rgb = read_rgb(path).astype(int)
    assert rgb[4, 4].tolist() == pytest.approx(np.asarray(expected)[4, 4].tolist(), abs=3)
    assert rgb[4, 4, 1] > 50 and rgb[4, 4, 2] > 50  # a muted red: the naive ink conversion gives (255, 0, 0)



@pytest.fixture
def conversions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The output mode of each conversion LittleCMS makes, with what it learns of profiles
    forgotten: each test starts as a new process would."""
    made: list[str] = []
    real = ImageCms.profileToProfile

    def counting(im: Image.Image, *args: Any, **kwargs: Any) -> Any:
        made.append(kwargs.get("outputMode", ""))
        return real(im, *args, **kwargs)

    monkeypatch.setattr(profiles.ImageCms, "profileToProfile", counting)
    monkeypatch.setattr(profiles, "_known", {})
    return made


def test_an_srgb_profile_of_any_name_is_read_as_stored_and_checked_once(tmp_path: Path, conversions: list[str]) -> None:
    """An sRGB profile (a camera's, under its own name; Pillow's) leaves the values as they
    are; what it does is worked out once, not for every picture that carries it. A profile
    LittleCMS cannot read leaves them as they are too."""
    values = np.random.default_rng(4).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    builtin = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for name, icc in (("camera", rgb_profile("Camera RGB", SRGB, None)), ("pillow", builtin), ("broken", b"not a profile" * 20)):
        for i in range(3):
            path = tmp_path / f"{name}{i}.png"
            Image.fromarray(values).save(path, icc_profile=icc)
            assert np.array_equal(read_rgb(path), values), name
    assert len(conversions) == 2  # one test of each readable profile's colours; no picture converted


def test_a_profile_named_srgb_with_other_curves_is_converted(tmp_path: Path, conversions: list[str]) -> None:
    """sRGB's primaries and name, but a plain 2.2 curve: dark greys are darker than sRGB's,
    and a colour-managed viewer shows them so (worked out here from the curve)."""
    values = np.arange(0, 256, 4, dtype=np.uint8).reshape(8, 8)
    picture = np.repeat(values[..., None], 3, axis=2)
    path = tmp_path / "p.png"
    Image.fromarray(picture).save(path, icc_profile=rgb_profile("sRGB IEC61966-2.1", SRGB, 2.2))
    rgb = read_rgb(path).astype(float)
    expected = srgb_encode((values / 255.0) ** (563 / 256))
    assert rgb[..., 1] == pytest.approx(expected, abs=2)
    assert np.abs(rgb[..., 1] - values).max() > 5 and conversions == ["RGB", "RGB"]


@pytest.mark.parametrize("mode", ["L", "LA", "I;16", "F"])
def test_a_grey_picture_is_read_through_its_grey_profile(tmp_path: Path, mode: str) -> None:
    """A grey profile's curve of 1.8: mid greys come out lighter in sRGB, and a picture of
    16 bits or of floats keeps what lies between 8-bit levels."""
    levels = np.linspace(0, 1, 64).reshape(8, 8)
    if mode == "I;16":
        picture = Image.frombytes(mode, (8, 8), np.round(levels * 65535).astype("<u2").tobytes())
    elif mode == "F":
        picture = Image.fromarray(levels.astype(np.float32))
    else:
        picture = Image.fromarray(np.round(levels * 255).astype(np.uint8))
        levels = np.round(levels * 255) / 255
        if mode == "LA":
            picture = Image.merge("LA", (picture, Image.new("L", (8, 8), 255)))
    path = tmp_path / ("p.tif" if mode == "F" else "p.png")
    picture.save(path, icc_profile=grey_profile("Grey 1.8", 1.8))
    rgb = read_rgb(path).astype(float) * (1 if mode in ("L", "LA") else 255)
    expected = srgb_encode(levels ** (461 / 256))
    assert rgb[..., 0] == pytest.approx(expected, abs=1.5) and np.array_equal(rgb[..., 0], rgb[..., 2])
    assert np.abs(rgb[..., 0] - levels * 255).max() > 10  # not the values as stored
    if mode in ("I;16", "F"):
        assert not np.allclose(rgb, rgb.round(), atol=1e-3)  # not cut to 8-bit levels


def test_a_grey_profile_with_srgbs_curve_has_nothing_to_apply(tmp_path: Path) -> None:
    """Its greys are sRGB's already: a 16-bit picture is read as stored, not through 256 points."""
    for name, gamma, none in (("srgb", None, True), ("1.8", 1.8, False)):
        path = tmp_path / f"{name}.png"
        Image.new("L", (4, 4)).save(path, icc_profile=grey_profile(name, gamma))
        with Image.open(path) as img:
            assert (profiles.grey_curve(img) is None) == none, name
