"""Distances between pictures in VGG19 feature space, as the benchmarks define them.

style   = sum over style layers of |G(out) - G(style)|^2 / |G(style)|^2, G = F F^T / (C H W)
content = |F(out) - F(photo)|^2 / |F(photo)|^2 at the content layer

These are the losses of :mod:`nstpipe.engine.losses` with unit weights, so the engine
optimizes exactly what is reported.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from nstpipe.engine.features import Encoder
from nstpipe.engine.flow import STILL_MARGIN, farneback_flow, neighbourhood_change, source_motion, warp
from nstpipe.engine.losses import content_loss, gram, style_loss
from nstpipe.engine.resize import fit_long_side, resize, resize_long_side
from nstpipe.engine.tensors import prepare, to_rgb8

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


@dataclass(frozen=True)
class Distances:
    style: float
    content: float


@torch.no_grad()
def distances(
    encoder: Encoder,
    output: torch.Tensor,
    photo: torch.Tensor,
    style: torch.Tensor,
    style_layers: Sequence[str] = STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
) -> Distances:
    """All three are (1, 3, H, W) RGB in [0, 1]; ``output`` and ``photo`` share a size."""
    out_feats = encoder(output)
    return Distances(
        style=style_distance(out_feats, style_grams(encoder, style, style_layers)),
        content=content_distance(out_feats, encoder(photo), content_layer),
    )


@torch.no_grad()
def style_grams(encoder: Encoder, style: torch.Tensor, style_layers: Sequence[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
    feats = encoder(style)
    return {layer: gram(feats[layer])[0] for layer in style_layers}


def style_distance(out_feats: Mapping[str, torch.Tensor], grams: Mapping[str, torch.Tensor]) -> float:
    return sum(float(style_loss(out_feats[layer], g)) for layer, g in grams.items())


def content_distance(out_feats: Mapping[str, torch.Tensor], photo_feats: Mapping[str, torch.Tensor], layer: str = CONTENT_LAYER) -> float:
    return float(content_loss(out_feats[layer], photo_feats[layer]))


def frame_warping_error(
    source_prev: np.ndarray, source_cur: np.ndarray, out_prev: np.ndarray, out_cur: np.ndarray
) -> float:
    """Lai et al. (2018) warping error of one frame pair, all HxWx3 uint8 RGB of one size.

    sum(M * |O_t - warp(O_t-1)|^2) / sum(M), colours in [0, 1], with the flow and the
    occlusion mask M computed on the *source* frames, so a stylization is judged by how
    well it follows the motion that is really there. 0 when nothing is trusted.
    """
    return masked_warping_error(source_motion(source_prev, source_cur), out_prev, out_cur)


def masked_warping_error(motion: tuple[torch.Tensor, torch.Tensor], earlier: np.ndarray, later: np.ndarray) -> float:
    """E_warp of ``later`` against ``earlier`` along a :func:`source_motion`; 0 when nothing is trusted."""
    backward, mask = motion
    diff = _residual(warp(prepare(earlier), backward), prepare(later))
    trusted = float(mask.sum())
    return float((mask * diff).sum()) / trusted if trusted > 0 else 0.0


def _residual(warped: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
    """(H, W): the squared RGB difference of a frame and its predecessor warped onto it."""
    return (later - warped).pow(2).sum(1)[0]


# Still, for :func:`still_change`: no channel of any pixel within STILL_REACH moved by
# STILL_LEVELS or more of 255. Above the footage's grain, below a visible motion.
STILL_LEVELS = 4
STILL_REACH = 2


def still_change(
    source_then: np.ndarray, source_now: np.ndarray, out_then: np.ndarray, out_now: np.ndarray
) -> tuple[float, float]:
    """Mean squared change (summed over RGB, colours in [0, 1]) of the stylized frames and of
    the source, pixel by pixel in place, where the source stood still; (0, 0) where it
    nowhere did. No flow: what a viewer sees as a wall repainting itself."""
    still = still_pixels(source_then, source_now)
    if not still.any():
        return 0.0, 0.0
    pairs = ((out_then, out_now), (source_then, source_now))
    painted, source = ((prepare(now) - prepare(then)).pow(2).sum(1)[0][still].mean() for then, now in pairs)
    return float(painted), float(source)


def still_pixels(source_then: np.ndarray, source_now: np.ndarray) -> torch.Tensor:
    """(H, W) bool: where no channel of any pixel within STILL_REACH changed by STILL_LEVELS
    or more between the two frames; the pixels that :func:`still_change` judges."""
    moved = (prepare(source_now) - prepare(source_then)).abs().amax(1, keepdim=True)
    reach = 2 * STILL_REACH + 1
    return F.max_pool2d(moved, reach, stride=1, padding=STILL_REACH)[0, 0] < STILL_LEVELS / 255


# The kinds of trusted pixel that :func:`warping_error_parts` splits a pair's E_warp over.
PARTS = ("still", "followed", "changed")


@dataclass(frozen=True)
class PairParts:
    """One pair's E_warp split over :data:`PARTS`: per part, its share of the trusted pixels
    and the painted clip's and the footage's E_warp summed there over all trusted pixels, so
    that a clip's parts add up to its :func:`masked_warping_error`."""

    share: Mapping[str, float]
    stylized: Mapping[str, float]
    source: Mapping[str, float]


