"""Distances between pictures in VGG19 feature space, as the benchmarks define them.

style   = sum over style layers of |G(out) - G(style)|^2 / |G(style)|^2, G = F F^T / (C H W)
content = |F(out) - F(photo)|^2 / |F(photo)|^2 at the content layer

These are the losses of :mod:`pipeline.losses` with unit weights, so the engine
optimizes exactly what is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from pipeline.flow import consistency_mask, optical_flow, warp
from pipeline.imaging import prepare
from pipeline.losses import content_loss, gram, style_loss
from pipeline.stylize import Encoder

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
    photo_feats = encoder(photo)
    style_feats = encoder(style)
    style_d = sum(float(style_loss(out_feats[l], gram(style_feats[l])[0])) for l in style_layers)
    content_d = float(content_loss(out_feats[content_layer], photo_feats[content_layer]))
    return Distances(style=style_d, content=content_d)


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


def warping_errors(source: Iterable[np.ndarray], output: Iterable[np.ndarray]) -> Iterator[float]:
    """E_warp for frames 1..T-1 of two equally long frame streams (streamed, O(1) memory)."""
    prev: tuple[np.ndarray, np.ndarray] | None = None
    for src, out in zip(source, output, strict=True):
        if prev is not None:
            yield frame_warping_error(prev[0], src, prev[1], out)
        prev = (src, out)
