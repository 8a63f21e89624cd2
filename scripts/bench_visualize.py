"""The visualize preset's budget: a channel's mean activation against Adam iterations.

Makes one picture of --layer/--channel at --size (64) per variant and budget, in this
process, in fp32 on the CPU, one pyramid level, without early stopping, and prints the
channel's mean activation in the finished picture, seen without jitter, next to its
value on tests/data/tubingen_64.jpg (a photo, for scale); "rolled": its mean over the
picture rolled by 4 pixels in each of the 8 directions (how much of it survives a small
shift); "turned": its mean over the picture scaled by 0.95 and 1.05 and turned by -5 and
+5 degrees, the four combinations (how much survives a small change of scale or angle).
Also the high-frequency energy of the picture (mean squared difference of neighbouring
pixels), what the TV term holds down. ``--transforms`` sets what the picture is seen
through while it is made: ``pixels/scale/degrees`` (the preset's visualize_jitter,
visualize_scale, visualize_degrees), one run per entry.

    .venv/bin/python scripts/bench_visualize.py
    .venv/bin/python scripts/bench_visualize.py --variant lr0.05:learning_rate=0.05,tv_weight=0 --jitter 4
    .venv/bin/python scripts/bench_visualize.py --variant p:learning_rate=0.05,tv_weight=30000 \
        --budgets 100 --transforms 4/0/0,4/0.05/0,4/0/5,4/0.05/5
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nstpipe.config import EngineConfig, settings_from_dict  # noqa: E402
from nstpipe.engine.losses import tv_loss  # noqa: E402
from nstpipe.engine.transforms import scaled_and_turned  # noqa: E402
from nstpipe.engine.vgg import VGGFeatures  # noqa: E402
from nstpipe.engine.visualize import Visualizer  # noqa: E402
from nstpipe.jobs.pictures import read_image  # noqa: E402
from nstpipe.media.weights import load_weights  # noqa: E402

SHIFTS = [(dy, dx) for dy in (-4, 0, 4) for dx in (-4, 0, 4) if (dy, dx) != (0, 0)]
TURNS = [(scale, degrees) for scale in (0.95, 1.05) for degrees in (-5.0, 5.0)]
VARIANTS = ("lr0.02:learning_rate=0.02", "lr0.05:learning_rate=0.05", "lr0.1:learning_rate=0.1")


def engine(spec: str) -> EngineConfig:
    values: dict[str, object] = {"optimizer": "adam", "scales": 1, "tolerance": 0.0, "tv_weight": 0.0, "init": "noise"}
    for pair in filter(None, spec.split(",")):
        key, value = pair.split("=")
        values[key] = value
    return settings_from_dict(values).engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layer", default="relu4_1")
    parser.add_argument("--channel", type=int, default=0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--jitter", type=int, default=4)
    parser.add_argument("--transforms", default=None, help="pixels/scale/degrees,... (default: --jitter/0/0)")
    parser.add_argument("--budgets", default="25,50,100,200")
    parser.add_argument("--variant", action="append", help="name:key=value,... (engine settings)")
    args = parser.parse_args()
    encoder = VGGFeatures(load_weights("embedded"), (args.layer,), "max")
    photo = read_image(ROOT / "tests/data/tubingen_64.jpg")
    print(f"{args.layer} channel {args.channel}, {args.size} px, jitter {args.jitter}: "
          f"photo {float(encoder(photo)[args.layer][0, args.channel].mean()):.1f}")
    transforms = [tuple(float(v) for v in t.split("/")) for t in (args.transforms or f"{args.jitter}/0/0").split(",")]
    for variant in args.variant or VARIANTS:
        name, spec = variant.split(":", 1)
        for pixels, scale, degrees in transforms:
            for budget in (int(b) for b in args.budgets.split(",")):
                config = replace(engine(spec), iterations=budget)
                start = time.perf_counter()
                visualizer = Visualizer(encoder, args.layer, (args.channel,), config, "cpu", (int(pixels), scale, degrees))
                picture = visualizer.run((args.size, args.size)).image
                seconds = time.perf_counter() - start
                with torch.no_grad():
                    activation = float(encoder(picture)[args.layer][0, args.channel].mean())
                    rolled = torch.cat([torch.roll(picture, shift, (-2, -1)) for shift in SHIFTS])
                    moved = float(encoder(rolled)[args.layer][:, args.channel].mean())
                    turned = torch.cat([scaled_and_turned(picture, s, d) for s, d in TURNS])
                    kept = float(encoder(turned)[args.layer][:, args.channel].mean())
                print(f"{name:>12} {int(pixels)}/{scale:g}/{degrees:g} n={budget:<4} activation {activation:9.1f}  "
                      f"rolled {moved:9.1f}  turned {kept:9.1f}  tv {float(tv_loss(picture)[0]):.4f}  {seconds:5.1f} s")

if __name__ == "__main__":
    main()
