"""Decoding every kind of input into (1, 3, H, W) RGB in [0, 1], and failing clearly."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from PIL import Image

from nstpipe.engine.tensors import prepare, to_rgb8
from nstpipe.errors import InputError
from nstpipe.media.imaging import read_rgb, shown_size
from nstpipe.modes.model import read_image


def test_read_image_layout_and_range(make_rgb: Callable[..., Path], tmp_path: Path) -> None:
    path = make_rgb(tmp_path / "p.png", 20, 30)
    image = read_image(path)
    assert image.shape == (1, 3, 20, 30)
    assert image.dtype == torch.float32
    assert 0.0 <= image.min().item() and image.max().item() <= 1.0
    expected = np.asarray(Image.open(path), dtype=np.float32) / 255.0
    assert np.allclose(image[0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_read_image_resizes_the_long_side(make_rgb: Callable[..., Path], tmp_path: Path) -> None:
    assert read_image(make_rgb(tmp_path / "wide.jpg", 40, 80), long_side=48).shape == (1, 3, 24, 48)
    assert read_image(make_rgb(tmp_path / "tall.png", 90, 30), long_side=30).shape == (1, 3, 30, 10)


def test_big_jpeg_decoded_at_reduced_scale_gives_the_same_small_picture(make_rgb: Callable[..., Path], tmp_path: Path) -> None:
    path = make_rgb(tmp_path / "big.jpg", 256, 512, quality=95)
    small = read_image(path, long_side=32)  # libjpeg draft mode decodes at 1/8
    full = torch.nn.functional.interpolate(read_image(path), size=(16, 32), mode="area")
    assert small.shape == (1, 3, 16, 32)
    assert (small - full).abs().mean().item() < 0.03


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = (255, 0, 0)  # left half red
    rgb[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=95)
    image = read_image(path)
    assert image.shape == (1, 3, 40, 20)
    top, bottom = image[0, :, :18].mean((1, 2)), image[0, :, 22:].mean((1, 2))
    assert top[0] > 0.8 and top[2] < 0.2  # the left edge became the top edge
    assert bottom[2] > 0.8 and bottom[0] < 0.2
    assert read_image(path, long_side=20).shape == (1, 3, 20, 10)
    # The header alone gives the size as shown, turned as the pixels are.
    assert shown_size(path) == (20, 40)
    (tmp_path / "not.jpg").write_text("text, not a picture")
    assert shown_size(tmp_path / "not.jpg") is None


# What each orientation tag does to the stored pixels to show them (numpy rows, columns).
UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {3: lambda a: a[::-1, ::-1], 6: lambda a: np.rot90(a, -1), 8: np.rot90}


@pytest.mark.parametrize("compression", [None, "tiff_lzw"], ids=["raw", "lzw"])
@pytest.mark.parametrize("orientation", [6, 8, 3])
@pytest.mark.parametrize("mode", ["L", "I;16", "RGB", "RGBA", "CMYK", "P"])
def test_tiff_orientation_is_applied_once(tmp_path: Path, mode: str, orientation: int, compression: str | None) -> None:
    """Pillow memory-maps an uncompressed TIFF at the size as shown, which scrambled a turned
    one's rows (and dropped the tag); a compressed one it turns itself, which must not be undone."""
    rng = np.random.default_rng(5)
    stored = Image.fromarray(np.kron(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8), np.ones((8, 8, 1), np.uint8)))
    picture = {"I;16": stored.convert("L").convert("I;16"), "P": stored.quantize(16)}.get(mode) or stored.convert(mode)
    plain, turned = tmp_path / "plain.tif", tmp_path / "turned.tif"
    picture.save(plain, compression=compression)
    exif = Image.Exif()
    exif[0x0112] = orientation
    picture.save(turned, compression=compression, exif=exif)
    expected = UPRIGHT[orientation](read_rgb(plain))
    assert np.array_equal(read_rgb(turned), expected)
    assert shown_size(turned) == (expected.shape[1], expected.shape[0])


