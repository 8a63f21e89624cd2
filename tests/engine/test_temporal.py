"""nstpipe.engine.temporal: where each frame starts, and its budget, with a stand-in encoder."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import numpy as np
import pytest
import torch

from helpers import TinyEncoder, smooth_image, stripes_image
from nstpipe.config import EngineConfig, Settings, VideoConfig
from nstpipe.engine.stylize import Stylizer
from nstpipe.engine.temporal import FrameInput, FrameStylizer, frame_start
from nstpipe.engine.tensors import prepare, to_rgb8

H, W, SHIFT = 32, 48, 3


def frames() -> tuple[np.ndarray, np.ndarray]:
    """A textured scene and the same scene moved SHIFT pixels to the right."""
    scene = to_rgb8(smooth_image(H, W + SHIFT, phase=0.3) * 0.5 + stripes_image(H, W + SHIFT, period=5) * 0.5)
    return np.ascontiguousarray(scene[:, SHIFT:]), np.ascontiguousarray(scene[:, :W])


def painted(seed: int = 1) -> np.ndarray:
    return to_rgb8(torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(seed)))


def test_first_frame_and_mode_none_start_like_a_photo() -> None:
    before, after = frames()
    assert frame_start("flow", before, None, None) == frame_start("none", after, before, painted())
    start = frame_start("none", after, before, painted())
    assert start.init is None and start.temporal is None


def test_prev_starts_from_the_previous_output_unwarped_without_a_temporal_term() -> None:
    before, after = frames()
    previous = painted()
    start = frame_start("prev", after, before, previous)
    assert start.temporal is None and start.init is not None
    assert torch.equal(start.init, prepare(previous))


def test_flow_warps_the_previous_output_along_the_source_motion() -> None:
    """The scene moved SHIFT px right, so the painted frame must move with it."""
    before, after = frames()
    previous = painted()
    start = frame_start("flow", after, before, previous)
    assert start.temporal is not None and start.init is start.temporal.warped
    # warped(x) = previous(x - SHIFT), away from the borders where DIS is least sure.
    warped = start.init[0, :, 4 : H - 4, SHIFT + 4 : W - 4]
    expected = prepare(previous)[0, :, 4 : H - 4, 4 : W - SHIFT - 4]
    # Median: DIS is sub-pixel accurate almost everywhere, but a per-pixel random picture
    # turns each rare miss into a full-range error.
    assert (warped - expected).abs().median() < 0.03
    unwarped = prepare(previous)[0, :, 4 : H - 4, SHIFT + 4 : W - 4]
    assert (unwarped - expected).abs().median() > 0.1
    # The columns that entered on the left have no predecessor: not trusted.
    mask = start.temporal.mask
    assert mask[:, :SHIFT].sum() == 0
    assert mask[4:-4, SHIFT + 4 : -4].mean() > 0.9


def budget_settings(mode: str) -> Settings:
    engine = EngineConfig(
        content_layer="relu2_1", style_layers=("relu1_1",), style_layer_weights=(1.0,),
        scales=2, min_scale_size=8, coarse_iterations=3, iterations=4, tolerance=0.0,
    )
    return Settings(size=W, device="cpu", engine=engine, video=VideoConfig(temporal=mode, later_iterations=2))


@pytest.mark.parametrize("mode, later", [("flow", 2), ("prev", 2), ("none", 3 + 4)])
def test_first_frame_gets_the_full_budget_later_frames_their_own(mode: str, later: int) -> None:
    settings = budget_settings(mode)
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    before, after = frames()
    first = stylizer.stylize(before)
    assert first.iterations == 3 + 4 and first.rgb.shape == (H, W, 3) and first.rgb.dtype == np.uint8
    second = stylizer.stylize(after, before, first.rgb)
    assert second.iterations == later


@pytest.mark.parametrize("mode, first, later", [("flow", 6 + 8, 2), ("prev", 6 + 8, 2), ("none", 3 + 4, 3 + 4)])
def test_a_chains_first_frame_runs_first_budget_times_the_iterations(mode: str, first: int, later: int) -> None:
    """Chained modes give the first frame more; "none" paints every frame alike, as a photo."""
    settings = budget_settings(mode)
    settings = dataclasses.replace(settings, video=dataclasses.replace(settings.video, first_budget=2.0))
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    before, after = frames()
    head = stylizer.stylize(before)
    assert head.iterations == first
    assert stylizer.stylize(after, before, head.rgb).iterations == later


def test_a_chains_first_frame_runs_first_budget_times_the_coarsest_levels_budget_too() -> None:
    settings = budget_settings("flow")
    engine = dataclasses.replace(settings.engine, coarsest_iterations=5)
    settings = dataclasses.replace(settings, engine=engine, video=dataclasses.replace(settings.video, first_budget=2.0))
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    assert stylizer.stylize(frames()[0]).iterations == 10 + 8


@pytest.mark.parametrize("mode", ["flow", "prev"])
def test_a_later_frame_starts_from_its_predecessor(mode: str) -> None:
    """With no iterations to run, a later frame is exactly where it started."""
    settings = dataclasses.replace(budget_settings(mode), video=VideoConfig(temporal=mode, later_iterations=0))
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    before, after = frames()
    previous = painted()
    result = stylizer.stylize(after, before, previous)
    assert result.iterations == 0
    init = frame_start(mode, after, before, previous).init
    assert init is not None
    assert np.array_equal(result.rgb, to_rgb8(init))


def test_temporal_term_holds_trusted_pixels_to_the_warped_frame() -> None:
    """Same start, same budget: with the temporal weight the output stays near the warped
    previous frame where the mask trusts it; without, it drifts toward its own optimum."""
    before, after = frames()
    previous = painted()
    start = frame_start("flow", after, before, previous)
    assert start.init is not None and start.temporal is not None
    drift = {}
    for weight in (0.0, 1e4):
        engine = EngineConfig(content_layer="relu2_1", style_layers=("relu1_1",), style_layer_weights=(1.0,),
                              iterations=15, temporal_weight=weight)
        result = Stylizer(TinyEncoder(), [stripes_image(16, 16)], engine).run(
            prepare(after), init=start.init, temporal=start.temporal
        )
        trusted = start.temporal.mask.bool()
        drift[weight] = (result.image - start.init).abs()[0][:, trusted].mean().item()
    assert drift[1e4] < 0.2 * drift[0.0]


def test_inputs_are_not_modified() -> None:
    before, after = frames()
    previous = painted()
    copies = [a.copy() for a in (before, after, previous)]
    frame_start("flow", after, before, previous)
    assert all(np.array_equal(a, b) for a, b in zip((before, after, previous), copies))


def test_seam_start_eases_from_the_incoming_chain_to_the_chunks_own_frame() -> None:
    from nstpipe.engine.temporal import seam_start

    before, after = frames()
    incoming, own = painted(1), painted(2)
    flow = frame_start("flow", after, before, incoming)
    assert flow.temporal is not None
    mask = flow.temporal.mask
    whole = seam_start(after, before, incoming, own, 1.0).init
    assert whole is not None and torch.allclose(whole, prepare(own))
    half = seam_start(after, before, incoming, own, 0.5)
    assert half.init is not None and half.temporal is not None
    trusted = mask.bool()
    expected = (flow.temporal.warped + prepare(own)) / 2
    assert torch.allclose(half.init[..., trusted], expected[..., trusted], atol=1e-6)
    # Where the incoming frame is not trusted, only the chunk's own frame counts.
    assert torch.allclose(half.init[..., ~trusted], prepare(own)[..., ~trusted], atol=1e-6)
    assert torch.allclose(half.temporal.mask, 0.5 * mask + 0.5)


@pytest.mark.parametrize("mode", ["flow", "prev", "none"])
def test_frames_of_several_chains_in_one_call_are_painted_as_alone(mode: str) -> None:
    """Two first frames and two later ones (with their own predecessors) in one call: the
    first frames share one batch and the later ones another, and each frame comes out as
    it would alone, with its own budget."""
    settings = budget_settings(mode)
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    before, after = frames()
    inputs = [
        FrameInput(before), FrameInput(after, before, painted(1)), FrameInput(after), FrameInput(before, after, painted(2)),
    ]
    together = stylizer.stylize_many(inputs)
    alone = [stylizer.stylize(f.source, f.previous_source, f.previous_output) for f in inputs]
    assert [r.iterations for r in together] == [r.iterations for r in alone]
    assert together[1].iterations == (3 + 4 if mode == "none" else 2)
    for batched, single in zip(together, alone):
        assert np.abs(batched.rgb.astype(int) - single.rgb.astype(int)).max() <= 1
    assert not np.array_equal(together[1].rgb, together[3].rgb)  # not one frame copied to all


def test_frames_that_run_out_of_gpu_memory_together_are_painted_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = budget_settings("flow")
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    before, after = frames()
    inputs = [FrameInput(after, before, painted(1)), FrameInput(before, after, painted(2))]
    expected = stylizer.stylize_many(inputs)
    sizes: list[int] = []
    handling: list[object] = []  # the exception being handled when each run starts
    real = Stylizer.run

    def run(self: Stylizer, content: torch.Tensor, *args: Any, **kwargs: Any) -> object:
        sizes.append(content.shape[0])
        handling.append(sys.exc_info()[0])
        if content.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(self, content, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "run", run)
    alone = stylizer.stylize_many(inputs)
    assert sizes == [2, 1, 1]
    # Retried after the handler, not inside it: there, the traceback would still hold the
    # failed batch's activations (tests/engine/test_cuda.py runs out of real GPU memory).
    assert handling == [None, None, None]
    for batched, single in zip(expected, alone):
        assert np.abs(batched.rgb.astype(int) - single.rgb.astype(int)).max() <= 1


# -- the long-term temporal loss (temporal_gaps beyond 1) ---------------------------------------


def test_long_term_masks_count_each_pixel_once_with_the_nearest_frame_that_saw_it() -> None:
    from nstpipe.engine.temporal import long_term_masks

    # Four pixels; frames nearest first. Pixel 0 seen by all, 1 from gap 2 on, 2 only by
    # the furthest frame, 3 by none; soft masks keep their sum at the largest of them.
    masks = [torch.tensor([1.0, 0.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 1.0, 0.0])]
    shares = long_term_masks(masks)
    assert [m.tolist() for m in shares] == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    soft = long_term_masks([torch.tensor([0.25, 0.5]), torch.tensor([1.0, 0.25])])
    assert [m.tolist() for m in soft] == [[0.25, 0.5], [0.75, 0.0]]
    assert torch.equal(soft[0] + soft[1], torch.tensor([1.0, 0.5]))


def test_long_term_target_holds_a_pixel_to_the_most_recent_frame_where_it_was_visible() -> None:
    from nstpipe.engine.stylize import TemporalTarget
    from nstpipe.engine.temporal import long_term_target

    colours = (0.2, 0.5, 0.8)  # the warped frames at gaps 1, 2, 4, flat
    visible = ([1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0])
    targets = [
        TemporalTarget(warped=torch.full((1, 3, 1, 4), c), mask=torch.tensor([v], dtype=torch.float32))
        for c, v in zip(colours, visible)
    ]
    target = long_term_target(targets)
    assert target.warped[0, 0, 0].tolist() == pytest.approx([0.2, 0.5, 0.8, 0.2])  # the last: the nearest, left free
    assert target.mask[0].tolist() == [1, 1, 1, 0]


def test_a_fading_hold_weighs_every_frame_that_saw_a_pixel_half_as_much_as_the_nearer() -> None:
    from nstpipe.engine.stylize import TemporalTarget
    from nstpipe.engine.temporal import fading_masks, long_term_target

    # The same pixels as above: 0 seen by all three frames, 1 from gap 2 on, 2 only by the
    # furthest, 3 by none. Weights 1, 1/2, 1/4 where seen, scaled to sum to the largest mask.
    visible = ([1.0, 0, 0, 0], [1.0, 1, 0, 0], [0.0, 1, 1, 0])
    shares = fading_masks([torch.tensor(v) for v in visible])
    assert [m.tolist() for m in shares] == [
        pytest.approx([2 / 3, 0, 0, 0]), pytest.approx([1 / 3, 2 / 3, 0, 0]), pytest.approx([0, 1 / 3, 1, 0])
    ]
    colours = (0.2, 0.5, 0.8)
    targets = [
        TemporalTarget(warped=torch.full((1, 3, 1, 4), c), mask=torch.tensor([v], dtype=torch.float32))
        for c, v in zip(colours, visible)
    ]
    fading = long_term_target(targets, "fading")
    # Pixel 0: (0.2 + 0.5 / 2) / 1.5, not the nearest's 0.2; pixel 1: (0.5 + 0.8 / 2) / 1.5.
    assert fading.warped[0, 0, 0].tolist() == pytest.approx([0.3, 0.6, 0.8, 0.2])
    assert fading.mask[0].tolist() == pytest.approx([1, 1, 1, 0])
    assert long_term_target(targets, "recent").warped[0, 0, 0].tolist() == pytest.approx([0.2, 0.5, 0.8, 0.2])


def there_and_back() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames t-2, t-1, t of a view that moves SHIFT px and comes back: t is t-2 again, and
    the columns that entered on the left at t were out of the view at t-1, not at t-2."""
    view, moved = frames()  # moved: the scene SHIFT px to the right of where view shows it
    return moved, view, moved.copy()


