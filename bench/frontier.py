"""The time-quality frontier of style transfer: our engine's presets and sweeps, pastiche, the reference.

For tubingen.jpg with each --styles painting (starry_night, the_scream, shipwreck in
DATA/styles) at --size (256) px, every run is a subprocess, so start-up is in its wall time:

* ours: ``nstpipe image`` (this checkout's package, by python -m nstpipe) with each --presets preset (fast,
  default, quality; all at --size) and each --points point. A point is
  ``name:key=value;key=value`` over the default preset (as bench schedule's
  --variant), written into a temporary --config TOML. The default points sweep the budget
  the style weight either side of the preset's, a sliced term beside the Gram term, a
  shorter budget (cAfB: A coarse_iterations at half size, B iterations at full size) and
  the default before the distribution issue.
* pastiche: ``pastiche --num-steps N`` for each --pastiche-steps N (default 150), as
  bench image runs it.
* reference: jcjohnson/neural-style's published output (DATA/reference/tubingen_*.png,
  paired as bench/measure.py pairs them); distances only, no time.

Each of ours runs once per --precisions entry (fp32, auto). ``auto`` is resolved on
--device first (nstpipe.engine.stylize.resolve_precision); entries that resolve to the
same arithmetic run once, labelled e.g. ``fp32 (= auto here)`` on a CPU without AMX.
Per painting the runs of the two arms alternate, pastiche's spread evenly among ours, so
drifting load hits both.

Distances: the four of bench/measure.py (style, content, feature, patch; lower is closer).
Each row also has each over the reference's (st/ref, co/ref, fe/ref, pa/ref) and its wall
time over pastiche-150's of the same painting (w/p150, filled in once that run is in). A
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

Output: a line per run as it finishes, a summary, JSON (written after every row) and a PNG
plot (--plot, redrawn after every painting): per painting, the four distances against wall
time, the presets as stars, the knee ringed, pastiche as a line, the reference dashed, the
targets dotted. --smoke writes frontier_smoke.json and .png, its pastiche-20 the base.

    python -m bench frontier
    python -m bench frontier --smoke    # 64 px, one painting, two points, pastiche 20 steps
    python -m bench frontier --device cuda
    python -m bench frontier --styles the_scream --precisions fp32 \\
        --points 'c30f50:coarse_iterations=30;iterations=50' --presets default --pastiche-steps 150
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence, TypeVar

import torch

from bench.common import STYLES, add_common, csv, describe, ints, machine, photo_path, split_variant, style_path, write_json
from bench.frontier_report import TARGET, plot, summarize
from bench.measure import DISTANCES, PATCH_PARTS, lanczos, measure, meter, painting_floor, ratio, reference_path, run_nstpipe, run_pastiche
from nstpipe.config import EngineConfig, build_settings
from nstpipe.engine.device import resolve_device
from nstpipe.engine.stylize import resolve_precision
from nstpipe.errors import ConfigError

PRESETS = ["fast", "default", "quality"]
# The default's schedule from the photo alone: two levels, the photo mixed into the finer start.
FROM_PHOTO = "init=content;content_weight=1.0;scales=2;coarsest_iterations=0;coarse_iterations=40;iterations=60;content_mix=0.7"
POINTS = [
    # Over the default preset (mostly the photo with some noise, three levels, every level's
    # start in the painting's whole colour distribution, style weight 15): the style weight
    # either side of the preset's, larger budgets at each level, the default before it (from
    # the photo, two levels), and the default before the distribution issue (from the
    # photo, no colour start, style weight 5).
    "w10:style_weight=10.0",
    "w20:style_weight=20.0",
    "long:coarsest_iterations=120;coarse_iterations=60;iterations=50",
    f"photo:{FROM_PHOTO}",
    f"earlier:{FROM_PHOTO};color_start=none;style_weight=5.0",
]
PASTICHE_STEPS = [150]
SMOKE = {"size": 64, "points": ["c5f10:coarse_iterations=5;iterations=10", "c10f20:coarse_iterations=10;iterations=20"],
         "presets": ["default"], "pastiche_steps": [20], "pastiche_base": 20}
# The four distances every row is judged by: the two the engine optimizes (Gram, content) and

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
    """``name:key=value;...`` -> (name, the engine settings it changes from the default preset).

    The values are read as a config file's are (``"1,1,2"`` a tuple of three, ``"false"``
    false), not by calling the field's type on the text."""
    name, changes = split_variant(text)
    unknown = [key for key in changes if not hasattr(base, key)]
    try:
        if unknown:
            raise ConfigError(f"no engine setting {unknown[0]!r}", unknown[0])
        engine = build_settings("default", None, changes).engine
    except ConfigError as exc:
        raise SystemExit(f"bench frontier: bad point {text!r}: {exc}") from None
    return name, {key: getattr(engine, key) for key in changes}


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



