"""Optical flow, warping and the occlusion mask for temporally stable video.

Conventions: a flow is a float32 tensor (H, W, 2) in pixels, (dx, dy) per pixel, as OpenCV
returns it. ``flow = optical_flow(a, b)`` means a(x) ~ b(x + flow(x)), so
``warp(b, flow)`` brings ``b`` onto ``a``'s pixel grid.

For frame t of a video, with source frames F(t-1), F(t):
  backward = optical_flow(F(t), F(t-1));  forward = optical_flow(F(t-1), F(t))
  warp(stylized(t-1), backward) is where frame t starts, and
  consistency_mask(forward, backward) says where that start can be trusted
(Ruder, Dosovitskiy and Brox 2016, "Artistic style transfer for videos", section 3.2).
"""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from nstpipe.engine.tensors import prepare

# Raised when the flow of the same frames changes, so that a video's frames chained along the
# earlier flow are painted again rather than mixed with new ones (see
# nstpipe.jobs.records.make_video_job). 1: held still where stillness explains the frames as
# well (:func:`still_where_unmoved`), not DIS's flow alone. 2: trusted where the frames are
# unchanged in place, beside a motion boundary too (:func:`consistency_mask`).
FLOW_REVISION = 2


# A pixel is held still unless its flow explains its neighbourhood better than no motion
# by more than this: a mean squared RGB difference (colours in [0, 1], summed over the
# channels) of 3e-4, an RMS of 2.6/255 a channel, about the grain of compressed footage.
# Of 1e-4, 2e-4, 3e-4 and 5e-4, the largest that leaves the footage's own E_warp within 2%
# of DIS's alone, or below it, on both bundled clips at 128 and 256 px (docs/benchmarks.md).
STILL_MARGIN = 3e-4
# The neighbourhood's side, in pixels: DIS's own patch is 8 (its "medium" preset).
STILL_WINDOW = 7


def optical_flow(source: np.ndarray, target: np.ndarray, margin: float | None = STILL_MARGIN) -> torch.Tensor:
    """Dense flow from ``source`` to ``target`` (HxWx3 uint8 RGB): OpenCV's DIS, held still
    where stillness explains the frames as well, within ``margin`` (see
    :func:`still_where_unmoved`; None: DIS's flow alone).

    DIS at the "medium" preset: fast enough to cost far less than a stylization
    iteration, and robust on real footage. Computed on grey images; no colour swap needed.
    """
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    # OpenCV's stubs leave out None, the documented way to ask for a new flow array.
    flow = torch.from_numpy(dis.calc(_grey(source), _grey(target), None))  # type: ignore[call-overload]
    return flow if margin is None else still_where_unmoved(flow, source, target, margin)


def still_where_unmoved(
    flow: torch.Tensor, source: np.ndarray, target: np.ndarray, margin: float = STILL_MARGIN
) -> torch.Tensor:
    """``flow`` set to zero wherever zero motion explains ``source`` from ``target`` as well,
    within ``margin``, over a :data:`STILL_WINDOW`-pixel neighbourhood; a new tensor.

    Where the footage stands still and has little texture (a wall, a table top), any small
    motion fits the frames, and DIS returns one that wanders by up to a pixel from frame to
    frame. A painting warped along it is resampled and moved where nothing moved; one held
    still is measured against a wandering warp. Of the motions that fit, none is the one
    the scene had. Where the frames' difference is more than noise, DIS's flow wins.
    """
    a, b = prepare(source), prepare(target)
    keep = neighbourhood_change(a, b) > neighbourhood_change(a, warp(b, flow)) + margin
    return flow * keep[0, 0, ..., None]


def unchanged_in_place(earlier: np.ndarray, later: np.ndarray, margin: float = STILL_MARGIN) -> torch.Tensor:
    """(H, W) bool: where the two frames agree in place, with no motion at all, within
    ``margin`` over the :data:`STILL_WINDOW`-pixel neighbourhood: the footage's grain and
    nothing more. There both flows are held still (:func:`still_where_unmoved`)."""
    return neighbourhood_change(prepare(earlier), prepare(later))[0, 0] <= margin


