"""Distances between pictures in VGG19 feature space, as the benchmarks define them.

style   = sum over style layers of |G(out) - G(style)|^2 / |G(style)|^2, G = F F^T / (C H W)
content = |F(out) - F(photo)|^2 / |F(photo)|^2 at the content layer

These are the losses of :mod:`pipeline.engine.losses` with unit weights, so the engine
optimizes exactly what is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from pipeline.engine.features import Encoder
from pipeline.engine.flow import consistency_mask, optical_flow, warp
from pipeline.engine.losses import content_loss, gram, style_loss
from pipeline.engine.resize import fit_long_side, resize, resize_long_side
from pipeline.engine.tensors import prepare, to_rgb8

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


@dataclass(frozen=True)
class Distances:
    style: float
    content: float


@torch.no_grad()
def distances(
    encoder: Encoder,
    output: torch.Tensor,
    photo: torch.Tensor,
    style: torch.Tensor,
    style_layers: Sequence[str] = STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
) -> Distances:
    """All three are (1, 3, H, W) RGB in [0, 1]; ``output`` and ``photo`` share a size."""
    out_feats = encoder(output)
    return Distances(
        style=style_distance(out_feats, style_grams(encoder, style, style_layers)),
        content=content_distance(out_feats, encoder(photo), content_layer),
    )


@torch.no_grad()
def style_grams(encoder: Encoder, style: torch.Tensor, style_layers: Sequence[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
    feats = encoder(style)
    return {layer: gram(feats[layer])[0] for layer in style_layers}


def style_distance(out_feats: Mapping[str, torch.Tensor], grams: Mapping[str, torch.Tensor]) -> float:
    return sum(float(style_loss(out_feats[layer], g)) for layer, g in grams.items())


def content_distance(out_feats: Mapping[str, torch.Tensor], photo_feats: Mapping[str, torch.Tensor], layer: str = CONTENT_LAYER) -> float:
    return float(content_loss(out_feats[layer], photo_feats[layer]))


def frame_warping_error(
    source_prev: np.ndarray, source_cur: np.ndarray, out_prev: np.ndarray, out_cur: np.ndarray
) -> float:
    """Lai et al. (2018) warping error of one frame pair, all HxWx3 uint8 RGB of one size.

    sum(M * |O_t - warp(O_t-1)|^2) / sum(M), colours in [0, 1], with the flow and the
    occlusion mask M computed on the *source* frames, so a stylization is judged by how
    well it follows the motion that is really there. 0 when nothing is trusted.
    """
    backward = optical_flow(source_cur, source_prev)
    mask = consistency_mask(optical_flow(source_prev, source_cur), backward)
    diff = (prepare(out_cur) - warp(prepare(out_prev), backward)).pow(2).sum(1)[0]
    trusted = float(mask.sum())
    return float((mask * diff).sum()) / trusted if trusted > 0 else 0.0


@dataclass(frozen=True)
class FrameMetrics:
    index: int
    warping_error: float | None  # None for the first frame (no predecessor)
    source_warping_error: float | None
    content: float
    style: float | None  # None without a style image


@dataclass(frozen=True)
class VideoMetrics:
    frames: list[FrameMetrics]
    width: int
    height: int

    def mean(self, name: str) -> float | None:
        values = [getattr(f, name) for f in self.frames if getattr(f, name) is not None]
        return sum(values) / len(values) if values else None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "frames": len(self.frames),
            "warping_error": self.mean("warping_error"),
            "source_warping_error": self.mean("source_warping_error"),
            "content": self.mean("content"),
            "style": self.mean("style"),
        }


def source_at(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """A source frame at a stylized frame's size, as the pipeline made it.

    The pipeline resizes a frame to its long side and the H.264 writer crops an odd row
    or column; when the sizes fit that story the same is done here, so that a pixel is
    compared with the pixel it was made from. Otherwise a plain resize.
    """
    h, w = rgb.shape[:2]
    for long_side in (max(height, width), max(height, width) + 1):
        fh, fw = fit_long_side(h, w, long_side)
        if 0 <= fh - height <= 1 and 0 <= fw - width <= 1:
            return to_rgb8(prepare(rgb, long_side))[:height, :width]
    return to_rgb8(resize(prepare(rgb), (height, width)))


def _device_of(encoder: Encoder) -> torch.device:
    """Where an encoder's weights are (a stand-in without parameters runs on the CPU)."""
    params = encoder.parameters() if isinstance(encoder, torch.nn.Module) else iter(())
    return next((p.device for p in params), torch.device("cpu"))


@torch.no_grad()
def video_metrics(
    encoder: Encoder,
    source: Iterable[np.ndarray],
    stylized: Iterable[np.ndarray],
    style: torch.Tensor | None = None,
    on_frame: Callable[[FrameMetrics], None] | None = None,
    style_layers: Sequence[str] = STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
) -> VideoMetrics:
    """E_warp of the stylized frames and of the source, and per-frame distances; streamed.

    Both streams must have the same number of frames (``zip(strict=True)`` raises
    ValueError otherwise); the source is brought to the stylized frames' size.
    """
    device = _device_of(encoder)
    frames: list[FrameMetrics] = []
    previous: tuple[np.ndarray, np.ndarray] | None = None
    height = width = 0
    grams: dict[str, torch.Tensor] | None = None  # of the style at the frames' size, once
    for index, (src_full, out) in enumerate(zip(source, stylized, strict=True)):
        height, width = out.shape[:2]
        src = source_at(src_full, height, width)
        if style is not None and grams is None:
            grams = style_grams(encoder, resize_long_side(style, max(height, width)), style_layers)
        out_feats = encoder(prepare(out).to(device))
        content = content_distance(out_feats, encoder(prepare(src).to(device)), content_layer)
        warp_err = src_err = None
        if previous is not None:
            warp_err = frame_warping_error(previous[0], src, previous[1], out)
            src_err = frame_warping_error(previous[0], src, previous[0], src)
        frame = FrameMetrics(index, warp_err, src_err, content, style_distance(out_feats, grams) if grams else None)
        frames.append(frame)
        if on_frame is not None:
            on_frame(frame)
        previous = (src, out)
    return VideoMetrics(frames, width, height)
