"""Texture synthesis, DeepDream and feature visualization against their targets, in one run.

Everything runs in this process on --device (cpu), with each mode's preset:

* texture: for each painting in DATA/styles, a texture at --size (256) px, plain and
  --tileable. Its style distance to the painting (bench/measure.py's: the sum over
  relu1_1..relu5_1 of |G(x)-G(painting)|^2/|G(painting)|^2, the painting's long side
  at 256) against that of the painting's left and right halves (cut from the painting
  at that scale, so that strokes keep their size); likewise the sliced Wasserstein
  distances over VGG19 features and over 7x7 pixel patches (nstpipe.engine.distances),
  which the engine does not optimize, and the share of the energy above half the Nyquist
  frequency (speckle) over the painting's. Targets: style and feature distance at most
  0.5 x the closer half's, patch distance at most the closer half's, high frequencies at
  most 1.2 x the painting's. Tileable: in a 2x2 tiling, the mean |difference| of the pixels that meet
  across the wrap edges over the mean |difference| of neighbouring pixels inside; target
  at most 1.2.
* dream: the original notebook's algorithm (Mordvintsev et al. 2015, deepdream.ipynb),
  written out here on the same VGG19: 4 octaves of scale 1.4, 10 steps each, a random
  roll of up to 32 px, steps of 1.5 / 255 over the mean |gradient| of 0.5 |F|^2, the
  detail of the coarser octaves carried up; against nstpipe's dream preset. DATA's
  tubingen.jpg at --size, relu4_2, each run --rounds (2) times alternately, the least
  wall time kept. Dream gain: the mean squared relu4_2 activation of the result over the
  photo's. Target: ours at least the notebook's gain, in at most its wall time.
* dream video: the first --frames (30) frames of assets/clip.mp4 dreamed at --video-size
  (128) px, with --temporal flow (the default) and none (every frame alone), and their
  E_warp as ``nstpipe metrics`` measures it. Target: flow at most 0.2 x none.
* palette: the first --frames frames of assets/clip.mp4 painted as a video at --video-size
  with the default preset and assets/starry_night.jpg, and every 10th painted as a still
  with the same settings. The frames' mean feature distance to the painting (the sliced
  Wasserstein distance over VGG19 features) over the stills', twice on an equal footing:
  the painted frames as the painter left them (the PNGs that --keep-frames keeps) over the
  stills, and the video's decoded frames over the stills sent through the same H.264 at
  the same --crf (at 128 px its 4:2:0 colour costs a picture a sixth of its closeness to
  the painting, so frames after it against stills before it would charge the painter
  with the codec's loss). Target: both within 10%.
* visualize: --channels (16) channels of relu4_1 at --vis-size (128) px, one batch, as
  ``nstpipe visualize --channels 0-15`` makes the sheet, timed. Each channel's mean
  activation in its picture against the highest mean activation of that channel over
  DATA's photo and every 10th frame of DATA's clips (at the same long side). Target: at
  least 3 x.

Prints a table and writes JSON (--json, default bench_out/modes/modes.json); the
pictures stay in bench_out/modes/.

    python -m bench modes
    python -m bench modes --only dream --rounds 1
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from bench.common import ASSETS, add_common, csv, describe, encoder, json_path, key_values, machine, photo_path, write_json
from nstpipe.app import stylize_video
from nstpipe.config import Settings, build_settings
from nstpipe.engine.device import resolve_device
from nstpipe.engine.distances import feature_distance, halves, high_frequency_share, patch_distance
from nstpipe.engine.metrics import STYLE_LAYERS, style_distance, style_grams, video_metrics
from nstpipe.engine.tensors import prepare, to_rgb8
from nstpipe.engine.vgg import VGGFeatures
from nstpipe.media.framestore import frame_files
from nstpipe.media.sheet import contact_sheet
from nstpipe.media.video import VideoWriter, read_frames
from nstpipe.media.writer import write_image
from nstpipe.modes import dream, style, texture, visualize
from nstpipe.modes.model import read_image

TARGETS = {"texture_over_half": 0.5, "texture_feature_over_half": 0.5, "texture_patch_over_half": 1.0,
           "texture_high_frequency": 1.2, "seam_ratio": 1.2, "dream_gain": 1.0, "dream_time": 1.0,
           "video_ewarp": 0.2, "visualize_over_data": 3.0, "palette_over_still": 0.1}
SECTIONS = ("texture", "dream", "video", "palette", "visualize")


def settings_for(preset: str, mode: str, args: argparse.Namespace, **changes: Any) -> Settings:
    """The section's preset with its own changes, then --set's."""
    return build_settings(preset, None, {"mode": mode, "device": args.device, **changes, **args.set})


def save(picture: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, to_rgb8(picture))


# -- texture -----------------------------------------------------------------------------------------


def seam_ratio(picture: np.ndarray) -> float:
    """Mean |difference| across the wrap edges of a 2x2 tiling over the mean inside, the
    larger of the two directions."""
    rgb = picture.astype(np.float64)
    ratios = []
    for axis in (0, 1):
        inside = np.abs(np.diff(rgb, axis=axis)).mean()
        first, last = np.take(rgb, 0, axis=axis), np.take(rgb, -1, axis=axis)
        ratios.append(float(np.abs(first - last).mean() / max(inside, 1e-9)))
    return max(ratios)


def texture_rows(args: argparse.Namespace, encoder: VGGFeatures) -> list[dict[str, Any]]:
    rows = []
    for painting_path in sorted((args.data / "styles").glob("*.jpg")):
        painting = read_image(painting_path, args.size)  # long side at the size the texture is made at
        grams = style_grams(encoder, painting)
        parts = halves(painting)
        half_d = [style_distance(encoder(h), grams) for h in parts]
        half_feature = min(feature_distance(encoder, h, painting) for h in parts)
        half_patch = min(patch_distance(h, painting) for h in parts)
        painting_hf = high_frequency_share(painting)
        for tileable in args.texture_kinds:
            settings = settings_for("texture", "texture", args, size=args.size, tileable=tileable)
            start = time.perf_counter()
            texturer = texture.painter(settings, (painting_path,))
            picture = texturer.run((args.size, args.size)).image
            seconds = time.perf_counter() - start
            name = f"texture_{painting_path.stem}{'_tileable' if tileable else ''}.png"
            save(picture, args.out / name)
            d = style_distance(encoder(picture), grams)
            row: dict[str, Any] = {"section": "texture", "painting": painting_path.stem, "tileable": tileable,
                                   "seconds": seconds, "style_d": d, "half_d": half_d, "over_half": d / min(half_d)}
            row["feature_over_half"] = feature_distance(encoder, picture, painting) / half_feature
            row["patch_over_half"] = patch_distance(picture, painting) / half_patch
            row["high_frequency"] = high_frequency_share(picture) / painting_hf
            row["met"] = (row["over_half"] <= TARGETS["texture_over_half"]
                          and row["feature_over_half"] <= TARGETS["texture_feature_over_half"]
                          and row["patch_over_half"] <= TARGETS["texture_patch_over_half"]
                          and row["high_frequency"] <= TARGETS["texture_high_frequency"])
            if tileable:
                row["seam_ratio"] = seam_ratio(to_rgb8(picture))
                row["met"] = row["met"] and row["seam_ratio"] <= TARGETS["seam_ratio"]
                tiled = np.tile(to_rgb8(picture), (2, 2, 1))
                Image.fromarray(tiled).save(args.out / name.replace(".png", "_2x2.png"))
            rows.append(row)
            report(row)
    return rows


# -- dream -------------------------------------------------------------------------------------------


def notebook_dream(encoder: VGGFeatures, photo: torch.Tensor, layer: str, octaves: int = 4, scale: float = 1.4,
                   steps: int = 10, jitter: int = 32, step_size: float = 1.5 / 255, seed: int = 0) -> torch.Tensor:
    """deepdream.ipynb's ``deepdream`` and ``make_step``: octaves of the photo, the detail
    dreamed at the coarser ones carried up, each step a roll, the gradient of 0.5 |F|^2
    (which is F), a step of ``step_size`` over its mean magnitude, the roll undone, clipped."""
    gen = torch.Generator().manual_seed(seed)
    bases = [photo]
    for _ in range(octaves - 1):
        h, w = bases[-1].shape[-2:]
        bases.append(F.interpolate(bases[-1], size=(round(h / scale), round(w / scale)), mode="bilinear", align_corners=False))
    detail = torch.zeros_like(bases[-1])
    src = bases[-1]
    for base in reversed(bases):
        detail = F.interpolate(detail, size=base.shape[-2:], mode="bilinear", align_corners=False)
        src = (base + detail).clamp(0, 1)
        for _ in range(steps):
            dy, dx = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=gen))
            x = torch.roll(src, (dy, dx), (-2, -1)).requires_grad_(True)
            feats = encoder(x)[layer]
            feats.backward(feats.detach())  # d(0.5 |F|^2)/dF = F
            assert x.grad is not None
            g = x.grad
            with torch.no_grad():
                x = x + step_size / g.abs().mean() * g
                src = torch.roll(x, (-dy, -dx), (-2, -1)).clamp(0, 1)
        detail = src - base
    return src.detach()


def dream_gain(encoder: VGGFeatures, picture: torch.Tensor, photo: torch.Tensor, layer: str) -> float:
    with torch.no_grad():
        return float(encoder(picture)[layer].float().pow(2).mean() / encoder(photo)[layer].float().pow(2).mean())


def dream_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    layer = "relu4_2"
    settings = settings_for("dream", "dream", args, size=args.size)
    device = resolve_device(args.device)
    photo = read_image(photo_path(args), args.size).to(device)
    plain = encoder((layer,)).to(device)
    dreamer = dream.painter(settings)  # loaded once, as the notebook's model is
    times: dict[str, list[float]] = {"notebook": [], "ours": []}
    pictures: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        for arm in ("notebook", "ours"):
            start = time.perf_counter()
            if arm == "notebook":
                pictures[arm] = notebook_dream(plain, photo, layer)
            else:
                pictures[arm] = dreamer.run(photo).image
            times[arm].append(time.perf_counter() - start)
    rows: list[dict[str, Any]] = []
    base = {arm: {"seconds": min(times[arm]), "gain": dream_gain(plain, pictures[arm], photo, layer)} for arm in times}
    for arm in ("notebook", "ours"):
        save(pictures[arm], args.out / f"dream_{arm}.png")
        row: dict[str, Any] = {"section": "dream", "arm": arm, "all_seconds": times[arm], **base[arm]}
        if arm == "ours":
            row["gain_over_notebook"] = row["gain"] / base["notebook"]["gain"]
            row["time_over_notebook"] = row["seconds"] / base["notebook"]["seconds"]
            row["met"] = row["gain_over_notebook"] >= TARGETS["dream_gain"] and row["time_over_notebook"] <= TARGETS["dream_time"]
        rows.append(row)
        report(row)
    return rows


def video_rows(args: argparse.Namespace, metrics: VGGFeatures) -> list[dict[str, Any]]:
    clip = ASSETS / "clip.mp4"
    rows: list[dict[str, Any]] = []
    errors: dict[str, float] = {}
    for temporal in ("flow", "none"):
        settings = settings_for("dream", "dream", args, size=args.video_size, temporal=temporal)
        out = args.out / f"dream_clip_{temporal}.mp4"
        out.unlink(missing_ok=True)  # timed anew, not kept from an earlier run
        start = time.perf_counter()
        summary = stylize_video(clip, [], out, settings, lambda event: None, limit=args.frames, overwrite=True)
        seconds = time.perf_counter() - start
        source = (f.rgb for f in read_frames(clip) if f.index < args.frames)
        result = video_metrics(metrics, source, (f.rgb for f in read_frames(out)))
        errors[temporal] = result.mean("warping_error") or 0.0
        row: dict[str, Any] = {"section": "video", "temporal": temporal, "frames": summary.frames, "iterations": summary.iterations,
               "seconds": seconds, "warping_error": errors[temporal], "content": result.mean("content")}
        rows.append(row)
    rows[0]["ewarp_over_none"] = errors["flow"] / max(errors["none"], 1e-12)
    rows[0]["met"] = rows[0]["ewarp_over_none"] <= TARGETS["video_ewarp"]
    for row in rows:
        report(row)
    return rows


def palette_rows(args: argparse.Namespace, metrics: VGGFeatures) -> list[dict[str, Any]]:
    """The first --frames frames of assets/clip.mp4 painted as a video with the default preset
    (assets/starry_night.jpg, --video-size), and every 10th of them painted as a still with the
    same settings: the frames' mean feature distance to the painting over the stills', before
    H.264 and through it."""
    clip, painting_path = ASSETS / "clip.mp4", ASSETS / "starry_night.jpg"
    settings = settings_for("default", "style", args, size=args.video_size)
    out, work = args.out / "palette_clip.mp4", args.out / "palette_frames"
    out.unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    stylize_video(clip, [painting_path], out, settings, lambda event: None, work_dir=work, limit=args.frames,
                  keep_frames=True, overwrite=True)
    seconds = time.perf_counter() - start
    painted = [read_image(path) for path in frame_files(work)]
    decoded = [prepare(f.rgb) for f in read_frames(out)]
    painting = read_image(painting_path, max(painted[0].shape[-2:]))
    stylizer = style.painter(settings, (painting_path,))
    picked = range(0, len(painted), 10)
    sources = {f.index: prepare(f.rgb, args.video_size) for f in read_frames(clip) if f.index in picked}
    stills = [stylizer.run(sources[i]).image.cpu() for i in picked]
    encoded = [through_h264(still, settings.video.crf, args.out / "palette_still.mp4") for still in stills]

    def mean_distance(pictures: list[torch.Tensor]) -> float:
        return sum(feature_distance(metrics, picture, painting) for picture in pictures) / len(pictures)

    row: dict[str, Any] = {
        "section": "palette", "frames": len(painted), "seconds": seconds, "crf": settings.video.crf,
        "frames_feature_d": mean_distance(painted), "still_feature_d": mean_distance(stills),
        "video_feature_d": mean_distance(decoded), "still_h264_feature_d": mean_distance(encoded),
    }
    row["over_still"] = row["frames_feature_d"] / row["still_feature_d"]
    row["over_still_h264"] = row["video_feature_d"] / row["still_h264_feature_d"]
    row["met"] = all(abs(row[key] - 1) <= TARGETS["palette_over_still"] for key in ("over_still", "over_still_h264"))
    report(row)
    return [row]


def through_h264(picture: torch.Tensor, crf: int, path: Path) -> torch.Tensor:
    """``picture`` as a video painted at ``crf`` shows it: written as a short H.264 clip the
    way ``nstpipe video`` writes, and its first frame decoded."""
    rgb = to_rgb8(picture)
    with VideoWriter(path, None, rgb.shape[1], rgb.shape[0], 30, crf=crf) as writer:
        for k in range(3):  # a few frames, so the encoder treats it as the start of a clip
            writer.write(rgb, k / 30)
    first = next(read_frames(path)).rgb
    path.unlink()
    return prepare(first)


# -- visualize ---------------------------------------------------------------------------------------


def data_pictures(args: argparse.Namespace, side: int) -> list[torch.Tensor]:
    """DATA's photo and every 10th frame of DATA's clips, long side ``side``."""
    pictures = [read_image(photo_path(args), side)]
    for clip in sorted((args.data / "video").iterdir()):
        pictures += [prepare(f.rgb, side) for f in read_frames(clip) if f.index % 10 == 0]
    return pictures


def visualize_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    layer, channels = "relu4_1", tuple(range(args.channels))
    settings = settings_for("visualize", "visualize", args, visualize_layer=layer,
                            visualize_channels=f"0-{args.channels - 1}", size=args.vis_size)
    start = time.perf_counter()
    visualizer = visualize.painter(settings, ())
    pictures = visualizer.run((args.vis_size, args.vis_size)).image
    seconds = time.perf_counter() - start
    vgg = encoder((layer,))
    with torch.no_grad():
        shown = vgg(pictures.cpu())[layer].mean(dim=(2, 3))  # (K, C)
        seen = torch.stack([vgg(p)[layer][0].mean(dim=(1, 2)) for p in data_pictures(args, args.vis_size)])  # (P, C)
    rows: list[dict[str, Any]] = []
    for k, channel in enumerate(channels):
        best = float(seen[:, channel].max())
        value = float(shown[k, channel])
        rows.append({"section": "visualize", "channel": channel, "activation": value, "data_max": best,
                     "over_data": value / max(best, 1e-9), "met": value >= TARGETS["visualize_over_data"] * best})
    # The sheet that `nstpipe visualize --layer relu4_1 --channels 0-15` writes.
    sheet = contact_sheet([to_rgb8(pictures[k : k + 1]) for k in range(len(channels))], [str(c) for c in channels])
    write_image(args.out / f"visualize_{layer}_0-{args.channels - 1}.png", sheet)
    summary: dict[str, Any] = {"section": "visualize", "channel": "all", "seconds": seconds, "channels": len(channels),
               "min_over_data": min(r["over_data"] for r in rows), "met": all(r["met"] for r in rows)}
    for row in [*rows, summary]:
        report(row)
    return [*rows, summary]


# -- output ------------------------------------------------------------------------------------------


def report(row: dict[str, Any]) -> None:
    """One line per row as it is measured."""
    shown = "  ".join(f"{k}={fmt(v)}" for k, v in row.items() if k not in ("section", "all_seconds", "half_d"))
    print(f"{row['section']:<10} {shown}", flush=True)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common(parser, "modes", size=256)
    parser.add_argument("--rounds", type=int, default=2, help="dream runs per arm, alternating")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--video-size", type=int, default=128)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--vis-size", type=int, default=128)
    parser.add_argument("--textures", type=csv, default=["plain", "tileable"], help="plain, tileable or both (comma-separated)")
    parser.add_argument("--only", type=csv, default=list(SECTIONS), help=f"comma-separated of {', '.join(SECTIONS)}")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting over every section's preset, e.g. temporal_weight=100; repeatable")


def main(args: argparse.Namespace) -> int:
    if not set(args.textures) <= {"plain", "tileable"} or not set(args.only) <= set(SECTIONS):
        raise SystemExit(f"bench modes: --textures takes plain and tileable, --only {', '.join(SECTIONS)}")
    args.texture_kinds = [kind == "tileable" for kind in args.textures]
    args.set = key_values(args.set, "modes")
    args.out.mkdir(parents=True, exist_ok=True)
    print(describe(machine(args.device)), flush=True)
    metrics = encoder(STYLE_LAYERS + ("relu4_2",))
    runs: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "texture": lambda: texture_rows(args, metrics), "dream": lambda: dream_rows(args),
        "video": lambda: video_rows(args, metrics), "palette": lambda: palette_rows(args, metrics),
        "visualize": lambda: visualize_rows(args),
    }
    rows: list[dict[str, Any]] = []
    for section in args.only:
        rows += runs[section]()
        write_json(json_path(args, "modes"), {"targets": TARGETS, "rows": rows}, args)
    verdicts = [row["met"] for row in rows if "met" in row and row.get("channel") in (None, "all")]
    write_json(json_path(args, "modes"), {"targets": TARGETS, "rows": rows, "all_met": all(verdicts)}, args)
    print_table(rows)
    print(f"\nall targets met: {all(verdicts)}   JSON: {json_path(args, 'modes')}")
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\n| section | case | seconds | measure | target | met |\n|---|---|---|---|---|---|")
    for row in rows:
        line = table_line(row)
        if line:
            print(line)


def table_line(row: dict[str, Any]) -> str | None:
    section, met = row["section"], {True: "yes", False: "no"}.get(bool(row["met"]), "") if "met" in row else ""
    seconds = f"{row['seconds']:.1f}" if "seconds" in row else ""
    if section == "texture":
        tile = f", seam {row['seam_ratio']:.2f}" if row["tileable"] else ""
        case = f"{row['painting']}{' tileable' if row['tileable'] else ''}"
        return (f"| texture | {case} | {seconds} | style d {row['over_half']:.2f} x, feature d {row['feature_over_half']:.2f} x, "
                f"patch d {row['patch_over_half']:.2f} x the closer half's; high frequencies {row['high_frequency']:.2f} x the "
                f"painting's{tile} | <= 0.5 x, <= 0.5 x, <= 1 x; <= 1.2 x{', seam <= 1.2' if row['tileable'] else ''} | {met} |")
    if section == "dream":
        extra = f" ({row['gain_over_notebook']:.2f} x, time {row['time_over_notebook']:.2f} x)" if "met" in row else ""
        return f"| dream | {row['arm']} | {seconds} | gain {row['gain']:.2f}{extra} | >= 1 x gain, <= 1 x time | {met} |"
    if section == "video":
        extra = f" ({row['ewarp_over_none']:.3f} x none)" if "ewarp_over_none" in row else ""
        case = f"{row['temporal']}, {row['frames']} frames"
        return f"| dream video | {case} | {seconds} | E_warp {row['warping_error']:.5f}{extra} | <= 0.2 x | {met} |"
    if section == "palette":
        return (f"| palette | style transfer, {row['frames']} frames | {seconds} | feature d {row['frames_feature_d']:.3f} = "
                f"{row['over_still']:.2f} x the stills'; through H.264 (crf {row['crf']}) {row['video_feature_d']:.3f} = "
                f"{row['over_still_h264']:.2f} x | within 10% | {met} |")
    if section == "visualize" and row["channel"] == "all":
        return f"| visualize | {row['channels']} channels | {seconds} | min {row['min_over_data']:.1f} x data's best | >= 3 x | {met} |"
    return None

