"""The texture preset's budget: style distance against iterations, for a few schedules.

Makes one texture of --style at --size px per --variant, in this process, in fp32 on the
CPU, without early stopping, and prints the loss of the finest level after n of its
iterations: the sum over relu1_1..relu5_1 of the relative Gram errors (the style distance
of ``nstpipe metrics``, style_weight 5 over 5 layers, plus the range pull, which is nil at
the end). L-BFGS without a line search runs the same steps whatever the budget, so one
long run gives the curve of every shorter budget. Also the time per iteration of each level.

    python -m bench texture
    python -m bench texture --variant one:scales=1 --variant tiled:scales=2,tileable=true
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import ASSETS, add_common, encoder, json_path, split_variant, write_json
from nstpipe.config import build_settings, settings_from_dict
from nstpipe.engine.modes import texture
from nstpipe.engine.texture import Texturer
from nstpipe.events import Progress, ScaleDone
from nstpipe.modes.model import read_image

CHECKPOINTS = (10, 25, 50, 100, 150, 200, 300, 400)
VARIANTS = ("one:scales=1,iterations=400", "two:scales=2,coarse_iterations=100,iterations=400",
            "two-long-coarse:scales=2,coarse_iterations=200,iterations=400")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "texture", size=128, device=None)
    parser.add_argument("--style", type=Path, default=ASSETS / "starry_night.jpg")
    parser.add_argument("--variant", action="append", help="NAME:key=value,key=value (settings over the texture preset)")
    parser.add_argument("--threads", type=int, default=2)


def run(variant: str, size: int, painting: torch.Tensor) -> dict[str, Any]:
    name, changes = split_variant(variant, ",")
    values = {**build_settings("texture").to_dict(), **changes, "precision": "fp32", "tolerance": 0.0, "mode": "texture"}
    settings = settings_from_dict(values)
    engine = settings.engine
    losses: dict[int, list[float]] = {}
    times: list[tuple[int, float]] = []
    clock = [time.perf_counter()]

    def record(event: object) -> None:
        if isinstance(event, Progress):
            losses.setdefault(event.scale, []).append(event.loss)
        elif isinstance(event, ScaleDone):
            now = time.perf_counter()
            times.append((event.iterations, now - clock[0]))
            clock[0] = now

    vgg = encoder(texture(engine).layers, engine.pooling)
    Texturer(vgg, [painting], engine, "cpu", settings.texture.tileable).run((size, size), callback=record)
    final = losses[max(losses)]
    curve = {n: final[n - 1] for n in CHECKPOINTS if n <= len(final)}
    pace = [s / max(1, n) for n, s in times]
    print(f"{name:<16} " + "  ".join(f"{n}:{v:.3f}" for n, v in curve.items())
          + "   (" + ", ".join(f"level {i + 1} {s * 1000:.0f} ms/it" for i, s in enumerate(pace)) + ")", flush=True)
    return {"variant": variant, "loss_after": curve, "s_per_iter_by_level": pace}


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    painting = read_image(args.style, args.size)
    print(f"style distance after n iterations of the finest level, {args.size} px, fp32, {args.threads} threads")
    rows = [run(variant, args.size, painting) for variant in args.variant or VARIANTS]
    write_json(json_path(args, "texture"), {"size": args.size, "rows": rows}, args)
    print(f"JSON: {json_path(args, 'texture')}")
    return 0
