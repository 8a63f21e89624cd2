"""How much memory a picture takes, and how a level is laid out to fit a memory budget."""

from __future__ import annotations

from typing import Sequence

import torch

from nstpipe.config import EngineConfig, half_size_read, layer_channels, parse_memory, style_terms, vgg_cut
from nstpipe.engine.modes import style_transfer
from nstpipe.engine.optimize import LBFGS_HISTORY
from nstpipe.engine.tiles import Layout, halo, head_layers, layer_stride, spans, tile_stride
from nstpipe.errors import NstpipeError

FLOAT = 4  # bytes of an fp32 number: the pixels, the optimizer, and the activations in fp32
# Bytes of an activation by the encoder's precision: bf16 activations and their gradients
# take half of fp32's.
ACTIVATION_BYTES = {"fp32": 4, "bf16": 2}
# What the process takes before any picture: the interpreter, torch and its libraries, two
# copies of VGG19's weights (the encoder's and the pass's channels-last or bf16 one), and
# the allocator's slack; bench tiles checks it against peak RSS.
BASE_BYTES = 700 << 20
# Whole-picture tensors of 3 floats per pixel alive at once: the pixels, the best so far,
# L-BFGS's work block (three rows) and the direction it makes, the gradient, the pixel terms'
# graph while it is alive (about four), the level's start, the content photo and its level
# copy, and two to spare. L-BFGS's curvature pairs are counted apart (``_pair_bytes``).
PICTURE_COPIES = 16
# The share of the free GPU memory, or of the available RAM, that "auto" plans to fill.
AUTO_SHARE = 0.6
# A budget that every layout fits.
UNLIMITED = 1 << 62


def pass_floats(layers: Sequence[str]) -> float:
    """Floats per input pixel that one forward pass keeps for the backward (every VGG19 output
    up to the deepest layer read)."""
    floats, area = 0.0, 1.0
    for name in vgg_cut(layers):
        if name.startswith("pool"):
            area /= 4
        floats += layer_channels(name) * area
    return floats


def pass_flops(layers: Sequence[str]) -> float:
    """Multiply-adds per input pixel of a forward pass through the deepest of ``layers``:
    each 3x3 convolution's, at its share of the picture's pixels."""
    flops, area, channels = 0.0, 1.0, 3
    for name in vgg_cut(layers):
        if name.startswith("pool"):
            area /= 4
        elif name.startswith("conv"):
            flops += 9 * channels * layer_channels(name) * area
            channels = layer_channels(name)
    return flops


def pass_bytes(pixels: int, layers: Sequence[str], width: int = FLOAT) -> int:
    """Bytes of a forward and backward pass over ``pixels``: the outputs kept, and as much
    again for the gradients made from them; ``width``: bytes of an activation."""
    return int(2 * pass_floats(layers) * pixels * width)


def image_memory(side: int, config: EngineConfig) -> int:
    """Bytes of device memory that one more picture in a batch takes, at a long side of ``side``.

    A rough bound for choosing a batch size, not an account. The picture is taken square
    (the most a long side allows). Every VGG19 output up to the deepest layer read is kept
    for the backward pass, which makes a gradient of the same size (x2), counted as fp32
    (bf16 activations take half). Then the optimizer's state: L-BFGS keeps up to
    LBFGS_HISTORY curvature pairs (s, y) of the picture's size, Adam two moments.
    """
    pixels = side * side
    pairs = max(1, min(LBFGS_HISTORY, config.iterations)) if config.optimizer == "lbfgs" else 1
    layers = style_transfer(config).layers
    return pass_bytes(pixels, layers) + half_pass_bytes(pixels, config) + pairs * _pair_bytes(pixels)


