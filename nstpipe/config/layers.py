"""VGG19's layer names and what follows from them: the cut after the deepest layer read, the
smallest side a level may have, a layer's channels."""

from __future__ import annotations

from typing import Iterable

from nstpipe.errors import ConfigError

CONV_LAYERS: tuple[str, ...] = (
    "conv1_1", "conv1_2",
    "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4",
    "conv4_1", "conv4_2", "conv4_3", "conv4_4",
    "conv5_1", "conv5_2", "conv5_3", "conv5_4",
)


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for conv in CONV_LAYERS:
        block, index = conv[4:].split("_")
        names += [conv, f"relu{block}_{index}"]
        if (block in "12" and index == "2") or (block in "345" and index == "4"):
            names.append(f"pool{block}")
    return tuple(names)


LAYERS: tuple[str, ...] = _layer_names()
"""Every VGG19 layer name in network order: conv1_1, relu1_1, conv1_2, ..., pool5."""


def vgg_cut(layers: Iterable[str]) -> tuple[str, ...]:
    """VGG19's layers from the input through the deepest of ``layers``: what a pass that reads them computes."""
    deepest = max(LAYERS.index(layer) for layer in layers)
    return LAYERS[: deepest + 1]


def smallest_side(layers: Iterable[str]) -> int:
    """The smallest width or height at which ``layers`` can be read: VGG19 halves the picture
    at every pooling layer before the deepest of them (16 pixels for relu5_1), and a side
    pooled down to nothing has no features."""
    return 2 ** sum(1 for name in vgg_cut(layers)[:-1] if name.startswith("pool"))


# Channels of each VGG19 block's convolutions (and of its relus and pooling).
BLOCK_CHANNELS = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}


def layer_channels(layer: str) -> int:
    """How many channels a VGG19 layer has: conv3_1, relu3_1 and pool3 have 256."""
    return BLOCK_CHANNELS[layer.removeprefix("conv").removeprefix("relu").removeprefix("pool")[0]]


def channel_range(text: str) -> tuple[int, ...]:
    """``"K"`` -> (K,); ``"A-B"`` -> (A, A + 1, ..., B); B before A is an error."""
    first, dash, last = text.strip().partition("-")
    try:
        a, b = int(first), int(last if dash else first)  # "1-" is a range cut short
    except ValueError:
        raise ConfigError(f"setting 'visualize_channels': {text!r} is not a channel K or a range A-B", "visualize_channels") from None
    if b < a:
        raise ConfigError(f"setting 'visualize_channels': the range {a}-{b} ends before it starts (write {b}-{a})", "visualize_channels")
    return tuple(range(a, b + 1))


