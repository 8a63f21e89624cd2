"""Throughput with 1 and with N workers: images per second and video frames per second.

On this machine's CPUs each worker is pinned to one torch thread; with GPUs each worker
has one GPU. One Ray instance serves every run, so start-up is not counted; each run
stylizes into a fresh folder, so nothing is skipped. Prints a table and writes JSON.

    .venv/bin/python scripts/bench_scaling.py                  # 1 vs 2 CPU workers
    .venv/bin/python scripts/bench_scaling.py --workers 8      # 1 vs 8 (a GPU machine)

Images: --images copies of crops of data/content/tubingen.jpg at --size px.
Video: the first --frames frames of data/video/asl_book.mkv at --size px (with
N workers the video runs as N chains joined by cross-faded seams).
Target on GPUs: throughput with N workers at least 0.9 x N x that of one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nstpipe.app import stylize_folder, stylize_video  # noqa: E402
from nstpipe.config import build_settings  # noqa: E402
from nstpipe.engine.device import visible_gpus  # noqa: E402
from nstpipe.run.ray_executor import RayExecutor, ray_session  # noqa: E402

DATA = ROOT / "data"


def make_archive(folder: Path, count: int) -> None:
    """Different crops of one photo, so that no two inputs are the same picture."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with Image.open(DATA / "content" / "tubingen.jpg") as opened:
        photo = opened.convert("RGB")
        for i in range(count):
            x, y = (i * 37) % 96, (i * 23) % 64
            photo.crop((x, y, x + 400, y + 300)).save(folder / f"photo_{i:03d}.jpg", quality=92)


def run(kind: str, workers: int, args: argparse.Namespace, threads: int | None) -> dict[str, Any]:
    settings = build_settings(args.preset, None, {"size": args.size, "device": args.device})
    out = args.out / f"{kind}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    executor = RayExecutor(workers=workers, threads=threads)
    start = time.perf_counter()
    try:
        if kind == "images":
            outcome = stylize_folder(args.out / "archive", [args.style], out, settings, lambda e: None, executor)
            count = outcome.done
        else:
            summary = stylize_video(args.video, [args.style], out / "v.mp4", settings, lambda e: None,
                                    work_dir=out / "work", limit=args.frames, executor=executor)
            count = summary.frames
    finally:
        executor.close()
    seconds = time.perf_counter() - start
    return {"kind": kind, "workers": workers, "items": count, "seconds": round(seconds, 2),
            "per_second": round(count / seconds, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=None, help="N [default: the GPUs, else 2]")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--style", type=Path, default=DATA / "styles" / "starry_night.jpg")
    parser.add_argument("--video", type=Path, default=DATA / "video" / "asl_book.mkv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "scaling")
    parser.add_argument("--json", type=Path, default=ROOT / "bench_out" / "scaling" / "bench_scaling.json")
    args = parser.parse_args()
    gpus = visible_gpus()
    n = args.workers or (gpus if gpus > 1 else 2)
    threads = None if gpus else 1  # CPU workers: one thread each, so N workers use N cores
    make_archive(args.out / "archive", args.images)
    rows = []
    with ray_session(cpus=None if gpus else n):
        for kind in ("images", "video"):
            for workers in (1, n):
                rows.append(run(kind, workers, args, threads))
    print(f"{'kind':<7} {'workers':>7} {'items':>6} {'seconds':>8} {'per second':>11}")
    for r in rows:
        print(f"{r['kind']:<7} {r['workers']:>7} {r['items']:>6} {r['seconds']:>8} {r['per_second']:>11}")
    ratios = {}
    for kind in ("images", "video"):
        one, many = (r["per_second"] for r in rows if r["kind"] == kind)
        ratios[kind] = round(many / one, 3)
        print(f"{kind}: {n} workers give {ratios[kind]:.2f}x one worker (ideal {n}x; GPU target >= {0.9 * n:.1f}x)")
    device = f"{gpus} GPU(s)" if gpus else "CPU, one thread per worker"
    record = {"device": device, "workers": n, "size": args.size, "preset": args.preset, "rows": rows, "speedup": ratios}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
