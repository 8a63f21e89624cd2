#!/usr/bin/env python
"""nstpipe's default preset vs the pastiche CLI vs published reference results, in one run.

For tubingen.jpg with each painting in data/styles, at --size (256) px:

* ours: ``nstpipe image`` with the default preset (a subprocess, so start-up is counted);
* pastiche: ``pastiche --size N --num-steps 150`` (L-BFGS, the same embedded weights);
* reference: jcjohnson/neural-style's published output (512 px, 1000 L-BFGS iterations).

Distances use the embedded VGG19 with every image resized so its long side is 256 (Lanczos;
an output then bilinearly to the photo's size):
style = sum over relu1_1..relu5_1 of |G(out)-G(style)|^2/|G(style)|^2, G = FF^T/(C H W);
content = |F(out)-F(photo)|^2/|F(photo)|^2 at relu4_2.
Target: ours within 1.1x the reference's distances on every pair, in no more wall time than
pastiche. Prints a table and writes JSON (--json).

    .venv/bin/python scripts/bench_image.py [--data data] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nstpipe.engine.distances import feature_distance, halves, patch_distance  # noqa: E402
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS, distances  # noqa: E402
from nstpipe.engine.tensors import prepare  # noqa: E402
from nstpipe.engine.vgg import VGGFeatures  # noqa: E402
from nstpipe.media.weights import load_weights  # noqa: E402
from nstpipe.media.writer import record_path  # noqa: E402

PAIRS = (("starry_night", "tubingen_starry"), ("the_scream", "tubingen_scream"), ("shipwreck", "tubingen_shipwreck"))
METRIC_SIDE = 256
TOLERANCE = 1.1


def lanczos(path: Path, side: int = METRIC_SIDE) -> Image.Image:
    img = Image.open(path).convert("RGB")
    scale = side / max(img.size)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)


def measure(encoder: VGGFeatures, output: Path, photo: Image.Image, style: Image.Image) -> dict[str, float]:
    """Gram and content distances (what the engine optimizes), and the sliced Wasserstein
    distances over VGG19 features and over 7x7 pixel patches (what it does not)."""
    out = lanczos(output).resize(photo.size, Image.Resampling.BILINEAR)
    return measure_tensors(encoder, prepare(np.asarray(out)), prepare(np.asarray(photo)), prepare(np.asarray(style)))


def measure_tensors(encoder: VGGFeatures, out: torch.Tensor, photo: torch.Tensor, style: torch.Tensor) -> dict[str, float]:
    d = distances(encoder, out, photo, style)
    return {"style": d.style, "content": d.content, "feature": feature_distance(encoder, out, style), "patch": patch_distance(out, style)}


def painting_floor(encoder: VGGFeatures, style: Image.Image) -> dict[str, float]:
    """The closer half of the painting against the whole: how near a piece of the painting
    itself comes, by the two distribution distances."""
    whole = prepare(np.asarray(style))
    parts = halves(whole)
    return {"feature": min(feature_distance(encoder, h, whole) for h in parts), "patch": min(patch_distance(h, whole) for h in parts)}


def run_ours(photo: Path, style: Path, out: Path, size: int, device: str) -> dict[str, float]:
    nstpipe = shutil.which("nstpipe", path=str(Path(sys.executable).parent)) or "nstpipe"
    cmd = [nstpipe, "image", str(photo), "--style", str(style), "-o", str(out), "--size", str(size), "--device", device, "-q"]
    out.unlink(missing_ok=True)  # a timed run, not one that keeps the output of the last
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    record = json.loads(record_path(out).read_text())["result"]
    return {"wall_s": wall, "iterations": record["iterations"], "s_per_iter": record["seconds"] / max(1, record["iterations"])}


def run_pastiche(photo: Path, style: Path, out: Path, size: int, steps: int, device: str) -> dict[str, float]:
    pastiche = shutil.which("pastiche", path=str(Path(sys.executable).parent)) or "pastiche"
    cmd = [pastiche, "--size", str(size), "--num-steps", str(steps), "--info-step", str(steps), "--seed", "0",
           "--device", device, "-c", str(photo), "-s", str(style), "-o", str(out)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    # Its log has "step elapsed loss" rows; time per step excludes its start-up.
    rows = {int(m[1]): float(m[2]) for m in re.finditer(r"^(\d+)\s+([\d.]+)\s", proc.stdout, re.M)}
    per_step = (rows[steps] - rows[0]) / steps if 0 in rows and steps in rows else wall / steps
    return {"wall_s": wall, "iterations": steps, "s_per_iter": per_step}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pastiche-steps", type=int, default=150)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "image")
    parser.add_argument("--json", type=Path, default=None, help="default: OUT/bench_image.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    encoder = VGGFeatures(load_weights("embedded"), STYLE_LAYERS + (CONTENT_LAYER,))
    photo_path = args.data / "content" / "tubingen.jpg"
    photo = lanczos(photo_path)
    rows = []
    for style_name, ref_name in PAIRS:
        style_path = args.data / "styles" / f"{style_name}.jpg"
        style = lanczos(style_path)
        ours_out, past_out = args.out / f"ours_{style_name}.png", args.out / f"pastiche_{style_name}.png"
        ours = run_ours(photo_path, style_path, ours_out, args.size, args.device)
        past = run_pastiche(photo_path, style_path, past_out, args.size, args.pastiche_steps, args.device)
        ours.update(measure(encoder, ours_out, photo, style))
        past.update(measure(encoder, past_out, photo, style))
        ref = measure(encoder, args.data / "reference" / f"{ref_name}.png", photo, style)
        ok = (ours["style"] <= TOLERANCE * ref["style"] and ours["content"] <= TOLERANCE * ref["content"]
              and ours["wall_s"] <= past["wall_s"])
        rows.append({"style_image": style_name, "ours": ours, "pastiche": past, "reference": ref, "target_met": ok})
        print_row(rows[-1])
    report = {"size": args.size, "device": args.device, "pastiche_steps": args.pastiche_steps, "pairs": rows,
              "all_targets_met": all(r["target_met"] for r in rows)}
    path = args.json or args.out / "bench_image.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nall targets met: {report['all_targets_met']}   JSON: {path}")
    return 0


_HEADER = False


def print_row(row: dict) -> None:
    global _HEADER
    if not _HEADER:
        print(f"{'style':<13} {'run':<10} {'iters':>5} {'s/iter':>7} {'wall s':>7} {'style d':>8} {'content d':>9}")
        _HEADER = True
    for run in ("ours", "pastiche", "reference"):
        r = row[run]
        iters = f"{r['iterations']:>5}" if "iterations" in r else f"{'1000':>5}"
        timing = f"{r['s_per_iter']:>7.3f} {r['wall_s']:>7.1f}" if "wall_s" in r else f"{'-':>7} {'-':>7}"
        print(f"{row['style_image']:<13} {run:<10} {iters} {timing} {r['style']:>8.3f} {r['content']:>9.3f}")
    print(f"{'':<13} target met: {row['target_met']}")


if __name__ == "__main__":
    sys.exit(main())
