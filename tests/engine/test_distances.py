"""The judging distances: zero for a picture against itself, ordered as a person would order
them, repeatable with their fixed directions, and the speckle measure on known spectra."""

from __future__ import annotations

import pytest
import torch

from helpers import TinyEncoder, smooth_image, stripes_image
from nstpipe.engine.distances import (
    feature_distance,
    feature_distances,
    halves,
    high_frequency_share,
    patch_distance,
    patch_distances,
    patches,
)


def test_a_picture_against_itself_is_at_zero() -> None:
    picture = smooth_image(24, 32)
    encoder = TinyEncoder()
    assert feature_distance(encoder, picture, picture, layers=("relu1_1", "relu2_1")) == pytest.approx(0.0, abs=1e-9)
    assert patch_distance(picture, picture) == pytest.approx(0.0, abs=1e-9)


def test_distances_grow_as_a_picture_moves_away() -> None:
    painting = stripes_image(32, 32)
    near = (0.8 * painting + 0.2 * smooth_image(32, 32)).clamp(0, 1)
    far = smooth_image(32, 32)
    encoder = TinyEncoder()
    layers = ("relu1_1", "relu2_1")
    assert 0 < feature_distance(encoder, near, painting, layers) < feature_distance(encoder, far, painting, layers)
    assert 0 < patch_distance(near, painting) < patch_distance(far, painting)


def test_fixed_directions_repeat_and_another_seed_differs() -> None:
    a, b = smooth_image(24, 32), stripes_image(24, 32)
    assert patch_distance(a, b) == patch_distance(a, b)
    assert patch_distance(a, b, seed=1) != patch_distance(a, b)
    per_layer = feature_distances(TinyEncoder(), a, b, ("relu1_1", "relu2_1"))
    assert set(per_layer) == {"relu1_1", "relu2_1"} and all(v > 0 for v in per_layer.values())


def test_the_patch_distance_splits_by_scale_and_fine_grain_shows_at_full_size_alone() -> None:
    # A pixel checkerboard against its own mean colour: far apart pixel by pixel, the same
    # once both are brought to half the size, where the checkerboard averages out.
    painting = stripes_image(32, 32, period=1)
    flat = painting.mean(dim=(2, 3), keepdim=True).expand_as(painting).contiguous()
    split = patch_distances(flat, painting)
    assert list(split) == [1.0, 0.5]
    assert split[1.0] > 0.05
    assert split[0.5] < split[1.0] / 20
    assert sum(split.values()) == patch_distance(flat, painting)


def test_patches_are_seven_by_seven_rgb() -> None:
    assert patches(torch.zeros(1, 3, 10, 12)).shape == (147, 4 * 6)


def test_a_uniform_colour_shift_shows_in_patches_as_its_square() -> None:
    # Every patch moves by the same 0.1 in one channel: each 147-dim point moves by a vector
    # of 49 entries of 0.1; along a unit direction d the gap is 0.1 * sum(d over those entries).
    picture = smooth_image(20, 20) * 0.5
    shifted = picture.clone()
    shifted[:, 0] += 0.1
    d = patch_distance(shifted, picture)
    assert 0 < d < 49 * 0.1**2  # at most |shift|^2, the gap along the shift itself


def test_speckle_is_high_frequency_and_a_smooth_picture_is_not() -> None:
    y, x = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    checker = ((x + y) % 2).float().expand(1, 3, 32, 32)
    assert high_frequency_share(checker) == pytest.approx(1.0)
    assert high_frequency_share(smooth_image(32, 32)) < 0.05
    assert high_frequency_share(torch.full((1, 3, 8, 8), 0.5)) == 0.0


def test_halves_split_the_long_side() -> None:
    wide, tall = torch.zeros(1, 3, 10, 20), torch.zeros(1, 3, 21, 10)
    assert [h.shape[-1] for h in halves(wide)] == [10, 10]
    assert [h.shape[-2] for h in halves(tall)] == [10, 11]
