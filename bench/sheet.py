"""A picture of a few frames of a video and its stylized versions, one above the other.

    python -m bench sheet assets/clip.mp4 out/demo.mp4 docs/demo.png

makes the README's picture from the output of ``scripts/demo``. With several stylized
videos, a row each, in the order given; ``--crop X,Y,W,H`` (pixels of the stylized frames)
and ``--zoom N`` (each pixel N x N) show a detail.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import ints
from nstpipe.engine.metrics import source_at
from nstpipe.media.video import read_frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", type=Path)
    parser.add_argument("stylized", type=Path, nargs="+")
    parser.add_argument("output", type=Path)
    parser.add_argument("--frames", type=ints, default=[0, 20, 40, 59], help="frame indices, comma-separated")
    parser.add_argument("--crop", type=ints, default=None, help="X,Y,W,H: a detail of every frame, in the stylized frames' pixels")
    parser.add_argument("--zoom", type=int, default=1, help="each pixel drawn N x N")


def pick(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    return {f.index: f.rgb for f in read_frames(path) if f.index in indices}


def main(args: argparse.Namespace) -> int:
    indices = args.frames
    source = pick(args.source, set(indices))
    rows: list[list[np.ndarray]] = []
    for path in args.stylized:
        stylized = pick(path, set(indices))
        missing = [i for i in indices if i not in stylized or i not in source]
        if missing:
            raise SystemExit(f"bench sheet: no frame {missing[0]} in both {args.source} and {path}")
        h, w = stylized[indices[0]].shape[:2]
        if not rows:
            rows.append([source_at(source[i], h, w) for i in indices])
        rows.append([stylized[i] for i in indices])
    if args.crop is not None:
        if len(args.crop) != 4:
            raise SystemExit("bench sheet: --crop takes X,Y,W,H")
        x, y, w, h = args.crop
        rows = [[frame[y : y + h, x : x + w] for frame in row] for row in rows]
    picture = np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)
    picture = picture.repeat(args.zoom, axis=0).repeat(args.zoom, axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(args.output, optimize=True)
    print(f"wrote {args.output}")
    return 0
