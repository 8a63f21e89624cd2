"""Channel order and colour preservation."""

from __future__ import annotations

import pytest
import torch

from helpers import smooth_image
from nstpipe.engine.color import (
    TRANSPORT_LATTICE,
    TRANSPORT_SAMPLE,
    _look_up,
    colour_moments,
    keep_luminance,
    match_color_histogram,
    match_luminance,
    match_moments,
    painting_pixels,
    rgb_to_yiq,
    swap_red_blue,
    transport_colours,
    yiq_to_rgb,
)
from nstpipe.engine.distances import colour_distance


def channel_stats(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean (3,) and covariance (3, 3) of a (1, 3, H, W) image, in float64."""
    flat = image.double().reshape(3, -1)
    mean = flat.mean(1)
    centred = flat - mean[:, None]
    return mean, centred @ centred.T / flat.shape[1]


def mixed_noise(seed: int, mean: tuple[float, float, float], mix: list[list[float]], size: int = 24) -> torch.Tensor:
    """Correlated colour noise with a chosen mean and mixing matrix, well inside [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(3, size * size, generator=gen, dtype=torch.float64)
    rgb = torch.tensor(mix, dtype=torch.float64) @ noise + torch.tensor(mean, dtype=torch.float64)[:, None]
    return rgb.reshape(1, 3, size, size).float()


def test_swap_red_blue_torch_nchw() -> None:
    tensor = torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1).repeat(2, 1, 2, 2)
    swapped = swap_red_blue(tensor, channel_axis=1)
    assert swapped[1, :, 1, 0].tolist() == pytest.approx([0.3, 0.2, 0.1])
    swapped[0, 0] = 5.0
    assert tensor[0, 2, 0, 0].item() == pytest.approx(0.3)
    assert torch.equal(swap_red_blue(swap_red_blue(tensor, 1), 1), tensor)


def test_yiq_known_values_and_round_trip() -> None:
    white_grey = torch.tensor([1.0, 1.0, 1.0, 0.4, 0.4, 0.4]).view(2, 3, 1, 1)
    yiq = rgb_to_yiq(white_grey)
    assert yiq[:, 0].flatten().tolist() == pytest.approx([1.0, 0.4], abs=1e-6)
    assert yiq[:, 1:].abs().max().item() < 1e-6  # greys have no chroma
    red = rgb_to_yiq(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten().tolist()
    assert red == pytest.approx([0.299, 0.595716, 0.211456], abs=1e-6)
    image = smooth_image(8, 8)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(image)), image, atol=1e-5)


def test_keep_luminance_takes_luma_from_stylized_and_chroma_from_content() -> None:
    stylized = 0.5 + 0.3 * (smooth_image(16, 16, phase=1.0) - 0.5)
    content = 0.5 + 0.3 * (smooth_image(16, 16, phase=2.5) - 0.5)
    before = (stylized.clone(), content.clone())
    out = keep_luminance(stylized, content)
    assert out.min() > 0 and out.max() < 1  # no clipping, so the check below is exact
    assert torch.allclose(rgb_to_yiq(out)[:, 0], rgb_to_yiq(stylized)[:, 0], atol=1e-5)
    assert torch.allclose(rgb_to_yiq(out)[:, 1:], rgb_to_yiq(content)[:, 1:], atol=1e-5)
    assert not torch.allclose(out, stylized, atol=1e-2)
    assert torch.equal(stylized, before[0]) and torch.equal(content, before[1])


def test_match_color_histogram_gives_style_the_content_mean_and_covariance() -> None:
    style = mixed_noise(1, (0.3, 0.6, 0.5), [[0.06, 0.02, 0.0], [0.0, 0.05, 0.01], [0.01, 0.0, 0.04]])
    content = mixed_noise(2, (0.55, 0.45, 0.35), [[0.04, 0.0, 0.02], [0.03, 0.05, 0.0], [0.0, 0.02, 0.06]])
    out = match_color_histogram(style, content)
    assert out.shape == style.shape and out.dtype == torch.float32
    assert out.min() > 0 and out.max() < 1  # no clipping in this set-up
    out_mean, out_cov = channel_stats(out)
    content_mean, content_cov = channel_stats(content)
    style_mean, _ = channel_stats(style)
    assert out_mean.tolist() == pytest.approx(content_mean.tolist(), abs=1e-5)
    assert torch.allclose(out_cov, content_cov, rtol=1e-3, atol=1e-6)
    assert (style_mean - content_mean).abs().max() > 0.1


