"""Decoding every kind of input into (1, 3, H, W) RGB in [0, 1], and failing clearly."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.errors import InputError
from pipeline.imaging import prepare, prepare_bgr, read_image, read_rgb, to_rgb8


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


def test_error_message_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.write_text("nope")
    with pytest.raises(InputError) as info:
        read_image(path)
    assert "\n" not in str(info.value)


def test_prepare_bgr_matches_prepare_on_rgb() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (12, 18, 3), dtype=np.uint8)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    assert torch.equal(prepare_bgr(bgr), prepare(rgb))
    assert torch.equal(prepare_bgr(bgr, long_side=9), prepare(rgb, long_side=9))
    assert prepare(rgb)[0, 0, 3, 5].item() == pytest.approx(rgb[3, 5, 0] / 255)


def test_prepare_returns_contiguous_tensors() -> None:
    """A channels-last view reaching L-BFGS made it fail on grad.view(-1) (inputs already at size)."""
    rgb = np.zeros((12, 18, 3), np.uint8)
    assert prepare(rgb).is_contiguous()
    assert prepare(rgb, long_side=18).is_contiguous()  # no resize happens
    assert prepare_bgr(rgb).is_contiguous()


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