def test_grey_image(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.new("L", (5, 4), 100).save(path)
    image = read_image(path)
    assert image.shape == (1, 3, 4, 5)
    assert torch.allclose(image, torch.full_like(image, 100 / 255))


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    rgba[0, 1] = (0, 0, 255, 255)  # opaque blue
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    rgba[1, 1] = (0, 255, 0, 255)
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb = read_rgb(path)
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [0, 0, 255]
    assert rgb[1, 0].tolist() == pytest.approx([127, 127, 127], abs=1)
    assert rgb[1, 1].tolist() == [0, 255, 0]


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([0, 0, 0, 200, 10, 10] + [0, 0, 0] * 254)
    img.putpixel((0, 0), 0)
    img.putpixel((1, 0), 1)
    path = tmp_path / "palette.png"
    img.save(path, transparency=0)
    rgb = read_rgb(path)
    assert rgb.shape == (1, 2, 3)
    assert rgb[0, 0].tolist() == [255, 255, 255]  # transparent index -> white, not black
    assert rgb[0, 1].tolist() == [200, 10, 10]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=95)  # red in CMYK
    image = read_image(path)
    assert image.shape == (1, 3, 8, 8)
    assert image[0, :, 4, 4].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.05)


def test_sixteen_bit_grey_keeps_its_precision(tmp_path: Path) -> None:
    values = np.array([[257 * 100, 257 * 100 + 128], [0, 40000]], dtype=np.uint16)  # no white: not stretched
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    image = read_image(path)
    assert image.shape == (1, 3, 2, 2)
    assert image[0, 0, 0, 0].item() == pytest.approx(100 / 255, abs=1e-6)
    # Between two 8-bit levels: an 8-bit conversion would round it to 100/255 or 101/255.
    assert image[0, 1, 0, 1].item() == pytest.approx((257 * 100 + 128) / 65535, abs=1e-6)
    assert image[0, 2, 1, 0].item() == 0.0
    assert image[0, 2, 1, 1].item() == pytest.approx(40000 / 65535, abs=1e-6)


@pytest.mark.parametrize("maxval", [65535, 4095])
def test_sixteen_bit_pgm_keeps_its_brightness(tmp_path: Path, maxval: int) -> None:
    """Pillow reads a PGM of more than 8 bits as "I", scaled to 65535: a dark one stays dark,
    not stretched to its own brightest value."""
    grey = np.full((4, 6), maxval // 64, np.uint16)
    grey[:, 3:] = maxval // 8
    path = tmp_path / "dark.pgm"
    path.write_bytes(f"P5 6 4 {maxval}\n".encode() + grey.astype(">u2").tobytes())
    assert Image.open(path).mode == "I"
    rgb = read_rgb(path)
    assert rgb[0, 0].tolist() == pytest.approx([(maxval // 64) / maxval] * 3, abs=1e-4)
    assert rgb[0, 5].tolist() == pytest.approx([(maxval // 8) / maxval] * 3, abs=1e-4)


def test_thirty_two_bit_grey_beyond_sixteen_bits_is_stretched(tmp_path: Path) -> None:
    path = tmp_path / "counts.tif"
    Image.fromarray(np.array([[0, 50_000, 200_000]], np.int32), "I").save(path)
    assert read_rgb(path)[0, :, 0].tolist() == pytest.approx([0.0, 0.25, 1.0])


def test_float_picture_within_zero_to_one_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.1, 0.5, np.nan]], np.float32), "F").save(path)
    assert read_rgb(path)[0, :, 0].tolist() == pytest.approx([0.1, 0.5, 0.0])


def test_one_pixel_image(tmp_path: Path) -> None:
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (10, 20, 30)).save(path)
    image = read_image(path)
    assert image.shape == (1, 3, 1, 1)
    assert image.flatten().tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])
    assert read_image(path, long_side=16).shape == (1, 3, 16, 16)


