"""What the [0, 1] bound on the loss is worth: the loss of the saved picture, bounded or not.

The engine takes its loss on the picture clamped to [0, 1] (``Objective.picture``), which
is what is saved. The other arm takes it on the raw pixels, as an optimizer without bounds
would, and clamps only at the end. Both run the same single-scale fp32 L-BFGS on
tubingen.jpg with one painting, in this process, without early stopping; each is measured
at every budget in --iterations (one run each, up to the largest budget, read off along
the way). Columns: the loss of the clamped picture (what the output has, in the preset's
weights), the loss the optimizer saw (for the bounded arm with its pull back into range),
and the share of raw pixels outside [0, 1] (the saved picture is clamped either way).

    python -m bench clamp
    python -m bench clamp --size 256 --iterations 100,300,500
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import torch

import nstpipe.engine.stylize as stylize
from bench.common import add_common, encoder, ints, json_path, photo_path, print_table, style_path, write_json
from nstpipe.config import build_settings
from nstpipe.engine.optimize import Item, eager
from nstpipe.engine.optimize import step as one_step
from nstpipe.modes.model import read_image


class Unbounded(stylize.Objective):
    """The loss of the raw pixels, without the pull back into range (it acts only on
    pixels that the picture differs from): what the engine took before the bound."""

    @staticmethod
    def picture(x: torch.Tensor) -> torch.Tensor:
        return x


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "clamp", size=128, device=None)
    parser.add_argument("--iterations", type=ints, default=[100, 300, 600], help="budgets (comma-separated)")
    parser.add_argument("--style", default="starry_night")


def run_arm(objective: type[stylize.Objective], budgets: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    engine = dataclasses.replace(build_settings("default").engine, scales=1, tolerance=0.0, precision="fp32")
    stylizer = stylize.Stylizer(encoder(engine.layers, engine.pooling), [read_image(style_path(args, args.style))], engine)
    content = read_image(photo_path(args), args.size)
    saved = stylizer.objective(content)
    seen = eager(objective(saved.encoder, saved.parts))
    item = Item(engine, content, max(budgets))
    rows, start = [], time.perf_counter()
    for step in range(1, max(budgets) + 1):
        one_step([item], [0], seen)
        if step in budgets:
            x = item.picture()  # what the engine would save: the best evaluated pixels
            with torch.no_grad():
                rows.append({"iterations": step, "seconds": round(time.perf_counter() - start, 1),
                             "loss_saved": float(saved(x.clamp(0, 1))), "loss_seen": item.history[-1],
                             "out_of_range": float(((x < 0) | (x > 1)).float().mean())})
    return rows


def main(args: argparse.Namespace) -> int:
    budgets = sorted(args.iterations)
    report: dict[str, Any] = {"size": args.size, "style": args.style}
    for name, objective in (("bounded", stylize.Objective), ("unbounded", Unbounded)):
        report[name] = run_arm(objective, budgets, args)
    print(f"tubingen x {args.style} at {args.size} px, single-scale fp32 L-BFGS, no early stop")
    table = []
    for i, budget in enumerate(budgets):
        bounded, unbounded = report["bounded"][i], report["unbounded"][i]
        table += [{"arm": "bounded", **bounded}, {"arm": "unbounded", **unbounded},
                  {"arm": "ratio", "iterations": budget, "loss_saved": bounded["loss_saved"] / unbounded["loss_saved"]}]
    print_table(table, [("iters", "iterations", "d"), ("arm", "arm", ""), ("saved loss", "loss_saved", ".4f"),
                        ("seen loss", "loss_seen", ".4f"), ("outside", "out_of_range", ".2%"), ("s", "seconds", ".1f")])
    write_json(json_path(args, "clamp"), report, args)
    print(f"JSON: {json_path(args, 'clamp')}")
    return 0
