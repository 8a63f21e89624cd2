"""What every subcommand shares: where the data and outputs live, the machine's facts, the
common options, JSON and table output, and the measurement of a subprocess."""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from nstpipe.engine.vgg import VGGFeatures
from nstpipe.media.weights import load_weights
from nstpipe.media.writer import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"  # the benchmark inputs, with their licences in data/README.md
ASSETS = ROOT / "assets"  # the demo's clip and painting
OUT = ROOT / "bench_out"
STYLES = ("starry_night", "the_scream", "shipwreck")
# A subprocess runs this checkout's nstpipe, whatever is installed.
NSTPIPE = (sys.executable, "-m", "nstpipe")


def csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def ints(text: str) -> list[int]:
    return [int(item) for item in csv(text)]


def add_common(parser: argparse.ArgumentParser, name: str, *, size: int | None = None, device: str | None = "cpu",
               precision: bool = False) -> None:
    """The options every subcommand reads the same way; ``size``: its default long side (None: no --size)."""
    parser.add_argument("--data", type=Path, default=DATA, help="benchmark inputs (default: data/ in the repository)")
    parser.add_argument("--out", type=Path, default=OUT / name, help=f"folder for what it writes (default bench_out/{name})")
    parser.add_argument("--json", type=Path, default=None, help=f"results (default OUT/{name}.json)")
    if size is not None:
        parser.add_argument("--size", type=int, default=size, help=f"long side in px (default {size})")
    if device is not None:
        parser.add_argument("--device", default=device, help=f"cpu, cuda, cuda:N or auto (default {device})")
    if precision:
        parser.add_argument("--precision", default=None, help="fp32, bf16, fp16 or auto (default: the preset's)")


def style_path(args: argparse.Namespace, name: str) -> Path:
    return Path(args.data) / "styles" / f"{name}.jpg"


def photo_path(args: argparse.Namespace) -> Path:
    return Path(args.data) / "content" / "tubingen.jpg"


def encoder(layers: Sequence[str], pooling: str = "max") -> VGGFeatures:
    """VGG19 with the embedded weights, cut after ``layers``."""
    return VGGFeatures(embedded_weights(), layers, pooling)


@functools.cache
def embedded_weights() -> Any:
    return load_weights("embedded")


# -- the machine --------------------------------------------------------------------------------------


@functools.cache
def machine(device: str = "cpu") -> dict[str, Any]:
    """The CPU's model and bf16 units, cores, torch, threads and the GPU: what a figure depends on."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    flags = fields.get("flags", "").split()
    bf16 = "amx" if "amx_tile" in flags else "avx512_bf16" if "avx512_bf16" in flags else "no bf16"
    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "cpu": fields.get("model name") or platform.processor() or platform.machine(),
        "vendor": fields.get("vendor_id", ""),
        "amx": "amx_tile" in flags, "bf16_units": bf16, "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "device": device, "load_avg_start": os.getloadavg()[0],
    }
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def describe(info: Mapping[str, Any]) -> str:
    gpu = f", {info['gpu']}" if info.get("gpu") else ""
    return (f"{info['cpu']} ({info['bf16_units']}), {info['cores']} cores{gpu}, torch {info['torch']}, "
            f"{info['threads']} threads, load {info['load_avg_start']:.2f}")


# -- output -------------------------------------------------------------------------------------------


def json_path(args: argparse.Namespace, name: str) -> Path:
    return Path(args.json) if args.json else Path(args.out) / f"{name}.json"


def write_json(path: Path, payload: Mapping[str, Any], args: argparse.Namespace) -> None:
    """``payload`` with the exact command line and the machine's facts, written atomically (so
    a run killed midway keeps what was written last)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    facts = machine(getattr(args, "device", "cpu"))
    atomic_write_json(path, {"command": getattr(args, "command", None), "machine": facts,
                             "load_avg_now": os.getloadavg()[0], **payload})


Column = tuple[str, str, str]  # heading, key of the row, format spec ("" for str())


def cell(value: Any, spec: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or not spec:
        return str(value)
    return format(value, spec)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> None:
    """Rows as aligned columns: text to the left, numbers to the right."""
    cells = [[cell(row.get(key), spec) for _, key, spec in columns] for row in rows]
    widths = [max([len(title)] + [len(c[i]) for c in cells]) for i, (title, _, _) in enumerate(columns)]
    left = [bool(rows) and isinstance(rows[0].get(key), str) for _, key, _ in columns]

    def line(values: Sequence[str]) -> str:
        return " ".join(v.ljust(w) if lft else v.rjust(w) for v, w, lft in zip(values, widths, left)).rstrip()

    print(line([title for title, _, _ in columns]))
    for c in cells:
        print(line(c), flush=True)


def verdict(met: bool | None) -> str:
    return {True: "met", False: "NOT MET", None: "-"}[met]


# -- subprocesses -------------------------------------------------------------------------------------

# Runs a command and writes its peak RSS (KiB) to argv[1]. A wrapper, because a child forked
# straight from this process starts with this process's pages counted in its peak.
_PEAK_RSS = ("import resource, subprocess, sys; code = subprocess.call(sys.argv[2:]); "
             "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); "
             "sys.exit(code)")


def run_measured(cmd: Sequence[str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) and output of one subprocess, which runs this checkout's code."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(rss_file), *cmd], capture_output=True, text=True, env=env)
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
        raise SystemExit(f"{name}: command not found beside {sys.executable} or on PATH")
    return found


def make_archive(root: Path, count: int, *, photo: Path | None = None, per_folder: int = 50) -> list[Path]:
    """``count`` distinct JPEGs, ``per_folder`` to a folder: crops of ``photo`` (400x300), else
    48x40 noise (the work per picture is then nil beside walking, planning and writing)."""
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(count)
    source = Image.open(photo).convert("RGB") if photo else None
    paths = []
    for i in range(count):
        path = root / f"{i // per_folder:04d}" / f"{i:07d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            x, y = (i * 37) % 96, (i * 23) % 64
            source.crop((x, y, x + 400, y + 300)).save(path, quality=92)
        else:
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path, quality=80)
        paths.append(path)
    return paths


def key_values(items: Sequence[str], command: str) -> dict[str, str]:
    """--set's KEY=VALUE items as a dict; a malformed one is one line naming it."""
    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"bench {command}: --set {item!r}: wants KEY=VALUE")
        found[key.strip()] = value.strip()
    return found


def split_variant(text: str, separator: str = ";") -> tuple[str, dict[str, str]]:
    """``name:key=value;key=value`` -> (name, {key: value}); the values stay text."""
    name, _, body = text.partition(":")
    changes = {}
    for pair in filter(None, body.split(separator)):
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"bench: {text!r}: {pair!r} is not key=value")
        changes[key.strip()] = value.strip()
    return name, changes
