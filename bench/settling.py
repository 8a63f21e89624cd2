"""Where a painted clip's settling lies: its gap-1 E_warp split by what the footage did.

    python -m bench settling assets/clip.mp4 bench_out/video/clip_flow.mp4
    python -m bench settling assets/clip.mp4 FRAMES/          # the frames --keep-frames leaves, before H.264

For each pair of neighbouring frames, the metrics' E_warp (the same flow and mask as
``nstpipe metrics``) is split over three kinds of trusted pixel
(``nstpipe.engine.metrics.warping_error_parts``): ``still``, where the footage stood still
(the still judge's pixels); ``followed``, where it moved and the flow carries it within the
flow's still margin; ``changed``, where it moved and changed beyond what the flow carries
(shading, a turning hand, motion blur), which a painting that follows the footage repaints.

Per part, the painted clip's and the footage's: the share of the trusted pixels, the share
of E_warp, the mean of the first 10 pairs and the median of the later ones (the settling
figure's two halves), that part's own settling figure, and the clip's settling figure were
the painting exactly steady there (the part taken out of every pair). Nothing is painted
and nothing is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
from pathlib import Path
from statistics import median
from typing import Any, Sequence

from bench.common import add_common, json_path, write_json
from nstpipe.app.metrics import painted_frames
from nstpipe.engine.metrics import PARTS, SETTLING_PAIRS, PairParts, settling_figure, source_at, warping_error_parts
from nstpipe.errors import InputError
from nstpipe.media.video import read_frames


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "settling", device=None)
    parser.add_argument("source", type=Path, help="the footage")
    parser.add_argument("painted", type=Path, help="its painted video, or a folder of its painted frames")


def split(source: Path, painted: Path) -> list[PairParts]:
    """Each gap-1 pair's :class:`PairParts`, in order."""
    count, (width, height), frames = painted_frames(painted)
    sources = (source_at(f.rgb, height, width) for f in itertools.islice(read_frames(source), count))
    pairs, before = [], None
    for src, out in zip(sources, frames, strict=True):
        if before is not None:
            pairs.append(warping_error_parts(before[0], src, before[1], out))
        before = (src, out)
    return pairs


def halves(values: Sequence[float]) -> tuple[float | None, float | None]:
    """The mean of the first SETTLING_PAIRS values and the median of the rest."""
    early, later = values[:SETTLING_PAIRS], values[SETTLING_PAIRS:]
    return (sum(early) / len(early) if early else None), (median(later) if later else None)


def settling(values: Sequence[float]) -> float | None:
    """The settling figure of gap-1 pairs' values, in order from the first pair."""
    return settling_figure(list(enumerate(values)))


def report(pairs: list[PairParts]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for of in ("stylized", "source"):
        totals = [sum(getattr(p, of).values()) for p in pairs]
        early, later = halves(totals)
        rows[of] = {"all": {"pixels": 1.0, "error": 1.0, "early": early, "later": later,
                            "settling": settling(totals), "settling_without": None}}
        whole = sum(totals)
        for part in PARTS:
            values = [getattr(p, of)[part] for p in pairs]
            early, later = halves(values)
            rows[of][part] = {
                "pixels": sum(p.share[part] for p in pairs) / max(1, len(pairs)),
                "error": sum(values) / whole if whole else None,
                "early": early, "later": later, "settling": settling(values),
                "settling_without": settling([t - v for t, v in zip(totals, values)]),
            }
    return rows


def number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def main(args: argparse.Namespace) -> int:
    for path in (args.source, args.painted):
        if not path.exists():
            raise SystemExit(f"bench settling: no file {path}")
    try:
        pairs = split(args.source, args.painted)
    except InputError as exc:
        raise SystemExit(f"bench settling: {exc}") from None
    except ValueError:  # zip(strict=True): the two ran out at different frames
        raise SystemExit(f"bench settling: {args.painted}: not as many frames as {args.source} has decoded") from None
    if len(pairs) <= SETTLING_PAIRS:
        raise SystemExit(f"bench settling: {args.painted}: {len(pairs)} frame pairs; the figure needs more than {SETTLING_PAIRS}")
    rows = report(pairs)
    print(f"{args.painted}: gap-1 E_warp by what the footage did at each trusted pixel, {len(pairs)} pairs "
          f"(early: mean of the first {SETTLING_PAIRS}; later: median of the rest)")
    print(f"{'clip':<9} {'part':<9} {'pixels':>7} {'E_warp':>7} {'early':>10} {'later':>10} {'settling':>9} {'without':>8}")
    for of, label in (("stylized", "painted"), ("source", "footage")):
        for part, row in rows[of].items():
            print(f"{label:<9} {part:<9} {row['pixels']:>7.3f} {number(row['error'], '7.3f'):>7} "
                  f"{number(row['early'], '10.3e'):>10} {number(row['later'], '10.3e'):>10} "
                  f"{number(row['settling'], '9.2f'):>9} {number(row['settling_without'], '8.2f'):>8}")
    path = json_path(args, "settling")
    write_json(path, {"source": str(args.source), "painted": str(args.painted), "parts": rows,
                      "pairs": [dataclasses.asdict(p) for p in pairs]}, args)
    print(f"JSON: {path}")
    return 0
