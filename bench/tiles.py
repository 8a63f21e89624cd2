"""Tiles: a picture painted in tiles under a memory budget, with the whole picture's gradient.

Four parts (``--parts``), each a table, all in one JSON file:

* exactness: the tiled gradient against the untiled one at 128 px, 48 px tiles, per style term;
* memory: a fresh process paints tubingen at each long side of ``--sizes`` for
  ``--iterations`` steps (one level) under ``--max-memory``; its peak RSS (taken by a wrapper
  process, ``RUSAGE_CHILDREN``) beside the budget plus 10%, the engine's estimate for the
  layout it chose, and its estimate for an untiled pass; seconds per megapixel per iteration;
* speed: at ``--speed-size``, where both fit, seconds per megapixel per iteration untiled,
  in the tiles that the engine plans where the budget leaves room for ``--speed-share`` of
  the untiled pass's activations (its tiled head and whole tail included, with the cost
  its model expects), and in four tiles of the whole encoder; taking turns for ``--rounds``
  rounds, medians (target: at most 1.6x);
* seams: a picture painted in tiles at ``--seam-size``: the mean gradient magnitude across the
  tile borders over that across every other line of pixels (target: at most 1.1);
* versus (not among the default parts): at ``--speed-size``, this tree's tiled pass against
  that of another version's ``nstpipe/engine/tiled.py`` (``--against``, e.g. from ``git
  worktree add``), taking turns with the untiled pass in one process for ``--rounds`` rounds:
  medians, each round's figures, and the two gradients' relative difference. A change of a
  few percent shows there, where separate runs' untiled rates vary by tens of percent;
* whole (not among the default parts: most of an hour on two CPU cores): tubingen enlarged to
  ``--whole-side`` (4000x3000) and painted whole by ``nstpipe image --size 4000`` under
  ``--max-memory``, its finest levels above ``--fine-side`` each twice the one before
  (``fine_side``); the wall time and peak RSS, then the style, content, feature and patch
  distances of the result brought down to 256 px over those of a 256 px paint of the same pair, and a
  downscaled view and a 1:1 crop of the result in ``--out``.

    python -m bench tiles --sizes 1024,2048 --iterations 3
    python -m bench tiles --parts exactness,speed --speed-size 256
    python -m bench tiles --parts whole --whole-side 4000 --max-memory 4G
    python -m bench tiles --parts versus --speed-size 1024 --against /tmp/before/nstpipe/engine/tiled.py
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from bench.common import Column, add_common, encoder, json_path, photo_path, print_table, run_measured, style_path, write_json
from nstpipe.config import EngineConfig, parse_memory
from nstpipe.engine.distances import feature_distance, patch_distance
from nstpipe.engine.features import splits
from nstpipe.engine.memory import ACTIVATION_BYTES, fmt_bytes, pass_bytes, plan_layout
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS, distances
from nstpipe.engine.objective import Objective
from nstpipe.engine.optimize import optimize_level
from nstpipe.engine.resize import resize_long_side
from nstpipe.engine.stylize import Stylizer
from nstpipe.engine.tiled import TiledObjective
from nstpipe.engine.tiles import Layout, cuts, tile_stride
from nstpipe.modes.model import read_image

PARTS = ("exactness", "memory", "speed", "seams")


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "tiles", precision=True)
    parser.add_argument("--parts", type=lambda s: [p for p in s.split(",") if p], default=list(PARTS), help=",".join((*PARTS, "whole")))
    parser.add_argument("--sizes", type=_ints, default=[1024, 2048, 4000], help="long sides of the memory part")
    parser.add_argument("--iterations", type=int, default=3, help="steps of each memory run")
    parser.add_argument("--max-memory", default="4G", help="the budget of the memory runs")
    parser.add_argument("--speed-size", type=int, default=512)
    parser.add_argument("--against", type=Path, default=None, help="the versus part's other tiled.py")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the speed and versus parts")
    parser.add_argument("--speed-share", type=float, default=0.5,
                        help="the speed part's plan: the share of an untiled pass's activations that its budget leaves room for")
    parser.add_argument("--seam-size", type=int, default=256)
    parser.add_argument("--seam-iterations", type=int, default=30)
    parser.add_argument("--whole-side", type=int, default=4000, help="long side of the whole part's photo")
    parser.add_argument("--fine-side", type=int, default=512, help="the whole part's fine_side setting")
    parser.add_argument("--whole-output", type=Path, default=None,
                        help="measure this earlier result of the whole part's command instead of painting again (no wall time then)")
    parser.add_argument("--paint", type=int, default=None, help=argparse.SUPPRESS)  # the measured child's long side
    parser.add_argument("--result", type=Path, default=None, help=argparse.SUPPRESS)


def pair(args: argparse.Namespace, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tubingen at a long side of ``side`` and starry_night as it is."""
    photo = resize_long_side(read_image(photo_path(args), min(side, 1024)), side)
    return photo, read_image(style_path(args, "starry_night"), 512)


