#!/usr/bin/env python
"""Performance: the hardware's limit, time to quality on a photo, cost per video frame; one run.

1. hardware: for square pictures of 128, 256 and 512 px (and 1280x720 on CUDA), the
   seconds of one optimization iteration of the engine (VGG19 pass to the deepest layer
   used, losses with their Gram matrices, backward to the input, L-BFGS update) at fp32 and
   bf16 precision; its FLOP (counted with torch.utils.flop_counter, checked against the
   convolution shapes); the FLOP/s achieved as a fraction of a measured matrix-multiply
   peak (the best torch.mm of squares of 1024..4096, and of tall products such as
   16384 x 512 x 512; squares of 2048..8192 on CUDA) on the same device and dtype. On
   CUDA also the time per iteration over the target H100 floor (0.5 ms at 512x512, 1.8 ms
   at 1280x720), and the pass replayed from a CUDA graph (cuda_graphs) beside the eager
   one; with --compile the compiled pass too. Under each eager row, where the time of the
   pass goes (torch.profiler: convolutions, matrix products, ReLU, pooling, gradient sums,
   the rest), and the convolutions' own fraction of the peak. Target: fraction >= 0.7 on CPU.
1b. batch (CUDA by default): seconds per picture and iteration when --batches pictures
   share one optimization, at --batch-sizes px, against one picture; and what --batch 0
   (auto) picks there.
2. image: tubingen.jpg with each --styles painting at --size px, as three subprocesses
   (start-up included) with their peak memory: the default preset, a plain run of the same
   engine (single scale, 500 L-BFGS iterations, no early stop, fp32) and the pastiche CLI
   (150 L-BFGS steps, as scripts/bench_image.py runs it). Distances as
   scripts/bench_image.py defines them, and their sum, which is the loss the
   preset's weights define. Targets: the default's wall time at most 0.25 of the plain
   run's and 0.5 of pastiche's, with both distances no worse (reported too: the loss no
   worse).
3. video: the first --video-frames frames of asl_book.mkv at --video-size px with the
   default preset, once with --temporal flow and once with --temporal none, in this
   process: mean wall time and iterations of a frame after the first over those of the
   first (target <= 0.25), and the quality flow must reach (E_warp <= 0.1 of none's,
   content distance <= 1.25 of none's) on the same frames. One chain (--batch 1).
4. video_batch (CUDA by default): the whole clip at --video-batch-size px with --temporal
   flow as one chain and as the chains --batch 0 paints in step: wall time and quality.
5. memory: peak RSS of fresh nstpipe processes for an archive of --archive pictures and
   of ten times as many (and a resume of it), for the first --memory-frames frames of the
   clip and four times as many, and for one picture at --memory-sizes px
   (scripts/bench_memory.py). Target: the larger archive and the longer clip within 10%.

Prints a table and writes JSON (--json, default bench_out/bench/bench.json), the JSON after
every section.

    .venv/bin/python scripts/bench.py                       # everything, CPU (about 21 minutes on 2 cores)
    .venv/bin/python scripts/bench.py --device cuda         # on a GPU machine
    .venv/bin/python scripts/bench.py --only hardware --hw-sizes 128,256
    .venv/bin/python scripts/bench.py --only image --size 128 --plain-iterations 100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_image  # noqa: E402
import bench_memory  # noqa: E402
from bench_memory import console_script, run_measured  # noqa: E402

from nstpipe.app import measure_video, stylize_video  # noqa: E402
from nstpipe.config import EngineConfig, build_settings  # noqa: E402
from nstpipe.engine.device import resolve_device  # noqa: E402
from nstpipe.engine.metrics import CONTENT_LAYER, STYLE_LAYERS  # noqa: E402
from nstpipe.engine.stylize import Objective, Stylizer, encoder_layers  # noqa: E402
from nstpipe.engine.vgg import VGGFeatures  # noqa: E402
from nstpipe.errors import ConfigError  # noqa: E402
from nstpipe.events import FrameDone, Progress  # noqa: E402
from nstpipe.media.weights import load_weights  # noqa: E402
from nstpipe.media.writer import atomic_write_json, record_path  # noqa: E402

DATA = ROOT / "data"
# The target floor on an H100: seconds per iteration at these sizes (about 0.41 and 1.43
# TFLOP per iteration at about 790 TFLOP/s of dense bf16).
H100_FLOOR_S = {(512, 512): 0.5e-3, (720, 1280): 1.8e-3}
TARGETS = {"peak_fraction_cpu": 0.7, "vs_plain": 0.25, "vs_pastiche": 0.5, "later_over_first": 0.25,
           "warping_error": 0.1, "content": 1.25}


# -- 1. hardware ------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# (m, k, n) of the products the peak is probed with: squares, and on the CPU tall, narrow
# ones too (the shapes of a convolution as a matrix product: many pixels by a few hundred
# channels), which the CPU's bf16 units run up to a quarter faster than any square here
# (2.8 TFLOP/s at 16384 x 512 x 512 against 2.3 at 2048 x 2048 x 2048, and the
# convolutions of an iteration went above the squares' best).
PEAK_SHAPES = {
    "cuda": [(n, n, n) for n in (2048, 4096, 8192)],
    "cpu": [(n, n, n) for n in (1024, 2048, 4096)] + [(4096, 1024, 1024), (8192, 1024, 512), (16384, 512, 512)],
}


def matmul_peak(device: torch.device, dtype: torch.dtype) -> float:
    """Best FLOP/s of a torch.mm over a few shapes (the machine's practical peak).

    On CUDA the fp32 peak is taken with TF32 allowed exactly when cuDNN's convolutions may
    use it (PyTorch's default): the fp32 iteration's convolutions then run on the same
    matrix units, and its fraction is measured against what those units can do.
    """
    best = 0.0
    tf32 = device.type == "cuda" and dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32 or saved
    try:
        for m, k, n in PEAK_SHAPES["cuda" if device.type == "cuda" else "cpu"]:
            a, b = torch.randn(m, k, device=device).to(dtype), torch.randn(k, n, device=device).to(dtype)
            flop = 2 * m * k * n
            torch.mm(a, b)
            sync(device)
            # On the CPU, as much work per timing as three products of 2048 x 2048 x 2048.
            reps = 20 if device.type == "cuda" else max(2, round(3 * 2 * 2048**3 / flop))
            for _ in range(3):
                start = time.perf_counter()
                for _ in range(reps):
                    torch.mm(a, b)
                sync(device)
                best = max(best, flop * reps / (time.perf_counter() - start))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    return best


def analytic_flop(engine: EngineConfig, height: int, width: int, grams: bool = True) -> float:
    """Convolutions forward and their input gradients, plus (``grams``) the Grams (forward + backward)."""
    from nstpipe.config import vgg_cut

    flop, h, w, channels = 0.0, height, width, 3
    out_channels = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}
    for name in vgg_cut(encoder_layers(engine)):
        if name.startswith("conv"):
            cout = out_channels[name[4]]
            flop += 2 * 2 * 9 * channels * cout * h * w  # forward, and backward to the input
            channels = cout
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
        if grams and name in engine.style_layers:
            flop += 2 * 2 * channels * channels * h * w  # F F^T, and its one-product backward
    return flop


def iteration_cost(
    weights: Any, engine: EngineConfig, style: torch.Tensor, size: tuple[int, int], device: torch.device, iterations: int,
    batch: int = 1,
) -> dict[str, Any]:
    """Seconds per iteration of the engine's own loop (timed between its progress events) and
    FLOP, for ``batch`` pictures optimized together."""
    from torch.utils.flop_counter import FlopCounterMode

    encoder = VGGFeatures(weights, encoder_layers(engine), engine.pooling).to(device)
    cfg = dataclasses.replace(engine, scales=1, iterations=iterations, tolerance=0.0)
    stylizer = Stylizer(encoder, [style], cfg, device)
    gen = torch.Generator().manual_seed(0)
    content = torch.rand((batch, 3) + size, generator=gen)
    stamps: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, Progress):
            sync(device)
            stamps.append(time.perf_counter())

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stylizer.run(content, callback=on_event)  # warm-up: targets, allocator, kernels, compile
    stamps.clear()
    stylizer.run(content, callback=on_event)
    gaps = sorted(b - a for a, b in zip(stamps, stamps[1:]))
    # The fastest iteration is what the hardware can do; on shared cores the median also
    # carries the neighbours' load, so both are kept.
    seconds, median = gaps[0], gaps[len(gaps) // 2]
    if cfg.compile:  # the FLOP are counted on the eager pass: the counter does not see into compiled code
        stylizer = Stylizer(encoder, [style], dataclasses.replace(cfg, compile=False), device)
    x = content.to(device).requires_grad_(True)
    objective = stylizer.objective(content.to(device))
    with FlopCounterMode(display=False) as counter:
        objective(x).backward()
    # Counted on the eager pass only: compiled and replayed passes dispatch from elsewhere.
    eager = not cfg.compile and not (cfg.cuda_graphs and device.type == "cuda")
    ops = ops_per_iteration(stylizer, content) if eager else None
    result: dict[str, Any] = {
        "s_per_iter": seconds, "s_per_iter_median": median, "ops_per_iter": ops, "flop": float(counter.get_total_flops()),
        "flop_analytic": analytic_flop(cfg, *size), "precision": stylizer.precision,
    }
    if eager:
        result["pass_ms"] = time_split(objective, x, device)
        result["conv_flop"] = analytic_flop(cfg, *size, grams=False)
    if device.type == "cuda":
        result["peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


# Where the time of the pass goes, by operator: convolutions (forward, and backward to the
# input), the matrix products (the Gram matrices, forward and backward), ReLU and pooling
# (forward and backward, with the zero fill of max pooling's backward), and the sums where a
# layer's gradient arrives from both a loss and the next layer. What is left ("other"): the
# losses' element-wise terms, casts and copies.
_SPLIT = {
    "conv": ("convolution", "_convolution", "mkldnn_convolution", "cudnn_convolution", "convolution_backward"),
    "matmul": ("bmm", "mm", "matmul", "addmm", "baddbmm"),
    "relu": ("relu", "relu_", "clamp_min", "threshold_backward"),
    "pool": ("max_pool2d_with_indices", "max_pool2d_with_indices_backward", "avg_pool2d", "avg_pool2d_backward", "fill_", "zero_"),
    "sums": ("add", "add_"),
}


def time_split(objective: Objective, x: torch.Tensor, device: torch.device, passes: int = 5) -> dict[str, float]:
    """Milliseconds per pass (the loss and its gradient; not the L-BFGS step) by kind of
    operator, from torch.profiler's self times: host time on the CPU, kernel time on CUDA."""
    from torch.profiler import ProfilerActivity, profile

    def one_pass() -> None:
        x.grad = None
        objective(x).backward()

    one_pass()
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(passes):
            one_pass()
        sync(device)
    kind_of = {name: kind for kind, names in _SPLIT.items() for name in names}
    split = dict.fromkeys([*_SPLIT, "other"], 0.0)
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue  # autograd and Python wrappers: their self time is bookkeeping, not arithmetic
        us = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
        split[kind_of.get(event.key.removeprefix("aten::"), "other")] += us / 1000 / passes
    split["total"] = sum(split.values())
    return split


def conv_fraction(row: dict[str, Any]) -> float:
    """The convolutions alone, as timed by the profiler, as a fraction of the row's peak."""
    return row["conv_flop"] / (row["pass_ms"]["conv"] / 1000) / row["peak_flop_per_s"]


_METADATA_OPS = frozenset({"squeeze_", "unsqueeze_", "transpose_", "t_", "as_strided_", "resize_"})


def ops_per_iteration(stylizer: Stylizer, content: torch.Tensor) -> int:
    """Operators one iteration dispatches (the pass, the losses, backward, the optimizer
    step), views and metadata changes left out: on a GPU each is at least one kernel launch
    from the host, which is what bounds an iteration there. One iteration is the difference
    between runs of 2 and 3 iterations, so the level's set-up is left out."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if not func.is_view and func.overloadpacket.__name__ not in _METADATA_OPS:
                Count.ops += 1
            return func(*args, **(kwargs or {}))

    counts = []
    for iterations in (2, 3):
        runner = stylizer.with_config(dataclasses.replace(stylizer.config, iterations=iterations))
        Count.ops = 0
        with Count():
            runner.run(content)
        counts.append(Count.ops)
    return counts[1] - counts[0]


def run_hardware(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    weights = load_weights("embedded")
    engine = build_settings("default", None, {"device": str(device)}).engine
    style = bench_image_style(args)
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    peaks = {name: matmul_peak(device, dtype) for name, dtype in dtypes.items()}
    sizes = [(s, s) for s in args.hw_sizes] + ([(720, 1280)] if device.type == "cuda" else [])
    # On CUDA the pass replayed from a CUDA graph (cuda_graphs = true) is timed beside the
    # eager one, and with --compile the compiled pass beside them, size by size.
    ways = [(False, False)] + ([(False, True)] if device.type == "cuda" else []) + ([(True, False)] if args.compile else [])
    variants = [(p, c, g) for p in ("fp32", "bf16") for c, g in ways]
    rows = []
    for size in sizes:
        iterations = timed_iterations(args, max(size))
        for precision, compiled, graphs in variants:
            cfg = dataclasses.replace(engine, precision=precision, compile=compiled, cuda_graphs=graphs)
            cost = iteration_cost(weights, cfg, style, size, device, iterations)
            achieved = cost["flop"] / cost["s_per_iter"]
            row = {"height": size[0], "width": size[1], "compile": compiled,
                   "cuda_graphs": graphs and not compiled and device.type == "cuda", **cost, "flop_per_s": achieved,
                   "peak_flop_per_s": peaks[precision], "fraction_of_peak": achieved / peaks[precision]}
            if device.type == "cuda" and size in H100_FLOOR_S:
                row["over_h100_floor"] = cost["s_per_iter"] / H100_FLOOR_S[size]
            rows.append(row)
            print_hardware_row(row)
    # The peak again at the end, the best of both kept: a busy neighbour at the start must
    # not make the fractions look better than they are.
    for name, dtype in dtypes.items():
        peaks[name] = max(peaks[name], matmul_peak(device, dtype))
    for row in rows:
        row["peak_flop_per_s"] = peaks[row["precision"]]
        row["fraction_of_peak"] = row["flop_per_s"] / row["peak_flop_per_s"]
        if "pass_ms" in row:
            row["conv_fraction_of_peak"] = conv_fraction(row)
    print("fractions against the best peak of start and end: "
          + ", ".join(f"{r['width']}x{r['height']} {label(r)} {r['fraction_of_peak']:.3f}" for r in rows))
    conv_rows = [r for r in rows if "conv_fraction_of_peak" in r]
    print("convolutions alone, against it: "
          + ", ".join(f"{r['width']}x{r['height']} {label(r)} {r['conv_fraction_of_peak']:.3f}" for r in conv_rows))
    fp32_math = "tf32" if device.type == "cuda" and torch.backends.cudnn.allow_tf32 else "fp32"
    return {"matmul_peak_flop_per_s": peaks, "fp32_math": fp32_math, "rows": rows}


def timed_iterations(args: argparse.Namespace, long_side: int) -> int:
    """--hw-iterations, half of it above 256 px (at least 3)."""
    return max(3, args.hw_iterations if long_side <= 256 else args.hw_iterations // 2)


def label(row: dict[str, Any]) -> str:
    """fp32 or bf16, then +c compiled, +g replayed from a CUDA graph."""
    return row["precision"] + ("+c" if row.get("compile") else "+g" if row.get("cuda_graphs") else "")


def bench_image_style(args: argparse.Namespace) -> torch.Tensor:
    from nstpipe.jobs.pictures import read_image

    return read_image(args.data / "styles" / f"{args.styles[0]}.jpg")


def print_hardware_row(row: dict[str, Any]) -> None:
    if not getattr(print_hardware_row, "header", False):
        print(f"{'size':>9} {'prec':>7} {'s/iter':>8} {'ops':>5} {'GFLOP':>7} {'analytic':>8} {'GFLOP/s':>8} {'peak':>8} {'fraction':>8}"
              + ("  over H100 floor" if "peak_mem_mib" in row else ""))  # peak memory: a CUDA row
        print_hardware_row.header = True  # type: ignore[attr-defined]
    floor = f"  {row['over_h100_floor']:.2f}" if "over_h100_floor" in row else ""
    ops = f"{row['ops_per_iter']:>5}" if row.get("ops_per_iter") is not None else f"{'-':>5}"
    print(f"{row['width']:>4}x{row['height']:<4} {label(row):>7} {row['s_per_iter']:>8.4f} {ops} {row['flop'] / 1e9:>7.1f} "
          f"{row['flop_analytic'] / 1e9:>8.1f} {row['flop_per_s'] / 1e9:>8.1f} {row['peak_flop_per_s'] / 1e9:>8.1f} "
          f"{row['fraction_of_peak']:>8.3f}{floor}", flush=True)
    if "pass_ms" in row:
        split = row["pass_ms"]
        print(f"{'':>10} profiled pass {split['total']:.1f} ms: " + ", ".join(f"{kind} {split[kind]:.1f}" for kind in [*_SPLIT, "other"])
              + f"; convolutions at {conv_fraction(row):.2f} of peak")


# -- 1b. batching: several pictures in one optimization ---------------------------------------


def run_batching(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Seconds per picture and iteration when 1, 2, 4 or 8 pictures share each VGG pass, at the
    precision the default preset picks on this device; and what ``--batch 0`` (auto) picks."""
    from nstpipe.engine.device import resolve_batch

    weights = load_weights("embedded")
    settings = build_settings("default", None, {"device": str(device)})
    engine = settings.engine
    style = bench_image_style(args)
    rows = []
    print(f"\n{'size':>9} {'prec':>5} {'batch':>5} {'s/iter':>8} {'s/iter/pic':>10} {'vs batch 1':>10} {'peak MiB':>9}")
    for side in args.batch_sizes:
        auto = resolve_batch(0, device, side, engine)
        single = None
        for batch in args.batches:
            cost = iteration_cost(weights, engine, style, (side, side), device, timed_iterations(args, side), batch)
            per_picture = cost["s_per_iter"] / batch
            single = single or per_picture
            row = {"side": side, "batch": batch, "auto_batch": auto, **cost, "s_per_iter_per_picture": per_picture,
                   "per_picture_over_batch_1": per_picture / single}
            rows.append(row)
            memory = f"{row['peak_mem_mib']:>9.0f}" if "peak_mem_mib" in row else f"{'-':>9}"
            print(f"{side:>4}x{side:<4} {row['precision']:>5} {batch:>5} {cost['s_per_iter']:>8.4f} {per_picture:>10.5f} "
                  f"{row['per_picture_over_batch_1']:>10.3f} {memory}", flush=True)
        print(f"{'':>9} --batch 0 (auto) picks {auto} at {side} px on this device")
    return {"rows": rows}


# -- 2. image: time to quality ------------------------------------------------------------------


def nstpipe_arm(photo: Path, style: Path, out: Path, args: argparse.Namespace, extra: Sequence[str]) -> dict[str, Any]:
    nstpipe = console_script("nstpipe")
    cmd = [nstpipe, "image", str(photo), "--style", str(style), "-o", str(out), "--size", str(args.size),
           "--device", args.device, "-q", *extra]
    out.unlink(missing_ok=True)  # a timed run, not one that keeps the output of the last
    wall, rss, _ = run_measured(cmd)
    record = json.loads(record_path(out).read_text())
    result = record["result"]
    return {"wall_s": wall, "peak_rss_mib": rss, "iterations": result["iterations"], "engine_s": result["seconds"],
            "precision": record["settings"].get("precision")}


def pastiche_arm(photo: Path, style: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    pastiche = console_script("pastiche")
    steps = args.pastiche_steps
    cmd = [pastiche, "--size", str(args.size), "--num-steps", str(steps), "--info-step", str(steps), "--seed", "0",
           "--device", args.device, "-c", str(photo), "-s", str(style), "-o", str(out)]
    wall, rss, _ = run_measured(cmd)
    return {"wall_s": wall, "peak_rss_mib": rss, "iterations": steps}


def run_image(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = args.out / "image"
    out.mkdir(parents=True, exist_ok=True)
    plain_config = out / "plain.toml"
    plain_config.write_text('# A plain run: no pyramid, no early stop, fp32.\nscales = 1\ntolerance = 0.0\nprecision = "fp32"\n')
    encoder = VGGFeatures(load_weights("embedded"), STYLE_LAYERS + (CONTENT_LAYER,))
    photo_path = args.data / "content" / "tubingen.jpg"
    photo = bench_image.lanczos(photo_path)
    rows = []
    for name in args.styles:
        style_path = args.data / "styles" / f"{name}.jpg"
        style = bench_image.lanczos(style_path)
        paths = {arm: out / f"{arm}_{name}_{args.size}.png" for arm in ("plain", "ours", "pastiche")}
        arms: dict[str, Callable[[], dict[str, Any]]] = {
            "plain": partial(nstpipe_arm, photo_path, style_path, paths["plain"], args,
                             ["--config", str(plain_config), "-n", str(args.plain_iterations)]),
            "ours": partial(nstpipe_arm, photo_path, style_path, paths["ours"], args, []),
            "pastiche": partial(pastiche_arm, photo_path, style_path, paths["pastiche"], args),
        }
        row: dict[str, Any] = {"style_image": name, "size": args.size}
        for arm in ("plain", "ours", "pastiche"):  # ours in the middle: drifting load hits both neighbours
            row[arm] = arms[arm]()
            row[arm].update(bench_image.measure(encoder, paths[arm], photo, style))
            row[arm]["load_avg"] = os.getloadavg()[0]
        row["checks"] = image_checks(row)
        rows.append(row)
        print_image_row(row)
    return rows


def image_checks(row: dict[str, Any]) -> dict[str, Any]:
    """Wall-time ratio, and quality two ways: the loss the preset's weights define (style d +
    content d: style_weight 5 over 5 equally weighted layers is their plain sum), and each
    distance on its own (the stricter reading: no worse on either)."""
    ours = row["ours"]
    checks = {}
    for other, key in (("plain", "vs_plain"), ("pastiche", "vs_pastiche")):
        ratio = ours["wall_s"] / row[other]["wall_s"]
        loss_no_worse = ours["style"] + ours["content"] <= row[other]["style"] + row[other]["content"]
        both_no_worse = ours["style"] <= row[other]["style"] and ours["content"] <= row[other]["content"]
        checks[key] = {"wall_ratio": round(ratio, 4), "limit": TARGETS[key], "loss_no_worse": loss_no_worse,
                       "distances_no_worse": both_no_worse, "met": ratio <= TARGETS[key] and both_no_worse,
                       "met_on_loss": ratio <= TARGETS[key] and loss_no_worse}
        if "engine_s" in row[other]:
            # The optimization alone, start-up (interpreter, CUDA context, weights) left out:
            # on a GPU the start-up is most of a small picture's wall time.
            checks[key]["engine_ratio"] = round(ours["engine_s"] / row[other]["engine_s"], 4)
    return checks


def print_image_row(row: dict[str, Any]) -> None:
    print(f"\n{row['style_image']} at {row['size']} px (subprocesses, start-up included)")
    print(f"{'run':<9} {'prec':>5} {'iters':>5} {'wall s':>7} {'engine s':>8} {'RSS MiB':>8} "
          f"{'style d':>8} {'content d':>9} {'loss':>6} {'load':>5}")
    for arm in ("plain", "ours", "pastiche"):
        r = row[arm]
        engine_s = f"{r['engine_s']:>8.1f}" if "engine_s" in r else f"{'-':>8}"
        print(f"{arm:<9} {r.get('precision') or 'fp32':>5} {r['iterations']:>5} {r['wall_s']:>7.1f} {engine_s} {r['peak_rss_mib']:>8.0f} "
              f"{r['style']:>8.3f} {r['content']:>9.3f} {r['style'] + r['content']:>6.3f} {r['load_avg']:>5.2f}")
    for key, check in row["checks"].items():
        verdict = "met" if check["met"] else ("met on the loss only" if check["met_on_loss"] else "NOT MET")
        engine = f", engine {check['engine_ratio']:.3f}" if "engine_ratio" in check else ""
        print(f"ours/{key[3:]:<8} wall {check['wall_ratio']:.3f}{engine} (target <= {check['limit']}); loss no worse: "
              f"{check['loss_no_worse']}, both distances no worse: {check['distances_no_worse']}  {verdict}")


# -- 3. video ------------------------------------------------------------------------------------


def run_video(args: argparse.Namespace) -> dict[str, Any]:
    out = args.out / "video"
    out.mkdir(parents=True, exist_ok=True)
    style = args.data / "styles" / f"{args.styles[0]}.jpg"
    modes = {}
    for mode in ("flow", "none"):
        # One chain (batch 1): the cost of a frame after the first is the question here; on
        # a GPU the automatic batch would cut these few frames into several chains.
        modes[mode] = paint_video(args, out, style, mode, args.video_size, 1, args.video_frames)
    flow, none = modes["flow"], modes["none"]
    checks = {
        "later_over_first_wall": flow["later_frame_s"] / flow["first_frame_s"],
        "later_over_first_iterations": flow["later_frame_iterations"] / flow["first_frame_iterations"],
        "warping_error": flow["warping_error"] / none["warping_error"],
        "content": flow["content"] / none["content"],
    }
    met = {
        "later_over_first_wall": checks["later_over_first_wall"] <= TARGETS["later_over_first"],
        "later_over_first_iterations": checks["later_over_first_iterations"] <= TARGETS["later_over_first"],
        "warping_error": checks["warping_error"] <= TARGETS["warping_error"],
        "content": checks["content"] <= TARGETS["content"],
    }
    report = {"video": str(args.video), "size": args.video_size, "modes": modes, "ratios": checks, "met": met}
    print_video(report)
    return report


def paint_video(args: argparse.Namespace, out: Path, style: Path, mode: str, size: int, batch: int,
                frame_count: int | None) -> dict[str, Any]:
    """Paint the first ``frame_count`` frames of ``args.video`` from scratch; wall time, iterations, metrics."""
    settings = build_settings("default", None, {"size": size, "device": args.device, "temporal": mode, "batch": batch})
    frames: list[FrameDone] = []
    name = f"{args.video.stem}_{mode}_{size}_b{batch}"
    output = out / f"{name}.mp4"
    work = out / f"work_{name}"
    shutil.rmtree(work, ignore_errors=True)  # a full run, not a resume
    output.unlink(missing_ok=True)  # nor one that keeps the video of the last
    start = time.perf_counter()
    stylize_video(args.video, [style], output, settings,
                  lambda e: frames.append(e) if isinstance(e, FrameDone) else None, work, frame_count)
    wall = time.perf_counter() - start
    metrics = measure_video(args.video, output, style, settings, lambda e: None).summary()
    frames.sort(key=lambda f: f.index)
    first, later = frames[0], frames[1:]
    return {
        "frames": len(frames), "size": size, "batch": batch, "wall_s": wall, "iterations": sum(f.iterations for f in frames),
        "first_frame_s": first.seconds, "first_frame_iterations": first.iterations,
        "later_frame_s": sum(f.seconds for f in later) / max(1, len(later)),
        "later_frame_iterations": sum(f.iterations for f in later) / max(1, len(later)),
        **metrics,
    }


def run_video_batching(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """The whole clip with --temporal flow as one chain (--batch 1) and as the chains the
    automatic batch paints in step (--batch 0): wall time, and the quality each keeps."""
    from nstpipe.jobs.video_job import video_batch
    from nstpipe.media.video import probe

    out = args.out / "video_batch"
    out.mkdir(parents=True, exist_ok=True)
    style = args.data / "styles" / f"{args.styles[0]}.jpg"
    settings = build_settings("default", None, {"size": args.video_batch_size, "device": args.device})
    auto = video_batch(settings, probe(args.video))
    runs = {f"batch {b}": paint_video(args, out, style, "flow", args.video_batch_size, b, None) for b in (1, 0)}
    runs["batch 0"]["auto_batch"] = auto
    one, many = runs["batch 1"], runs["batch 0"]
    print(f"\n{args.video.name}, all {one['frames']} frames at {args.video_batch_size} px, --temporal flow; "
          f"--batch 0 picks {auto} on this device")
    print(f"{'run':<8} {'wall s':>7} {'frames/s':>8} {'iters':>6} {'E_warp':>9} {'content':>8} {'style':>6}")
    for name, r in runs.items():
        print(f"{name:<8} {r['wall_s']:>7.1f} {r['frames'] / r['wall_s']:>8.2f} {r['iterations']:>6} "
              f"{r['warping_error']:>9.5f} {r['content']:>8.3f} {r['style']:>6.3f}")
    ratios = {"wall": many["wall_s"] / one["wall_s"], "warping_error": many["warping_error"] / one["warping_error"],
              "content": many["content"] / one["content"]}
    print("batch 0 / batch 1: " + ", ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    return {"video": str(args.video), "runs": runs, "ratios": ratios}


def print_video(report: dict[str, Any]) -> None:
    print(f"\n{Path(report['video']).name} at {report['size']} px, first {report['modes']['flow']['frames']} frames, default preset")
    print(f"{'mode':<5} {'wall s':>7} {'iters':>6} {'1st s':>6} {'1st it':>6} {'later s':>7} {'later it':>8} "
          f"{'E_warp':>9} {'content':>8} {'style':>6}")
    for mode, m in report["modes"].items():
        print(f"{mode:<5} {m['wall_s']:>7.1f} {m['iterations']:>6} {m['first_frame_s']:>6.2f} {m['first_frame_iterations']:>6} "
              f"{m['later_frame_s']:>7.3f} {m['later_frame_iterations']:>8.1f} {m['warping_error']:>9.5f} "
              f"{m['content']:>8.3f} {m['style']:>6.3f}")
    limits = {"later_over_first_wall": TARGETS["later_over_first"], "later_over_first_iterations": TARGETS["later_over_first"],
              "warping_error": TARGETS["warping_error"], "content": TARGETS["content"]}
    for key, ratio in report["ratios"].items():
        label = key if key.startswith("later") else f"flow/none {key}"
        print(f"{label:<30} {ratio:6.3f}  (target <= {limits[key]})  {'met' if report['met'][key] else 'NOT MET'}")


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", default=None, help="comma-separated sections: hardware, batch, image, video, "
                        "video_batch, memory (default: all on CUDA; batching gains nothing on a CPU, so there without the two batch ones)")
    parser.add_argument("--hw-sizes", default="128,256,512", type=lambda s: [int(v) for v in s.split(",")])
    parser.add_argument("--hw-iterations", type=int, default=None,
                        help="timed iterations per size (half above 256 px); default 8 on CPU, 40 on CUDA")
    parser.add_argument("--batches", default="1,2,4,8", type=lambda s: [int(v) for v in s.split(",")],
                        help="batch section: pictures per optimization")
    parser.add_argument("--batch-sizes", default="256,512", type=lambda s: [int(v) for v in s.split(",")],
                        help="batch section: square sides")
    parser.add_argument("--video-batch-size", type=int, default=256, help="video_batch section: long side")
    parser.add_argument("--compile", action="store_true", help="torch.compile the VGG pass in the hardware section")
    parser.add_argument("--size", type=int, default=256, help="long side for the time-to-quality runs; 256 is the side "
                        "the distances are measured at, so no run's picture is resized for them")
    parser.add_argument("--styles", default="starry_night,the_scream,shipwreck", type=lambda s: s.split(","),
                        help="paintings in DATA/styles (comma-separated; the first is used for video and hardware)")
    parser.add_argument("--plain-iterations", type=int, default=500)
    parser.add_argument("--pastiche-steps", type=int, default=150)
    parser.add_argument("--video", type=Path, default=DATA / "video" / "asl_book.mkv")
    parser.add_argument("--video-size", type=int, default=128)
    parser.add_argument("--video-frames", type=int, default=12, help="frames painted per mode (none costs a first frame each)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "bench")
    parser.add_argument("--json", type=Path, default=None, help="default: OUT/bench.json")
    bench_memory.add_arguments(parser)
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except ConfigError as exc:
        raise SystemExit(f"bench.py: {exc}") from None
    if args.hw_iterations is None:
        args.hw_iterations = 40 if device.type == "cuda" else 8
    default_sections = "hardware,batch,image,video,video_batch,memory" if device.type == "cuda" else "hardware,image,video,memory"
    sections = (args.only or default_sections).split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"), "device": describe(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "load_avg_start": os.getloadavg(), "targets": TARGETS,
    }
    print(f"{report['device']}, torch {torch.__version__}, {report['threads']} threads, load {report['load_avg_start'][0]:.2f}")
    path = args.json or args.out / "bench.json"
    runs: dict[str, Callable[[], Any]] = {
        "hardware": lambda: run_hardware(args, device), "batch": lambda: run_batching(args, device),
        "image": lambda: run_image(args), "video": lambda: run_video(args),
        "video_batch": lambda: run_video_batching(args, device), "memory": lambda: bench_memory.run_memory(args),
    }
    for name, section in runs.items():
        if name in sections:
            report[name] = section()
            atomic_write_json(path, report)  # after each section: a later one that fails keeps the earlier results
    report["load_avg_end"] = os.getloadavg()
    atomic_write_json(path, report)
    print(f"\nload average at the end {report['load_avg_end'][0]:.2f}; JSON: {path}")
    return 0


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
