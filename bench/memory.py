"""Peak memory: flat in the size of an archive and the length of a video, set by --size.

Each run is a fresh ``nstpipe`` process whose peak RSS is taken by a wrapper process
(``bench.common.run_measured``), so nothing of this process is counted.

1. archive: ``nstpipe images`` on generated archives of --archive pictures and of ten
   times as many (small JPEGs in folders of 50, painted at 32 px with 2 iterations: the
   archive's size changes the files and folders walked, planned and written, not the work
   per picture), then a resume of the larger one (every picture skipped). Target: the
   larger archive's peak within 10% of the smaller's.
2. video: ``nstpipe video`` on the first --memory-frames frames of --video, the shorter and
   the longer (--video-size px, one scale, --video-iterations, --video-later-iterations per
   later frame: memory depends on the frame size, not on the iterations). Target: within 10%.
3. size: ``nstpipe image`` of tubingen.jpg at --memory-sizes px (one scale, 3 iterations):
   what one worker holds grows with --size; its peak above the smallest size's, next to the
   engine's own bound on one picture's memory at that size
   (``nstpipe.engine.stylize.image_memory``, which chooses batch sizes on a GPU).

    python -m bench memory
    python -m bench memory --archive 100 --memory-frames 10,40
    python -m bench memory --only video --video data/video/bottle-detection.mp4 --memory-frames 30,100 \\
        --video-size 128 --video-iterations 5 --video-later-iterations 3
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path
from typing import Any

from bench.common import (
    NSTPIPE,
    add_common,
    csv,
    describe,
    ints,
    json_path,
    machine,
    make_archive,
    photo_path,
    run_measured,
    style_path,
    write_json,
)
from nstpipe.config import build_settings
from nstpipe.engine.stylize import image_memory

GROWTH_LIMIT = 1.10  # peak of the larger run over the smaller's
MIB = 1024 * 1024
SECTIONS = ("archive", "video", "size")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "memory")
    parser.add_argument("--only", type=csv, default=list(SECTIONS), help=f"of {', '.join(SECTIONS)} (default all)")
    parser.add_argument("--style", default="starry_night", help="the painting in DATA/styles")
    parser.add_argument("--archive", type=int, default=200, help="pictures in the smaller archive (the larger: ten times)")
    parser.add_argument("--video", type=Path, default=None, help="default DATA/video/asl_book.mkv")
    parser.add_argument("--memory-frames", type=ints, default=[25, 100], help="frames of the shorter and the longer video")
    parser.add_argument("--video-size", type=int, default=64)
    parser.add_argument("--video-iterations", type=int, default=3)
    parser.add_argument("--video-later-iterations", type=int, default=2)
    parser.add_argument("--memory-sizes", type=ints, default=[128, 256, 512])


def run_archive(args: argparse.Namespace, out: Path, style: Path) -> list[dict[str, Any]]:
    rows = []
    for count in (args.archive, 10 * args.archive):
        source, target = out / f"archive_{count}", out / f"archive_{count}_out"
        make_archive(source, count)
        shutil.rmtree(target, ignore_errors=True)  # a full run, not a resume
        cmd = [*NSTPIPE, "images", str(source), "--style", str(style), "-o", str(target),
               "--size", "32", "-n", "2", "--scales", "1", "--device", args.device, "-q"]
        wall, rss, _ = run_measured(cmd)
        painted = sum(1 for _ in target.rglob("*.png"))
        if painted != count:  # a run that failed its pictures would measure nothing
            raise RuntimeError(f"{source}: {painted} of {count} pictures painted")
        rows.append({"run": f"{count} pictures", "items": count, "painted": painted, "wall_s": wall, "peak_rss_mib": rss})
        if count == 10 * args.archive:
            wall, rss, _ = run_measured(cmd)  # everything is done: a resume walks and skips it all
            rows.append({"run": f"{count}, resumed", "items": count, "painted": 0, "wall_s": wall, "peak_rss_mib": rss})
    return rows


def run_video_length(args: argparse.Namespace, out: Path, style: Path) -> list[dict[str, Any]]:
    args.video = args.video or args.data / "video" / "asl_book.mkv"
    rows = []
    for frames in args.memory_frames:
        output, work = out / f"{args.video.stem}_{frames}.mp4", out / f"work_{args.video.stem}_{frames}"
        shutil.rmtree(work, ignore_errors=True)
        output.unlink(missing_ok=True)  # a run that paints, not one that keeps the video of the last
        cmd = [*NSTPIPE, "video", str(args.video), "--style", str(style), "-o", str(output),
               "--size", str(args.video_size), "--frames", str(frames), "--scales", "1", "-n", str(args.video_iterations),
               "--later-iterations", str(args.video_later_iterations),
               "--work-dir", str(work), "--device", args.device, "-q"]
        wall, rss, _ = run_measured(cmd)
        rows.append({"run": f"{frames} frames", "items": frames, "wall_s": wall, "peak_rss_mib": rss})
    return rows


def run_sizes(args: argparse.Namespace, out: Path, style: Path) -> list[dict[str, Any]]:
    photo = photo_path(args)
    # What the run holds: one scale, 3 iterations (so 3 curvature pairs).
    engine = dataclasses.replace(build_settings("default").engine, scales=1, iterations=3)
    rows: list[dict[str, Any]] = []
    for side in args.memory_sizes:
        output = out / f"tubingen_{side}.png"
        output.unlink(missing_ok=True)  # a run that paints, not one that keeps the output of the last
        cmd = [*NSTPIPE, "image", str(photo), "--style", str(style), "-o", str(output),
               "--size", str(side), "-n", "3", "--scales", "1", "--device", args.device, "-q"]
        wall, rss, _ = run_measured(cmd)
        rows.append({"run": f"{side} px", "side": side, "wall_s": wall, "peak_rss_mib": rss,
                     "above_smallest_mib": rss - (rows[0]["peak_rss_mib"] if rows else rss),
                     "estimate_mib": image_memory(side, engine) / MIB})
    return rows


def growth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The larger run's peak over the smaller's (the first two rows)."""
    ratio = rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"]
    return {"ratio": round(ratio, 4), "limit": GROWTH_LIMIT, "met": ratio <= GROWTH_LIMIT}


