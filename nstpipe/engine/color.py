"""Colour handling: the RGB<->BGR swap of the Caffe VGG input, and colour preservation (Gatys et al. 2016).

All tensors here are float RGB in [0, 1], shaped (N, 3, H, W), and are never edited in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from nstpipe.engine.distribution import mixture, moments, quantiles, sqrtm_psd

# YIQ (NTSC). The luminance row is the one Gatys et al. use for luminance-only transfer.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def swap_red_blue(x: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """RGB -> BGR and BGR -> RGB (the same operation both ways), as a copy: the Caffe VGG
    input is BGR. (Video frames come as RGB, already upright, from
    :func:`nstpipe.media.video.read_frames`.)"""
    return x.flip(channel_axis)


def rgb_to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _RGB_TO_YIQ.to(rgb), rgb)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(_RGB_TO_YIQ).to(yiq), yiq)


def keep_luminance(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance from the stylized image, chrominance (I, Q) from the content image."""
    out = rgb_to_yiq(stylized)
    chroma = rgb_to_yiq(content)
    return yiq_to_rgb(torch.cat([out[:, :1], chroma[:, 1:]], dim=1)).clamp(0, 1)


@dataclass(frozen=True)
class ColourPreservation:
    """``preserve_color``: the painting recoloured after the photo before its Grams are taken
    (``luminance``: grey with the photo's brightness; ``histogram``: the photo's colour
    statistics), and for ``luminance`` the photo's chrominance put back into the result."""

    mode: str = "none"

    @property
    def reads_content(self) -> bool:
        return self.mode != "none"

    def painting(self, style: torch.Tensor, content: torch.Tensor | None) -> torch.Tensor:
        if self.mode == "none" or content is None:
            return style
        if self.mode == "histogram":
            return match_color_histogram(style, content)
        return match_luminance(style, content)

    def result(self, image: torch.Tensor, content: torch.Tensor | None) -> torch.Tensor:
        if self.mode != "luminance" or content is None:
            return image
        return keep_luminance(image, content)


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Grey style image whose luminance has the content's mean and spread.

    Used before optimizing in luminance mode, so the style contributes texture but
    not its brightness distribution (Gatys et al. 2016, section 2.2).
    """
    y_style = rgb_to_yiq(style)[:, :1]
    y_content = rgb_to_yiq(content)[:, :1]
    y = (y_style - y_style.mean()) / (y_style.std() + 1e-8) * y_content.std() + y_content.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def match_color_histogram(style: torch.Tensor, content: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Linear colour transfer: give ``style`` the content's colour mean and covariance.

    x' = A (x - mu_s) + mu_c with A = Cov_c^(1/2) Cov_s^(-1/2) (the symmetric square
    roots, Gatys et al. 2016, eq. 2). Done in float64 for a stable eigen-decomposition.
    """
    mean, cov = colour_moments(content)
    return match_moments(style, mean, cov, eps)


