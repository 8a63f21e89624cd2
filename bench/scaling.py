"""Throughput with 1 and with N workers: images per second and video frames per second.

On this machine's CPUs each worker is pinned to one torch thread; with GPUs each worker
has one GPU. One Ray instance serves every run, so start-up is not counted; each run
stylizes into a fresh folder, so nothing is skipped.

Images: --images crops of DATA/content/tubingen.jpg at --size px. Video: the first
--frames frames of --video at --size px (with N workers the video runs as N chains joined
by cross-faded seams). Target on GPUs: throughput with N workers at least 0.9 x N x that of one.

    python -m bench scaling                  # 1 vs 2 CPU workers
    python -m bench scaling --workers 8      # 1 vs 8 (a GPU machine)
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import add_common, json_path, make_archive, photo_path, print_table, style_path, write_json
from nstpipe.app import stylize_folder, stylize_video
from nstpipe.config import build_settings
from nstpipe.engine.device import visible_gpus
from nstpipe.run.ray_executor import RayExecutor, ray_session


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "scaling", size=128, device="auto")
    parser.add_argument("--workers", type=int, default=None, help="N [default: the GPUs, else 2]")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--style", default="starry_night", help="the painting in DATA/styles")
    parser.add_argument("--video", type=Path, default=None, help="default DATA/video/asl_book.mkv")


def run(kind: str, workers: int, args: argparse.Namespace, threads: int | None) -> dict[str, Any]:
    settings = build_settings(args.preset, None, {"size": args.size, "device": args.device})
    style, out = style_path(args, args.style), args.out / f"{kind}_{workers}"
    shutil.rmtree(out, ignore_errors=True)
    executor = RayExecutor(workers=workers, threads=threads)
    start = time.perf_counter()
    try:
        if kind == "images":
            count = stylize_folder(args.out / "archive", [style], out, settings, lambda e: None, executor).done
        else:
            count = stylize_video(args.video, [style], out / "v.mp4", settings, lambda e: None,
                                  work_dir=out / "work", limit=args.frames, executor=executor).frames
    finally:
        executor.close()
    seconds = time.perf_counter() - start
    return {"kind": kind, "workers": workers, "items": count, "seconds": round(seconds, 2), "per_second": round(count / seconds, 4)}


def main(args: argparse.Namespace) -> int:
    args.video = args.video or args.data / "video" / "asl_book.mkv"
    gpus = visible_gpus()
    n = args.workers or (gpus if gpus > 1 else 2)
    threads = None if gpus else 1  # CPU workers: one thread each, so N workers use N cores
    make_archive(args.out / "archive", args.images, photo=photo_path(args))
    rows = []
    with ray_session(cpus=None if gpus else n):
        for kind in ("images", "video"):
            for workers in (1, n):
                rows.append(run(kind, workers, args, threads))
    print_table(rows, [("kind", "kind", ""), ("workers", "workers", "d"), ("items", "items", "d"),
                       ("seconds", "seconds", ".2f"), ("per second", "per_second", ".4f")])
    ratios = {}
    for kind in ("images", "video"):
        one, many = (r["per_second"] for r in rows if r["kind"] == kind)
        ratios[kind] = round(many / one, 3)
        print(f"{kind}: {n} workers give {ratios[kind]:.2f}x one worker (ideal {n}x; GPU target >= {0.9 * n:.1f}x)")
    device = f"{gpus} GPU(s)" if gpus else "CPU, one thread per worker"
    write_json(json_path(args, "scaling"), {"workers_on": device, "workers": n, "size": args.size, "preset": args.preset,
                                            "rows": rows, "speedup": ratios}, args)
    print(f"JSON: {json_path(args, 'scaling')}")
    return 0
