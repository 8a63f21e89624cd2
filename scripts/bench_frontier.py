#!/usr/bin/env python
"""The time-quality frontier of style transfer: our engine's presets and sweeps, pastiche, the reference.

For tubingen.jpg with each --styles painting (starry_night, the_scream, shipwreck in
DATA/styles) at --size (256) px, every run is a subprocess, so start-up is in its wall time:

* ours: ``nstpipe image`` (this checkout's package, by python -m nstpipe) with each --presets preset (fast,
  default, quality; all at --size) and each --points point. A point is
  ``name:key=value;key=value`` over the default preset (as scripts/bench_schedule.py's
  --variant), written into a temporary --config TOML. The default points sweep the budget
  (cAfB: A coarse_iterations at half size, B iterations at full size, the default's early
  stop; c100f220 is the default before this curve chose 40/60) and the early-stop rule of
  one schedule, c50f80: tolerance 0.003 and 0.01 against the default's 0.001.
* pastiche: ``pastiche --num-steps N`` for each --pastiche-steps N (50, 100, 150, 300), as
  scripts/bench_image.py runs it.
* reference: jcjohnson/neural-style's published output (DATA/reference/tubingen_*.png,
  paired as scripts/bench_image.py pairs them); distances only, no time.

Each of ours runs once per --precisions entry (fp32, auto). ``auto`` is resolved on
--device first (nstpipe.engine.stylize.resolve_precision); entries that resolve to the
same arithmetic run once, labelled e.g. ``fp32 (= auto here)`` on a CPU without AMX.
Per painting the runs of the two arms alternate, pastiche's spread evenly among ours, so
drifting load hits both.

Distances (scripts/bench_image.py's measure: embedded VGG19, every image resized so its
long side is 256): style = sum over relu1_1..relu5_1 of |G(out)-G(style)|^2/|G(style)|^2,
content = |F(out)-F(photo)|^2/|F(photo)|^2 at relu4_2 (both what the engine optimizes);
feature = the sliced Wasserstein distance over the VGG19 features of relu1_1..relu5_1, each
layer's over the painting's mean feature variance, summed; patch = the sliced Wasserstein
distance over 7x7 RGB patches at the full and at half the size, summed (both with fixed
directions: nstpipe.engine.distances). Lower is closer. Each row also has each distance
over the reference's (st/ref, co/ref, fe/ref, pa/ref) and wall/p150 (over the wall time of
pastiche's --pastiche-base-steps run, 150, of the same painting; the JSON key is
wall_over_pastiche, and rows measured before that run get it filled in once it is). A
'half' row per painting gives the floor: the closer half of the painting against the whole.

Target, per precision and painting: the default preset in at most 0.5 x pastiche-150's
wall time, with all four distances at most 0.8 x the reference's; reported for every pair
and whether it holds on all of them. Every one of our points (presets included) is marked
by whether it meets the same target.

Knee: per precision and painting, the cheapest (least wall time) of our points that
meets the target and whose loss (the four distances, each over the reference's, summed)
is within 10% of the lowest loss any of our points reached there; none when no point
qualifies. Over all paintings: of the points that qualify on every painting, the one with
the least total wall time. Also reported: the cheapest point meeting the target at all.

Duration of the full run on the 2-core AMD EPYC without bf16 units (fp32 only): 47 minutes
for three paintings on 2026-11-30 (quality about 190 s a painting, c100f220 100 s, pastiche
300 steps 140 s, the rest 20-80 s each). With AMX the bf16 pass adds about a fifth.
--smoke takes a few minutes.

Output: one line per run as it finishes, a summary at the end, JSON (--json; written
atomically after every row, so a run killed midway keeps its rows) and a PNG plot (--plot,
redrawn after every painting): a row per painting, the four distances against wall
time; our points as dots (a colour per precision), the presets as labelled stars, the knee
ringed, pastiche as a line labelled with its steps, the reference's distance dashed and
0.8 x it dotted, and 0.5 x pastiche-150's wall as a vertical line. Defaults:
bench_out/frontier/bench_frontier.json and frontier.png; --smoke writes
bench_frontier_smoke.json and frontier_smoke.png there, and its one pastiche run (20 steps)
stands in for pastiche-150. The stylized pictures stay in bench_out/frontier/images.

    .venv/bin/python scripts/bench_frontier.py            # full run: about 80 min on 2 cores without AMX
    .venv/bin/python scripts/bench_frontier.py --smoke    # 64 px, one painting, two points, pastiche 20 steps
    .venv/bin/python scripts/bench_frontier.py --device cuda
    .venv/bin/python scripts/bench_frontier.py --styles the_scream --precisions fp32 \\
        --points 'c30f50:coarse_iterations=30;iterations=50' --presets default --pastiche-steps 150
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Sequence, TypeVar

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_image  # noqa: E402
from bench_schedule import parse_variant  # noqa: E402

from nstpipe.config import EngineConfig, build_settings  # noqa: E402
from nstpipe.engine.device import resolve_device  # noqa: E402
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS  # noqa: E402
from nstpipe.engine.stylize import resolve_precision  # noqa: E402
from nstpipe.engine.vgg import VGGFeatures  # noqa: E402
from nstpipe.errors import ConfigError  # noqa: E402
from nstpipe.media.weights import load_weights  # noqa: E402
from nstpipe.media.writer import atomic_write_bytes, atomic_write_json, record_path  # noqa: E402

DATA = ROOT / "data"
OUT = ROOT / "bench_out" / "frontier"
STYLES = ["starry_night", "the_scream", "shipwreck"]
PRESETS = ["fast", "default", "quality"]
POINTS = [
    # Over the default preset (a start in the painting's colours): the style weight either
    # side of the preset's, a sliced term beside the Gram term, a shorter budget, and the
    # default before the distribution issue (no colour start, style weight 5).
    "w5:style_weight=5.0",
    "w20:style_weight=20.0",
    "sliced:style_loss=gram:1,sliced:1;sliced_directions=32",
    "c30f50:coarse_iterations=30;iterations=50",
    "earlier:color_start=none;style_weight=5.0",
]
PASTICHE_STEPS = [150]
SMOKE = {"size": 64, "points": ["c5f10:coarse_iterations=5;iterations=10", "c10f20:coarse_iterations=10;iterations=20"],
         "presets": ["default"], "pastiche_steps": [20], "pastiche_base": 20}
TARGET = {"wall_over_pastiche": 0.5, "distance_over_reference": 0.8, "knee_loss_slack": 1.1}
# The four distances every row is judged by: the two the engine optimizes (Gram, content) and
# the two it does not (sliced Wasserstein over VGG19 features and over 7x7 pixel patches).
DISTANCES = ("style", "content", "feature", "patch")

T = TypeVar("T")


@dataclasses.dataclass
class Run:
    """One run of an arm: ours (a preset or a point, at one precision) or pastiche."""

    arm: str
    name: str
    settings: str
    precision: str = "fp32"
    kind: str = "point"  # ours: preset or point
    preset: str = "default"
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    steps: int = 0


# -- the plan ---------------------------------------------------------------------------------------


def precision_labels(requested: Sequence[str], device: torch.device) -> list[tuple[str, str, str]]:
    """(label, value for the config, what it resolves to), one per distinct arithmetic."""
    groups: dict[str, list[str]] = {}
    for name in requested:
        groups.setdefault(resolve_precision(name, device), []).append(name)
    plans = []
    for resolved, names in groups.items():
        first, others = names[0], names[1:]
        if others:
            label = f"{first} (= {', '.join(others)} here)"
        else:
            label = first if first == resolved else f"{first} ({resolved} here)"
        plans.append((label, first, resolved))
    return plans


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def point_changes(text: str, base: EngineConfig) -> tuple[str, dict[str, Any]]:
    """``name:key=value;...`` -> (name, the engine settings it changes from the default preset)."""
    try:
        name, engine = parse_variant(text, base)
    except (AttributeError, TypeError, ValueError, ConfigError) as exc:
        raise SystemExit(f"bench_frontier.py: bad point {text!r}: {exc}") from None
    keys = [pair.partition("=")[0] for pair in filter(None, text.partition(":")[2].split(";"))]
    return name, {key: getattr(engine, key) for key in keys}


def our_runs(presets: Sequence[str], points: Sequence[str], precisions: Sequence[tuple[str, str, str]]) -> list[Run]:
    base = build_settings("default").engine
    runs = [Run("ours", p, f"preset {p}", label, "preset", p, {"precision": value})
            for p in presets for label, value, _ in precisions]
    for text in points:
        name, changes = point_changes(text, base)
        runs += [Run("ours", name, text, label, "point", "default", {**changes, "precision": value})
                 for label, value, _ in precisions]
    return runs


def interleave(first: Sequence[T], second: Sequence[T]) -> list[T]:
    """Both sequences in their own order, each spread evenly over the merged one."""
    keyed = [((i + 0.5) / len(first), 0, x) for i, x in enumerate(first)]
    keyed += [((j + 0.5) / len(second), 1, x) for j, x in enumerate(second)]
    return [x for *_, x in sorted(keyed, key=lambda k: (k[0], k[1]))]


# -- running and measuring ---------------------------------------------------------------------------


def run_ours(run: Run, photo: Path, style: Path, out: Path, size: int, device: str, tmp: Path) -> dict[str, Any]:
    config = tmp / f"{out.stem}.toml"
    config.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in run.config.items()))
    cmd = [sys.executable, "-m", "nstpipe", "image", str(photo), "--style", str(style), "-o", str(out),
           "--size", str(size), "--device", device, "--preset", run.preset, "--config", str(config), "-q"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
    record = json.loads(record_path(out).read_text())
    result = record["result"]
    return {"wall_s": wall, "iterations": result["iterations"], "engine_s": result["seconds"],
            "s_per_iter": result["seconds"] / max(1, result["iterations"]), "precision_used": record["settings"]["precision"]}


def reference_path(data: Path, painting: str) -> Path | None:
    path = data / "reference" / f"{dict(bench_image.PAIRS).get(painting, 'tubingen_' + painting)}.png"
    return path if path.exists() else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def meets_target(row: dict[str, Any]) -> bool | None:
    """None while a ratio it needs is unknown."""
    wall = row.get("wall_over_pastiche")
    ratios = [row.get(f"{key}_over_ref") for key in DISTANCES]
    if wall is None or any(r is None for r in ratios):
        return None
    limit = TARGET["distance_over_reference"]
    return wall <= TARGET["wall_over_pastiche"] and all(r <= limit for r in ratios if r is not None)


def fill_ratios(rows: list[dict[str, Any]], base_steps: int) -> None:
    """wall/pastiche-base for every timed row of a painting whose pastiche base run is in."""
    base = {r["painting"]: r["wall_s"] for r in rows if r["arm"] == "pastiche" and r["iterations"] == base_steps}
    for row in rows:
        if row["wall_s"] is not None and row["painting"] in base:
            row["wall_over_pastiche"] = row["wall_s"] / base[row["painting"]]
        if row["arm"] == "ours":
            row["target_met"] = meets_target(row)


def make_row(run: Run | None, painting: str, measured: dict[str, Any], ref: dict[str, float] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"arm": run.arm if run else "reference", "name": run.name if run else "reference",
           "kind": run.kind if run and run.arm == "ours" else None, "precision": run.precision if run else None,
           "settings": run.settings if run else "jcjohnson/neural-style, 512 px, 1000 L-BFGS iterations",
           "painting": painting, "iterations": measured.get("iterations"), "wall_s": measured.get("wall_s"),
           **{key: measured[key] for key in DISTANCES},
           **{f"{key}_over_ref": ratio(measured[key], ref[key] if ref else None) for key in DISTANCES},
           "wall_over_pastiche": None, "target_met": None, "load_avg": os.getloadavg()[0]}
    for key in ("engine_s", "s_per_iter", "precision_used"):
        if key in measured:
            row[key] = measured[key]
    return row


# -- the summary -------------------------------------------------------------------------------------


def loss(row: dict[str, Any]) -> float:
    """The four distances, each over the reference's, summed: no one of them decides alone."""
    return sum(row[f"{key}_over_ref"] for key in DISTANCES)