def write_config(path: Path, settings: dict[str, Any]) -> Path:
    """``settings`` as a TOML file for ``--config``."""
    path.write_text("".join(f"{key} = {toml_value(value)}\n" for key, value in settings.items()))
    return path


def run_ours(run: Run, photo: Path, style: Path, out: Path, size: int, device: str, tmp: Path) -> dict[str, Any]:
    config = write_config(tmp / f"{out.stem}.toml", run.config)
    return run_nstpipe(photo, style, out, size, device, ["--preset", run.preset, "--config", str(config)])


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
           **{key: measured.get(key) for key in PATCH_PARTS},
           **{f"{key}_over_ref": ratio(measured.get(key), ref.get(key) if ref else None) for key in PATCH_PARTS},
           "wall_over_pastiche": None, "target_met": None, "load_avg": os.getloadavg()[0]}
    for key in ("engine_s", "s_per_iter", "precision_used"):
        if key in measured:
            row[key] = measured[key]
    return row


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
    print_patch_parts(rows)
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


def print_patch_parts(rows: list[dict[str, Any]]) -> None:
    """The patch distance split by scale: whether a picture's strokes (full size) or the
    larger shapes they make (half size) are what keeps it from the painting."""
    print("\nthe patch distance by scale, each over the reference's at that scale: at the full size the strokes, "
          "at half the shapes they make")
    print(f"{'painting':<13} {'arm':<9} {'name':<17} {'precision':<19} {'full d':>8} {'half d':>8} {'fu/ref':>6} {'ha/ref':>6}")
    for row in rows:
        if row.get("patch_full") is None:
            continue
        print(f"{row['painting']:<13} {row['arm']:<9} {row['name']:<17} {row['precision'] or '-':<19} "
              f"{row['patch_full']:>8.5f} {row['patch_half']:>8.5f} "
              + " ".join(fmt(row.get(f"{key}_over_ref"), ".3f", 6) for key in PATCH_PARTS))


# -- the subcommand ------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "frontier", size=256)
    parser.set_defaults(size=None)  # unset: 256, or --smoke's
    parser.add_argument("--styles", type=csv, default=None, help=f"paintings in DATA/styles (default {','.join(STYLES)})")
    parser.add_argument("--precisions", type=csv, default=["fp32", "auto"])
    parser.add_argument("--presets", type=csv, default=None, help=f"default {','.join(PRESETS)}")
    parser.add_argument("--points", action="append", default=None,
                        help="name:key=value;... over the default preset (repeatable; 'none': only the presets); default: "
                        + " ".join(POINTS))
    parser.add_argument("--pastiche-steps", type=ints, default=None, help=f"default {','.join(map(str, PASTICHE_STEPS))}")
    parser.add_argument("--pastiche-base-steps", type=int, default=None,
                        help="pastiche run the wall times are compared with (default 150)")
    parser.add_argument("--smoke", action="store_true", help="a fast end-to-end check: 64 px, the first painting, "
                        "two points, the default preset, pastiche 20 steps (also the base)")
    parser.add_argument("--plot", type=Path, default=None, help="PNG; default OUT/frontier.png (--smoke: _smoke)")


