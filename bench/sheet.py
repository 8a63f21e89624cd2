"""A picture of a few frames of a video and its stylized version, one above the other.

    python -m bench sheet assets/clip.mp4 out/demo.mp4 docs/demo.png

makes the README's picture from the output of ``scripts/demo``.
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
    parser.add_argument("stylized", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--frames", type=ints, default=[0, 20, 40, 59], help="frame indices, comma-separated")


def pick(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    return {f.index: f.rgb for f in read_frames(path) if f.index in indices}


def main(args: argparse.Namespace) -> int:
    indices = args.frames
    stylized, source = pick(args.stylized, set(indices)), pick(args.source, set(indices))
    missing = [i for i in indices if i not in stylized or i not in source]
    if missing:
        raise SystemExit(f"bench sheet: no frame {missing[0]} in both {args.source} and {args.stylized}")
    h, w = stylized[indices[0]].shape[:2]
    top = np.concatenate([source_at(source[i], h, w) for i in indices], axis=1)
    bottom = np.concatenate([stylized[i] for i in indices], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([top, bottom], axis=0)).save(args.output, optimize=True)
    print(f"wrote {args.output}")
    return 0
