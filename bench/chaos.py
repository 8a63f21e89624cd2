"""Chaos: a folder job and a video job on Ray workers while workers and the driver are killed.

The kills are SIGKILL at random points; the driver is rerun after each of its deaths until
the job ends. The archive has one broken file, whose failure must be recorded.

Prints, per job: kills of workers and of the driver, reruns, outputs expected / present /
valid (for video: frames in the output / finished frame files), recorded failures, work
redone (a finished output or frame written again), temp files left, and the Ray processes
still alive afterwards; writes the same as JSON.

    python -m bench chaos                 # 2 workers, 10 kills a job
    python -m bench chaos --kills 20 --seed 3
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from bench.common import ASSETS, NSTPIPE, add_common, json_path, make_archive, write_json
from nstpipe.jobs.failures import FAILED_SUFFIX
from nstpipe.media.video import probe
from nstpipe.media.writer import TEMP_PREFIX, read_record

ACTOR_TITLES = ("ray::_ImageActor", "ray::_VideoActor")


@dataclass
class Report:
    job: str
    worker_kills: int = 0
    driver_kills: int = 0
    reruns: int = 0
    exit_code: int | None = None
    expected: int = 0
    present: int = 0
    valid: int = 0
    failures_recorded: int = 0
    redone: int = 0
    temp_files: int = 0
    ray_processes_left: int = 0  # 2 s after the job ended
    ray_gone_after_s: float | None = None  # until no Ray process was left (None: not within 180 s)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) for every process we can see."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            found[int(entry)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline.strip())
    return found


def descendants(root: int) -> list[tuple[int, str]]:
    table = processes()
    family, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, cmd) in table.items():
            if ppid == parent:
                family.append((pid, cmd))
                frontier.append(pid)
    return family


def ray_processes() -> int:
    names = ("raylet", "gcs_server", "ray::", "default_worker.py")
    return sum(1 for _, cmd in processes().values() if any(n in cmd for n in names))


def wait_for_ray_to_go(since: float, limit: float = 180.0) -> float | None:
    """Seconds until no Ray process is left: a killed driver's agents outlive it a while."""
    while ray_processes():
        if time.perf_counter() - since > limit:
            return None
        time.sleep(1)
    return round(time.perf_counter() - since, 1)


def snapshot(paths: list[Path]) -> dict[Path, tuple[int, int, object]]:
    """(inode, mtime, stage) of each file: an atomic rewrite changes the first two."""
    found = {}
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        record = read_record(path)
        if record is not None:
            found[path] = (stat.st_ino, stat.st_mtime_ns, record.get("stage"))
    return found


def count_redone(before: dict[Path, tuple[int, int, object]], now: dict[Path, tuple[int, int, object]]) -> int:
    # A video frame is painted twice by design when a seam blends it (chain -> seam);
    # any other rewrite is lost work.
    return sum(1 for p, old in before.items() if p in now and now[p][:2] != old[:2] and now[p][2] == old[2])


def run_with_chaos(command: list[str], files: Callable[[], list[Path]], kills: int, rng: random.Random, report: Report) -> None:
    seen: dict[Path, tuple[int, int, object]] = {}
    budget = kills
    start = time.perf_counter()
    while True:
        driver = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while driver.poll() is None:
            if budget == 0:
                time.sleep(0.2)
                continue
            # A random point of the work: after 0, 1 or 2 more finished files, then up to 1.5 s.
            wait_for_files(driver, files, rng.randint(0, 2))
            time.sleep(rng.uniform(0.0, 1.5))
            if driver.poll() is not None:
                continue
            workers = [pid for pid, cmd in descendants(driver.pid) if cmd.startswith(ACTOR_TITLES)]
            if workers and rng.random() < 0.6:
                os.kill(rng.choice(workers), signal.SIGKILL)
                report.worker_kills += 1
            else:
                driver.send_signal(signal.SIGKILL)
                report.driver_kills += 1
            budget -= 1
        out, err = driver.communicate()
        now = snapshot(files())
        report.redone += count_redone(seen, now)
        seen.update(now)
        if driver.returncode >= 0:
            report.exit_code = driver.returncode
            report.notes += [line for line in (out + err).splitlines() if line.strip()][-4:]
            break
        report.reruns += 1
    report.seconds = round(time.perf_counter() - start, 1)