def half_pass_bytes(pixels: int, config: EngineConfig, width: int = FLOAT) -> int:
    """The pass of the style terms at half the size (``half_size_style``), over a quarter of
    the pixels, kept for the backward pass beside the whole picture's; it stops at the
    deepest style layer that those terms read (:func:`nstpipe.config.half_size_read`)."""
    return pass_bytes(pixels // 4, half_size_read(config), width) if config.half_size_style else 0


def _pair_bytes(pixels: int) -> int:
    return 2 * 3 * pixels * FLOAT


def sliced_bytes(pixels: int, config: EngineConfig) -> int:
    """What a tiled sliced term holds whole: every feature's projections at each style layer,
    their sort and its gradient (K per feature, K the layer's channels by default)."""
    if not any(kind == "sliced" and share for kind, share in style_terms(config.style_loss)):
        return 0
    floats = sum((config.sliced_directions or layer_channels(layer)) / layer_stride(layer) ** 2 for layer in config.style_layers)
    return int(3 * floats * pixels * FLOAT)


def picture_bytes(pixels: int, layers: Sequence[str], content_layer: str | None) -> int:
    """What stays whole however the level is tiled: the picture's own copies and the
    photo's features that the content term reads."""
    content = layer_channels(content_layer) / layer_stride(content_layer) ** 2 if content_layer else 0.0
    return int(pixels * FLOAT * (3 * PICTURE_COPIES + content))


def budget_bytes(max_memory: str, device: torch.device) -> int:
    """``max_memory`` in bytes; for ``auto`` on a CUDA GPU, a share of its free memory. The
    engine reads no system files, so on other devices the drivers resolve ``auto`` to a share
    of the available RAM before it gets here (:func:`nstpipe.modes.model.engine_config`); a
    bare ``auto`` here plans no tiles."""
    given = parse_memory(max_memory)
    if given is not None:
        return given
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * AUTO_SHARE)
    return UNLIMITED


def fmt_bytes(count: float) -> str:
    """1.5G, 640M: as --max-memory takes them."""
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if count >= 1 << shift:
            return f"{count / (1 << shift):.3g}{unit}"
    return f"{int(count)}"