def test_flow_holds_pixels_hidden_from_the_previous_frame_to_an_earlier_one() -> None:
    from nstpipe.engine.temporal import Earlier

    two_back, one_back, now = there_and_back()
    out_two, out_one = painted(2), painted(1)
    short = frame_start("flow", now, one_back, out_one)
    long = frame_start("flow", now, one_back, out_one, [Earlier(2, two_back, out_two)])
    assert short.temporal is not None and long.temporal is not None and long.init is long.temporal.warped
    hidden = short.temporal.mask == 0  # from the previous frame: the columns that came back on the left
    assert hidden[4:-4, :SHIFT].all() and short.temporal.mask[4:-4, SHIFT + 4 : -4].mean() > 0.9
    # There, the frame two back saw them (the same view): held to it, where the short loss leaves them free.
    assert long.temporal.mask[4:-4, :SHIFT].min() == 1
    back = long.temporal.warped[0, :, 4:-4, :SHIFT] - prepare(out_two)[0, :, 4:-4, :SHIFT]
    assert back.abs().median() < 0.03
    # Where the previous frame saw a pixel, it alone holds it, as without the long-term loss.
    seen = (short.temporal.mask == 1).expand(3, -1, -1)
    assert torch.equal(long.temporal.warped[0][seen], short.temporal.warped[0][seen])
    assert torch.equal(long.temporal.mask[short.temporal.mask == 1], short.temporal.mask[short.temporal.mask == 1])


