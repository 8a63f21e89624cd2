"""A contact sheet: pictures of one size in a grid, each with a label above it."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

LABEL_HEIGHT = 14  # PIL's default bitmap font is 11 pixels high
GAP = 4  # between tiles, so that neighbouring pictures do not run into each other
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)


def grid_shape(count: int) -> tuple[int, int]:
    """(rows, columns) of a grid about as wide as high for ``count`` tiles."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def contact_sheet(pictures: Sequence[np.ndarray], labels: Sequence[str]) -> np.ndarray:
    """``pictures`` (HxWx3 uint8, one size) in a grid, each under its label; HxWx3 uint8."""
    if not pictures or len(pictures) != len(labels):
        raise ValueError("a contact sheet needs one label per picture, and at least one picture")
    height, width = pictures[0].shape[:2]
    rows, columns = grid_shape(len(pictures))
    tile_w, tile_h = width + GAP, height + LABEL_HEIGHT + GAP
    sheet = Image.new("RGB", (columns * tile_w + GAP, rows * tile_h + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for k, (picture, label) in enumerate(zip(pictures, labels)):
        x, y = GAP + (k % columns) * tile_w, GAP + (k // columns) * tile_h
        draw.text((x, y), label, fill=INK)
        sheet.paste(Image.fromarray(picture, "RGB"), (x, y + LABEL_HEIGHT))
    return np.asarray(sheet)
