"""The texture preset's budget: style distance against iterations, for a few schedules.

Makes one texture of assets/starry_night.jpg at --size (128) per schedule, in this process,
in fp32 on the CPU, without early stopping, and prints the loss of the finest level after
n of its iterations: the sum over relu1_1..relu5_1 of the relative Gram errors (the
style distance of ``nstpipe metrics``, style_weight 5 over 5 layers, plus the range pull,
which is nil at the end). L-BFGS without a line search runs the same steps whatever the
budget, so one long run gives the curve of every shorter budget. Also the time per
iteration of each level.

    .venv/bin/python scripts/bench_texture.py
    .venv/bin/python scripts/bench_texture.py --size 128 --variant one:scales=1 --variant tiled:scales=2,tileable=true
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nstpipe.config import build_settings, settings_from_dict  # noqa: E402
from nstpipe.engine.modes import texture  # noqa: E402
from nstpipe.engine.texture import Texturer  # noqa: E402
from nstpipe.engine.vgg import VGGFeatures  # noqa: E402
from nstpipe.events import Progress, ScaleDone  # noqa: E402
from nstpipe.jobs.pictures import read_image  # noqa: E402
from nstpipe.media.weights import load_weights  # noqa: E402

CHECKPOINTS = (10, 25, 50, 100, 150, 200, 300, 400)
VARIANTS = ("one:scales=1,iterations=400", "two:scales=2,coarse_iterations=100,iterations=400",
            "two-long-coarse:scales=2,coarse_iterations=200,iterations=400")


def run(name: str, spec: str, size: int, painting: torch.Tensor) -> None:
    values = dict(build_settings("texture").to_dict())
    for item in filter(None, spec.split(",")):
        key, value = item.split("=")
        values[key] = value
    values.update(precision="fp32", tolerance=0.0, mode="texture")
    settings = settings_from_dict(values)
    engine = settings.engine
    encoder = VGGFeatures(load_weights("embedded"), texture(engine).layers, engine.pooling)
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

    Texturer(encoder, [painting], engine, "cpu", settings.texture.tileable).run((size, size), callback=record)
    final = losses[max(losses)]
    curve = "  ".join(f"{n}:{final[n - 1]:.3f}" for n in CHECKPOINTS if n <= len(final))
    pace = ", ".join(f"level {i + 1} {s / max(1, n) * 1000:.0f} ms/it" for i, (n, s) in enumerate(times))
    print(f"{name:<16} {curve}   ({pace})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--variant", action="append", help="NAME:key=value,key=value (settings over the texture preset)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    painting = read_image(ROOT / "assets" / "starry_night.jpg", args.size)
    print(f"style distance after n iterations of the finest level, {args.size} px, fp32, {args.threads} threads")
    for variant in args.variant or VARIANTS:
        name, _, spec = variant.partition(":")
        run(name, spec, args.size, painting)


if __name__ == "__main__":
    main()