# -- passes after the first (video_passes) ------------------------------------------------------


def test_a_later_pass_starts_between_its_painting_and_the_neighbours_where_the_flow_is_trusted() -> None:
    from nstpipe.engine.temporal import again_start

    before, after = frames()
    neighbour, current = painted(1), painted(2)
    start = frame_start("flow", after, before, neighbour)
    assert start.init is not None and start.temporal is not None
    again = again_start(start, current, 0.25)
    assert again.temporal is start.temporal and again.init is not None  # held to the neighbour, as in the first pass
    trusted = start.temporal.mask == 1
    expected = 0.75 * prepare(current) + 0.25 * start.init
    assert torch.allclose(again.init[..., trusted], expected[..., trusted], atol=1e-6)
    untrusted = start.temporal.mask == 0
    assert untrusted.any() and torch.equal(again.init[..., untrusted], prepare(current)[..., untrusted])
    whole = again_start(start, current, 1.0).init
    assert whole is not None and torch.allclose(whole[..., trusted], start.init[..., trusted])


def test_a_later_pass_runs_its_own_budget_from_its_own_start() -> None:
    """A frame of a later pass runs ``pass_iterations``; with none, it is its start."""
    settings = budget_settings("flow")
    video = dataclasses.replace(settings.video, pass_iterations=0, pass_blend=0.5)
    settings = dataclasses.replace(settings, video=video)
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    before, after = frames()
    frame = FrameInput(after, before, painted(1), current=painted(2))
    chained = FrameInput(before, after, painted(3))
    again, later = stylizer.stylize_many([frame, chained])
    assert (again.iterations, later.iterations) == (0, 2)
    init = stylizer.start(frame).init
    assert init is not None and np.array_equal(again.rgb, to_rgb8(init))