def test_truncated_jpeg(make_rgb: Callable[..., Path], tmp_path: Path) -> None:
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match="cut.jpg") as info:
        read_image(path)
    assert "truncated" in info.value.reason


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.jpg", b"", "empty file"),
        ("x.jpg", b"this is not a picture\n", "not an image"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert reason in info.value.reason
    assert info.value.path == path


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere.png: file not found"):
        read_image(tmp_path / "nowhere.png")
    with pytest.raises(InputError, match="is a directory"):
        read_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_named_as_a_picture_is_refused_unopened(tmp_path: Path) -> None:
    """Opening a FIFO to read waits for a writer: in a child process, so that a reader that
    opens it fails the test instead of hanging it."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from nstpipe.errors import InputError\n"
        "from nstpipe.media.imaging import picture_header, read_rgb, shown_size\n"
        "path = Path(sys.argv[1])\n"
        "print(shown_size(path), picture_header(path))\n"
        "try:\n"
        "    read_rgb(path)\n"
        "except InputError as exc:\n"
        "    print(exc)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", script, str(fifo)], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("reading the FIFO waited for a writer")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["None None", f"{fifo}: not a regular file"]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied"),
        (OSError(errno.EMFILE, "Too many open files"), "cannot be read now (Too many open files)"),
        (OSError(errno.EIO, "Input/output error"), "cannot be read now (Input/output error)"),
    ],
    ids=["permission", "open-files", "disk-read"],
)
def test_what_the_machine_refuses_is_not_the_pictures_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError, reason: str
) -> None:
    """So that a folder run tries it again next time (see nstpipe.jobs.failures); a corrupt
    picture's fault is its own."""
    path = tmp_path / "p.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    with pytest.raises(InputError) as corrupt:
        read_rgb(path)
    assert corrupt.value.lasting

    def refuse(*args: Any, **kwargs: Any) -> Image.Image:
        raise error

    monkeypatch.setattr(Image, "open", refuse)
    with pytest.raises(InputError) as refused:
        read_rgb(path)
    assert (refused.value.reason, refused.value.lasting) == (reason, False)


def test_error_message_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.write_text("nope")
    with pytest.raises(InputError) as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_prepare_keeps_the_channel_order() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
    assert prepare(rgb)[0, 0, 3, 5].item() == pytest.approx(rgb[3, 5, 0] / 255)
    assert prepare(rgb)[0, 2, 3, 5].item() == pytest.approx(rgb[3, 5, 2] / 255)


def test_prepare_returns_contiguous_tensors() -> None:
    """A channels-last view reaching L-BFGS made it fail on grad.view(-1) (inputs already at size)."""
    rgb = np.zeros((12, 18, 3), np.uint8)
    assert prepare(rgb).is_contiguous()
    assert prepare(rgb, long_side=18).is_contiguous()  # no resize happens


def test_prepare_accepts_float_arrays() -> None:
    rgb = np.full((4, 6, 3), 0.25, dtype=np.float64)
    tensor = prepare(rgb)
    assert tensor.dtype == torch.float32 and tensor.shape == (1, 3, 4, 6)
    assert torch.allclose(tensor, torch.full_like(tensor, 0.25))


def test_to_rgb8_round_trip() -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb8(prepare(rgb)), rgb)
    assert np.array_equal(to_rgb8(prepare(rgb)[0]), rgb)
    assert to_rgb8(torch.tensor([-0.5, 0.5, 2.0]).view(1, 3, 1, 1)).tolist() == [[[0, 128, 255]]]


@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_16bit_rgb_keeps_channel_order(tmp_path: Path, suffix: str) -> None:
    import cv2

    rgb = np.zeros((6, 8, 3), dtype=np.uint16)
    rgb[..., 0] = 60000  # strong red, weak green, no blue
    rgb[..., 1] = 20000
    path = tmp_path / f"deep{suffix}"
    assert cv2.imwrite(str(path), rgb[..., ::-1].copy())  # OpenCV writes BGR
    image = read_image(path)
    assert image.shape == (1, 3, 6, 8)
    assert image[0, :, 0, 0].tolist() == pytest.approx([60000 / 65535, 20000 / 65535, 0.0], abs=1 / 255)