def wait_for_files(driver: subprocess.Popen[str], files: Callable[[], list[Path]], more: int) -> None:
    target = len(files()) + more
    while driver.poll() is None and len(files()) < target:
        time.sleep(0.05)


def images_job(work: Path, args: argparse.Namespace, rng: random.Random) -> Report:
    report = Report("images")
    archive, out = work / "archive", work / "styled"
    report.expected = len(make_archive(archive, args.images, per_folder=8))
    (archive / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # one failure to record, never a crash
    command = [*NSTPIPE, "images", str(archive), "-o", str(out), *common(args)]
    run_with_chaos(command, lambda: list(out.rglob("*.png")), args.kills, rng, report)
    outputs = [p for p in out.rglob("*.png") if not p.name.startswith(TEMP_PREFIX)]
    report.present = len(outputs)
    report.valid = sum(1 for p in outputs if (read_record(p) or {}).get("source"))
    report.failures_recorded = len(list(out.rglob(f"*{FAILED_SUFFIX}")))
    report.temp_files = len(list(out.rglob(f"{TEMP_PREFIX}*")))
    return report


def video_job(work: Path, args: argparse.Namespace, rng: random.Random) -> Report:
    report = Report("video")
    out, frames_dir = work / "painted.mp4", work / "frames"
    report.expected = args.frames
    command = [*NSTPIPE, "video", str(ASSETS / "clip.mp4"), "-o", str(out), "--frames", str(args.frames),
               "--work-dir", str(frames_dir), "--keep-frames", "--later-iterations", "3", *common(args)]
    run_with_chaos(command, lambda: list(frames_dir.rglob("frame-*.png")), args.kills, rng, report)
    frames = [p for p in frames_dir.rglob("frame-*.png")]
    report.present = probe(out).frame_count if out.exists() else 0
    report.valid = sum(1 for p in frames if read_record(p) is not None)
    report.temp_files = len(list(frames_dir.rglob(f"{TEMP_PREFIX}*"))) + len(list(work.glob(f"{TEMP_PREFIX}*")))
    return report


def common(args: argparse.Namespace) -> list[str]:
    return ["--style", str(ASSETS / "starry_night.jpg"), "--preset", "fast", "--size", str(args.size),
            "-n", str(args.iterations), "--scales", "1", "--device", "cpu", "--workers", str(args.workers), "-q"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "chaos", size=48, device=None)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--kills", type=int, default=10, help="kills per job (workers and driver together)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)


def main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    reports = []
    with tempfile.TemporaryDirectory(prefix="nstpipe-chaos-") as tmp:
        for job in (images_job, video_job):
            reports.append(job(Path(tmp), args, rng))
            ended = time.perf_counter()
            time.sleep(2)
            reports[-1].ray_processes_left = ray_processes()
            reports[-1].ray_gone_after_s = wait_for_ray_to_go(ended)
    columns = ["job", "worker_kills", "driver_kills", "reruns", "exit_code", "expected", "present", "valid",
               "failures_recorded", "redone", "temp_files", "ray_processes_left", "ray_gone_after_s", "seconds"]
    for column in columns:
        print(f"{column:<20}" + "".join(f"{str(getattr(r, column)):>12}" for r in reports))
    for r in reports:
        for note in r.notes:
            print(f"{r.job}: {note}")
    write_json(json_path(args, "chaos"), {"jobs": [asdict(r) for r in reports]}, args)
    print(f"JSON: {json_path(args, 'chaos')}")
    return 0
