"""Flow: how well the flow that nstpipe paints and measures along registers the footage itself, held still within each --margins.

For each --clip at --size px (the first --frames frames, read and resized as a video job
reads them) and each margin of the hold (``nstpipe.engine.flow.still_where_unmoved``; dis:
DIS's flow alone), at every --gaps gap: the footage's own E_warp along the flow (source
frame t warped onto t+k, against t+k, masked by the consistency mask as always), the share
of pixels the mask trusts, and the share of still pixels (mean change under 3 levels) that
the flow moves by a quarter pixel or more. A flow registers the footage better the lower
its E_warp; a still wall that "moves" is what a painting warped along it repaints.

    python -m bench flow
    python -m bench flow --clip assets/bottles.mp4 --size 256 --margins dis,1e-4,3e-4
"""

from __future__ import annotations

import argparse
import itertools
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import add_common, csv, describe, ints, json_path, machine, print_table, write_json
from nstpipe.engine.flow import optical_flow, source_motion
from nstpipe.engine.metrics import masked_warping_error, source_at
from nstpipe.engine.resize import fit_long_side
from nstpipe.media.video import read_frames

ROOT = Path(__file__).resolve().parents[1]
STILL_LEVELS = 3  # a pixel whose mean change is under this many levels of 255 did not move
MOVED_PX = 0.25


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "flow", size=128, device=None)
    parser.add_argument("--clip", type=Path, action="append", default=None,
                        help="a video (repeatable; default: assets/clip.mp4 and assets/bottles.mp4)")
    parser.add_argument("--frames", type=int, default=30, help="the first N frames (default 30)")
    parser.add_argument("--gaps", type=ints, default=[1, 5, 15], help="frame distances (default 1,5,15)")
    parser.add_argument("--margins", type=csv, default=["dis", "1e-4", "2e-4", "3e-4", "5e-4"],
                        help="margins of the hold, dis: DIS's flow alone (default dis,1e-4,2e-4,3e-4,5e-4)")


def frames_of(clip: Path, size: int, count: int) -> list[np.ndarray]:
    """The first ``count`` frames at ``size`` px on the long side, as a video job makes them."""
    picked = []
    for frame in itertools.islice(read_frames(clip), count):
        height, width = frame.rgb.shape[:2]
        height, width = fit_long_side(height, width, size)
        picked.append(source_at(frame.rgb, height, width))
    return picked


def measure(frames: list[np.ndarray], margin: float | None, gap: int) -> dict[str, float]:
    """Mean E_warp, trusted share and moved-still share over the pairs ``gap`` apart, along
    the flow held within ``margin`` (None: DIS's flow alone)."""
    errors, trusted, moved = [], [], []
    for earlier, later in zip(frames, frames[gap:]):
        backward, mask = source_motion(earlier, later, partial(optical_flow, margin=margin))
        errors.append(masked_warping_error((backward, mask), earlier, later))
        trusted.append(float(mask.mean()))
        still = np.abs(later.astype(np.float32) - earlier.astype(np.float32)).mean(-1) < STILL_LEVELS
        moved.append(float((backward.norm(dim=-1).numpy()[still] >= MOVED_PX).mean()) if still.any() else 0.0)
    return {"footage_ewarp": float(np.mean(errors)), "trusted": float(np.mean(trusted)), "still_moved": float(np.mean(moved))}


def main(args: argparse.Namespace) -> int:
    clips = args.clip or [ROOT / "assets" / "clip.mp4", ROOT / "assets" / "bottles.mp4"]
    print(describe(machine("cpu")))
    rows: list[dict[str, Any]] = []
    for clip in clips:
        frames = frames_of(clip, args.size, args.frames)
        for margin in args.margins:
            value = None if margin == "dis" else float(margin)
            for gap in args.gaps:
                rows.append({"clip": clip.name, "size": args.size, "margin": margin, "gap": gap, **measure(frames, value, gap)})
    print_table(rows, [("clip", "clip", ""), ("size", "size", "d"), ("margin", "margin", ""), ("gap", "gap", "d"),
                       ("footage E_warp", "footage_ewarp", ".3e"), ("trusted", "trusted", ".3f"),
                       ("still moved", "still_moved", ".3f")])
    path = json_path(args, "flow")
    write_json(path, {"rows": rows}, args)
    print(f"JSON: {path}")
    return 0