def test_a_chains_first_frame_runs_until_it_settles_with_first_budget_as_the_cap() -> None:
    """The first frame every later one inherits stops once its loss changes by less than
    ``tolerance`` over ``patience`` iterations (the engine's early stopping), however far
    the cap ``first_budget`` lies; without a tolerance it runs to the cap."""
    settings = budget_settings("flow")
    before, _ = frames()
    iterations = {}
    for tolerance in (0.0, 2e-2):
        engine = dataclasses.replace(settings.engine, scales=1, iterations=4, tolerance=tolerance, patience=5)
        video = dataclasses.replace(settings.video, first_budget=50.0)
        s = dataclasses.replace(settings, engine=engine, video=video)
        stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], engine), s)
        iterations[tolerance] = stylizer.stylize(before).iterations
    assert iterations[0.0] == 4 * 50
    assert 5 < iterations[2e-2] < 4 * 50, iterations


def test_temporal_blend_moves_trusted_pixels_back_toward_the_warped_frame() -> None:
    """x + blend * c * (w - x): a share of the way where the flow is trusted, nothing where
    it is not, and the painted tensor itself untouched."""
    from nstpipe.engine.stylize import TemporalTarget
    from nstpipe.engine.temporal import settled

    image = torch.zeros(1, 3, 2, 2)
    warped = torch.ones(1, 3, 2, 2)
    mask = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]])
    out = settled(image, TemporalTarget(warped=warped, mask=mask), 0.8)
    assert torch.allclose(out[0, :, 0, 0], torch.full((3,), 0.8))
    assert torch.equal(out[0, :, 0, 1], torch.zeros(3))  # untrusted: as painted
    assert torch.allclose(out[0, :, 1, 0], torch.full((3,), 0.4))
    assert torch.equal(image, torch.zeros(1, 3, 2, 2))
    assert settled(image, TemporalTarget(warped=warped, mask=mask), 0.0) is image
    assert settled(image, None, 0.8) is image


