"""Judge pictures already painted: the frontier's four distances and the patch distance's
parts, each over the reference implementation's for the same painting.

    nstpipe image data/content/tubingen.jpg --style data/styles/starry_night.jpg --size 256 --config my.toml -o my.png
    python -m bench judge my.png [more.png ...] --style starry_night [--layers]

measures each picture exactly as ``bench frontier`` measures its own outputs (every image
brought to a long side of 256, bench.measure), without painting again: so a picture made
by a long run, or by another tool, is judged beside the reference and the painting's
closer half. ``--layers`` adds the feature distance's parts, layer by layer (always in
the JSON). Nothing is timed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.common import add_common, photo_path, style_path
from bench.measure import DISTANCES, FEATURE_PARTS, PATCH_PARTS, lanczos, measure, meter, painting_floor, ratio, reference_path

COLUMNS = (*DISTANCES, *PATCH_PARTS)
ALL_COLUMNS = (*COLUMNS, *FEATURE_PARTS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "judge", device=None)
    parser.add_argument("pictures", type=Path, nargs="+", help="painted pictures of the bundled photo")
    parser.add_argument("--style", default="starry_night", help="the painting's name in DATA/styles (default starry_night)")
    parser.add_argument("--layers", action="store_true", help="print the feature distance layer by layer too")


def judge(args: argparse.Namespace) -> list[dict[str, Any]]:
    """A row per picture, the reference's and the closer half's: each distance and its ratio to the reference's."""
    missing = [p for p in (style_path(args, args.style), *args.pictures) if not p.is_file()]
    if missing:
        raise SystemExit(f"bench judge: no file {missing[0]}")
    vgg = meter()
    photo, style = lanczos(photo_path(args)), lanczos(style_path(args, args.style))
    ref_path = reference_path(args.data, args.style)
    ref = measure(vgg, ref_path, photo, style) if ref_path else None
    named = [("reference", ref)] if ref else []
    named.append(("half", painting_floor(vgg, style)))
    named += [(str(p), measure(vgg, p, photo, style)) for p in args.pictures]
    return [{"name": name, **{k: found.get(k) for k in ALL_COLUMNS},
             **{f"{k}_over_ref": ratio(found.get(k), (ref or {}).get(k)) for k in ALL_COLUMNS}} for name, found in named]


def main(args: argparse.Namespace) -> int:
    rows = judge(args)
    print(f"{args.style}: each distance over the reference's ('half': the painting's closer half against the whole)")
    columns = ALL_COLUMNS if args.layers else COLUMNS
    print(f"{'picture':<32} " + " ".join(f"{k.removeprefix('feature_'):>10}" for k in columns))
    for row in rows:
        cells = ["-" if row[f"{k}_over_ref"] is None else f"{row[f'{k}_over_ref']:.3f}" for k in columns]
        print(f"{row['name'][-32:]:<32} " + " ".join(f"{c:>10}" for c in cells))
    path = args.json or args.out / "judge.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"style": args.style, "rows": rows}, indent=1))
    print(f"JSON: {path}")
    return 0
