"""VGG19 features by layer name, with the weights' own preprocessing built in.

The network is built from weights already in memory (:class:`VGGWeights`), read by
:mod:`nstpipe.media.weights`: the embedded Caffe/Keras weights (BGR, 0-255, mean removed)
or torchvision's (RGB in [0, 1], ImageNet mean and std). The module takes RGB in [0, 1]
whatever the convention, so callers never see the difference.
"""

from __future__ import annotations

import copy
from typing import Literal, Mapping, Protocol, Sequence

import torch
from torch import nn

from nstpipe.config import LAYERS, vgg_cut
from nstpipe.engine.color import swap_red_blue

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


class VGGWeights(Protocol):
    """What the network is built from: the 16 convolutions' (weight, bias) by layer name
    (``conv1_1`` ...), and the input convention they were trained with."""

    @property
    def convs(self) -> Mapping[str, tuple[torch.Tensor, torch.Tensor]]: ...

    @property
    def preprocessing(self) -> Literal["caffe", "torchvision"]: ...


class VGGFeatures(nn.Module):
    """VGG19 cut after the deepest requested layer; ``forward`` returns {layer: feature}.

    Input: RGB in [0, 1], shape (N, 3, H, W). The weights' preprocessing happens here.
    Parameters are frozen: only the input gets gradients.
    """

    # Registered as buffers in __init__, so they follow .to(device) with the weights.
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weights: VGGWeights, layers: Sequence[str], pooling: str = "max") -> None:
        super().__init__()
        unknown = [layer for layer in layers if layer not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG19 layers: {unknown or 'none given'}")
        self.layers = tuple(layers)
        self.preprocessing = weights.preprocessing
        self.names = vgg_cut(layers)
        self.net = nn.ModuleList(_make_layer(name, weights, pooling) for name in self.names)
        if weights.preprocessing == "caffe":
            shift, scale = torch.tensor(CAFFE_MEAN_BGR), torch.ones(3) / 255.0
        else:
            shift, scale = torch.tensor(IMAGENET_MEAN_RGB), torch.tensor(IMAGENET_STD_RGB)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def wrapped(self) -> VGGFeatures:
        """A copy whose convolutions pad circularly: the picture seen as a torus, its left edge
        continuing its right one (a tileable texture). This network is left as it is."""
        return self.padded("circular")

    def replicated(self) -> VGGFeatures:
        """A copy whose convolutions pad by repeating the edge: the picture continues past its
        edges as it ends, so its features there hold neither a black border (zero padding)
        nor a jump to the opposite edge (circular padding). (Reflection would do as well, but
        cannot pad a feature map of one pixel, which a small size reaches at relu5_1.) This
        network is left as it is."""
        return self.padded("replicate")

    def padded(self, mode: Literal["zeros", "reflect", "replicate", "circular"]) -> VGGFeatures:
        other = copy.deepcopy(self)
        for layer in other.net:
            if isinstance(layer, nn.Conv2d):
                # The padding amounts were fixed at construction for either mode; only the
                # mode changes what F.pad fills them with.
                layer.padding_mode = mode
        return other

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.preprocessing == "caffe":
            return swap_red_blue(rgb, channel_axis=1) / self.scale - self.shift
        return (rgb - self.shift) / self.scale

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.stage(rgb)[0]

    def stage(self, x: torch.Tensor, after: str | None = None, through: str | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """A part of the pass: from the output of layer ``after`` (None: from the RGB input,
        normalized here) through layer ``through`` (None: the deepest); the requested features
        it makes, and its last output. ``stage(rgb, None, cut)``, then ``stage(out, cut)``,
        give what ``forward`` gives: a tiled pass runs the two parts apart."""
        begin = 0 if after is None else self.names.index(after) + 1
        end = len(self.names) if through is None else self.names.index(through) + 1
        if after is None:
            x = self.normalize(x)
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        for name, layer in zip(self.names[begin:end], self.net[begin:end]):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out, x


def _make_layer(name: str, weights: VGGWeights, pooling: str) -> nn.Module:
    if name.startswith("conv"):
        weight, bias = weights.convs[name]
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(weight)
            assert conv.bias is not None  # Conv2d's bias=True default
            conv.bias.copy_(bias)
        return conv
    if name.startswith("relu"):
        return nn.ReLU(inplace=False)  # features are kept, so no in-place activation
    return nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
