"""A picture of a few frames of a video and its stylized version, one above the other.

    .venv/bin/python scripts/contact_sheet.py assets/clip.mp4 out/demo.mp4 docs/demo.png

makes the README's picture from the output of ``scripts/demo``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nstpipe.engine.metrics import source_at  # noqa: E402
from nstpipe.media.video import read_frames  # noqa: E402


def pick(path: Path, indices: set[int]) -> dict[int, np.ndarray]:
    return {f.index: f.rgb for f in read_frames(path) if f.index in indices}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("stylized", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--frames", default="0,20,40,59", help="frame indices, comma-separated")
    args = parser.parse_args()
    indices = [int(i) for i in args.frames.split(",")]
    stylized = pick(args.stylized, set(indices))
    source = pick(args.source, set(indices))
    missing = [i for i in indices if i not in stylized or i not in source]
    if missing:
        sys.exit(f"contact_sheet: no frame {missing[0]} in both videos")
    h, w = stylized[indices[0]].shape[:2]
    top = np.concatenate([source_at(source[i], h, w) for i in indices], axis=1)
    bottom = np.concatenate([stylized[i] for i in indices], axis=1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([top, bottom], axis=0)).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
