"""Colour handling: the RGB<->BGR swap of the Caffe VGG input, and colour preservation (Gatys et al. 2016).

All tensors here are float RGB in [0, 1], shaped (N, 3, H, W), and are never edited in place.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nstpipe.engine.distribution import mixture, moments, sqrtm_psd

# YIQ (NTSC). The luminance row is the one Gatys et al. use for luminance-only transfer.
_RGB_TO_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]]
)


def swap_red_blue(x: torch.Tensor, channel_axis: int) -> torch.Tensor:
    """RGB -> BGR and BGR -> RGB (the same operation both ways), as a copy: the Caffe VGG
    input is BGR. (Video frames come from OpenCV as BGR and are turned by OpenCV itself,
    in :func:`nstpipe.media.video.read_frames`.)"""
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
    a = sqrtm_psd(cov.to(pixels), eps) @ torch.linalg.inv(sqrtm_psd(own_cov, eps))
    out: torch.Tensor = a @ (pixels - own_mean) + mean.to(pixels)
    return out.reshape(image.shape).to(image.dtype).clamp(0, 1)


def mixture_moments(images: list[torch.Tensor], weights: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour mean (1, 3, 1) and covariance (1, 3, 3) of the paintings' pixels pooled, each
    painting a share ``weights`` of them."""
    parts = [(w, *colour_moments(image)) for w, image in zip(weights, images)]
    mean, cov = mixture([(w, m[..., 0], c) for w, m, c in parts])
    return mean.unsqueeze(-1), cov
