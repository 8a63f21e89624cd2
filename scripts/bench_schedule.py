"""How the default preset's schedule trades style against content, next to the plain run.

Runs the default preset on tubingen.jpg with each --styles painting at 256 px, in this
process, once per --variant (the default itself, and the same with other settings: more
iterations at full size, another content_mix, more of the work at half size, a third
level, fp32, and 800 iterations at full size without early stopping, to see where the
schedule converges), and measures each output as
scripts/bench.py does (scripts/bench_image.py's distances). Each distance is printed as
a ratio to the plain run's (one scale, 500 fp32 L-BFGS iterations) from scripts/bench.py's
JSON (--plain), so run that first on the same machine; below 1 is better than plain. The
last column is the variant's time over the plain run's engine time (start-up left out on
both sides; the target asks for at most 0.25).

Prints a table and writes JSON (--json, default bench_out/schedule/bench_schedule.json).

    .venv/bin/python scripts/bench_schedule.py
    .venv/bin/python scripts/bench_schedule.py --variant default: --variant longer:iterations=300
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_image  # noqa: E402

from nstpipe.config import EngineConfig, build_settings  # noqa: E402
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS  # noqa: E402
from nstpipe.engine.stylize import Stylizer  # noqa: E402
from nstpipe.engine.tensors import to_rgb8  # noqa: E402
from nstpipe.engine.vgg import VGGFeatures  # noqa: E402
from nstpipe.jobs.pictures import read_image  # noqa: E402
from nstpipe.media.weights import load_weights  # noqa: E402
from nstpipe.media.writer import atomic_write_json  # noqa: E402

DATA = ROOT / "data"
VARIANTS = ["default:", "full300:iterations=300", "mix0.5:content_mix=0.5", "mix0.9:content_mix=0.9",
            "c200f190:coarse_iterations=200;iterations=190", "3scales:scales=3;coarse_iterations=150;iterations=210",
            "fp32:precision=fp32", "full800:iterations=800;tolerance=0.0"]


def parse_variant(text: str, base: EngineConfig) -> tuple[str, EngineConfig]:
    """``name:key=value;key=value`` -> (name, the default engine with those settings)."""
    name, _, body = text.partition(":")
    changes: dict[str, Any] = {}
    for pair in filter(None, body.split(";")):
        key, _, value = pair.partition("=")
        changes[key] = type(getattr(base, key))(value)
    return name, dataclasses.replace(base, **changes)


def plain_distances(path: Path) -> dict[str, dict[str, float]]:
    """Per painting: the plain run's distances and its engine seconds (start-up left out)."""
    rows = json.loads(path.read_text())["image"]
    return {row["style_image"]: {key: row["plain"][key] for key in ("style", "content", "engine_s")} for row in rows}


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = build_settings("default").engine
    weights = load_weights("embedded")
    encoder = VGGFeatures(weights, base.layers, base.pooling)
    meter = VGGFeatures(weights, STYLE_LAYERS + (CONTENT_LAYER,))
    photo_path = DATA / "content" / "tubingen.jpg"
    content, photo = read_image(photo_path, args.size), bench_image.lanczos(photo_path)
    plain = plain_distances(args.plain)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variant:
            name, engine = parse_variant(variant, base)
            for style_name in args.styles:
                style_path = DATA / "styles" / f"{style_name}.jpg"
                start = time.perf_counter()
                result = Stylizer(encoder, [read_image(style_path)], engine).run(content)
                seconds = time.perf_counter() - start
                out = Path(tmp) / f"{name}_{style_name}.png"
                Image.fromarray(to_rgb8(result.image)).save(out)
                d = bench_image.measure(meter, out, photo, bench_image.lanczos(style_path))
                ref = plain[style_name]
                row = {"variant": name, "settings": variant, "style_image": style_name, "iterations": result.iterations,
                       "seconds": seconds, "style": d["style"], "content": d["content"],
                       "style_over_plain": d["style"] / ref["style"], "content_over_plain": d["content"] / ref["content"],
                       "loss_over_plain": (d["style"] + d["content"]) / (ref["style"] + ref["content"]),
                       "seconds_over_plain": seconds / ref["engine_s"]}
                rows.append(row)
                print_row(row)
    return rows


def print_row(row: dict[str, Any]) -> None:
    print(f"{row['variant']:<10} {row['style_image']:<13} {row['iterations']:>5} {row['seconds']:>7.1f} "
          f"{row['style']:>8.4f} {row['content']:>9.4f} {row['style_over_plain']:>8.3f} {row['content_over_plain']:>9.3f} "
          f"{row['loss_over_plain']:>7.3f} {row['seconds_over_plain']:>7.3f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", action="append", help="name:key=value;... (repeatable); default: " + " ".join(VARIANTS))
    parser.add_argument("--styles", default="starry_night,the_scream,shipwreck", type=lambda s: s.split(","))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--plain", type=Path, default=ROOT / "bench_out" / "bench" / "bench.json",
                        help="scripts/bench.py's JSON, for the plain run's distances")
    parser.add_argument("--json", type=Path, default=ROOT / "bench_out" / "schedule" / "bench_schedule.json")
    args = parser.parse_args()
    args.variant = args.variant or VARIANTS
    torch.manual_seed(0)
    print(f"tubingen at {args.size} px, in this process; ratios to the plain run in {args.plain}")
    print(f"{'variant':<10} {'style':<13} {'iters':>5} {'s':>7} {'style d':>8} {'content d':>9} "
          f"{'style/pl':>8} {'cont/pl':>9} {'loss/pl':>7} {'s/pl':>7}")
    rows = run(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.json, {"date": time.strftime("%Y-%m-%d %H:%M"), "size": args.size, "rows": rows})
    print(f"JSON: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
