"""The warping error E_warp on synthetic clips with known motion."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from pipeline.engine.metrics import frame_warping_error

H, W = 48, 64


def scene(seed: int = 0) -> np.ndarray:
    """Smooth random texture (bicubic upsampling of coarse noise): optical flow can track it."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((3, H // 4, W // 4)).astype(np.float32))[None]
    img = torch.nn.functional.interpolate(coarse, size=(H, W), mode="bicubic", align_corners=False)[0]
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


def test_source_at_matches_the_pipelines_resize_and_crop() -> None:
    from pipeline.engine.metrics import source_at
    from pipeline.engine.tensors import prepare, to_rgb8

    frame = scene(3)[:30]  # 30x64 at long side 32 is 15x32, which the writer crops to 14x32
    made = to_rgb8(prepare(frame, 32))[:14, :32]
    assert np.array_equal(source_at(frame, 14, 32), made)
    assert source_at(frame, 30, 30).shape == (30, 30, 3)  # not a crop of a resize: plain resize


def test_video_metrics_of_the_source_itself(tiny_encoder) -> None:
    from pipeline.engine.metrics import video_metrics

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
