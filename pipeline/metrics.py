"""Distances between pictures in VGG19 feature space, as the benchmarks define them.

style   = sum over style layers of |G(out) - G(style)|^2 / |G(style)|^2, G = F F^T / (C H W)
content = |F(out) - F(photo)|^2 / |F(photo)|^2 at the content layer

These are the losses of :mod:`pipeline.losses` with unit weights, so the engine
optimizes exactly what is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

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