def colour_moments(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The RGB mean (N, 3, 1) and covariance (N, 3, 3) of each picture, in float64."""
    mean, cov = moments(image.double().reshape(image.shape[0], 3, -1))
    return mean.unsqueeze(-1), cov


def match_moments(image: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``image`` with the colour ``mean`` (N or 1, 3, 1) and covariance (N or 1, 3, 3), by
    the symmetric linear map of :func:`match_color_histogram`; clamped to [0, 1]."""
    pixels = image.double().reshape(image.shape[0], 3, -1)
    own_mean, own_cov = colour_moments(image)
    out = moment_map(pixels, own_mean, own_cov, mean, cov, eps)
    return out.reshape(image.shape).to(image.dtype).clamp(0, 1)


def moment_map(points: torch.Tensor, own_mean: torch.Tensor, own_cov: torch.Tensor, mean: torch.Tensor,
               cov: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Colour ``points`` (N, 3, M) of mean ``own_mean`` (N, 3, 1) and covariance ``own_cov``
    (N, 3, 3) moved by the symmetric linear map to ``mean`` and ``cov``, unclamped:
    A (x - mu_own) + mu with A = Cov^(1/2) Cov_own^(-1/2)."""
    a = sqrtm_psd(cov.to(points), eps) @ torch.linalg.inv(sqrtm_psd(own_cov, eps))
    out: torch.Tensor = a @ (points - own_mean) + mean.to(points)
    return out


def mixture_moments(images: list[torch.Tensor], weights: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour mean (1, 3, 1) and covariance (1, 3, 3) of the paintings' pixels pooled, each
    painting a share ``weights`` of them."""
    parts = [(w, *colour_moments(image)) for w, image in zip(weights, images)]
    mean, cov = mixture([(w, m[..., 0], c) for w, m, c in parts])
    return mean.unsqueeze(-1), cov


# Sliced transport: three directions per iteration (an orthonormal basis of RGB, drawn anew
# each time), and enough iterations that a photo's pixels reach the painting's marginals
# along any direction (docs/benchmarks.md measures 10, 30 and 60).
TRANSPORT_ITERATIONS = 30
# Each direction's monotone map is interpolated between this many quantiles of each side,
# read from at most SAMPLE pixels of each.
TRANSPORT_KNOTS = 256
TRANSPORT_SAMPLE = 1 << 16
# A picture of more pixels than the sample gets the maps through a colour lookup table of
# LATTICE^3 points, interpolated trilinearly: a 12-megapixel photo costs one lookup, not 90
# maps of all its pixels.
TRANSPORT_LATTICE = 65


def painting_pixels(images: Sequence[torch.Tensor], weights: Sequence[float], count: int = TRANSPORT_SAMPLE,
                    seed: int = 0) -> torch.Tensor:
    """(3, about ``count``) float64 pixels of the paintings pooled, each painting a share
    ``weights`` of them, drawn with a fixed generator (the same every run)."""
    generator = torch.Generator().manual_seed(seed)
    total = sum(weights)
    parts = []
    for weight, image in zip(weights, images):
        pixels = image.detach().double().reshape(3, -1).cpu()
        k = max(1, round(count * weight / total))
        parts.append(pixels[:, torch.randint(pixels.shape[1], (k,), generator=generator)])
    return torch.cat(parts, dim=1)


def transport_colours(image: torch.Tensor, target: torch.Tensor, iterations: int = TRANSPORT_ITERATIONS,
                      seed: int = 0) -> torch.Tensor:
    """``image`` (N, 3, H, W) with the colour distribution of ``target`` (3, M) pixels, whole,
    not only its mean and covariance: the sliced optimal transport of Pitie et al. (2007)
    and Rabin et al. (2011).

    Each picture's pixels (a fixed sample of at most TRANSPORT_SAMPLE) start from the linear
    map of :func:`match_moments`; then each iteration moves them, along each direction of a
    random orthonormal basis, to the quantile of the target's projections that they hold
    among their own. A picture larger than the sample goes through a lookup table: a
    lattice of colours carried through the same maps. Clamped to [0, 1]; the caller's tensor is left alone."""
    target = target.to(torch.float64).cpu()
    mean, cov = moments(target.unsqueeze(0))
    # The maps are read off the pixels alone; a lattice of colours rides along only where
    # a lookup table is wanted (every picture of a batch has the same size).
    whole = image.shape[-2] * image.shape[-1] <= TRANSPORT_SAMPLE
    lattice = torch.linspace(0, 1, TRANSPORT_LATTICE, dtype=torch.float64)
    grid = None if whole else torch.stack(torch.meshgrid(lattice, lattice, lattice, indexing="ij")).reshape(3, -1)  # (r, g, b)
    out = []
    for picture in image:
        generator = torch.Generator().manual_seed(seed)
        pixels = picture.detach().double().reshape(3, -1).cpu()
        if grid is not None:
            pixels = pixels[:, torch.randint(pixels.shape[1], (TRANSPORT_SAMPLE,), generator=generator)]
        own_mean, own_cov = moments(pixels.unsqueeze(0))
        points = pixels if grid is None else torch.cat([pixels, grid], dim=1)
        points = moment_map(points[None], own_mean[..., None], own_cov, mean[..., None], cov)[0]
        count = pixels.shape[1]
        for _ in range(iterations):
            basis, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
            projected = basis.T @ points
            own = quantiles(projected[:, :count].sort().values, TRANSPORT_KNOTS)
            wanted = quantiles((basis.T @ target).sort().values, TRANSPORT_KNOTS)
            points = points + basis @ (_monotone(projected, own, wanted) - projected)
        if grid is None:
            out.append(points.reshape(picture.shape).clamp(0, 1).float())
        else:
            out.append(_look_up(points[:, count:].reshape(3, *(TRANSPORT_LATTICE,) * 3).clamp(0, 1), picture))
    return torch.stack(out).to(image.device, image.dtype)


def _look_up(table: torch.Tensor, picture: torch.Tensor) -> torch.Tensor:
    """``picture`` (3, H, W) in [0, 1] through the colour table (3, R, G, B), trilinearly."""
    # grid_sample reads a 3-D grid's last coordinate as x (the table's last axis, blue).
    where = picture.detach().float().cpu().clamp(0, 1).flip(0).permute(1, 2, 0) * 2 - 1
    sampled = torch.nn.functional.grid_sample(table.float()[None], where[None, None], mode="bilinear",
                                              padding_mode="border", align_corners=True)
    return sampled[0, :, 0]


def _monotone(values: torch.Tensor, knots: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Each row of ``values`` through the piecewise-linear map that takes that row's
    ``knots`` (ascending) to its ``images``; values beyond the ends go to the end images."""
    v = values.clamp(knots[:, :1], knots[:, -1:]).contiguous()
    upper = torch.searchsorted(knots.contiguous(), v).clamp(1, knots.shape[1] - 1)
    lo, hi = knots.gather(1, upper - 1), knots.gather(1, upper)
    start, end = images.gather(1, upper - 1), images.gather(1, upper)
    return start + ((v - lo) / (hi - lo).clamp_min(1e-12)).clamp(0, 1) * (end - start)