def knee_pool(ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points that meet the target with a loss within the slack of the lowest loss of ``ours``."""
    if not ours:
        return []
    best = min(loss(r) for r in ours)
    return [r for r in ours if r["target_met"] and loss(r) <= TARGET["knee_loss_slack"] * best]


def cheapest(rows: Iterable[dict[str, Any]]) -> str | None:
    rows = list(rows)
    return min(rows, key=lambda r: r["wall_s"])["name"] if rows else None


def pair_summary(rows: list[dict[str, Any]], label: str, painting: str) -> dict[str, Any]:
    ours = [r for r in rows if r["arm"] == "ours" and r["precision"] == label and r["painting"] == painting]
    default = next((r for r in ours if r["kind"] == "preset" and r["name"] == "default"), None)
    check = None
    if default is not None:
        check = {key: default[key] for key in ("wall_s", "wall_over_pastiche", *(f"{k}_over_ref" for k in DISTANCES))}
        check["met"] = default["target_met"]
    return {"precision": label, "painting": painting, "default": check,
            "meets_target": [r["name"] for r in ours if r["target_met"]],
            "cheapest_meeting_target": cheapest(r for r in ours if r["target_met"]),
            "knee": cheapest(knee_pool(ours)), "knee_pool": [r["name"] for r in knee_pool(ours)]}


def summarize(rows: list[dict[str, Any]], labels: Sequence[str], paintings: Sequence[str]) -> dict[str, Any]:
    pairs = [pair_summary(rows, label, p) for label in labels for p in paintings]
    default_met, knees = {}, {}
    for label in labels:
        mine = [s for s in pairs if s["precision"] == label]
        default_met[label] = all(s["default"] and s["default"]["met"] for s in mine)
        common = set.intersection(*(set(s["knee_pool"]) for s in mine)) if mine else set()
        walls = {n: sum(r["wall_s"] for r in rows if r["arm"] == "ours" and r["precision"] == label and r["name"] == n)
                 for n in common}
        knees[label] = min(walls, key=walls.__getitem__) if walls else None
    return {"pairs": pairs, "default_meets_target_on_every_pair": default_met, "knee_over_all_paintings": knees}


# -- printing ----------------------------------------------------------------------------------------


def fmt(value: float | None, spec: str, width: int) -> str:
    return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}}"


def header(base_steps: int) -> str:
    return (f"{'painting':<13} {'arm':<9} {'name':<17} {'precision':<19} {'iters':>5} {'wall s':>7} {'style d':>8} "
            f"{'content d':>9} {'feat d':>7} {'patch d':>8} {'st/ref':>6} {'co/ref':>6} {'fe/ref':>6} {'pa/ref':>6} "
            f"{f'w/p{base_steps}':>6} {'target':>6} {'load':>5}")


def row_line(row: dict[str, Any]) -> str:
    met = {True: "met", False: "no", None: "-" if row["arm"] != "ours" else "?"}[row["target_met"]]
    return (f"{row['painting']:<13} {row['arm']:<9} {row['name']:<17} {row['precision'] or '-':<19} "
            f"{fmt(row['iterations'], 'd', 5)} {fmt(row['wall_s'], '.1f', 7)} {fmt(row['style'], '.4f', 8)} "
            f"{fmt(row['content'], '.4f', 9)} {row['feature']:>7.4f} {row['patch']:>8.5f} "
            + " ".join(fmt(row[f"{key}_over_ref"], ".3f", 6) for key in DISTANCES)
            + f" {fmt(row['wall_over_pastiche'], '.3f', 6)} {met:>6} {row['load_avg']:>5.2f}")


def print_summary(report: dict[str, Any]) -> None:
    base = report["pastiche_base_steps"]
    order = {p: i for i, p in enumerate(report["styles"])}
    rows = sorted(report["rows"], key=lambda r: (order[r["painting"]], r["arm"] != "reference", r["wall_s"] or 0.0))
    print(f"\nall rows, by painting and wall time (target: wall <= {TARGET['wall_over_pastiche']} x pastiche-{base}'s, "
          f"all four distances <= {TARGET['distance_over_reference']} x the reference's; 'half' is the closer half of "
          "the painting against the whole, a floor for the feature and patch distances)")
    print(header(base))
    for row in rows:
        print(row_line(row))
    summary = report["summary"]
    print("\ndefault preset against the target; the cheapest point meeting it; the knee")
    print(f"{'precision':<19} {'painting':<13} {f'w/p{base}':>6} {'st/ref':>6} {'co/ref':>6} {'fe/ref':>6} {'pa/ref':>6} "
          f"{'met':>4}  {'cheapest meeting':<17} {'knee':<17}")
    for s in summary["pairs"]:
        d = s["default"] or {}
        met = {True: "yes", False: "no", None: "-"}[d.get("met")]
        print(f"{s['precision']:<19} {s['painting']:<13} {fmt(d.get('wall_over_pastiche'), '.3f', 6)} "
              + " ".join(fmt(d.get(f"{key}_over_ref"), ".3f", 6) for key in DISTANCES)
              + f" {met:>4}  {s['cheapest_meeting_target'] or '-':<17} {s['knee'] or '-':<17}")
        print(f"{'':<19} {'':<13} meeting the target: {', '.join(s['meets_target']) or 'none'}")
    for label, met in summary["default_meets_target_on_every_pair"].items():
        print(f"{label}: default meets the target on every pair: {'yes' if met else 'NO'}; "
              f"knee over all paintings: {summary['knee_over_all_paintings'][label] or 'none'}")


# -- the plot ----------------------------------------------------------------------------------------


def plot(report: dict[str, Any], path: Path) -> None:
    """Per painting, the four distances against wall time; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, base = report["rows"], report["pastiche_base_steps"]
    paintings = [p for p in report["styles"] if any(r["painting"] == p for r in rows)]
    if not paintings:
        return
    labels = [p["label"] for p in report["precisions"]]
    knees = {(s["precision"], s["painting"]): s["knee"] for s in report["summary"]["pairs"]}
    fig, axes = plt.subplots(len(paintings), len(DISTANCES), figsize=(6.5 * len(DISTANCES), 4.6 * len(paintings)), dpi=80,
                             squeeze=False)
    try:
        for i, painting in enumerate(paintings):
            for j, key in enumerate(DISTANCES):
                draw_panel(axes[i][j], [r for r in rows if r["painting"] == painting], key, labels, base,
                           {label: knees.get((label, painting)) for label in labels})
                axes[i][j].set_title(f"{painting}: {key} distance at {report['size']} px ({report['device']})")
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncol=min(len(names), 5), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (4.6 * len(paintings))))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def draw_panel(ax: Any, rows: list[dict[str, Any]], key: str, labels: Sequence[str], base: int,
               knees: dict[str, str | None]) -> None:
    for c, label in enumerate(labels):
        colour = f"C{c}"
        ours = [r for r in rows if r["arm"] == "ours" and r["precision"] == label]
        points = [r for r in ours if r["kind"] == "point"]
        presets = [r for r in ours if r["kind"] == "preset"]
        ax.scatter([r["wall_s"] for r in points], [r[key] for r in points], color=colour, s=22, label=f"ours, {label}")
        for r in points:
            ax.annotate(r["name"], (r["wall_s"], r[key]), fontsize=6, color=colour, xytext=(3, 3), textcoords="offset points")
        ax.scatter([r["wall_s"] for r in presets], [r[key] for r in presets], color=colour, marker="*", s=150,
                   edgecolor="black", linewidth=0.5, label=f"presets, {label}")
        for r in presets:
            ax.annotate(r["name"], (r["wall_s"], r[key]), fontsize=8, fontweight="bold", color=colour, xytext=(5, -10),
                        textcoords="offset points")
        knee = next((r for r in ours if r["name"] == knees.get(label)), None)
        if knee is not None:
            ax.scatter([knee["wall_s"]], [knee[key]], s=260, facecolors="none", edgecolors=colour, linewidth=1.5,
                       label=f"knee, {label}")
    pastiche = sorted((r for r in rows if r["arm"] == "pastiche"), key=lambda r: r["iterations"])
    ax.plot([r["wall_s"] for r in pastiche], [r[key] for r in pastiche], "s-", color="dimgray", markersize=4, label="pastiche")
    for r in pastiche:
        ax.annotate(f"{r['iterations']}", (r["wall_s"], r[key]), fontsize=7, color="dimgray", xytext=(3, 4),
                    textcoords="offset points")
    half = next((r for r in rows if r["arm"] == "half"), None)
    if half is not None and half[key] is not None:
        ax.axhline(half[key], color="navy", linestyle="--", linewidth=1, label="half of the painting")
    ref = next((r for r in rows if r["arm"] == "reference"), None)
    if ref is not None:
        ax.axhline(ref[key], color="firebrick", linestyle="--", linewidth=1, label="reference")
        ax.axhline(TARGET["distance_over_reference"] * ref[key], color="firebrick", linestyle=":", linewidth=1.2,
                   label=f"{TARGET['distance_over_reference']} x reference")
    anchor = next((r for r in pastiche if r["iterations"] == base), None)
    if anchor is not None:
        ax.axvline(TARGET["wall_over_pastiche"] * anchor["wall_s"], color="seagreen", linestyle="-.", linewidth=1,
                   label=f"{TARGET['wall_over_pastiche']} x pastiche-{base} wall")
    ax.set_xlabel("wall s (start-up included)")
    ax.set_ylabel(f"{key} d (lower is closer)")
    ax.grid(alpha=0.3)


