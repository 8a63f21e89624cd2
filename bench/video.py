"""Video: temporal stability against the footage's own and against painting each frame alone, fidelity and cost.

Each --clip (default: both bundled clips, assets/clip.mp4, a person signing in a still
room, and assets/bottles.mp4, hands moving bottles) at --size px with --preset and --style,
once per --modes temporal mode and --batch entry, in this process, from scratch. Per run:
iterations and wall time, in all, per frame, of the first frame and of a later one; mean
per-frame content and style distances; and, as ``nstpipe metrics --gaps`` computes them,
at every --gaps gap the E_warp of the painted clip (Lai et al. 2018, flow computed directly
between source frames t and t+k), the footage's own and their ratio, the same ratio by two
judges that the painter is not held to (no targets): along Farnebäck's flow, and the change
where the source stood still, pixel by pixel without a flow; plus the settling figure (mean
gap-1 E_warp of the first 10 frame pairs over the median of the later ones), the footage's
own ("footage") and the same figure of each pair's ratio to the footage's ("paired": the
start's settling without the footage's own motion).

Targets: for every ``flow`` run, the ratio at most 2 at every gap the clip is long enough
for, and settling at most 2, both plain and paired (a clip whose footage moves most over
its first frames can miss the plain one by following that motion); a frame after the
first at most 0.25 of the first's wall time and iterations. With ``flow`` and ``none`` both run at one batch: E_warp(flow) <= 0.1
E_warp(none), content(flow) <= 1.25 content(none), iterations(flow) <= 0.4
iterations(none). With two --batch entries (one chain, 1, against the chains --batch 0
paints in step) their wall time and quality side by side. Peak memory against the
clip's length: ``bench memory``.

    python -m bench video
    python -m bench video --clip assets/clip.mp4 --frames 30 --modes flow
    python -m bench video --clip data/video/asl_book.mkv --modes flow --batch 1,0 --size 256 --device cuda
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from bench.common import ASSETS, add_common, csv, describe, ints, json_path, key_values, machine, verdict, write_json
from nstpipe.app import measure_video, stylize_video
from nstpipe.config import build_settings
from nstpipe.engine.metrics import parse_gaps
from nstpipe.errors import ConfigError
from nstpipe.events import FrameDone

CLIPS = (ASSETS / "clip.mp4", ASSETS / "bottles.mp4")
TARGETS = {"warping_error": 0.1, "content": 1.25, "iterations": 0.4, "later_over_first": 0.25}
FOOTAGE_TARGETS = {"ratio": 2.0, "settling": 2.0}  # as steady as the footage itself


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "video", size=128, device="auto")
    parser.add_argument("--clip", action="append", default=None,
                        help="a video to paint; repeat it or give a comma list (default: assets/clip.mp4,assets/bottles.mp4)")
    parser.add_argument("--style", type=Path, default=ASSETS / "starry_night.jpg")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--frames", type=int, default=None, help="only the first N frames")
    parser.add_argument("--modes", type=csv, default=["flow", "prev", "none"], help="temporal modes (default flow,prev,none)")
    parser.add_argument("--batch", type=ints, default=None,
                        help="chains painted in step, one run each (e.g. 1,0; default: the preset's)")
    parser.add_argument("--gaps", default="1,5,15,30", help="frame distances to measure E_warp at (1 is always among them)")
    parser.add_argument("--temporal-weight", type=float, default=None)
    parser.add_argument("--later-iterations", type=int, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other setting; repeatable")
    parser.add_argument("--tag", default="", help="added to the output names, so that runs with other settings keep theirs")


def main(args: argparse.Namespace) -> int:
    settle(args)
    args.out.mkdir(parents=True, exist_ok=True)
    print(describe(machine(args.device)), flush=True)
    clips: list[dict[str, Any]] = []
    for clip in args.clips:
        rows = [run_mode(clip, mode, batch, args) for batch in args.batch for mode in args.modes]
        print_clip(rows, args)
        checks = {f"{r['mode']}_b{r['batch']}_{key}": value for r in rows if r["mode"] == "flow"
                  for key, value in footage_checks(r).items()}
        checks.update(relative_checks(rows))
        for key, check in checks.items():
            print(f"{key:<36} {check['value']:7.3f}  (target <= {check['limit']})  {verdict(check['met'])}")
        clips.append({"clip": str(clip), "rows": rows, "checks": checks, "batches": batch_ratios(rows)})
        write_json(json_path(args, "video"), {"size": args.size, "preset": args.preset, "frames": args.frames,
                                              "gaps": list(args.gaps), "set": args.set, "style": str(args.style),
                                              "clips": clips}, args)
    print(f"JSON: {json_path(args, 'video')}")
    return 0


def settle(args: argparse.Namespace) -> None:
    """Check and parse what argparse leaves as text: one line naming the bad option."""
    args.clips = [Path(p) for item in (args.clip or [",".join(map(str, CLIPS))]) for p in csv(item)]
    for clip in args.clips:
        if not clip.is_file():
            raise SystemExit(f"bench video: --clip {clip}: no such file")
    try:
        args.gaps = parse_gaps(args.gaps)
    except ValueError as exc:
        raise SystemExit(f"bench video: --gaps: {exc}") from None
    args.set = key_values(args.set, "video")
    args.batch = args.batch or [None]
    try:
        build_settings(args.preset, None, args.set)
    except ConfigError as exc:
        raise SystemExit(f"bench video: --set: {exc}") from None


def run_mode(clip: Path, mode: str, batch: int | None, args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {"size": args.size, "device": args.device, "temporal": mode, **args.set}
    for key in ("temporal_weight", "later_iterations"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    if batch is not None:
        overrides["batch"] = batch
    settings = build_settings(args.preset, None, overrides)
    name = f"{clip.stem}_{mode}{'' if batch is None else f'_b{batch}'}{'_' + args.tag if args.tag else ''}"
    output, work = args.out / f"{name}.mp4", args.out / f"work_{name}"
    shutil.rmtree(work, ignore_errors=True)  # measure a full run, not a resume
    output.unlink(missing_ok=True)  # nor one that keeps the video of the last
    done: list[FrameDone] = []
    start = time.perf_counter()
    summary = stylize_video(clip, [args.style], output, settings, lambda e: done.append(e) if isinstance(e, FrameDone) else None,
                            work, args.frames)
    seconds = time.perf_counter() - start
    metrics = measure_video(clip, output, args.style, settings, lambda e: None, gaps=args.gaps)
    frames = len(metrics.frames)
    gaps = {}
    for gap in args.gaps:
        stylized, source = metrics.gap_means(gap)
        gaps[str(gap)] = {"warping_error": stylized, "source_warping_error": source, "ratio": metrics.ratio(gap),
                          "farneback_ratio": metrics.ratio(gap, "farneback"), "still_ratio": metrics.ratio(gap, "still")}
    done.sort(key=lambda f: f.index)
    first, later = done[0], done[1:]
    return {
        "clip": clip.name, "mode": mode, "batch": batch, "output": str(output), "frames": frames,
        "iterations": summary.iterations, "iterations_per_frame": round(summary.iterations / frames, 2),
        "seconds": round(seconds, 1), "seconds_per_frame": round(seconds / frames, 3),
        "first_frame_s": first.seconds, "first_frame_iterations": first.iterations,
        "later_frame_s": sum(f.seconds for f in later) / max(1, len(later)),
        "later_frame_iterations": sum(f.iterations for f in later) / max(1, len(later)),
        "content": metrics.mean("content"), "style": metrics.mean("style"), "settling": metrics.settling(),
        "source_settling": metrics.settling("source"), "paired_settling": metrics.paired_settling(), "gaps": gaps,
    }


def check(value: float, limit: float) -> dict[str, Any]:
    return {"value": round(value, 4), "limit": limit, "met": value <= limit}


def footage_checks(row: dict[str, Any]) -> dict[str, Any]:
    """Against the footage, and a later frame against the first; a gap the clip is too short for is left out."""
    checks = {f"ratio_gap{gap}": check(g["ratio"], FOOTAGE_TARGETS["ratio"]) for gap, g in row["gaps"].items()
              if g["ratio"] is not None}
    if row["settling"] is not None:
        checks["settling"] = check(row["settling"], FOOTAGE_TARGETS["settling"])
    if row["paired_settling"] is not None:
        checks["paired_settling"] = check(row["paired_settling"], FOOTAGE_TARGETS["settling"])
    if row["frames"] > 1:
        limit = TARGETS["later_over_first"]
        checks["later_over_first_wall"] = check(row["later_frame_s"] / row["first_frame_s"], limit)
        checks["later_over_first_iterations"] = check(row["later_frame_iterations"] / row["first_frame_iterations"], limit)
    return checks


def relative_checks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """flow against none at the same batch, on the gap-1 E_warp."""
    checks = {}
    for flow in (r for r in rows if r["mode"] == "flow"):
        none = next((r for r in rows if r["mode"] == "none" and r["batch"] == flow["batch"]), None)
        if none is None:
            continue
        values = {"warping_error": (flow["gaps"]["1"]["warping_error"], none["gaps"]["1"]["warping_error"]),
                  "content": (flow["content"], none["content"]), "iterations": (flow["iterations"], none["iterations"])}
        for key, (mine, theirs) in values.items():
            checks[f"flow_over_none_b{flow['batch']}_{key}"] = check(mine / theirs, TARGETS[key])
    return checks


def batch_ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The last --batch entry over the first, per mode: wall time and the quality each keeps."""
    ratios = {}
    for mode in {r["mode"] for r in rows}:
        mine = [r for r in rows if r["mode"] == mode]
        if len(mine) > 1:
            one, many = mine[0], mine[-1]
            ratios[mode] = {"over": [one["batch"], many["batch"]], "wall": many["seconds"] / one["seconds"],
                            "warping_error": many["gaps"]["1"]["warping_error"] / one["gaps"]["1"]["warping_error"],
                            "content": many["content"] / one["content"]}
            print(f"{mode}: batch {many['batch']} / batch {one['batch']}: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in ratios[mode].items() if k != "over"))
    return ratios


def number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_clip(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\n{rows[0]['clip']} at {args.size} px, {rows[0]['frames']} frames, preset {args.preset}"
          f"{', ' + ', '.join(f'{k}={v}' for k, v in args.set.items()) if args.set else ''}")
    print(f"{'mode':<6} {'batch':>5} {'iterations':>10} {'it/frame':>8} {'wall s':>7} {'s/frame':>7} {'1st s':>6} {'later s':>7} "
          f"{'content':>8} {'style':>7} {'settling':>8} {'footage':>8} {'paired':>7}")
    for r in rows:
        print(f"{r['mode']:<6} {number(r['batch'], 'd'):>5} {r['iterations']:>10} {r['iterations_per_frame']:>8} {r['seconds']:>7} "
              f"{r['seconds_per_frame']:>7} {r['first_frame_s']:>6.2f} {r['later_frame_s']:>7.3f} {r['content']:>8.3f} "
              f"{r['style']:>7.3f} {number(r['settling'], '8.2f'):>8} {number(r['source_settling'], '8.2f'):>8} "
              f"{number(r['paired_settling'], '7.2f'):>7}")
    print(f"{'mode':<6} {'batch':>5} {'gap':>4} {'E_warp':>9} {'footage':>9} {'ratio':>7} {'farneback':>9} {'still':>7}")
    for r in rows:
        for gap, g in r["gaps"].items():
            print(f"{r['mode']:<6} {number(r['batch'], 'd'):>5} {gap:>4} {number(g['warping_error'], '9.6f'):>9} "
                  f"{number(g['source_warping_error'], '9.6f'):>9} {number(g['ratio'], '7.2f'):>7} "
                  f"{number(g['farneback_ratio'], '9.2f'):>9} {number(g['still_ratio'], '7.2f'):>7}")