def stylizer(config: EngineConfig, painting: torch.Tensor, device: str) -> Stylizer:
    return Stylizer(encoder(config.layers), [painting], config, device)


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def exactness(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    photo, painting = pair(args, 128)
    start = (photo + 0.05 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    for loss in ("gram", "meancov", "sliced"):
        objective = stylizer(EngineConfig(style_loss=loss, tv_weight=0.5), painting, args.device).objective(photo)
        pixels = start.clone().requires_grad_(True)
        objective.losses(pixels).sum().backward()
        assert pixels.grad is not None
        _, tiled = TiledObjective(objective, (48, 48)).losses_and_grad(start)
        rows.append({"term": loss, "size": "128x96", "tile": 48, "relative_error": relative(tiled, pixels.grad)})
    return rows


def paint(args: argparse.Namespace) -> int:
    """The measured child: one level at ``--paint`` px under ``--max-memory``."""
    photo, painting = pair(args, args.paint)
    config = EngineConfig(scales=1, iterations=args.iterations, max_memory=args.max_memory, precision=args.precision or "fp32")
    model = stylizer(config, painting, args.device)
    size = (photo.shape[-2], photo.shape[-1])
    layers = model.mode.layers
    budget = parse_memory(args.max_memory) or 0
    layout = plan_layout(size, 1, config, layers, budget, args.iterations, model.precision, splits(model.features))
    untiled = plan_layout(size, 1, config, layers, 1 << 62, args.iterations, model.precision).estimate
    begin = time.perf_counter()
    result = model.run(photo)
    seconds = time.perf_counter() - begin
    assert tuple(result.image.shape[-2:]) == size
    record = {"size": f"{size[1]}x{size[0]}", "precision": model.precision,
              "tile": layout.tile, "split": layout.split or "none", "history": layout.history, "estimate": layout.estimate,
              "untiled_estimate": untiled, "seconds": seconds, "iterations": result.iterations}
    assert args.result is not None
    args.result.write_text(json.dumps(record))
    return 0


def memory(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    budget = parse_memory(args.max_memory) or 0
    for side in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            result = Path(tmp) / "result.json"
            child = ["-m", "bench", "tiles", "--data", str(args.data), "--paint", str(side), "--iterations", str(args.iterations),
                     "--max-memory",
                     args.max_memory, "--result", str(result), "--device", args.device, "--precision", args.precision or "fp32"]
            try:
                _, peak_mib, _ = run_measured([sys.executable, *child])
            except RuntimeError as exc:
                rows.append({"side": side, "error": str(exc).strip().splitlines()[-1:]})
                continue
            peak = int(peak_mib * (1 << 20))
            record = json.loads(result.read_text())
        megapixels = side * side * 3 / 4 / 1e6
        rows.append({**record, "side": side, "peak_rss": fmt_bytes(peak), "limit": fmt_bytes(budget * 1.1), "within": peak <= budget * 1.1,
                     "model_over_peak": record["estimate"] / peak, "untiled_estimate": fmt_bytes(record["untiled_estimate"]),
                     "s_per_mp_it": record["seconds"] / max(1, record["iterations"]) / megapixels})
    return rows


def _speed_case(args: argparse.Namespace) -> tuple[torch.Tensor, Objective, Stylizer, float, Callable[[], None]]:
    """The speed and versus parts' case at ``--speed-size``: the photo, its objective, the
    stylizer that made it, its megapixels, and one untiled gradient pass."""
    photo, painting = pair(args, args.speed_size)
    model = stylizer(EngineConfig(precision=args.precision or "auto"), painting, args.device)
    objective = model.objective(photo)

    def untiled() -> None:
        pixels = photo.clone().requires_grad_(True)
        objective.losses(pixels).sum().backward()

    return photo, objective, model, photo.shape[-2] * photo.shape[-1] / 1e6, untiled


def _quarters(photo: torch.Tensor) -> tuple[int, int]:
    """Tiles of half the long side: four over a 4:3 picture."""
    half = (max(photo.shape[-2:]) // 2 + 15) // 16 * 16
    return half, half


def speed(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The engine's plan where the budget leaves ``--speed-share`` of what an untiled pass's
    activations take, and four tiles of the whole encoder, each taking turns with the
    untiled pass for ``--rounds`` rounds: the medians."""
    photo, objective, model, megapixels, untiled = _speed_case(args)
    size, layers, precision = (photo.shape[-2], photo.shape[-1]), model.mode.layers, model.precision
    whole = plan_layout(size, 1, model.config, layers, 1 << 62, 300, precision)
    activations = pass_bytes(size[0] * size[1], layers, ACTIVATION_BYTES.get(precision, 4))
    plan = plan_layout(size, 1, model.config, layers, int(whole.estimate - (1 - args.speed_share) * activations), 300, precision)
    layouts = {"plan": plan, "quarters": Layout(_quarters(photo), plan.history, 0)}
    passes = {name: TiledObjective(objective, layout.tile or size, split=layout.split) for name, layout in layouts.items()}
    runs: dict[str, Callable[[], Any]] = {"untiled": untiled}
    runs.update({name: functools.partial(tiled.losses_and_grad, photo) for name, tiled in passes.items()})
    for run in runs.values():
        run()  # warm-up
    times = _in_turns(runs, args.rounds, megapixels)
    medians = {name: statistics.median(each) for name, each in times.items()}
    return [{"size": args.speed_size, "layout": name, "share": args.speed_share if name == "plan" else None, "precision": precision,
             "tiles": len(passes[name].grid(photo)), "tile": "x".join(map(str, layout.tile or size)), "split": layout.split or "none",
             "model_cost": layout.cost if name == "plan" else None, "untiled_s_per_mp_it": medians["untiled"],
             "tiled_s_per_mp_it": medians[name], "ratio": medians[name] / medians["untiled"]} for name, layout in layouts.items()]


def versus(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.against is None:
        raise SystemExit("bench tiles: the versus part needs --against PATH/nstpipe/engine/tiled.py")
    spec = importlib.util.spec_from_file_location("tiled_against", args.against)
    assert spec is not None and spec.loader is not None
    other = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(other)
    photo, objective, _, megapixels, untiled = _speed_case(args)
    tile = _quarters(photo)
    ours, theirs = TiledObjective(objective, tile), other.TiledObjective(objective, tile)
    mine, against = ours.losses_and_grad(photo)[1], theirs.losses_and_grad(photo)[1]
    runs = {"untiled": untiled, "tiled": lambda: ours.losses_and_grad(photo), "against": lambda: theirs.losses_and_grad(photo)}
    times = _in_turns(runs, args.rounds, megapixels)
    medians = {name: statistics.median(each) for name, each in times.items()}
    return [{"size": args.speed_size, "tiles": len(ours.grid(photo)), "rounds": args.rounds,
             **{f"{name}_s_per_mp_it": medians[name] for name in runs},
             "tiled_over_against": medians["tiled"] / medians["against"],
             "gradient_difference": float((mine - against).norm() / against.norm()),
             "each": {name: [round(t, 3) for t in each] for name, each in times.items()}}]


def _in_turns(runs: dict[str, Callable[[], Any]], rounds: int, megapixels: float) -> dict[str, list[float]]:
    """Each of ``runs`` once a round, in turn, for ``rounds`` rounds: its seconds per megapixel
    each round (taking turns, a drift of the machine's speed falls on all of them alike)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            begin = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - begin) / megapixels)
    return times


def seams(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Painted in tiles of a quarter of the long side: the steps across tile borders against
    the steps across every other line."""
    photo, painting = pair(args, args.seam_size)
    config = EngineConfig(iterations=args.seam_iterations)
    model = stylizer(config, painting, args.device)
    objective = model.objective(photo)
    side = max(16, args.seam_size // 4 // 16 * 16)
    outcome = optimize_level(objective, photo, args.seam_iterations, config, torch.device(args.device), layout=Layout((side, side), 100, 0))
    image = outcome.image[0]
    stride = tile_stride(objective.layers)
    rows_cut = set(cuts(image.shape[-2], side, stride)[1:-1])
    cols_cut = set(cuts(image.shape[-1], side, stride)[1:-1])
    across_cols = (image[:, :, 1:] - image[:, :, :-1]).abs().mean(dim=(0, 1))  # step from column j to j + 1
    across_rows = (image[:, 1:, :] - image[:, :-1, :]).abs().mean(dim=(0, 2))
    border = [float(across_cols[c - 1]) for c in cols_cut] + [float(across_rows[r - 1]) for r in rows_cut]
    inside = [float(v) for j, v in enumerate(across_cols) if j + 1 not in cols_cut] + [
        float(v) for i, v in enumerate(across_rows) if i + 1 not in rows_cut]
    ratio = (sum(border) / len(border)) / (sum(inside) / len(inside)) if border else float("nan")
    return [{"size": args.seam_size, "tile": side, "borders": len(border), "border_over_inside": ratio, "within": ratio <= 1.1}]


def whole(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photo = out / f"tubingen_{args.whole_side}.jpg"
    source = Image.open(photo_path(args)).convert("RGB")
    scale = args.whole_side / max(source.size)
    source.resize((round(source.width * scale), round(source.height * scale)), Image.Resampling.LANCZOS).save(photo, quality=95)
    config = out / "fine_side.toml"
    config.write_text(f"fine_side = {args.fine_side}\n")
    style = style_path(args, "starry_night")
    paint = [sys.executable, "-m", "nstpipe", "image", str(photo), "--style", str(style), "-y", "-q"]
    big = args.whole_output or out / f"whole_{args.whole_side}.png"
    row: dict[str, Any] = {"side": args.whole_side, "max_memory": args.max_memory, "fine_side": args.fine_side}
    if args.whole_output is None:
        budget = parse_memory(args.max_memory) or 0
        wall, peak_mib, _ = run_measured([*paint, "--size", str(args.whole_side), "--max-memory", args.max_memory,
                                          "--config", str(config), "-o", str(big)])
        peak = int(peak_mib * (1 << 20))
        row.update(wall_s=wall, peak_rss=fmt_bytes(peak), within=peak <= budget * 1.1)
    small = out / "whole_256.png"
    run_measured([*paint, "--size", "256", "-o", str(small)])
    row.update(_at_256(photo, style, big, small))
    view = Image.open(big).convert("RGB")
    view.resize((1000, round(1000 * view.height / view.width)), Image.Resampling.LANCZOS).save(out / "whole_view.jpg", quality=90)
    left, top = view.width * 3 // 8, view.height * 3 // 8
    view.crop((left, top, left + 600, top + 400)).save(out / "whole_crop.png")
    return [row]


def _at_256(photo: Path, style: Path, big: Path, small: Path) -> dict[str, float]:
    """Style, content, feature and patch distances at 256 px of the whole result and of the 256 px paint."""
    features = encoder((*STYLE_LAYERS, CONTENT_LAYER))
    photo_256, painting_256 = read_image(photo, 256), read_image(style, 256)
    found = {}
    with torch.no_grad():
        for name, path in (("whole", big), ("paint_256", small)):
            picture = read_image(path, 256)
            measured = distances(features, picture, photo_256, painting_256)
            found[f"style_{name}"], found[f"content_{name}"] = measured.style, measured.content
            # The two distances the engine does not optimize (docs/benchmarks.md, the frontier).
            found[f"feature_{name}"] = feature_distance(features, picture, painting_256)
            found[f"patch_{name}"] = patch_distance(picture, painting_256)
    for kind in ("style", "content", "feature", "patch"):
        found[f"{kind}_ratio"] = found[f"{kind}_whole"] / found[f"{kind}_paint_256"]
    return found


def _columns(*keys: str) -> tuple[Column, ...]:
    numbers = {"relative_error": ".2e", "model_over_peak": ".2f", "s_per_mp_it": ".3g", "untiled_s_per_mp_it": ".3g",
               "tiled_s_per_mp_it": ".3g", "ratio": ".2f", "border_over_inside": ".3f", "wall_s": ".0f", "style_whole": ".4f",
               "content_whole": ".4f", "style_paint_256": ".4f", "content_paint_256": ".4f", "style_ratio": ".2f", "content_ratio": ".2f",
               "feature_ratio": ".2f", "patch_ratio": ".2f", "model_cost": ".2f"}
    return tuple((key, key, numbers.get(key, "")) for key in keys)


COLUMNS = {
    "exactness": _columns("term", "size", "tile", "relative_error"),
    "memory": _columns("side", "size", "precision", "tile", "split", "history", "peak_rss", "limit", "within", "model_over_peak",
                       "untiled_estimate", "s_per_mp_it"),
    "speed": _columns("size", "layout", "share", "precision", "tiles", "tile", "split", "model_cost", "untiled_s_per_mp_it",
                      "tiled_s_per_mp_it", "ratio"),
    "seams": _columns("size", "tile", "borders", "border_over_inside", "within"),
    "versus": _columns("size", "tiles", "rounds", "untiled_s_per_mp_it", "tiled_s_per_mp_it", "against_s_per_mp_it",
                       "tiled_over_against", "gradient_difference"),
    "whole": _columns("side", "max_memory", "fine_side", "wall_s", "peak_rss", "within", "style_whole", "style_paint_256",
                      "style_ratio", "content_whole", "content_paint_256", "content_ratio", "feature_ratio", "patch_ratio"),
}


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    if args.paint is not None:
        return paint(args)
    runs = {"exactness": exactness, "memory": memory, "speed": speed, "seams": seams, "versus": versus, "whole": whole}
    payload: dict[str, Any] = {"max_memory": args.max_memory, "iterations": args.iterations}
    for part in args.parts:
        payload[part] = runs[part](args)
        print(f"\n{part}")
        print_table(payload[part], COLUMNS[part])
    write_json(json_path(args, "tiles"), payload, args)
    return 0