def main(args: argparse.Namespace) -> int:
    if not args.only or not set(args.only) <= set(SECTIONS):
        raise SystemExit(f"bench memory: --only takes {', '.join(SECTIONS)}, not {','.join(args.only)}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(describe(machine(args.device)), flush=True)
    style = style_path(args, args.style)
    runs = {"archive": run_archive, "video": run_video_length, "size": run_sizes}
    report: dict[str, Any] = {}
    for key in args.only:
        report[key] = {"rows": runs[key](args, args.out, style)}
        if key in ("archive", "video"):
            report[key]["growth"] = growth(report[key]["rows"])
        write_json(json_path(args, "memory"), report, args)
    print_memory(report)
    print(f"JSON: {json_path(args, 'memory')}")
    return 0


def print_memory(report: dict[str, Any]) -> None:
    print("\npeak memory (max RSS of a fresh nstpipe process, start-up included)")
    print(f"{'what':<8} {'run':<17} {'wall s':>7} {'RSS MiB':>8} {'above MiB':>9} {'bound MiB':>9}")
    for key, section in report.items():
        for row in section["rows"]:
            extra = f" {row['above_smallest_mib']:>9.0f} {row['estimate_mib']:>9.0f}" if "estimate_mib" in row else ""
            print(f"{key:<8} {row['run']:<17} {row['wall_s']:>7.1f} {row['peak_rss_mib']:>8.0f}{extra}")
    for key in (k for k in ("archive", "video") if k in report):
        g = report[key]["growth"]
        print(f"{key:<8} larger/smaller peak {g['ratio']:.3f} (target <= {g['limit']})  {'met' if g['met'] else 'NOT MET'}")


