"""The visualize preset's budget: a channel's mean activation against Adam iterations.

Makes one picture of --layer/--channel at --size px per --variant and budget, in this
process, in fp32 on the CPU, one pyramid level, without early stopping, and prints the
channel's mean activation in the finished picture, seen without jitter, next to its value
on DATA's photo at the same size (for scale); "rolled": its mean over the picture rolled by
4 pixels in each of the 8 directions (how much of it survives a small shift); "turned": its
mean over the picture scaled by 0.95 and 1.05 and turned by -5 and +5 degrees, the four
combinations (how much survives a small change of scale or angle). Also the
high-frequency energy of the picture (mean squared difference of neighbouring pixels),
what the TV term holds down. --transforms sets what the picture is seen through while it
is made: ``pixels/scale/degrees`` (the preset's visualize_jitter, visualize_scale,
visualize_degrees), one run per entry.

    python -m bench visualize
    python -m bench visualize --variant lr0.05:learning_rate=0.05,tv_weight=0 --jitter 4
    python -m bench visualize --variant p:learning_rate=0.05,tv_weight=30000 \\
        --budgets 100 --transforms 4/0/0,4/0.05/0,4/0/5,4/0.05/5
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import torch

from bench.common import add_common, csv, encoder, ints, json_path, photo_path, split_variant, write_json
from nstpipe.config import EngineConfig, settings_from_dict
from nstpipe.engine.losses import tv_loss
from nstpipe.engine.transforms import scaled_and_turned
from nstpipe.engine.visualize import Visualizer
from nstpipe.modes.model import read_image

SHIFTS = [(dy, dx) for dy in (-4, 0, 4) for dx in (-4, 0, 4) if (dy, dx) != (0, 0)]
TURNS = [(scale, degrees) for scale in (0.95, 1.05) for degrees in (-5.0, 5.0)]
VARIANTS = ("lr0.02:learning_rate=0.02", "lr0.05:learning_rate=0.05", "lr0.1:learning_rate=0.1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "visualize", size=64, device=None)
    parser.add_argument("--layer", default="relu4_1")
    parser.add_argument("--channel", type=int, default=0)
    parser.add_argument("--jitter", type=int, default=4)
    parser.add_argument("--transforms", type=csv, default=None, help="pixels/scale/degrees,... (default: --jitter/0/0)")
    parser.add_argument("--budgets", type=ints, default=[25, 50, 100, 200])
    parser.add_argument("--variant", action="append", help="name:key=value,... (engine settings)")


def engine(changes: dict[str, str]) -> EngineConfig:
    values: dict[str, object] = {"optimizer": "adam", "scales": 1, "tolerance": 0.0, "tv_weight": 0.0, "init": "noise", **changes}
    return settings_from_dict(values).engine


def measure(vgg: Any, picture: torch.Tensor, layer: str, channel: int) -> dict[str, float]:
    with torch.no_grad():
        rolled = torch.cat([torch.roll(picture, shift, (-2, -1)) for shift in SHIFTS])
        turned = torch.cat([scaled_and_turned(picture, s, d) for s, d in TURNS])
        return {"activation": float(vgg(picture)[layer][0, channel].mean()),
                "rolled": float(vgg(rolled)[layer][:, channel].mean()),
                "turned": float(vgg(turned)[layer][:, channel].mean()), "tv": float(tv_loss(picture)[0])}


def main(args: argparse.Namespace) -> int:
    vgg = encoder((args.layer,))
    photo = read_image(photo_path(args), args.size)
    on_photo = float(vgg(photo)[args.layer][0, args.channel].mean())
    print(f"{args.layer} channel {args.channel}, {args.size} px, jitter {args.jitter}: photo {on_photo:.1f}")
    transforms = [tuple(float(v) for v in t.split("/")) for t in (args.transforms or [f"{args.jitter}/0/0"])]
    rows = []
    for variant in args.variant or VARIANTS:
        name, changes = split_variant(variant, ",")
        for pixels, scale, degrees in transforms:
            for budget in args.budgets:
                start = time.perf_counter()
                visualizer = Visualizer(vgg, args.layer, (args.channel,), replace(engine(changes), iterations=budget), "cpu",
                                        (int(pixels), scale, degrees))
                picture = visualizer.run((args.size, args.size)).image
                row = {"variant": name, "transform": f"{int(pixels)}/{scale:g}/{degrees:g}", "budget": budget,
                       "seconds": time.perf_counter() - start, **measure(vgg, picture, args.layer, args.channel)}
                rows.append(row)
                print(f"{name:>12} {row['transform']} n={budget:<4} activation {row['activation']:9.1f}  rolled {row['rolled']:9.1f}"
                      f"  turned {row['turned']:9.1f}  tv {row['tv']:.4f}  {row['seconds']:5.1f} s", flush=True)
    write_json(json_path(args, "visualize"), {"photo": on_photo, "rows": rows}, args)
    print(f"JSON: {json_path(args, 'visualize')}")
    return 0