def warping_error_parts(
    source_then: np.ndarray, source_now: np.ndarray, out_then: np.ndarray, out_now: np.ndarray, margin: float = STILL_MARGIN
) -> PairParts:
    """A pair's E_warp (the metrics' flow and mask) split by what the footage did at each
    trusted pixel: ``still``, the still judge's pixels (:func:`still_pixels`); ``followed``,
    moved, where the flow carries the footage within ``margin`` (its own warp residual over
    the flow's 7x7 neighbourhood, as :func:`nstpipe.engine.flow.unchanged_in_place` reads
    stillness); ``changed``, moved, where the footage changes beyond what the flow carries
    (shading, a turning or deforming hand, motion blur), which a painting that follows the
    footage must repaint. Tells a clip's own motion from a painting that moves by itself."""
    backward, mask = source_motion(source_then, source_now)
    trusted = float(mask.sum())
    if trusted == 0:
        zero = {part: 0.0 for part in PARTS}
        return PairParts(zero, zero, zero)
    src_now, src_warped = prepare(source_now), warp(prepare(source_then), backward)
    followed = neighbourhood_change(src_now, src_warped)[0, 0] <= margin
    still = still_pixels(source_then, source_now)
    kinds = {"still": still, "followed": ~still & followed, "changed": ~still & ~followed}
    footage_residual = _residual(src_warped, src_now)
    painted = _residual(warp(prepare(out_then), backward), prepare(out_now))

    def part_sums(error: torch.Tensor) -> dict[str, float]:
        return {part: float((mask * error * kinds[part]).sum()) / trusted for part in PARTS}

    share = {part: float((mask * kinds[part]).sum()) / trusted for part in PARTS}
    return PairParts(share, part_sums(painted), part_sums(footage_residual))


# The settling figure compares the first SETTLING_PAIRS gap-1 pairs with the rest.
SETTLING_PAIRS = 10


@dataclass(frozen=True)
class PairError:
    """E_warp between frames ``first`` and ``first + gap`` of the stylized clip and of its
    source, and two judges that the painter is never held to: E_warp along Farnebäck's flow
    (:func:`farneback_flow`), and the change where the source stood still
    (:func:`still_change`)."""

    first: int
    stylized: float
    source: float
    stylized_farneback: float | None = None
    source_farneback: float | None = None
    stylized_still: float | None = None
    source_still: float | None = None


# Judges of a pair: the flow that the painter follows, Farnebäck's, and none (in place).
JUDGES = ("flow", "farneback", "still")


def parse_gaps(text: str) -> tuple[int, ...]:
    """``"1,5,15"`` as sorted distinct gaps, 1 always among them (the per-frame E_warp and the
    settling figure are gap-1 figures); ValueError names what is wrong."""
    try:
        gaps = {int(part) for part in text.split(",")}  # an empty item (1,,5) is a slip: refused
    except ValueError:
        raise ValueError(f"gaps are whole numbers separated by commas, e.g. 1,5,15; got {text!r}") from None
    if not gaps or min(gaps) < 1:
        raise ValueError(f"gaps are frame distances of 1 or more, e.g. 1,5,15; got {text!r}")
    return tuple(sorted(gaps | {1}))