# -- decompression bombs --------------------------------------------------------------------


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A real 1x1 PNG whose header (IHDR, with its CRC redone) claims ``width`` x ``height``."""
    import struct
    import zlib

    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to decode pixels fails the test: refusals must come from the header."""
    from PIL import ImageFile

    def refuse(self: object) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (10_000, 9_000)], ids=["far-over", "just-over"])
def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path, no_decoding: None, width: int, height: int) -> None:
    """10^10 pixels trips PIL's own check inside Image.open (twice the limit); 9*10^7 only ours."""
    path = png_claiming(tmp_path / "bomb.png", width, height)
    for read in (lambda: read_rgb(path), lambda: read_image(path, long_side=64), lambda: read_rgb(path, draft_side=64)):
        with pytest.raises(InputError) as info:
            read()
        assert info.value.path == path and "\n" not in str(info.value)
        assert "decompression bomb" in info.value.reason
        assert "89,478,485" in info.value.reason and "--max-pixels" in info.value.reason
        assert f"{width * height:,} pixels" in info.value.reason


def test_pixel_limit_can_be_lowered_and_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.png"
    Image.new("RGB", (200, 150), (10, 200, 30)).save(path)
    with pytest.raises(InputError, match=r"200x150 = 30,000 pixels is over the limit of 29,999"):
        read_rgb(path, max_pixels=29_999)
    assert read_rgb(path, max_pixels=30_000).shape == (150, 200, 3)
    # PIL refuses by itself at twice its own global limit, inside Image.open; a limit raised
    # past that must still let the image through, and PIL's global must come back unchanged.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert read_rgb(path, max_pixels=30_000)[0, 0].tolist() == [10, 200, 30]
    assert read_rgb(path, max_pixels=0).shape == (150, 200, 3)  # 0: no limit
    assert Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(InputError, match="over the limit of 1,000 "):
        read_rgb(path, max_pixels=1000)  # PIL's own check (over twice 1000), same message
    assert Image.MAX_IMAGE_PIXELS == 1000


# -- YCCK and other colour spaces ---------------------------------------------------------------


