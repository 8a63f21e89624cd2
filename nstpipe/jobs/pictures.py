"""Picture files in the engine's layout, (1, 3, H, W) RGB floats in [0, 1].

The media layer decodes a file to an array (:func:`~nstpipe.media.imaging.read_rgb`) and
the engine turns arrays into tensors (:func:`~nstpipe.engine.tensors.prepare`, as it does
for video frames); this is where the two meet, so that neither imports the other.
"""

from __future__ import annotations

from pathlib import Path

import torch

from nstpipe.config import DEFAULT_MAX_PIXELS
from nstpipe.engine.tensors import prepare
from nstpipe.media.imaging import read_rgb


def read_image(path: Path, long_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Decode ``path`` to (1, 3, H, W) RGB in [0, 1], resized so its long side is ``long_side``;
    an :class:`~nstpipe.errors.InputError` names the file and the reason it cannot be read."""
    return prepare(read_rgb(path, long_side, max_pixels), long_side)