def neighbourhood_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W): the squared RGB difference of two (1, 3, H, W) pictures, summed over the
    channels and averaged over each pixel's :data:`STILL_WINDOW` neighbourhood."""
    change = (a - b).pow(2).sum(1, keepdim=True)
    return F.avg_pool2d(change, kernel_size=STILL_WINDOW, stride=1, padding=STILL_WINDOW // 2, count_include_pad=False)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (N, C, H, W) at x + flow(x), bilinearly; outside the frame, the edge."""
    n, _, h, w = image.shape
    x, y = _targets(flow.to(image.device, image.dtype))
    # grid_sample wants coordinates in [-1, 1], pixel centres at the ends (align_corners=True).
    gx = x * (2.0 / max(w - 1, 1)) - 1.0
    gy = y * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(n, -1, -1, -1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def farneback_flow(source: np.ndarray, target: np.ndarray) -> torch.Tensor:
    """Dense flow from ``source`` to ``target`` by Farnebäck's polynomial expansion (OpenCV),
    an estimator unlike DIS in kind. The painter never follows it: the metrics judge by it
    too, so that a painting is not judged only by the flow that it was held to."""
    # OpenCV's defaults for video (its samples): 3 levels, 15 px windows, 3 iterations.
    flow = cv2.calcOpticalFlowFarneback(_grey(source), _grey(target), None, 0.5, 3, 15, 3, 5, 1.2, 0)  # type: ignore[call-overload]
    return torch.from_numpy(flow)


def _grey(rgb: np.ndarray) -> np.ndarray:
    """What both flows read: the luminance of an HxWx3 uint8 RGB picture."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def source_motion(
    earlier: np.ndarray, later: np.ndarray, flow: Callable[[np.ndarray, np.ndarray], torch.Tensor] = optical_flow
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``flow`` from ``later`` back to ``earlier`` and the :func:`consistency_mask` of
    where it can be trusted, computed directly between the two frames however far apart
    they are; where the frames are :func:`unchanged_in_place`, the motion boundary test
    does not apply."""
    backward = flow(later, earlier)
    return backward, consistency_mask(flow(earlier, later), backward, unchanged_in_place(earlier, later))


def consistency_mask(forward: torch.Tensor, backward: torch.Tensor, in_place: torch.Tensor | None = None) -> torch.Tensor:
    """(H, W) float mask: 1 where the warped previous frame can be trusted, 0 elsewhere.

    Ruder et al.'s two tests, on the backward flow w' (t -> t-1) and the forward flow w
    (t-1 -> t) sampled where w' points, w~(x) = w(x + w'(x)), plus flow leaving the frame:
      disocclusion:    |w~ + w'|^2 > 0.01 (|w~|^2 + |w'|^2) + 0.5
      motion boundary: |grad u'|^2 + |grad v'|^2 > 0.01 |w'|^2 + 0.002

    ``in_place`` (H, W) bool, optional: pixels that the frames show unchanged where they
    are. Where their flow also leaves them in place (under a tenth of a pixel), they are
    no motion boundary, however their neighbours move: the warp takes the pixel itself,
    and the frames vouch for it. Otherwise the still wall beside a moving hand, next to
    the flow's edge, would be left free, and a painter would paint it anew each frame.
    """
    fwd_at_target = warp(forward.permute(2, 0, 1).unsqueeze(0), backward)[0].permute(1, 2, 0)
    sq = _squared_length
    backward_sq = sq(backward)
    occluded = sq(fwd_at_target + backward) > 0.01 * (sq(fwd_at_target) + backward_sq) + 0.5
    grad_sq = sum(g.pow(2) for c in (0, 1) for g in _gradients(backward[..., c]))
    boundary = grad_sq > 0.01 * backward_sq + 0.002
    if in_place is not None:
        boundary = boundary & ~(in_place & (backward_sq < 0.01))
    return (~(occluded | boundary | _leaves_frame(backward))).float()


def _squared_length(vectors: torch.Tensor) -> torch.Tensor:
    """Squared length of (dx, dy) vectors along the last axis."""
    return vectors.pow(2).sum(-1)


def _leaves_frame(flow: torch.Tensor) -> torch.Tensor:
    """Pixels whose flow points outside the frame: content entering the picture.

    Not in Ruder et al.'s two tests; without it the edge-clamped warp would pin newly
    visible content to a smear of the border.
    """
    h, w = flow.shape[:2]
    x, y = _targets(flow)
    return (x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)


def _targets(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel coordinates x + flow(x): where each pixel's flow points, (x, y) planes."""
    h, w = flow.shape[:2]
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    return xs + flow[..., 0], ys + flow[..., 1]


def _gradients(channel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (one-sided at the borders), like numpy.gradient."""
    gy, gx = torch.gradient(channel)
    return gx, gy
