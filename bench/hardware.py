"""The hardware's limit: one optimization iteration against the machine's matrix-multiply peak.

hardware: for square pictures of --hw-sizes px (and 1280x720 on CUDA), the seconds of one
iteration of the engine (VGG19 pass to the deepest layer used, losses with their Gram
matrices, backward to the input, L-BFGS update) at fp32 and bf16; its FLOP (counted with
torch.utils.flop_counter, checked against the convolution shapes); the FLOP/s achieved as
a fraction of a measured matrix-multiply peak (the best torch.mm of squares of 1024..4096
and of tall products such as 16384 x 512 x 512; squares of 2048..8192 on CUDA) on the same
device and dtype. On CUDA also the time over the target H100 floor (0.5 ms at 512x512, 1.8
ms at 1280x720) and the pass replayed from a CUDA graph; with --compile the compiled pass
too. Under each eager row, where the pass's time goes (torch.profiler) and the
convolutions' own fraction of the peak. Target: fraction >= 0.7 on CPU.

batch (CUDA by default): seconds per picture and iteration when --batches pictures share
one optimization, at --batch-sizes px, against one picture; and what --batch 0 picks.

    python -m bench hardware                                   # CPU: hardware
    python -m bench hardware --device cuda --compile           # GPU: hardware and batch
    python -m bench hardware --hw-sizes 128,256 --only hardware
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import torch

from bench.common import add_common, describe, embedded_weights, ints, json_path, machine, style_path, write_json
from nstpipe.config import EngineConfig, build_settings
from nstpipe.engine.device import resolve_batch, resolve_device
from nstpipe.engine.stylize import Objective, Stylizer, encoder_layers
from nstpipe.engine.vgg import VGGFeatures
from nstpipe.errors import ConfigError
from nstpipe.events import Progress
from nstpipe.modes.model import read_image

# The target floor on an H100: seconds per iteration at these sizes (about 0.41 and 1.43
# TFLOP per iteration at about 790 TFLOP/s of dense bf16).
H100_FLOOR_S = {(512, 512): 0.5e-3, (720, 1280): 1.8e-3}
PEAK_FRACTION_CPU = 0.7

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
    engine: EngineConfig, style: torch.Tensor, size: tuple[int, int], device: torch.device, iterations: int, batch: int = 1,
) -> dict[str, Any]:
    """Seconds per iteration of the engine's own loop (timed between its progress events) and
    FLOP, for ``batch`` pictures optimized together."""
    from torch.utils.flop_counter import FlopCounterMode

    encoder = VGGFeatures(embedded_weights(), encoder_layers(engine), engine.pooling).to(device)
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
    engine = build_settings("default", None, {"device": str(device)}).engine
    style = read_image(style_path(args, args.style))
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
            cost = iteration_cost(cfg, style, size, device, iterations)
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


# -- batch: several pictures in one optimization ----------------------------------------------------


def run_batching(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Seconds per picture and iteration when 1, 2, 4 or 8 pictures share each VGG pass, at the
    precision the default preset picks on this device; and what ``--batch 0`` (auto) picks."""
    engine = build_settings("default", None, {"device": str(device)}).engine
    style = read_image(style_path(args, args.style))
    rows = []
    print(f"\n{'size':>9} {'prec':>5} {'batch':>5} {'s/iter':>8} {'s/iter/pic':>10} {'vs batch 1':>10} {'peak MiB':>9}")
    for side in args.batch_sizes:
        auto = resolve_batch(0, device, side, engine)
        single = None
        for batch in args.batches:
            cost = iteration_cost(engine, style, (side, side), device, timed_iterations(args, side), batch)
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




# -- the subcommand -----------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "hardware")
    parser.add_argument("--only", type=lambda s: s.split(","), default=None,
                        help="hardware, batch or both (default: both on CUDA; batching gains nothing on a CPU)")
    parser.add_argument("--style", default="starry_night", help="the painting in DATA/styles (default starry_night)")
    parser.add_argument("--hw-sizes", default=[128, 256, 512], type=ints, help="square sides (default 128,256,512)")
    parser.add_argument("--hw-iterations", type=int, default=None,
                        help="timed iterations per size (half above 256 px); default 8 on CPU, 40 on CUDA")
    parser.add_argument("--batches", default=[1, 2, 4, 8], type=ints, help="batch: pictures per optimization")
    parser.add_argument("--batch-sizes", default=[256, 512], type=ints, help="batch: square sides")
    parser.add_argument("--compile", action="store_true", help="torch.compile the VGG pass too")


def main(args: argparse.Namespace) -> int:
    try:
        device = resolve_device(args.device)
    except ConfigError as exc:
        raise SystemExit(f"bench hardware: {exc}") from None
    if args.hw_iterations is None:
        args.hw_iterations = 40 if device.type == "cuda" else 8
    sections = args.only or (["hardware", "batch"] if device.type == "cuda" else ["hardware"])
    print(describe(machine(args.device)), flush=True)
    path = json_path(args, "hardware")
    report: dict[str, Any] = {"peak_fraction_cpu_target": PEAK_FRACTION_CPU}
    for name, section in (("hardware", run_hardware), ("batch", run_batching)):
        if name in sections:
            report[name] = section(args, device)
            write_json(path, report, args)  # after each section: a later one that fails keeps the earlier
    print(f"JSON: {path}")
    return 0
