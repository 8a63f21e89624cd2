"""What the [0, 1] bound on the loss is worth: the loss of the saved picture, bounded or not.

The engine takes its loss on the picture clamped to [0, 1] (``Objective.picture``), which
is what is saved. The other arm takes it on the raw pixels, as an optimizer without bounds
would, and clamps only at the end. Both run the same single-scale fp32 L-BFGS on
tubingen.jpg with one painting (data), in this process, without early stopping;
each is measured at every budget in ``--iterations`` (one run each, up to the largest
budget, read off along the way). Columns: the loss of the clamped picture (what the
output has, in the preset's weights), the loss the optimizer saw (for the bounded arm
with its pull back into range), and the share of raw pixels outside [0, 1] (the saved
picture is clamped either way).

Prints a table and writes JSON (--json, default bench_out/clamp/bench_clamp.json).

    .venv/bin/python scripts/bench_clamp.py
    .venv/bin/python scripts/bench_clamp.py --size 256 --iterations 100,300,500
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nstpipe.engine.stylize as stylize  # noqa: E402
from nstpipe.config import build_settings  # noqa: E402
from nstpipe.engine.optimize import Item, eager  # noqa: E402
from nstpipe.engine.optimize import step as one_step  # noqa: E402
from nstpipe.engine.vgg import VGGFeatures  # noqa: E402
from nstpipe.jobs.pictures import read_image  # noqa: E402
from nstpipe.media.weights import load_weights  # noqa: E402

DATA = ROOT / "data"


class Unbounded(stylize.Objective):
    """The loss of the raw pixels, without the pull back into range (it acts only on
    pixels that the picture differs from): what the engine took before the bound."""

    @staticmethod
    def picture(x: torch.Tensor) -> torch.Tensor:
        return x


def run_arm(objective: type[stylize.Objective], budgets: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    engine = dataclasses.replace(build_settings("default").engine, scales=1, tolerance=0.0, precision="fp32")
    encoder = VGGFeatures(load_weights("embedded"), engine.layers, engine.pooling)
    stylizer = stylize.Stylizer(encoder, [read_image(DATA / "styles" / f"{args.style}.jpg")], engine)
    content = read_image(DATA / "content" / "tubingen.jpg", args.size)
    saved = stylizer.objective(content)
    seen = eager(objective(saved.encoder, saved.parts))
    item = Item(engine, content, max(budgets))
    rows, start = [], time.perf_counter()
    for step in range(1, max(budgets) + 1):
        one_step([item], [0], seen)
        if step in budgets:
            x = item.picture()  # what the engine would save: the best evaluated pixels
            with torch.no_grad():
                rows.append({
                    "iterations": step,
                    "seconds": round(time.perf_counter() - start, 1),
                    "loss_saved": float(saved(x.clamp(0, 1))),
                    "loss_seen": item.history[-1],
                    "out_of_range": float(((x < 0) | (x > 1)).float().mean()),
                })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", default="100,300,600", help="comma-separated budgets")
    parser.add_argument("--style", default="starry_night")
    parser.add_argument("--json", type=Path, default=ROOT / "bench_out" / "clamp" / "bench_clamp.json")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.iterations.split(","))
    report: dict[str, Any] = {"size": args.size, "style": args.style, "threads": torch.get_num_threads()}
    for name, objective in (("bounded", stylize.Objective), ("unbounded", Unbounded)):
        report[name] = run_arm(objective, budgets, args)
    print(f"tubingen x {args.style} at {args.size} px, single-scale fp32 L-BFGS, no early stop")
    print(f"{'iters':>5} {'arm':>9} {'saved loss':>10} {'seen loss':>9} {'outside':>8} {'s':>6}")
    for i, budget in enumerate(budgets):
        for name in ("bounded", "unbounded"):
            r = report[name][i]
            print(f"{budget:>5} {name:>9} {r['loss_saved']:>10.4f} {r['loss_seen']:>9.4f} {r['out_of_range']:>8.2%} {r['seconds']:>6.1f}")
        ratio = report["bounded"][i]["loss_saved"] / report["unbounded"][i]["loss_saved"]
        print(f"{'':>5} {'ratio':>9} {ratio:>10.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