@pytest.mark.parametrize("blend", [0.0, 0.5])
def test_a_later_frame_ends_blend_of_the_way_back_toward_its_start(blend: float) -> None:
    """With the iterations run, the saved frame is the painted one moved ``blend`` of the way
    toward the warped predecessor where trusted: the later frame's painting is steadier by
    that share, and a blend of 0 leaves the frame as painted."""
    before, after = frames()
    previous = painted()
    start = frame_start("flow", after, before, previous)
    assert start.init is not None and start.temporal is not None
    base = budget_settings("flow")
    settings = dataclasses.replace(
        base, engine=dataclasses.replace(base.engine, temporal_weight=1.0),  # a light hold: the iterations move the frame
        video=VideoConfig(temporal="flow", later_iterations=5, temporal_gaps=(1,), temporal_blend=blend),
    )
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    result = stylizer.stylize(after, before, previous)
    free = Stylizer(TinyEncoder(), [stripes_image(16, 16)], stylizer.later.config).run(
        prepare(after), init=start.init, temporal=start.temporal
    )
    expected = free.image + blend * start.temporal.mask * (start.init - free.image)
    assert np.abs(result.rgb.astype(int) - to_rgb8(expected).astype(int)).max() <= 1
    trusted = start.temporal.mask[0, 0] if start.temporal.mask.dim() == 4 else start.temporal.mask
    moved = np.abs(result.rgb.astype(float) / 255 - to_rgb8(start.init).astype(float) / 255).mean(axis=2)[trusted.numpy() > 0.99].mean()
    painted_moved = (free.image - start.init).abs()[0].mean(0)[trusted > 0.99].mean().item()
    assert painted_moved > 0.03  # the iterations did move the frame
    assert moved == pytest.approx((1 - blend) * painted_moved, rel=0.15)