@dataclass(frozen=True)
class FrameMetrics:
    index: int
    warping_error: float | None  # None for the first frame (no predecessor)
    source_warping_error: float | None
    content: float
    style: float | None  # None without a style image


def settling_figure(values: Sequence[tuple[int, float]]) -> float | None:
    """The mean of the values of the pairs starting before SETTLING_PAIRS over the median of
    the later ones; None without both, or where that median is 0."""
    early = [v for first, v in values if first < SETTLING_PAIRS]
    later = [v for first, v in values if first >= SETTLING_PAIRS]
    if not early or not later:
        return None
    median = float(np.median(later))
    return sum(early) / len(early) / median if median > 0 else None


@dataclass(frozen=True)
class VideoMetrics:
    frames: list[FrameMetrics]
    width: int
    height: int
    # Per gap k: every pair of frames (t - k, t), in order.
    pairs: dict[int, list[PairError]] = field(default_factory=dict)

    def mean(self, name: str) -> float | None:
        values = [getattr(f, name) for f in self.frames if getattr(f, name) is not None]
        return sum(values) / len(values) if values else None

    def gap_means(self, gap: int, judge: str = "flow") -> tuple[float | None, float | None]:
        """Mean E_warp at ``gap`` of the stylized clip and of the source, by one of the
        :data:`JUDGES`; None without pairs."""
        suffix = "" if judge == "flow" else f"_{judge}"
        values = [(getattr(p, f"stylized{suffix}"), getattr(p, f"source{suffix}")) for p in self.pairs.get(gap, [])]
        if not values or any(v is None for pair in values for v in pair):
            return None, None
        stylized, source = zip(*values)
        return sum(stylized) / len(values), sum(source) / len(values)

    def ratio(self, gap: int, judge: str = "flow") -> float | None:
        """The stylized clip's mean E_warp at ``gap`` as a multiple of the footage's own:
        1 is as steady as the source. None without pairs, or when the source has none."""
        stylized, source = self.gap_means(gap, judge)
        return stylized / source if stylized is not None and source else None

    def settling(self, of: str = "stylized") -> float | None:
        """Mean gap-1 E_warp of the first SETTLING_PAIRS pairs over the median of the later
        ones: above 1, the painting still changes at the start. The same figure ``of`` the
        ``source`` says how much of that is the footage's own motion. None on a clip too
        short to have later pairs."""
        return settling_figure([(p.first, getattr(p, of)) for p in self.pairs.get(1, [])])

    def paired_settling(self) -> float | None:
        """:meth:`settling` of each gap-1 pair's E_warp over the footage's own at that pair:
        above 1, the painting changes more at the start than later *for the motion there
        is*. Where the footage moves most at the start, the plain figure counts that motion
        too; this one does not. Pairs whose footage has no E_warp are left out. None on a
        clip too short to have later pairs."""
        return settling_figure([(p.first, p.stylized / p.source) for p in self.pairs.get(1, []) if p.source > 0])

    def summary(self) -> dict[str, float | int | None]:
        result: dict[str, float | int | None] = {
            "frames": len(self.frames),
            "warping_error": self.mean("warping_error"),
            "source_warping_error": self.mean("source_warping_error"),
            "content": self.mean("content"),
            "style": self.mean("style"),
            "warping_error_ratio": self.ratio(1),
            "settling": self.settling(),
            "source_settling": self.settling("source"),
            "paired_settling": self.paired_settling(),
        }
        for gap in sorted(self.pairs):
            if gap != 1:
                stylized, source = self.gap_means(gap)
                result[f"warping_error_gap{gap}"] = stylized
                result[f"source_warping_error_gap{gap}"] = source
                result[f"warping_error_ratio_gap{gap}"] = self.ratio(gap)
        # The same ratios by the judges that the painter is not held to.
        for judge in JUDGES[1:]:
            for gap in sorted(self.pairs):
                result[f"{judge}_ratio_gap{gap}"] = self.ratio(gap, judge)
        return result


