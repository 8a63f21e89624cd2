"""Video benchmark: temporal stability, fidelity and cost of --temporal flow / prev / none.

1. ``asl_book.mkv`` (../shared/data/video) at --size 128 px, default preset, once per
   temporal mode, in this process: total optimizer iterations, wall time, E_warp (Lai et
   al. 2018, as ``nstpipe metrics`` computes it), mean per-frame content and style distances.
   Targets: E_warp(flow) <= 0.1 E_warp(none); content(flow) <= 1.25 content(none);
   iterations(flow) <= 0.4 iterations(none).
2. Peak memory (max RSS of a fresh ``nstpipe video`` process) for the first 30 and the
   first 100 frames of ``bottle-detection.mp4`` at the same size: streaming means within
   10%. Memory depends on the frame size, not on the number of iterations, so these runs
   use a small budget (5 iterations, 3 per later frame) to save time.

Prints a table and writes JSON (--json, default bench_out/video/bench_video.json); the
videos are kept in bench_out/video/ for a look.

    .venv/bin/python scripts/bench_video.py             # the whole benchmark
    .venv/bin/python scripts/bench_video.py --frames 20 --modes flow,none --skip-memory
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_memory import console_script, run_measured  # noqa: E402

from pipeline.app import measure_video, stylize_video  # noqa: E402
from pipeline.config import build_settings  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
TARGETS = {"warping_error": 0.1, "content": 1.25, "iterations": 0.4}


def run_mode(mode: str, args: argparse.Namespace, style: Path) -> dict[str, Any]:
    overrides: dict[str, Any] = {"size": args.size, "device": args.device, "temporal": mode}
    if args.temporal_weight is not None:
        overrides["temporal_weight"] = args.temporal_weight
    if args.later_iterations is not None:
        overrides["later_iterations"] = args.later_iterations
    settings = build_settings(args.preset, None, overrides)
    output = args.out / f"asl_book_{mode}.mp4"
    work = args.out / f"work_{mode}"
    shutil.rmtree(work, ignore_errors=True)  # measure a full run, not a resume
    output.unlink(missing_ok=True)  # nor one that keeps the video of the last
    start = time.perf_counter()
    summary = stylize_video(args.video, [style], output, settings, lambda e: None, work, args.frames)
    seconds = time.perf_counter() - start
    metrics = measure_video(args.video, output, style, settings, lambda e: None).summary()
    return {"mode": mode, "iterations": summary.iterations, "seconds": round(seconds, 1), **metrics}


def peak_rss_mib(frames: int, args: argparse.Namespace, style: Path) -> float:
    """Max RSS of a fresh nstpipe process stylizing the first ``frames`` frames."""
    output = args.out / f"bottle_{frames}.mp4"
    shutil.rmtree(args.out / f"work_bottle_{frames}", ignore_errors=True)
    cmd = [console_script("nstpipe"), "video", str(args.memory_video), "--style", str(style), "-o", str(output),
           "--size", str(args.size), "--frames", str(frames), "--device", args.device, "--scales", "1", "-n", "5",
           "--later-iterations", "3", "--work-dir", str(args.out / f"work_bottle_{frames}"), "-q"]
    return run_measured(cmd)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=DATA / "video" / "asl_book.mkv")
    parser.add_argument("--memory-video", type=Path, default=DATA / "video" / "bottle-detection.mp4")
    parser.add_argument("--style", type=Path, default=DATA / "styles" / "starry_night.jpg")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames (quick runs)")
    parser.add_argument("--modes", default="flow,prev,none")
    parser.add_argument("--temporal-weight", type=float, default=None)
    parser.add_argument("--later-iterations", type=int, default=None)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "video")
    parser.add_argument("--json", type=Path, default=ROOT / "bench_out" / "video" / "bench_video.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    rows = [run_mode(mode, args, args.style) for mode in args.modes.split(",")]
    by_mode = {row["mode"]: row for row in rows}
    print(f"{args.video.name} at {args.size} px, {rows[0]['frames']} frames, preset {args.preset}")
    print(f"{'mode':<6} {'iterations':>10} {'wall s':>7} {'E_warp':>9} {'source E_warp':>13} {'content':>8} {'style':>7}")
    for r in rows:
        print(f"{r['mode']:<6} {r['iterations']:>10} {r['seconds']:>7} {r['warping_error']:>9.5f} "
              f"{r['source_warping_error']:>13.5f} {r['content']:>8.3f} {r['style']:>7.3f}")
    checks: dict[str, Any] = {}
    if "flow" in by_mode and "none" in by_mode:
        flow, none = by_mode["flow"], by_mode["none"]
        for key, limit in TARGETS.items():
            ratio = flow[key] / none[key]
            checks[key] = {"flow_over_none": round(ratio, 4), "limit": limit, "met": ratio <= limit}
            print(f"flow/none {key:<14} {ratio:6.3f}  (target <= {limit})  {'met' if ratio <= limit else 'NOT MET'}")

    memory: dict[str, Any] = {}
    if not args.skip_memory:
        for frames in (30, 100):
            memory[str(frames)] = round(peak_rss_mib(frames, args, args.style), 1)
        growth = memory["100"] / memory["30"]
        memory["ratio_100_over_30"] = round(growth, 4)
        memory["met"] = growth <= 1.10
        print(f"peak RSS, {args.memory_video.name} at {args.size} px: first 30 frames {memory['30']} MiB, "
              f"first 100 frames {memory['100']} MiB, ratio {growth:.3f} (target <= 1.10)")

    record = {"video": str(args.video), "size": args.size, "preset": args.preset, "frames": args.frames,
              "rows": rows, "checks": checks, "peak_rss_mib": memory}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.json}")
    met = all(c["met"] for c in checks.values()) and memory.get("met", True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
