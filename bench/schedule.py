"""How the default preset's schedule trades style against content, next to the plain run.

Runs the default preset on tubingen.jpg with each --styles painting at --size px, in this
process, once per --variant (the default itself, and the same with other settings: more
iterations at full size, another content_mix, more of the work at half size, a third
level, fp32, and 800 iterations at full size without early stopping, to see where the
schedule converges), and measures each output as ``bench image`` does. Each distance is
printed as a ratio to the plain run's (one scale, 500 fp32 L-BFGS iterations) from ``bench
image``'s JSON (--plain), so run that first on the same machine; below 1 is better than
plain. The last column is the variant's time over the plain run's engine time (start-up
left out on both sides; the target asks for at most 0.25).

    python -m bench schedule
    python -m bench schedule --variant default: --variant longer:iterations=300
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from bench.common import OUT, STYLES, add_common, csv, encoder, json_path, photo_path, split_variant, style_path, write_json
from bench.measure import lanczos, measure, meter
from nstpipe.config import build_settings
from nstpipe.engine.stylize import Stylizer
from nstpipe.engine.tensors import to_rgb8
from nstpipe.modes.model import read_image

VARIANTS = ["default:", "full300:iterations=300", "mix0.5:content_mix=0.5", "mix0.9:content_mix=0.9",
            "c200f190:coarse_iterations=200;iterations=190", "3scales:scales=3;coarse_iterations=150;iterations=210",
            "fp32:precision=fp32", "full800:iterations=800;tolerance=0.0"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "schedule", size=256, device=None)
    parser.add_argument("--variant", action="append", help="name:key=value;... (repeatable); default: " + " ".join(VARIANTS))
    parser.add_argument("--styles", type=csv, default=list(STYLES))
    parser.add_argument("--plain", type=Path, default=OUT / "image" / "image.json",
                        help="bench image's JSON, for the plain run's distances")


def plain_distances(path: Path) -> dict[str, dict[str, float]]:
    """Per painting: the plain run's distances and its engine seconds (start-up left out)."""
    try:
        rows = json.loads(path.read_text())["rows"]
        return {row["style_image"]: {key: row["plain"][key] for key in ("style", "content", "engine_s")} for row in rows}
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"bench schedule: {path}: no plain run in it ({exc}); run python -m bench image first") from None


def main(args: argparse.Namespace) -> int:
    variants = args.variant or VARIANTS
    torch.manual_seed(0)
    base = build_settings("default").engine
    vgg, meter_ = encoder(base.layers, base.pooling), meter()
    content, photo = read_image(photo_path(args), args.size), lanczos(photo_path(args))
    plain = plain_distances(args.plain)
    print(f"tubingen at {args.size} px, in this process; ratios to the plain run in {args.plain}")
    print(f"{'variant':<10} {'style':<13} {'iters':>5} {'s':>7} {'style d':>8} {'content d':>9} "
          f"{'style/pl':>8} {'cont/pl':>9} {'loss/pl':>7} {'s/pl':>7}")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            name, changes = split_variant(variant)
            engine = dataclasses.replace(base, **{k: type(getattr(base, k))(v) for k, v in changes.items()})
            for style_name in args.styles:
                start = time.perf_counter()
                result = Stylizer(vgg, [read_image(style_path(args, style_name))], engine).run(content)
                seconds = time.perf_counter() - start
                out = Path(tmp) / f"{name}_{style_name}.png"
                Image.fromarray(to_rgb8(result.image)).save(out)
                d = measure(meter_, out, photo, lanczos(style_path(args, style_name)))
                ref = plain[style_name]
                row = {"variant": name, "settings": variant, "style_image": style_name, "iterations": result.iterations,
                       "seconds": seconds, "style": d["style"], "content": d["content"],
                       "style_over_plain": d["style"] / ref["style"], "content_over_plain": d["content"] / ref["content"],
                       "loss_over_plain": (d["style"] + d["content"]) / (ref["style"] + ref["content"]),
                       "seconds_over_plain": seconds / ref["engine_s"]}
                rows.append(row)
                print(f"{name:<10} {style_name:<13} {row['iterations']:>5} {seconds:>7.1f} {row['style']:>8.4f} "
                      f"{row['content']:>9.4f} {row['style_over_plain']:>8.3f} {row['content_over_plain']:>9.3f} "
                      f"{row['loss_over_plain']:>7.3f} {row['seconds_over_plain']:>7.3f}", flush=True)
                write_json(json_path(args, "schedule"), {"size": args.size, "rows": rows}, args)
    print(f"JSON: {json_path(args, 'schedule')}")
    return 0
