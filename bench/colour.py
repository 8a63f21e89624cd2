"""The colour start alone: how close each start comes to the painting's colours, and its cost.

For the bundled photo and each painting at --size, the start a run from the photo takes
under each --color-start (none, meancov, transport at each of --iterations), before any
step: the sliced W2 distance of its pixels (3-D colours) to the painting's pixels at the
same scale, its patch distance (bench/measure.py's, 7x7 patches at full and half size),
and the seconds the start took. One more row per transport budget times the start at
--big (a 4000x3000 picture of noise by default: the colour lookup table's path). Nothing
here is optimized by the engine's steps; the frontier judges what the steps make of it.

    python -m bench colour
    python -m bench colour --iterations 5,10,30,60 --styles starry_night
    python -m bench colour --sheet docs/images/palette.png

--sheet also paints the README's palette picture with ``nstpipe image`` at --size: a dark
painting on a bright photo (shipwreck on tubingen.jpg) and a bright painting on a dark
photo (starry_night on tubingen.jpg at 0.35 of its brightness), each row the photo, the
painting, the default before (from the photo recoloured, two levels) and today's default
(mostly the photo with some noise, three levels, each level's start recoloured).
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

import nstpipe.engine.color as color
from bench.common import STYLES, add_common, csv, ints, json_path, machine, photo_path, print_table, style_path, write_json
from bench.frontier import FROM_PHOTO, point_changes, write_config
from bench.measure import run_nstpipe
from nstpipe.config import build_settings
from nstpipe.engine.distances import colour_distance, patch_distance
from nstpipe.engine.resize import resize_long_side
from nstpipe.modes.model import read_image


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "colour", size=256, device=None)
    parser.add_argument("--styles", type=csv, default=STYLES, help=f"paintings in DATA/styles (default {','.join(STYLES)})")
    parser.add_argument("--iterations", type=ints, default=[10, 30, 60], help="transport budgets (comma-separated)")
    parser.add_argument("--big", type=ints, default=[3000, 4000], help="height,width of the timed large picture")
    parser.add_argument("--sheet", type=Path, default=None, help="also paint the palette picture to this PNG")
    parser.add_argument("--no-table", action="store_true", help="with --sheet: the picture alone")

# The sheet's rows: painting, and the photo's brightness (a dark photo: a bright painting).
SHEET_ROWS = (("shipwreck", 1.0), ("starry_night", 0.35))
SHEET_HEIGHT = 192


def sheet(args: argparse.Namespace, out: Path) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # The default before: from the photo recoloured, two levels (the frontier's point "photo").
        before = write_config(Path(tmp) / "before.toml", point_changes(f"before:{FROM_PHOTO}", build_settings().engine)[1])
        for painting, brightness in SHEET_ROWS:
            photo = Path(tmp) / f"photo_{painting}.png"
            rgb = np.asarray(Image.open(photo_path(args)).convert("RGB"), dtype=np.float32) * brightness
            Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8)).save(photo)
            cells = [photo, style_path(args, painting)]
            for name, extra in (("before", ("--config", str(before))), ("today", ())):
                cells.append(Path(tmp) / f"{painting}_{name}.png")
                run_nstpipe(photo, style_path(args, painting), cells[-1], args.size, "cpu", extra)
            pictures = [Image.open(c).convert("RGB") for c in cells]
            rows.append([p.resize((round(p.width * SHEET_HEIGHT / p.height), SHEET_HEIGHT), Image.Resampling.LANCZOS)
                         for p in pictures])
    width = max(sum(p.width for p in row) for row in rows)
    canvas = Image.new("RGB", (width, SHEET_HEIGHT * len(rows) + 4 * (len(rows) - 1)), "white")
    for r, row in enumerate(rows):
        x = 0
        for p in row:
            canvas.paste(p, (x, r * (SHEET_HEIGHT + 4)))
            x += p.width
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    print(f"wrote {out}")


def timed(make: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = make()
    return out, time.perf_counter() - start


def starts(photo: torch.Tensor, painting: torch.Tensor, budgets: list[int]) -> dict[str, Callable[[], torch.Tensor]]:
    mean, cov = color.colour_moments(painting)
    pixels = color.painting_pixels([painting[0]], [1.0])
    arms: dict[str, Callable[[], torch.Tensor]] = {"none": lambda: photo, "meancov": lambda: color.match_moments(photo, mean, cov)}
    for n in budgets:
        arms[f"transport {n}"] = functools.partial(color.transport_colours, photo, pixels, iterations=n)
    return arms


def main(args: argparse.Namespace) -> int:
    if args.sheet is not None:
        sheet(args, args.sheet)
        if args.no_table:
            return 0
    info = machine()
    print(f"{info['cpu']}, torch {torch.__version__}, {torch.get_num_threads()} threads; the photo at {args.size} px")
    photo = read_image(photo_path(args), args.size)
    rows: list[dict[str, Any]] = []
    for name in args.styles:
        painting = resize_long_side(read_image(style_path(args, name)), args.size)
        for arm, make in starts(photo, painting, args.iterations).items():
            picture, seconds = timed(make)
            rows.append({"painting": name, "start": arm, "colour_d": colour_distance(picture, painting),
                         "patch_d": patch_distance(picture, painting), "seconds": seconds})
    noise = torch.rand(1, 3, *args.big, generator=torch.Generator().manual_seed(0))
    target = color.painting_pixels([resize_long_side(read_image(style_path(args, args.styles[0])), max(args.big))[0]], [1.0])
    for n in args.iterations:
        _, seconds = timed(functools.partial(color.transport_colours, noise, target, iterations=n))
        rows.append({"painting": f"{args.big[1]}x{args.big[0]} noise", "start": f"transport {n}", "seconds": seconds})
    print_table(rows, [("painting", "painting", "s"), ("start", "start", "s"), ("colour d", "colour_d", ".6f"),
                       ("patch d", "patch_d", ".5f"), ("seconds", "seconds", ".2f")])
    write_json(json_path(args, "colour"), {"machine": info, "size": args.size, "rows": rows}, args)
    return 0