def test_match_color_histogram_is_one_affine_map_of_the_style_pixels() -> None:
    """Only the colours move: every output pixel is the same affine function of its style pixel."""
    style = mixed_noise(3, (0.5, 0.5, 0.5), [[0.05, 0, 0], [0, 0.05, 0], [0, 0, 0.05]])
    content = mixed_noise(4, (0.5, 0.4, 0.6), [[0.08, 0, 0], [0, 0.04, 0], [0, 0, 0.06]])
    out = match_color_histogram(style, content)
    pixels = style.double().reshape(3, -1).T
    design = torch.cat([pixels, torch.ones(pixels.shape[0], 1, dtype=torch.float64)], dim=1)
    target = out.double().reshape(3, -1).T
    fit = torch.linalg.lstsq(design, target).solution
    assert (design @ fit - target).abs().max().item() < 1e-6
    assert (out - style).abs().max().item() > 0.05


def test_match_luminance_is_grey_with_the_content_luma_statistics() -> None:
    style = 0.5 + 0.2 * (smooth_image(20, 30, phase=0.7) - 0.5)
    content = 0.3 + 0.5 * (smooth_image(16, 16, phase=2.0) - 0.5)
    out = match_luminance(style, content)
    assert out.shape == (1, 3, 20, 30)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    y_out, y_content = rgb_to_yiq(out)[:, 0], rgb_to_yiq(content)[:, 0]
    assert out.min() > 0 and out.max() < 1
    assert y_out.mean().item() == pytest.approx(y_content.mean().item(), abs=1e-4)
    assert y_out.std().item() == pytest.approx(y_content.std().item(), rel=1e-3)


def two_colour_painting(size: int = 40) -> torch.Tensor:
    """A painting of two colour clusters, blue and ochre, half each: a palette no linear map
    of a smooth photo reaches."""
    gen = torch.Generator().manual_seed(3)
    pixels = torch.randn(3, size * size, generator=gen) * 0.03
    pixels[:, : size * size // 2] += torch.tensor([0.2, 0.3, 0.8])[:, None]
    pixels[:, size * size // 2 :] += torch.tensor([0.9, 0.7, 0.1])[:, None]
    return pixels.clamp(0, 1).reshape(1, 3, size, size)


def near_either_cluster(picture: torch.Tensor) -> float:
    flat = picture.reshape(3, -1).T
    centres = torch.tensor([[0.2, 0.3, 0.8], [0.9, 0.7, 0.1]])
    return (torch.cdist(flat, centres).min(dim=1).values < 0.12).float().mean().item()


def test_transport_gives_the_photo_the_paintings_whole_palette() -> None:
    photo = smooth_image(48, 64)
    painting = two_colour_painting()
    target = painting_pixels([painting[0]], [1.0])
    moved = transport_colours(photo, target)
    linear = match_moments(photo, *colour_moments(painting))
    # The linear map gives the mean and covariance but fills the space between the clusters.
    assert near_either_cluster(moved) > 0.9 > 0.5 > near_either_cluster(linear)
    assert colour_distance(moved, painting) < 0.1 * colour_distance(linear, painting)
    assert torch.equal(photo, smooth_image(48, 64))  # the caller's photo is untouched
    assert torch.equal(moved, transport_colours(photo, target))  # the same every run


@pytest.mark.parametrize("side", [64, 320])  # all its pixels moved, and (above the sample) a lookup table
def test_transport_onto_the_photos_own_colours_leaves_it_nearly_as_it_is(side: int) -> None:
    photo = smooth_image(side * 3 // 4, side)
    assert (photo.shape[-1] * photo.shape[-2] > TRANSPORT_SAMPLE) == (side > 300)
    moved = transport_colours(photo, painting_pixels([photo[0]], [1.0]))
    assert (moved - photo).abs().mean().item() < 1 / 255
    assert (moved - photo).abs().max().item() < 8 / 255


def test_transport_moves_each_picture_of_a_batch_on_its_own() -> None:
    painting = two_colour_painting()
    target = painting_pixels([painting[0]], [1.0])
    a, b = smooth_image(24, 32), smooth_image(24, 32, phase=1.3).flip(1)
    both = transport_colours(torch.cat([a, b]), target)
    assert torch.allclose(both[:1], transport_colours(a, target)) and torch.allclose(both[1:], transport_colours(b, target))


def test_the_colour_table_is_read_red_green_blue() -> None:
    # The identity table: trilinear interpolation of a linear map is exact, and a table read
    # along the wrong axes would swap the channels.
    axis = torch.linspace(0, 1, TRANSPORT_LATTICE)
    table = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"))
    picture = smooth_image(9, 13)
    assert torch.allclose(_look_up(table, picture[0]), picture[0], atol=1e-5)


def test_painting_pixels_pool_the_paintings_by_blend_weight() -> None:
    red, blue = torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)
    red[0], blue[2] = 1.0, 1.0
    pooled = painting_pixels([red, blue], [1.0, 3.0], count=400)
    assert pooled.shape == (3, 400)
    assert pooled[0].sum().item() == 100 and pooled[2].sum().item() == 300