# -- the machine ---------------------------------------------------------------------------------------


def cpu_info() -> tuple[str, bool]:
    """The CPU's model name and whether it has AMX tiles (/proc/cpuinfo, else lscpu)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        try:
            text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        except OSError:
            text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine()
    return model, "amx_tile" in fields.get("flags", "").split()


def machine(device: torch.device) -> dict[str, Any]:
    model, amx = cpu_info()
    flags = "amx" if amx else "avx512_bf16" if bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()) else "no bf16"
    info = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": model, "amx": amx, "bf16_units": flags, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cores": os.cpu_count(), "load_avg_start": os.getloadavg()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# -- main ------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    csv = lambda s: [v for v in s.split(",") if v]  # noqa: E731
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--styles", type=csv, default=None, help=f"paintings in DATA/styles (default {','.join(STYLES)})")
    parser.add_argument("--size", type=int, default=None, help="long side in px (default 256)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precisions", type=csv, default=["fp32", "auto"])
    parser.add_argument("--presets", type=csv, default=None, help=f"default {','.join(PRESETS)}")
    parser.add_argument("--points", action="append", default=None,
                        help="name:key=value;... over the default preset (repeatable; 'none': only the presets); default: "
                        + " ".join(POINTS))
    parser.add_argument("--pastiche-steps", type=lambda s: [int(v) for v in csv(s)], default=None,
                        help=f"default {','.join(map(str, PASTICHE_STEPS))}")
    parser.add_argument("--pastiche-base-steps", type=int, default=None,
                        help="pastiche run the wall times are compared with (default 150)")
    parser.add_argument("--smoke", action="store_true", help="a fast end-to-end check: 64 px, the first painting, "
                        "two points, the default preset, pastiche 20 steps (also the base)")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the pictures and the default outputs")
    parser.add_argument("--json", type=Path, default=None, help="default OUT/bench_frontier.json (--smoke: _smoke)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG; default OUT/frontier.png (--smoke: _smoke)")
    args = parser.parse_args()
    smoke = SMOKE if args.smoke else {}
    suffix = "_smoke" if args.smoke else ""
    args.styles = args.styles or (STYLES[:1] if args.smoke else STYLES)
    args.size = args.size or smoke.get("size", 256)
    args.presets = args.presets if args.presets is not None else smoke.get("presets", PRESETS)
    args.points = [p for p in args.points if p != "none"] if args.points is not None else smoke.get("points", POINTS)
    args.pastiche_steps = args.pastiche_steps or smoke.get("pastiche_steps", PASTICHE_STEPS)
    args.pastiche_base_steps = args.pastiche_base_steps or smoke.get("pastiche_base", 150)
    args.json = args.json or args.out / f"bench_frontier{suffix}.json"
    args.plot = args.plot or args.out / f"frontier{suffix}.png"
    if args.plot.suffix.lower() != ".png":
        raise SystemExit(f"bench_frontier.py: --plot must be a .png file, not {args.plot}")
    return args


def main() -> int:
    args = parse_args()
    try:
        device = resolve_device(args.device)
        precisions = precision_labels(args.precisions, device)
    except ConfigError as exc:
        raise SystemExit(f"bench_frontier.py: {exc}") from None
    ours = our_runs(args.presets, args.points, precisions)
    pastiche = [Run("pastiche", f"{n} steps", f"--num-steps {n}", steps=n) for n in args.pastiche_steps]
    plan = interleave(ours, pastiche)
    report: dict[str, Any] = {
        **machine(device), "size": args.size, "device": args.device, "styles": args.styles,
        "precisions": [{"requested": value, "label": label, "resolved": resolved} for label, value, resolved in precisions],
        "presets": args.presets, "points": args.points, "pastiche_steps": args.pastiche_steps,
        "pastiche_base_steps": args.pastiche_base_steps, "target": TARGET, "rows": [], "complete": False,
    }
    where = f"{report['cpu']} ({report['bf16_units']})" + (f", {report['gpu']}" if "gpu" in report else "")
    print(f"{where}, torch {report['torch']}, {report['threads']} threads, load {report['load_avg_start'][0]:.2f}; "
          f"{args.size} px on {args.device}; precisions: "
          + ", ".join(f"{label} -> {resolved}" for label, _, resolved in precisions), flush=True)
    print(f"{len(plan)} runs per painting x {len(args.styles)} paintings", flush=True)
    print(header(args.pastiche_base_steps), flush=True)
    run_all(args, plan, report)
    report["load_avg_end"] = os.getloadavg()
    report["complete"] = True
    save(report, args)
    print_summary(report)
    print(f"\nload average at the end {report['load_avg_end'][0]:.2f}; JSON: {args.json}; plot: {args.plot}")
    return 0


def save(report: dict[str, Any], args: argparse.Namespace, draw: bool = False) -> None:
    fill_ratios(report["rows"], args.pastiche_base_steps)
    labels = [p["label"] for p in report["precisions"]]
    painted = [p for p in args.styles if any(r["painting"] == p for r in report["rows"])]
    report["summary"] = summarize(report["rows"], labels, painted)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.json, report)
    if draw or report["complete"]:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(report, args.plot)


def run_all(args: argparse.Namespace, plan: list[Run], report: dict[str, Any]) -> None:
    encoder = VGGFeatures(load_weights("embedded"), STYLE_LAYERS + (CONTENT_LAYER,))
    photo_path = args.data / "content" / "tubingen.jpg"
    photo = bench_image.lanczos(photo_path)
    images = args.out / "images"
    images.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for painting in args.styles:
            style_path = args.data / "styles" / f"{painting}.jpg"
            style = bench_image.lanczos(style_path)
            ref_path = reference_path(args.data, painting)
            ref = bench_image.measure(encoder, ref_path, photo, style) if ref_path else None
            if ref is not None:
                record(report, args, make_row(None, painting, ref, ref))
            floor = {"style": None, "content": None, **bench_image.painting_floor(encoder, style)}
            record(report, args, {**make_row(None, painting, floor, ref), "arm": "half", "name": "half",
                                  "settings": "the closer half of the painting against the whole"})
            for run in plan:
                tag = run.name if run.arm == "pastiche" else f"{run.name}_{run.config['precision']}"
                out = images / f"{painting}_{args.size}_{run.arm}_{tag.replace(' ', '')}.png"
                if run.arm == "ours":
                    measured = run_ours(run, photo_path, style_path, out, args.size, args.device, Path(tmp))
                else:
                    measured = bench_image.run_pastiche(photo_path, style_path, out, args.size, run.steps, args.device)
                measured.update(bench_image.measure(encoder, out, photo, style))
                record(report, args, make_row(run, painting, measured, ref))
            save(report, args, draw=True)


def record(report: dict[str, Any], args: argparse.Namespace, row: dict[str, Any]) -> None:
    report["rows"].append(row)
    save(report, args)
    print(row_line(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