def settle(args: argparse.Namespace) -> None:
    """Fill in what --smoke changes and what was left unset."""
    smoke: dict[str, Any] = SMOKE if args.smoke else {}
    suffix = "_smoke" if args.smoke else ""
    args.styles = args.styles or (list(STYLES[:1]) if args.smoke else list(STYLES))
    args.size = args.size or smoke.get("size", 256)
    args.presets = args.presets if args.presets is not None else smoke.get("presets", PRESETS)
    args.points = [p for p in args.points if p != "none"] if args.points is not None else smoke.get("points", POINTS)
    args.pastiche_steps = args.pastiche_steps or smoke.get("pastiche_steps", PASTICHE_STEPS)
    args.pastiche_base_steps = args.pastiche_base_steps or smoke.get("pastiche_base", 150)
    args.json = args.json or args.out / f"frontier{suffix}.json"
    args.plot = args.plot or args.out / f"frontier{suffix}.png"
    if args.plot.suffix.lower() != ".png":
        raise SystemExit(f"bench frontier: --plot must be a .png file, not {args.plot}")


def main(args: argparse.Namespace) -> int:
    settle(args)
    try:
        device = resolve_device(args.device)
        precisions = precision_labels(args.precisions, device)
    except ConfigError as exc:
        raise SystemExit(f"bench frontier: {exc}") from None
    ours = our_runs(args.presets, args.points, precisions)
    pastiche = [Run("pastiche", f"{n} steps", f"--num-steps {n}", steps=n) for n in args.pastiche_steps]
    plan = interleave(ours, pastiche)
    report: dict[str, Any] = {
        "size": args.size, "device": args.device, "styles": args.styles,
        "precisions": [{"requested": value, "label": label, "resolved": resolved} for label, value, resolved in precisions],
        "presets": args.presets, "points": args.points, "pastiche_steps": args.pastiche_steps,
        "pastiche_base_steps": args.pastiche_base_steps, "target": TARGET, "rows": [], "complete": False,
    }
    print(f"{describe(machine(args.device))}; {args.size} px on {args.device}; precisions: "
          + ", ".join(f"{label} -> {resolved}" for label, _, resolved in precisions), flush=True)
    print(f"{len(plan)} runs per painting x {len(args.styles)} paintings", flush=True)
    print(header(args.pastiche_base_steps), flush=True)
    run_all(args, plan, report)
    report["complete"] = True
    save(report, args)
    print_summary(report)
    print(f"\nJSON: {args.json}; plot: {args.plot}")
    return 0


def save(report: dict[str, Any], args: argparse.Namespace, draw: bool = False) -> None:
    fill_ratios(report["rows"], args.pastiche_base_steps)
    labels = [p["label"] for p in report["precisions"]]
    painted = [p for p in args.styles if any(r["painting"] == p for r in report["rows"])]
    report["summary"] = summarize(report["rows"], labels, painted)
    write_json(args.json, report, args)
    if draw or report["complete"]:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        plot(report, args.plot)


def run_all(args: argparse.Namespace, plan: list[Run], report: dict[str, Any]) -> None:
    vgg = meter()
    photo = lanczos(photo_path(args))
    images = args.out / "images"
    images.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for painting in args.styles:
            style = lanczos(style_path(args, painting))
            ref_path = reference_path(args.data, painting)
            ref = measure(vgg, ref_path, photo, style) if ref_path else None
            if ref is not None:
                record(report, args, make_row(None, painting, ref, ref))
            floor = {"style": None, "content": None, **painting_floor(vgg, style)}
            record(report, args, {**make_row(None, painting, floor, ref), "arm": "half", "name": "half",
                                  "settings": "the closer half of the painting against the whole"})
            for run in plan:
                tag = run.name if run.arm == "pastiche" else f"{run.name}_{run.config['precision']}"
                out = images / f"{painting}_{args.size}_{run.arm}_{tag.replace(' ', '')}.png"
                if run.arm == "ours":
                    measured = run_ours(run, photo_path(args), style_path(args, painting), out, args.size, args.device, Path(tmp))
                else:
                    measured = run_pastiche(photo_path(args), style_path(args, painting), out, args.size, run.steps, args.device)
                measured.update(measure(vgg, out, photo, style))
                record(report, args, make_row(run, painting, measured, ref))
            save(report, args, draw=True)


def record(report: dict[str, Any], args: argparse.Namespace, row: dict[str, Any]) -> None:
    report["rows"].append(row)
    save(report, args)
    print(row_line(row), flush=True)


