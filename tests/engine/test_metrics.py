"""The warping error E_warp on synthetic clips with known motion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from nstpipe.engine.metrics import frame_warping_error

H, W = 48, 64


def scene(seed: int = 0, height: int = H, width: int = W, grain: int = 4) -> np.ndarray:
    """Smooth random texture (bicubic upsampling of coarse noise, one value per ``grain``
    pixels): optical flow can track it."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((3, height // grain, width // grain)).astype(np.float32))[None]
    img = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0]
    return (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def pan(img: np.ndarray, dx: int) -> np.ndarray:
    return np.roll(img, dx, axis=1)


def test_still_identical_output_has_zero_error() -> None:
    src = scene()
    assert frame_warping_error(src, src, src, src) == pytest.approx(0.0, abs=1e-9)


def test_flicker_on_a_still_scene_is_measured() -> None:
    src = scene()
    out_prev = np.full((H, W, 3), 100, np.uint8)
    out_cur = np.full((H, W, 3), 110, np.uint8)
    # every pixel off by 10/255 in each of 3 channels
    assert frame_warping_error(src, src, out_prev, out_cur) == pytest.approx(3 * (10 / 255) ** 2, rel=1e-3)


def test_output_that_follows_the_motion_beats_one_that_does_not() -> None:
    src0, src1 = scene(1), pan(scene(1), 4)
    out0 = scene(2)
    follows = frame_warping_error(src0, src1, out0, pan(out0, 4))
    frozen = frame_warping_error(src0, src1, out0, out0)
    assert follows < 0.1 * frozen
    assert frozen > 0.01


def test_still_change_counts_only_where_the_source_stood_still() -> None:
    from nstpipe.engine.metrics import still_change

    src0 = scene(6)
    src1 = src0.copy()
    src1[:, : W // 2] = pan(src0, 4)[:, : W // 2]  # the left half moves, the right stands still
    out0 = np.full((H, W, 3), 100, np.uint8)
    brighter = np.full((H, W, 3), 110, np.uint8)
    painted, source = still_change(src0, src1, out0, brighter)
    assert painted == pytest.approx(3 * (10 / 255) ** 2, rel=1e-3) and source == 0.0
    changed_where_moving = out0.copy()
    changed_where_moving[:, : W // 2 - 2] = 110  # the painting changes only where the source moved
    assert still_change(src0, src1, out0, changed_where_moving)[0] == 0.0
    assert still_change(src0, pan(src0, 4), out0, brighter) == (0.0, 0.0)  # nothing stood still


def _three_kinds() -> tuple[np.ndarray, np.ndarray, slice, slice, slice]:
    """Two frames: the left columns pan 3 px (the flow carries them), a band in the middle
    brightens by 40 levels where it stands (it changes beyond any motion), the right columns
    stand still; with the columns of each."""
    src0 = scene(7)
    src1 = src0.copy()
    moving, band, still = slice(0, 24), slice(30, 38), slice(44, W)
    src1[:, moving] = pan(src0, 3)[:, moving]
    src1[:, band] = np.clip(src0[:, band].astype(int) + 40, 0, 255).astype(np.uint8)
    return src0, src1, moving, band, still


def test_warping_error_parts_add_up_to_the_pairs_e_warp() -> None:
    from nstpipe.engine.flow import source_motion
    from nstpipe.engine.metrics import PARTS, masked_warping_error, warping_error_parts

    src0, src1, *_ = _three_kinds()
    out0, out1 = scene(8), scene(9)
    parts = warping_error_parts(src0, src1, out0, out1)
    motion = source_motion(src0, src1)
    assert sum(parts.stylized[p] for p in PARTS) == pytest.approx(masked_warping_error(motion, out0, out1), rel=1e-5)
    assert sum(parts.source[p] for p in PARTS) == pytest.approx(masked_warping_error(motion, src0, src1), rel=1e-5)
    assert sum(parts.share.values()) == pytest.approx(1.0, rel=1e-6)
    assert all(parts.share[p] > 0.05 for p in PARTS)


def test_warping_error_parts_put_a_change_where_the_footage_did_it() -> None:
    from nstpipe.engine.metrics import warping_error_parts

    src0, src1, moving, band, still = _three_kinds()
    out0 = np.full((H, W, 3), 100, np.uint8)

    def changed_at(columns: slice) -> dict[str, float]:
        out1 = out0.copy()
        out1[8:-8, columns] = 130
        return dict(warping_error_parts(src0, src1, out0, out1).stylized)

    on_still, on_band = changed_at(still), changed_at(band)
    assert on_still["still"] > 1e-3 and on_still["followed"] + on_still["changed"] < 1e-9
    assert on_band["changed"] > 1e-3 and on_band["still"] < 1e-9
    assert on_band["changed"] > 10 * on_band["followed"]
    # The footage's own error lies where it changed beyond its motion, not where it panned.
    footage = warping_error_parts(src0, src1, out0, out0).source
    assert footage["changed"] > 10 * (footage["followed"] + footage["still"])


def test_source_at_matches_the_pipelines_resize_and_crop() -> None:
    from nstpipe.engine.metrics import source_at
    from nstpipe.engine.tensors import prepare, to_rgb8

    frame = scene(3)[:30]  # 30x64 at long side 32 is 15x32, which the writer crops to 14x32
    made = to_rgb8(prepare(frame, 32))[:14, :32]
    assert np.array_equal(source_at(frame, 14, 32), made)
    assert source_at(frame, 30, 30).shape == (30, 30, 3)  # not a crop of a resize: plain resize


def test_video_metrics_of_the_source_itself(tiny_encoder) -> None:
    from nstpipe.engine.metrics import video_metrics

    frames = [pan(scene(), 2 * t) for t in range(4)]
    layers: dict[str, Any] = {"style_layers": ("relu1_1",), "content_layer": "relu2_1"}
    result = video_metrics(tiny_encoder, frames, frames, **layers)
    assert [f.index for f in result.frames] == [0, 1, 2, 3] and result.frames[0].warping_error is None
    for f in result.frames[1:]:
        assert f.warping_error == pytest.approx(f.source_warping_error)
    assert all(f.content == pytest.approx(0, abs=1e-9) and f.style is None for f in result.frames)
    flicker = [np.clip(f.astype(int) + (25 if t % 2 else -25), 0, 255).astype(np.uint8) for t, f in enumerate(frames)]
    worse = video_metrics(tiny_encoder, frames, flicker, **layers)
    flickering, steady = worse.mean("warping_error"), result.mean("warping_error")
    assert flickering is not None and steady is not None and flickering > 10 * steady + 1e-3
    with pytest.raises(ValueError):
        video_metrics(tiny_encoder, frames, frames[:3], **layers)


LAYERS: dict[str, Any] = {"style_layers": ("relu1_1",), "content_layer": "relu2_1"}


def test_gaps_on_a_clip_whose_shift_is_known(tiny_encoder) -> None:
    """The scene slides 1 px a frame; a painting glued to it is as steady as the footage at
    every gap, one that stays put is not, and one whose colour creeps drifts more the
    longer the gap. Large and smooth enough for the flow to follow a 15 px shift."""
    from nstpipe.engine.metrics import video_metrics

    n, gaps, size = 17, (1, 5, 15), {"height": 96, "width": 128, "grain": 8}
    source = [pan(scene(4, **size), t) for t in range(n)]
    glued = [pan(scene(5, **size), t) for t in range(n)]
    still = [scene(5, **size)] * n
    creeping = [np.clip(f.astype(int) + 2 * t, 0, 255).astype(np.uint8) for t, f in enumerate(glued)]
    follows = video_metrics(tiny_encoder, source, glued, gaps=gaps, **LAYERS)
    stays = video_metrics(tiny_encoder, source, still, gaps=gaps, **LAYERS)
    drifts = video_metrics(tiny_encoder, source, creeping, gaps=gaps, **LAYERS)
    for gap in gaps:
        assert [p.first for p in follows.pairs[gap]] == list(range(n - gap))
        moving, frozen = follows.gap_means(gap)[0], stays.gap_means(gap)[0]
        assert moving is not None and frozen is not None and moving < 3e-3 and frozen > 5e-3
        assert 0.5 < (follows.ratio(gap) or 0) < 2 and (stays.ratio(gap) or 0) > 20
    # The same along Farnebäck's flow, a second judge that the painter never follows (it
    # does not follow this scene's 15 px).
    for gap in (1, 5):
        assert 0.5 < (follows.ratio(gap, "farneback") or 0) < 2 and (stays.ratio(gap, "farneback") or 0) > 20
        # Colour creeping 2/255 a frame: gap * 2/255 off in each of 3 channels, wherever trusted.
        assert drifts.gap_means(gap)[0] == pytest.approx(3 * (2 * gap / 255) ** 2, rel=0.2, abs=3e-3)
    # The per-frame column is the gap-1 pair that ends at the frame.
    assert [f.warping_error for f in follows.frames[1:]] == [p.stylized for p in follows.pairs[1]]


def test_ratio_and_settling_of_known_pairs() -> None:
    from nstpipe.engine.metrics import FrameMetrics, PairError, VideoMetrics

    early, later = [0.02] * 9 + [0.03], [0.001, 0.004, 0.002, 0.003, 0.001]
    sources = [0.002, 0.006] * 7 + [0.004]
    frames = [FrameMetrics(t, None, None, 0.0, None) for t in range(16)]
    pairs = {
        1: [PairError(t, e, s) for t, (e, s) in enumerate(zip(early + later, sources))],
        5: [PairError(t, 0.01, 0.02) for t in range(11)],
    }
    result = VideoMetrics(frames, 8, 8, pairs)
    assert result.settling() == pytest.approx(0.021 / 0.002)  # the median of the later pairs, not their mean
    assert result.settling("source") == pytest.approx(0.004 / 0.004)
    assert result.ratio(1) == pytest.approx(sum(early + later) / sum(sources))  # of the means, not a mean of ratios
    assert result.ratio(5) == pytest.approx(0.5)
    summary = result.summary()
    assert summary["warping_error_ratio_gap5"] == pytest.approx(0.5) and summary["source_warping_error_gap5"] == pytest.approx(0.02)
    assert summary["farneback_ratio_gap1"] is None  # pairs without the second judge's figures
    judged = VideoMetrics(frames, 8, 8, {1: [PairError(0, 0.1, 0.2, 0.3, 0.1, 0.0, 0.1), PairError(1, 0.1, 0.2, 0.1, 0.1, 0.2, 0.3)]})
    assert judged.ratio(1, "farneback") == pytest.approx(2.0) and judged.summary()["farneback_ratio_gap1"] == pytest.approx(2.0)
    assert judged.summary()["still_ratio_gap1"] == pytest.approx(0.5)
    # Ten pairs leave none to compare with; a still source has no E_warp to be a multiple of.
    short = VideoMetrics(frames[:11], 8, 8, {1: pairs[1][:10]})
    assert short.settling() is None
    assert VideoMetrics(frames, 8, 8, {1: [PairError(0, 0.1, 0.0)]}).ratio(1) is None
    assert VideoMetrics(frames, 8, 8, {1: [], 15: []}).ratio(15) is None


def test_paired_settling_takes_the_footages_motion_out() -> None:
    from nstpipe.engine.metrics import FrameMetrics, PairError, VideoMetrics

    frames = [FrameMetrics(t, None, None, 0.0, None) for t in range(16)]
    # The footage moves 10 times as much over its first 10 pairs; the painting follows it at
    # a tenth of its E_warp throughout: settling as high as the footage's, paired settling 1.
    footage = [0.01] * 10 + [0.001] * 5
    follows = VideoMetrics(frames, 8, 8, {1: [PairError(t, s / 10, s) for t, s in enumerate(footage)]})
    assert follows.settling() == pytest.approx(10.0) and follows.settling("source") == pytest.approx(10.0)
    assert follows.paired_settling() == pytest.approx(1.0)
    # A painting that still changes at the start over a steady footage: both figures see it.
    settles = VideoMetrics(frames, 8, 8, {1: [PairError(t, 0.004 if t < 10 else 0.001, 0.002) for t in range(15)]})
    assert settles.settling() == pytest.approx(4.0) and settles.paired_settling() == pytest.approx(4.0)
    # A pair whose footage has no E_warp is left out, not divided by; its later pairs' median
    # is that of the rest.
    with_still = [*follows.pairs[1][:12], PairError(12, 0.5, 0.0), *follows.pairs[1][13:]]
    assert VideoMetrics(frames, 8, 8, {1: with_still}).paired_settling() == pytest.approx(1.0)
    assert follows.summary()["paired_settling"] == pytest.approx(1.0)
    # Ten pairs leave none to compare with.
    assert VideoMetrics(frames[:11], 8, 8, {1: follows.pairs[1][:10]}).paired_settling() is None


@pytest.mark.parametrize(
    ("text", "gaps"), [("1", (1,)), ("15,5", (1, 5, 15)), ("1, 5,5,15", (1, 5, 15)), ("2", (1, 2))]
)
def test_parse_gaps(text: str, gaps: tuple[int, ...]) -> None:
    from nstpipe.engine.metrics import parse_gaps

    assert parse_gaps(text) == gaps


@pytest.mark.parametrize("text", ["", "0,5", "-1", "a,b", "1.5", "1,,5", "1,5,"])
def test_parse_gaps_refuses(text: str) -> None:
    from nstpipe.engine.metrics import parse_gaps

    with pytest.raises(ValueError, match="gaps"):
        parse_gaps(text)
