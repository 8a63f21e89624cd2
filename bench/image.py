"""Time to quality on a photo: the default preset against a plain run, pastiche and the reference.

For tubingen.jpg with each --styles painting at --size px, the --arms:

* ours: ``nstpipe image`` with the default preset;
* plain: the same engine run plainly (one scale, --plain-iterations L-BFGS iterations, no
  early stop, fp32);
* pastiche: the pastiche CLI (--pastiche-steps L-BFGS steps, the same embedded weights);
* reference: jcjohnson/neural-style's published output (512 px, 1000 L-BFGS iterations),
  measured, not run.

Each run is a subprocess (start-up counted, peak RSS taken); ours runs between the others,
so drifting load hits both neighbours. Distances as bench/measure.py defines them; the
loss is style + content, what the preset's weights optimize. Targets: ours in at most 0.25
of the plain run's wall time and 0.5 of pastiche's, both distances no worse; and ours
within 1.1 x the reference's style and content distances in no more time than pastiche.

    python -m bench image
    python -m bench image --arms ours,pastiche,reference
    python -m bench image --size 128 --plain-iterations 100 --styles starry_night
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Callable

from bench.common import STYLES, add_common, csv, describe, json_path, machine, photo_path, style_path, verdict, write_json
from bench.measure import lanczos, measure, meter, reference_path, run_nstpipe, run_pastiche

ARMS = ("plain", "ours", "pastiche", "reference")
TARGETS = {"vs_plain": 0.25, "vs_pastiche": 0.5, "vs_reference": 1.1}
PLAIN_CONFIG = '# A plain run: no pyramid, no early stop, fp32.\nscales = 1\ntolerance = 0.0\nprecision = "fp32"\n'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "image", size=256)
    parser.add_argument("--styles", type=csv, default=list(STYLES), help="paintings in DATA/styles (comma-separated)")
    parser.add_argument("--arms", type=csv, default=list(ARMS), help=f"of {', '.join(ARMS)} (default all)")
    parser.add_argument("--plain-iterations", type=int, default=500)
    parser.add_argument("--pastiche-steps", type=int, default=150)


def main(args: argparse.Namespace) -> int:
    unknown = set(args.arms) - set(ARMS)
    if unknown or "ours" not in args.arms:
        raise SystemExit(f"bench image: --arms takes ours and any of {', '.join(ARMS)}, not {','.join(args.arms)}")
    args.out.mkdir(parents=True, exist_ok=True)
    print(describe(machine(args.device)), flush=True)
    plain_config = args.out / "plain.toml"
    plain_config.write_text(PLAIN_CONFIG)
    vgg = meter()
    photo = lanczos(photo_path(args))
    rows = []
    for name in args.styles:
        style = lanczos(style_path(args, name))
        row: dict[str, Any] = {"style_image": name, "size": args.size}
        for arm, run in arms(args, name, plain_config).items():
            if arm not in args.arms:
                continue
            out = args.out / f"{arm}_{name}_{args.size}.png"
            ref = reference_path(args.data, name)
            if arm == "reference":
                if ref is None:
                    continue
                out, result = ref, {}
            else:
                result = run(out)
            row[arm] = {**result, **measure(vgg, out, photo, style), "load_avg": os.getloadavg()[0]}
        row["checks"] = checks(row)
        rows.append(row)
        print_row(row)
        write_json(json_path(args, "image"), {"targets": TARGETS, "rows": rows}, args)
    print(f"\nJSON: {json_path(args, 'image')}")
    return 0


def arms(args: argparse.Namespace, name: str, plain_config: Path) -> dict[str, Callable[[Path], dict[str, Any]]]:
    """The runs in the order they are made: ours in the middle."""
    photo, style = photo_path(args), style_path(args, name)
    plain = ["--config", str(plain_config), "-n", str(args.plain_iterations)]
    return {
        "plain": lambda out: run_nstpipe(photo, style, out, args.size, args.device, plain),
        "ours": lambda out: run_nstpipe(photo, style, out, args.size, args.device),
        "pastiche": lambda out: run_pastiche(photo, style, out, args.size, args.pastiche_steps, args.device),
        "reference": lambda out: {},
    }


def checks(row: dict[str, Any]) -> dict[str, Any]:
    """Wall-time ratio, and quality two ways: the loss (style + content) and each distance on
    its own (the stricter reading: no worse on either)."""
    ours, found = row["ours"], {}
    for other in ("plain", "pastiche"):
        if other not in row:
            continue
        key, them = f"vs_{other}", row[other]
        ratio = ours["wall_s"] / them["wall_s"]
        loss_no_worse = ours["style"] + ours["content"] <= them["style"] + them["content"]
        both = ours["style"] <= them["style"] and ours["content"] <= them["content"]
        found[key] = {"wall_ratio": round(ratio, 4), "limit": TARGETS[key], "loss_no_worse": loss_no_worse,
                      "distances_no_worse": both, "met": ratio <= TARGETS[key] and both,
                      "met_on_loss": ratio <= TARGETS[key] and loss_no_worse}
        if "engine_s" in them:  # the optimization alone: start-up is most of a small picture's time on a GPU
            found[key]["engine_ratio"] = round(ours["engine_s"] / them["engine_s"], 4)
    if "reference" in row:
        ref, limit = row["reference"], TARGETS["vs_reference"]
        close = ours["style"] <= limit * ref["style"] and ours["content"] <= limit * ref["content"]
        in_time = "pastiche" not in row or ours["wall_s"] <= row["pastiche"]["wall_s"]
        found["vs_reference"] = {"style_ratio": round(ours["style"] / ref["style"], 4),
                                 "content_ratio": round(ours["content"] / ref["content"], 4),
                                 "limit": limit, "met": close and in_time}
    return found


def print_row(row: dict[str, Any]) -> None:
    print(f"\n{row['style_image']} at {row['size']} px (subprocesses, start-up included)")
    print(f"{'run':<9} {'prec':>5} {'iters':>5} {'wall s':>7} {'engine s':>8} {'RSS MiB':>8} "
          f"{'style d':>8} {'content d':>9} {'loss':>6} {'feat d':>7} {'patch d':>8} {'load':>5}")
    for arm in ARMS:
        if arm not in row:
            continue
        r = row[arm]

        def num(key: str, spec: str, r: dict[str, Any] = r) -> str:
            return format(r[key], spec) if key in r else "-"

        precision = r.get("precision_used") or ("-" if arm == "reference" else "fp32")
        print(f"{arm:<9} {precision:>5} {num('iterations', 'd'):>5} {num('wall_s', '.1f'):>7} "
              f"{num('engine_s', '.1f'):>8} {num('peak_rss_mib', '.0f'):>8} {r['style']:>8.3f} {r['content']:>9.3f} "
              f"{r['style'] + r['content']:>6.3f} {r['feature']:>7.4f} {r['patch']:>8.5f} {r['load_avg']:>5.2f}")
    for key, check in row["checks"].items():
        if key == "vs_reference":
            print(f"ours/reference style {check['style_ratio']:.3f}, content {check['content_ratio']:.3f} "
                  f"(target <= {check['limit']}, in no more time than pastiche)  {verdict(check['met'])}")
            continue
        engine = f", engine {check['engine_ratio']:.3f}" if "engine_ratio" in check else ""
        shown = verdict(check["met"]) if check["met"] or not check["met_on_loss"] else "met on the loss only"
        print(f"ours/{key[3:]:<8} wall {check['wall_ratio']:.3f}{engine} (target <= {check['limit']}); loss no worse: "
              f"{check['loss_no_worse']}, both distances no worse: {check['distances_no_worse']}  {shown}")
