"""Distances that judge a picture against its painting without being what the engine optimizes.

A Gram distance says how well the Gram loss was minimized, not how close the picture is to
the painting. These compare whole distributions, with directions fixed by a seed so that
every picture is measured along the same ones:

* :func:`feature_distance`: the sliced Wasserstein distance over VGG19 features, relu1_1 to
  relu5_1, each layer's over the painting's mean feature variance, summed (Heitz et al. 2021);
* :func:`patch_distance`: the sliced Wasserstein distance over raw 7x7 RGB patches, at the
  full and at half the size, summed: no network at all, what the colours and strokes look
  like locally;
* :func:`colour_distance`: the same over single pixels, the palette alone (what a colour
  start is judged by before any step);
* :func:`high_frequency_share`: the share of a picture's energy above half the Nyquist
  frequency, to tell per-pixel speckle from the painting's own grain.

A floor for each: a half of the painting against the whole (:func:`halves`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from nstpipe.engine.distribution import mean_variance, random_directions, sliced_distance
from nstpipe.engine.features import Encoder
from nstpipe.engine.resize import resize

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
PATCH = 7
# The sizes the patch distance looks at, over the picture's own: its strokes, and at half
# the size the larger shapes they make.
PATCH_SCALES = (1.0, 0.5)
# Directions per layer for the features (a layer of up to 512 channels), and for the 7x7x3
# patches: enough that two measurements of one pair agree to a few percent.
FEATURE_DIRECTIONS = 256
PATCH_DIRECTIONS = 256
COLOUR_DIRECTIONS = 64
# Points kept of a set larger than this (a big picture's relu1_1): the quantiles of a
# random quarter million are those of the whole within the directions' own noise.
MAX_POINTS = 1 << 18


def _points(flat: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(D, M) -> at most MAX_POINTS columns of it, in fp32."""
    flat = flat.float()
    if flat.shape[1] <= MAX_POINTS:
        return flat
    return flat[:, torch.randperm(flat.shape[1], generator=generator)[:MAX_POINTS].to(flat.device)]


def _sliced(points: torch.Tensor, target: torch.Tensor, count: int, seed: int) -> float:
    generator = torch.Generator().manual_seed(seed)
    directions = random_directions(points.shape[0], count, generator).to(points.device)
    ours, theirs = _points(points, generator), _points(target, generator)
    return float(sliced_distance(ours[None], theirs, directions)[0])


@torch.no_grad()
def feature_distance(
    encoder: Encoder, picture: torch.Tensor, painting: torch.Tensor, layers: Sequence[str] = STYLE_LAYERS, seed: int = 0
) -> float:
    """Sliced W2^2 over each layer's features, over the painting's mean variance there, summed.

    ``picture`` and ``painting`` are (1, 3, H, W) RGB in [0, 1], each at the scale it is
    compared at (any sizes).
    """
    return sum(feature_distances(encoder, picture, painting, layers, seed).values())


@torch.no_grad()
def feature_distances(
    encoder: Encoder, picture: torch.Tensor, painting: torch.Tensor, layers: Sequence[str] = STYLE_LAYERS, seed: int = 0
) -> Mapping[str, float]:
    """:func:`feature_distance` per layer."""
    ours, theirs = encoder(picture), encoder(painting)
    out = {}
    for k, layer in enumerate(layers):
        a, b = ours[layer][0].flatten(1).float(), theirs[layer][0].flatten(1).float()
        variance = float(mean_variance(b))
        out[layer] = _sliced(a, b, FEATURE_DIRECTIONS, seed + k) / max(variance, 1e-12)
    return out


def patches(picture: torch.Tensor, size: int = PATCH) -> torch.Tensor:
    """Every ``size`` x ``size`` RGB patch of (1, 3, H, W), as (3 size^2, count)."""
    return F.unfold(picture.float(), size)[0]


@torch.no_grad()
def patch_distance(picture: torch.Tensor, painting: torch.Tensor, seed: int = 0) -> float:
    """Sliced W2^2 over 7x7 RGB patches (colours in [0, 1]) at the full and at half the size, summed."""
    return sum(patch_distances(picture, painting, seed).values())


@torch.no_grad()
def patch_distances(picture: torch.Tensor, painting: torch.Tensor, seed: int = 0) -> Mapping[float, float]:
    """:func:`patch_distance` per scale of :data:`PATCH_SCALES`: where a picture's strokes
    differ from the painting's, in the small or in the larger shapes."""
    out = {}
    for k, scale in enumerate(PATCH_SCALES):
        a, b = _scaled(picture, scale), _scaled(painting, scale)
        out[scale] = _sliced(patches(a), patches(b), PATCH_DIRECTIONS, seed + k)
    return out


@torch.no_grad()
def colour_distance(picture: torch.Tensor, painting: torch.Tensor, seed: int = 0) -> float:
    """Sliced W2^2 over the pixels' RGB colours (in [0, 1]), at the size given: the palette
    without the strokes."""
    return _sliced(patches(picture, 1), patches(painting, 1), COLOUR_DIRECTIONS, seed)


def _scaled(picture: torch.Tensor, scale: float) -> torch.Tensor:
    if scale == 1.0:
        return picture
    h, w = picture.shape[-2:]
    return resize(picture, (max(PATCH, round(h * scale)), max(PATCH, round(w * scale))))


def high_frequency_share(picture: torch.Tensor) -> float:
    """The share of the grey picture's spectral energy (its mean taken out) above half the
    Nyquist frequency, in radius: speckle of single pixels sits there."""
    grey = picture.float()[0].mean(0)
    grey = grey - grey.mean()
    power = torch.fft.fft2(grey).abs().pow(2)
    fy = torch.fft.fftfreq(grey.shape[0]).abs().view(-1, 1)
    fx = torch.fft.fftfreq(grey.shape[1]).abs().view(1, -1)
    radius = torch.sqrt(fy**2 + fx**2) / 0.5  # 1 at the Nyquist frequency along an axis
    total = float(power.sum())
    return float(power[radius > 0.5].sum()) / total if total > 0 else 0.0


def halves(painting: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The painting's two halves across its long side: left and right, or top and bottom."""
    h, w = painting.shape[-2:]
    if w >= h:
        return painting[..., : w // 2], painting[..., w // 2 :]
    return painting[..., : h // 2, :], painting[..., h // 2 :, :]