def half_moved() -> tuple[np.ndarray, np.ndarray]:
    """Two frames whose left half is the same picture and whose right half moved SHIFT px."""
    before, after = frames()
    still = to_rgb8(smooth_image(H, W, phase=0.7) * 0.5 + stripes_image(H, W, period=3) * 0.5)
    half = W // 2
    before, after = before.copy(), after.copy()
    before[:, :half], after[:, :half] = still[:, :half], still[:, :half]
    return before, after


def test_still_in_place_is_where_every_earlier_frame_agrees_in_place() -> None:
    from nstpipe.engine.temporal import still_in_place

    before, after = half_moved()
    still = still_in_place(after, [before])[0, 0]
    assert still.shape == (H, W) and set(still.unique().tolist()) <= {0.0, 1.0}
    half = W // 2
    assert still[:, : half - 4].min() == 1  # the left half stands still
    assert still[:, half + 4 :].max() == 0  # the right half moved
    # A frame further back that differs on the left releases it there: a slow change
    # that passes the margin only against the frames further back is followed again.
    further = before.copy()
    further[:, : half // 2] = 255 - further[:, : half // 2]
    both = still_in_place(after, [before, further])[0, 0]
    assert both[:, : half // 2 - 4].max() == 0 and both[:, half // 2 + 4 : half - 4].min() == 1
    assert still_in_place(after, [])[0, 0].min() == 1


@pytest.mark.parametrize("hold", [False, True])
def test_hold_still_keeps_the_predecessor_exactly_where_the_footage_stood_still(hold: bool) -> None:
    """With ``hold_still`` a later frame equals its predecessor where the footage stood
    still, and is painted as before where it moved; without it, the iterations move the
    still pixels too (a light temporal weight, so that they do)."""
    from nstpipe.engine.temporal import still_in_place

    before, after = half_moved()
    previous = painted()
    base = budget_settings("flow")
    settings = dataclasses.replace(
        base, engine=dataclasses.replace(base.engine, temporal_weight=1.0),
        video=VideoConfig(temporal="flow", later_iterations=5, temporal_gaps=(1,), hold_still=hold),
    )
    stylizer = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), settings)
    result = stylizer.stylize(after, before, previous).rgb.astype(int)
    still = still_in_place(after, [before])[0, 0].numpy() > 0
    assert still.mean() > 0.3 and (~still).mean() > 0.3
    change = np.abs(result - previous.astype(int)).max(axis=2)
    free = dataclasses.replace(settings, video=dataclasses.replace(settings.video, hold_still=False))
    unheld = FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], settings.engine), free).stylize(after, before, previous)
    if hold:
        assert change[still].max() == 0
        assert np.array_equal(result[~still], unheld.rgb.astype(int)[~still])  # the rest is painted as before
    else:
        assert np.abs(change[still]).mean() > 2  # the iterations moved the still pixels