def plan_layout(
    size: tuple[int, int],
    count: int,
    config: EngineConfig,
    layers: Sequence[str],
    budget: int,
    steps: int,
    precision: str = "fp32",
    splits: bool = True,
) -> Layout:
    """The whole level in one pass where it fits ``budget`` bytes; else the tiles that fit
    and cost the least arithmetic (see :func:`_tiled`), with as many L-BFGS pairs as leave
    room for them (at most half of what the picture's own copies and the smallest tile
    leave). ``count`` pictures at once, ``steps`` at most; the encoder runs in
    ``precision`` (fp32 or bf16); ``splits``: whether it can run its tail apart (see
    :mod:`nstpipe.engine.tiled`)."""
    width = ACTIVATION_BYTES.get(precision, FLOAT)
    pixels = size[0] * size[1]
    history = max(1, min(LBFGS_HISTORY, steps)) if config.optimizer == "lbfgs" else 1
    content = config.content_layer if config.content_layer in layers else None
    fixed = BASE_BYTES + count * (picture_bytes(pixels, layers, content) + sliced_bytes(pixels, config))
    pairs = count * _pair_bytes(pixels)
    # The half-size pass runs only where the level is read whole (HalfSizeTerm.applies).
    whole = fixed + history * pairs + count * (pass_bytes(pixels, layers, width) + half_pass_bytes(pixels, config, width))
    if whole <= budget or not layers:
        return Layout(None, history, whole)
    stride, reach = tile_stride(layers), halo(layers)
    smallest = fixed + pairs + count * pass_bytes(_crop_pixels(stride, size, reach), layers, width)
    if smallest > budget:
        height, width = size
        raise NstpipeError(
            f"--max-memory {fmt_bytes(budget)} is too small for a {width}x{height} picture: even one tile of "
            f"{stride}x{stride} pixels needs about {fmt_bytes(smallest)} (raise --max-memory or lower --size)"
        )
    history = max(1, min(history, (budget - smallest) // 2 // pairs))
    room = budget - fixed - history * pairs
    options = [_tiled(size, count, layers, split, room, width) for split in (None, *(_split_points(layers) if splits else ()))]
    # The split None always fits (the smallest tile did); at equal cost the earlier option wins.
    cost, tile, split, used = min((option for option in options if option is not None), key=lambda option: option[0])
    return Layout(tile, history, fixed + history * pairs + used, split, cost)


def _crop_pixels(side: int, size: tuple[int, int], reach: int) -> int:
    """The pixels a square tile of ``side`` reads with its halo (no more than the picture has)."""
    return min(size[0], side + 2 * reach) * min(size[1], side + 2 * reach)


def _split_points(layers: Sequence[str]) -> tuple[str, ...]:
    """The pooling layers before the deepest of ``layers``: where a tiled head may end."""
    return tuple(name for name in vgg_cut(layers)[:-1] if name.startswith("pool"))


def _tiled(size: tuple[int, int], count: int, layers: Sequence[str], split: str | None, room: int, width: int) -> _Option | None:
    """Tiles of the encoder's head up to ``split`` (None: the whole encoder), the tail after
    it run whole, in ``room`` bytes: (the arithmetic over an untiled pass's, the tile
    interior, the split, the bytes used), or None where the tail leaves no room for a tile.

    The head's tiles cost their halo and pass 1's forward again: over n tiles whose crops
    read P pixels in all, (4n - 1) / n * P forward passes' worth against 3 per pixel
    untiled (a backward takes about two forwards), where the tail costs what it costs
    untiled. Of the tiles whose largest crop fits, the grid of the least cost wins."""
    head = head_layers(layers, split)
    tail = 0
    if split is not None:
        kept = layer_channels(split) / layer_stride(split) ** 2  # the head's output and its gradient, whole
        tail = int(2 * (pass_floats(layers) - pass_floats(head) + kept) * size[0] * size[1] * width) * count
    per_pixel = 2 * pass_floats(head) * width * count
    grid = _grid(size, int((room - tail) / per_pixel), tile_stride(head), halo(head))
    if grid is None:
        return None
    tile, read, largest = grid
    flops, head_flops = pass_flops(layers), pass_flops(head)
    cost = (head_flops * read / (3 * size[0] * size[1]) + flops - head_flops) / flops
    return cost, tile, split, tail + int(per_pixel * largest)


# (the arithmetic over an untiled pass's, the tile interior, the split, the bytes used)
_Option = tuple[float, tuple[int, int], str | None, int]


def _grid(size: tuple[int, int], limit: int, stride: int, reach: int) -> tuple[tuple[int, int], float, int] | None:
    """The tile interior (height, width) whose crops each read at most ``limit`` pixels and
    in all the fewest, weighted by (4n - 1) / n over n tiles: with that weighted read and
    the largest crop's pixels; None where no tile fits."""
    best: tuple[float, tuple[int, int], int] | None = None
    tried: set[int] = set()
    for rows in range(1, -(-size[0] // stride) + 1):
        height = -(-size[0] // rows // stride) * stride  # ceil(H / rows), on the stride
        if height in tried:
            continue
        tried.add(height)
        across = spans(size[0], height, stride, reach)
        tallest = max(span.high - span.low for span in across)
        widest = limit // tallest
        cols = max(1, -(-size[1] // max(1, widest)))
        while cols <= -(-size[1] // stride):
            width = -(-size[1] // cols // stride) * stride
            along = spans(size[1], width, stride, reach)
            broadest = max(span.high - span.low for span in along)
            if broadest <= widest:
                n = len(across) * len(along)
                read = sum(s.high - s.low for s in across) * sum(s.high - s.low for s in along) * (4 * n - 1) / n
                if best is None or read < best[0]:
                    best = (read, (height, width), tallest * broadest)
                break
            cols += 1
    return None if best is None else (best[1], best[0], best[2])