def ycck_jpeg(path: Path, cmyk_blocks: list[tuple[int, int, int, int]]) -> Path:
    """A 16x16 YCCK JPEG of four 8x8 blocks, each one flat CMYK colour (ink amounts 0-255).

    Adobe's YCCK: the inverted C, M, Y (255 - C = R, ...) go through the JPEG RGB -> YCbCr
    transform, K is stored as it is, and every component is stored inverted (Adobe
    convention). PIL writes a 4-component JPEG with an Adobe marker saying "no transform"
    (CMYK) and stores 255 - value for each pixel value given; so given 255 - (Y, Cb, Cr, 255 - K),
    it stores (Y, Cb, Cr, 255 - K), and setting the marker's transform byte to 2 makes
    libjpeg read those planes as YCCK.
    """
    planes = np.zeros((16, 16, 4), np.uint8)
    for i, (c, m, y, k) in enumerate(cmyk_blocks):
        r, g, b = float(c), float(m), float(y)  # libjpeg: R = 255 - C of the inverted input
        luma = 0.299 * r + 0.587 * g + 0.114 * b
        cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
        cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
        stored = np.array([luma, cb, cr, 255 - k])
        planes[(i // 2) * 8 : (i // 2) * 8 + 8, (i % 2) * 8 : (i % 2) * 8 + 8] = np.clip(np.round(255 - stored), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(planes, "CMYK").save(buffer, "JPEG", quality=100)
    data = bytearray(buffer.getvalue())
    app14 = data.find(b"\xff\xeeAdobe"[:2] + b"\x00\x0eAdobe")
    assert app14 > 0 and data[app14 + 15] == 0, "PIL no longer writes the Adobe marker this way"
    data[app14 + 15] = 2  # transform: YCCK
    path.write_bytes(bytes(data))
    return path


def test_ycck_jpeg_decodes_to_the_right_colours(tmp_path: Path) -> None:
    path = ycck_jpeg(tmp_path / "ycck.jpg", [(0, 255, 255, 0), (255, 0, 255, 0), (255, 255, 0, 0), (0, 0, 0, 128)])
    with Image.open(path) as img:
        assert (img.mode, img.info.get("adobe_transform")) == ("CMYK", 2)
    rgb = read_rgb(path).astype(int)
    expected = {(4, 4): (255, 0, 0), (4, 12): (0, 255, 0), (12, 4): (0, 0, 255), (12, 12): (127, 127, 127)}
    for (y, x), colour in expected.items():
        assert rgb[y, x].tolist() == pytest.approx(list(colour), abs=4), (y, x)


@pytest.mark.parametrize("span", [2.0, 6e38], ids=["small", "float32-extremes"])
def test_float_image_with_nan_and_infinity_stays_in_range(tmp_path: Path, span: float) -> None:
    """Non-finite values become black; the extremes (the span overflowed float32) still map to 0..1."""
    values = np.array([[-span / 2, 0.0, span / 2], [np.nan, np.inf, -np.inf]], dtype=np.float32)
    path = tmp_path / "float.tif"
    Image.fromarray(values, "F").save(path)
    rgb = read_rgb(path)
    assert rgb.dtype == np.float32 and np.isfinite(rgb).all() and rgb.min() >= 0 and rgb.max() <= 1
    assert rgb[0, :, 0].tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert rgb[1, :, 0].tolist() == [0.0, 0.0, 0.0]


# -- huge but legal pictures ----------------------------------------------------------------------


def decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size of every picture that reaches the float conversion, recorded as it goes."""
    import nstpipe.media.imaging as imaging

    sizes: list[tuple[int, int]] = []
    real = imaging._to_rgb_array

    def recording(img: Image.Image) -> np.ndarray:
        sizes.append(img.size)
        return real(img)

    monkeypatch.setattr(imaging, "_to_rgb_array", recording)
    return sizes


def test_big_jpeg_never_reaches_full_resolution(make_rgb: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = decoded_sizes(monkeypatch)
    read_image(make_rgb(tmp_path / "big.jpg", 256, 512), long_side=32)
    assert sizes == [(64, 32)]  # libjpeg decoded at 1/8 scale


@pytest.mark.parametrize("mode", ["RGB", "P", "1", "LA", "I;16"])
def test_big_picture_is_reduced_before_it_becomes_floats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """PNG cannot decode at a reduced scale; the picture is box-reduced right after, by a whole
    factor keeping four times the wanted size, and ends up as the full-size path would make it."""
    rng = np.random.default_rng(3)
    base = Image.fromarray(np.kron(rng.integers(0, 256, (15, 20, 3), dtype=np.uint8), np.ones((20, 20, 1), np.uint8)))
    img = {"RGB": base, "P": base.quantize(16), "1": base.convert("1"), "LA": base.convert("LA"), "I;16": base.convert("I;16")}[mode]
    path = tmp_path / "big.png"
    options: dict[str, Any] = {"transparency": 0} if mode == "P" else {}
    img.save(path, **options)
    sizes = decoded_sizes(monkeypatch)
    small = read_image(path, long_side=16)
    full = prepare(read_rgb(path), 16)
    assert small.shape == full.shape == (1, 3, 12, 16)
    # 400 // (4 * 16) = 6: 67x50 (reduce() rounds up); 16-bit grey cannot be reduced.
    assert sizes == [(400, 300) if mode == "I;16" else (67, 50), (400, 300)]
    assert (small - full).abs().mean().item() < 0.02
