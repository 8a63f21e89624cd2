"""How much device memory one more picture in a batch takes."""

from __future__ import annotations

from nstpipe.config import EngineConfig, vgg_cut
from nstpipe.engine.modes import style_transfer
from nstpipe.engine.optimize import LBFGS_HISTORY


def image_memory(side: int, config: EngineConfig) -> int:
    """Bytes of device memory that one more picture in a batch takes, at a long side of ``side``.

    A rough bound for choosing a batch size, not an account. The picture is taken square
    (the most a long side allows). Every VGG19 output up to the deepest layer read is kept
    for the backward pass, which makes a gradient of the same size (x2), counted as fp32
    (bf16 activations take half). Then the optimizer's state: L-BFGS keeps up to
    LBFGS_HISTORY curvature pairs (s, y) of the picture's size, Adam two moments.
    """
    pixels = side * side
    floats, area = 0, pixels
    for name in vgg_cut(style_transfer(config).layers):
        if name.startswith("pool"):
            area //= 4
        block = int(name[4])  # conv3_1, relu3_1 and pool3 are all of block 3
        floats += min(64 << (block - 1), 512) * area
    activations = 2 * floats * 4
    pairs = max(1, min(LBFGS_HISTORY, config.iterations)) if config.optimizer == "lbfgs" else 1
    return activations + pairs * 2 * 3 * pixels * 4
