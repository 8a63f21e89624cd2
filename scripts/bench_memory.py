#!/usr/bin/env python
"""Peak memory: flat in the size of an archive and the length of a video, set by --size.

Each run is a fresh ``nstpipe`` process whose peak RSS is taken by a wrapper process
(``run_measured``), so nothing of this process is counted.

1. archive: ``nstpipe images`` on generated archives of --archive pictures and of ten
   times as many (small JPEGs in folders of 50, painted at 32 px with 2 iterations: the
   archive's size changes the files and folders walked, planned and written, not the work
   per picture), then a resume of the larger one (every picture skipped). Target: the
   larger archive's peak within 10% of the smaller's.
2. video: ``nstpipe video`` on the first --memory-frames frames of --video and on four
   times as many (64 px, one scale, 3 iterations, 2 per later frame). Target: within 10%.
3. size: ``nstpipe image`` of tubingen.jpg at 128, 256 and 512 px (one scale, 3
   iterations): what one worker holds grows with --size; its peak above the smallest size's,
   next to the engine's own bound on one picture's memory at that size
   (``nstpipe.engine.stylize.image_memory``, which chooses batch sizes on a GPU).

Prints a table and writes JSON (--json, default bench_out/memory/bench_memory.json).
``scripts/bench.py`` runs the same as its ``memory`` section.

    .venv/bin/python scripts/bench_memory.py
    .venv/bin/python scripts/bench_memory.py --archive 100 --memory-frames 10
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nstpipe.config import build_settings  # noqa: E402
from nstpipe.engine.stylize import image_memory  # noqa: E402
from nstpipe.media.writer import atomic_write_json  # noqa: E402

DATA = ROOT / "data"
GROWTH_LIMIT = 1.10  # peak of the larger run over the smaller's
MIB = 1024 * 1024

# Runs a command and writes its peak RSS (KiB) to argv[1]. A wrapper, because a child forked
# straight from this process starts with this process's pages counted in its peak.
_PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(code)")


def run_measured(cmd: Sequence[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and output of one subprocess."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(rss_file), *cmd], capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
        rss_kib = int(rss_file.read_text())
    return wall, rss_kib / 1024, proc.stdout  # Linux reports KiB


def console_script(name: str) -> str:
    """The installed command ``name``: beside this interpreter (a virtual environment), else on PATH."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name}: command not found beside {sys.executable} or on PATH (pip install -e . installs it)")
    return found


def make_archive(root: Path, count: int, per_folder: int = 50) -> None:
    """``count`` distinct 48x40 JPEGs, ``per_folder`` to a folder."""
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(count)
    for i in range(count):
        folder = root / f"{i // per_folder:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i:07d}.jpg", quality=80)


def run_archive(args: argparse.Namespace, out: Path, style: Path) -> list[dict[str, Any]]:
    rows = []
    for count in (args.archive, 10 * args.archive):
        source, target = out / f"archive_{count}", out / f"archive_{count}_out"
        make_archive(source, count)
        shutil.rmtree(target, ignore_errors=True)  # a full run, not a resume
        cmd = [console_script("nstpipe"), "images", str(source), "--style", str(style), "-o", str(target),
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
    rows = []
    for frames in (args.memory_frames, 4 * args.memory_frames):
        output, work = out / f"{args.video.stem}_{frames}.mp4", out / f"work_{args.video.stem}_{frames}"
        shutil.rmtree(work, ignore_errors=True)
        output.unlink(missing_ok=True)  # a run that paints, not one that keeps the video of the last
        cmd = [console_script("nstpipe"), "video", str(args.video), "--style", str(style), "-o", str(output),
               "--size", "64", "--frames", str(frames), "--scales", "1", "-n", "3", "--later-iterations", "2",
               "--work-dir", str(work), "--device", args.device, "-q"]
        wall, rss, _ = run_measured(cmd)
        rows.append({"run": f"{frames} frames", "items": frames, "wall_s": wall, "peak_rss_mib": rss})
    return rows


def run_sizes(args: argparse.Namespace, out: Path, style: Path) -> list[dict[str, Any]]:
    photo = args.data / "content" / "tubingen.jpg"
    # What the run holds: one scale, 3 iterations (so 3 curvature pairs).
    engine = dataclasses.replace(build_settings("default").engine, scales=1, iterations=3)
    rows: list[dict[str, Any]] = []
    for side in args.memory_sizes:
        output = out / f"tubingen_{side}.png"
        output.unlink(missing_ok=True)  # a run that paints, not one that keeps the output of the last
        cmd = [console_script("nstpipe"), "image", str(photo), "--style", str(style), "-o", str(output),
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


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """The three measurements, printed as one table; ``args`` needs data, device, out,
    video, styles and the options of ``add_arguments`` (the first painting is used)."""
    out = args.out / "memory"
    out.mkdir(parents=True, exist_ok=True)
    style = args.data / "styles" / f"{args.styles[0]}.jpg"
    report: dict[str, Any] = {
        "archive": {"rows": run_archive(args, out, style)},
        "video": {"video": str(args.video), "rows": run_video_length(args, out, style)},
        "size": {"rows": run_sizes(args, out, style)},
    }
    for key in ("archive", "video"):
        report[key]["growth"] = growth(report[key]["rows"])
    print_memory(report)
    return report


def print_memory(report: dict[str, Any]) -> None:
    print("\npeak memory (max RSS of a fresh nstpipe process, start-up included)")
    print(f"{'what':<8} {'run':<17} {'wall s':>7} {'RSS MiB':>8} {'above MiB':>9} {'bound MiB':>9}")
    for key, section in report.items():
        for row in section["rows"]:
            extra = f" {row['above_smallest_mib']:>9.0f} {row['estimate_mib']:>9.0f}" if "estimate_mib" in row else ""
            print(f"{key:<8} {row['run']:<17} {row['wall_s']:>7.1f} {row['peak_rss_mib']:>8.0f}{extra}")
    for key in ("archive", "video"):
        g = report[key]["growth"]
        print(f"{key:<8} larger/smaller peak {g['ratio']:.3f} (target <= {g['limit']})  {'met' if g['met'] else 'NOT MET'}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--archive", type=int, default=200, help="pictures in the smaller archive (the larger: ten times)")
    parser.add_argument("--memory-frames", type=int, default=25,
                        help="frames of the shorter video (the longer: four times)")
    parser.add_argument("--memory-sizes", default="128,256,512", type=lambda s: [int(v) for v in s.split(",")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--video", type=Path, default=DATA / "video" / "asl_book.mkv")
    parser.add_argument("--styles", default="starry_night", type=lambda s: s.split(","))
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out")
    parser.add_argument("--json", type=Path, default=None, help="default: OUT/memory/bench_memory.json")
    add_arguments(parser)
    args = parser.parse_args()
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_avg_start": os.getloadavg(), **run_memory(args)}
    path = args.json or args.out / "memory" / "bench_memory.json"
    atomic_write_json(path, report)
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