def source_at(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """A source frame at a stylized frame's size, as the pipeline made it.

    The pipeline resizes a frame to its long side and the H.264 writer crops an odd row
    or column; when the sizes fit that story the same is done here, so that a pixel is
    compared with the pixel it was made from. Otherwise a plain resize.
    """
    h, w = rgb.shape[:2]
    for long_side in (max(height, width), max(height, width) + 1):
        fh, fw = fit_long_side(h, w, long_side)
        if 0 <= fh - height <= 1 and 0 <= fw - width <= 1:
            return to_rgb8(prepare(rgb, long_side))[:height, :width]
    return to_rgb8(resize(prepare(rgb), (height, width)))


def _device_of(encoder: Encoder) -> torch.device:
    """Where an encoder's weights are (a stand-in without parameters runs on the CPU)."""
    params = encoder.parameters() if isinstance(encoder, torch.nn.Module) else iter(())
    return next((p.device for p in params), torch.device("cpu"))


def _pairs_ending_at(
    index: int, src: np.ndarray, out: np.ndarray, history: deque[tuple[np.ndarray, np.ndarray]], gaps: Sequence[int]
) -> dict[int, PairError]:
    """E_warp of frame ``index`` against the frame ``gap`` before it, for every gap that
    ``history`` (the earlier (source, stylized) frames, latest last) reaches back to."""
    found = {}
    for gap in gaps:
        if gap <= len(history):
            src_then, out_then = history[-gap]
            motion, judge = source_motion(src_then, src), source_motion(src_then, src, farneback_flow)
            found[gap] = PairError(
                index - gap,
                masked_warping_error(motion, out_then, out),
                masked_warping_error(motion, src_then, src),
                masked_warping_error(judge, out_then, out),
                masked_warping_error(judge, src_then, src),
                *still_change(src_then, src, out_then, out),
            )
    return found


@torch.no_grad()
def video_metrics(
    encoder: Encoder,
    source: Iterable[np.ndarray],
    stylized: Iterable[np.ndarray],
    style: torch.Tensor | None = None,
    on_frame: Callable[[FrameMetrics], None] | None = None,
    style_layers: Sequence[str] = STYLE_LAYERS,
    content_layer: str = CONTENT_LAYER,
    gaps: Sequence[int] = (1,),
) -> VideoMetrics:
    """E_warp of the stylized frames and of the source at every gap in ``gaps`` (1 always
    among them), and per-frame distances; streamed, holding the last max(gaps) frames.

    Both streams must have the same number of frames (``zip(strict=True)`` raises
    ValueError otherwise); the source is brought to the stylized frames' size.
    """
    measured = sorted(set(gaps) | {1})
    if measured[0] < 1:
        raise ValueError(f"gaps are frame distances of 1 or more, got {list(gaps)}")
    device = _device_of(encoder)
    frames: list[FrameMetrics] = []
    pairs: dict[int, list[PairError]] = {gap: [] for gap in measured}
    history: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=measured[-1])  # (source, stylized), latest last
    height = width = 0
    grams: dict[str, torch.Tensor] | None = None  # of the style at the frames' size, once
    for index, (src_full, out) in enumerate(zip(source, stylized, strict=True)):
        height, width = out.shape[:2]
        src = source_at(src_full, height, width)
        if style is not None and grams is None:
            grams = style_grams(encoder, resize_long_side(style, max(height, width)), style_layers)
        out_feats = encoder(prepare(out).to(device))
        content = content_distance(out_feats, encoder(prepare(src).to(device)), content_layer)
        new = _pairs_ending_at(index, src, out, history, measured)
        for gap, pair in new.items():
            pairs[gap].append(pair)
        latest = new.get(1)
        frame = FrameMetrics(
            index,
            latest.stylized if latest else None,
            latest.source if latest else None,
            content,
            style_distance(out_feats, grams) if grams else None,
        )
        frames.append(frame)
        if on_frame is not None:
            on_frame(frame)
        history.append((src, out))
    return VideoMetrics(frames, width, height, pairs)
