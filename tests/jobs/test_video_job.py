"""``stylize_video`` end to end on short generated clips, with the real VGG19 at tiny sizes."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Sequence, cast
from unittest import mock

import numpy as np
import pytest

from clips import (
    audio_packets,
    audio_times_from_picture_start,
    is_red,
    make_clip,
    make_pan,
    video_times,
    zero_frame_clip,
)
from nstpipe.app import VideoOptions, default_work_dir, stylize_video
from nstpipe.app.video import frame_store
from nstpipe.config import Settings, VideoConfig, build_settings
from nstpipe.engine.metrics import frame_warping_error
from nstpipe.engine.temporal import FrameInput, FrameStylizer, StylizedFrame
from nstpipe.engine.tensors import prepare, to_rgb8
from nstpipe.errors import InputError
from nstpipe.events import Chosen, EventSink, FrameDone, FrameStarted, Kept, VideoPlanned
from nstpipe.jobs import records
from nstpipe.jobs.chains import chain_groups, run_chunks, stylize_chains
from nstpipe.jobs.plan import Chunk
from nstpipe.jobs.records import VideoJob, make_video_job
from nstpipe.jobs.video_job import FramesSummary, blend_seam
from nstpipe.media.framestore import FrameStore
from nstpipe.media.imaging import read_rgb
from nstpipe.media.video import probe, read_frames
from nstpipe.run.executor import LocalExecutor

FAST = {"size": 32, "scales": 1, "iterations": 2, "later_iterations": 1, "tolerance": 0.0, "device": "cpu"}


def settings(**changes: object) -> Settings:
    return build_settings("fast", None, {**FAST, **changes})


class Stop(Exception):
    """Stands in for Ctrl-C or a crash."""


def stop_after(frames: int, events: list[object]):
    def report(event: object) -> None:
        events.append(event)
        if isinstance(event, FrameDone) and sum(isinstance(e, FrameDone) for e in events) == frames:
            raise Stop

    return report


def started(events: list[object]) -> list[int]:
    return [e.index for e in events if isinstance(e, FrameStarted)]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return make_clip(tmp_path / "in.mp4", n_frames=8, width=48, height=32, fps=8, audio=1)


@pytest.fixture
def style_path(painting_path: Path) -> Path:
    return painting_path


def test_output_keeps_frames_rate_duration_audio_and_has_even_size(tmp_path: Path, clip: Path, style_path: Path) -> None:
    out = tmp_path / "out" / "styled.mp4"
    summary = stylize_video(clip, [style_path], out, settings(), lambda e: None)
    source, result = probe(clip), probe(out)
    # 48x32 at long side 32 is 32x21; the odd row is cropped for yuv420p.
    assert (result.width, result.height) == (32, 20)
    assert (result.frame_count, result.fps, result.rotation) == (8, source.fps, 0)
    assert result.duration == pytest.approx(source.duration, abs=1 / 8)
    assert audio_packets(out) == audio_packets(clip)  # copied, not re-encoded
    assert summary.frames == summary.stylized == 8 and summary.iterations == 2 + 7 * 1
    # Published atomically, and the work folder is gone once the video exists; the record
    # beside it lets a rerun keep it.
    assert sorted(os.listdir(out.parent)) == ["styled.mp4", "styled.mp4.settings.json"]
    # The record names the arithmetic "auto" chose, as an image's does.
    assert json.loads((out.parent / "styled.mp4.settings.json").read_text())["settings"]["precision"] in ("fp32", "bf16")


def test_rotated_and_variable_rate_input(tmp_path: Path, style_path: Path) -> None:
    times = [0.0, 0.05, 0.3, 0.35, 0.9, 1.0]
    clip = make_clip(tmp_path / "r.mp4", n_frames=6, width=48, height=32, rotation=90, times=times)
    out = tmp_path / "r_out.mp4"
    stylize_video(clip, [style_path], out, settings(), lambda e: None)
    info = probe(out)
    assert (info.width, info.height, info.rotation) == (20, 32, 0)  # upright: 32x48 shown, long side 32
    assert video_times(out) == pytest.approx(times, abs=2e-3)
    # Upright content: the stored top (red) half is on the left once rotated.
    assert next(read_frames(out)).rgb[:, :8, 0].mean() > next(read_frames(out)).rgb[:, -8:, 0].mean()


def test_resume_after_interruption_redoes_no_finished_frame(tmp_path: Path, clip: Path, style_path: Path) -> None:
    out, work = tmp_path / "a.mp4", tmp_path / "work"
    events: list[object] = []
    with pytest.raises(Stop):
        stylize_video(clip, [style_path], out, settings(), stop_after(3, events), work_dir=work)
    assert started(events) == [0, 1, 2] and not out.exists()
    store = next(work.iterdir())
    finished = {p.name: p.stat().st_mtime_ns for p in store.glob("frame-*.png")}
    assert sorted(finished) == [f"frame-{i:06d}.png" for i in range(3)]

    events = []
    stylize_video(clip, [style_path], out, settings(), events.append, work_dir=work, keep_frames=True)
    assert VideoPlanned(8, 3) in events
    assert started(events) == [3, 4, 5, 6, 7]
    assert {name: (store / name).stat().st_mtime_ns for name in finished} == finished
    assert probe(out).frame_count == 8

    # The chain continued from the saved frame: the same frames as an uninterrupted run.
    straight = tmp_path / "straight"
    stylize_video(clip, [style_path], tmp_path / "b.mp4", settings(), lambda e: None, work_dir=straight, keep_frames=True)
    for index in range(8):
        name = f"frame-{index:06d}.png"
        assert np.array_equal(read_rgb(store / name), read_rgb(next(straight.iterdir()) / name)), name


def test_a_preview_leaves_the_frames_of_an_interrupted_run_which_then_resumes(tmp_path: Path, clip: Path, style_path: Path) -> None:
    out, work = tmp_path / "a.mp4", tmp_path / "work"
    with pytest.raises(Stop):
        stylize_video(clip, [style_path], out, settings(), stop_after(3, []), work_dir=work)
    store = next(work.iterdir())
    finished = {p.name: p.stat().st_mtime_ns for p in store.glob("frame-*.png")}
    assert len(finished) == 3

    events: list[object] = []
    stylize_video(clip, [style_path], out, settings(), events.append, work_dir=work, limit=2)
    assert started(events) == [0, 1] and probe(out).frame_count == 2
    # The preview's own frames are gone once its video is out; the whole run's stay as they were.
    assert list(work.iterdir()) == [store]
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("frame-*.png")} == finished

    events = []
    stylize_video(clip, [style_path], out, settings(), events.append, work_dir=work)
    assert VideoPlanned(8, 3) in events and started(events) == [3, 4, 5, 6, 7]
    assert probe(out).frame_count == 8 and not work.exists()


def test_a_run_over_other_frames_has_a_store_and_a_chunk_plan_of_its_own(tmp_path: Path, clip: Path, style_path: Path) -> None:
    # Frames painted under one split of the frames into chains are no frames of another split.
    job = make_video_job(settings(), [style_path], clip, probe(clip))
    roots = {frames: frame_store(job, tmp_path / "a.mp4", frames, VideoOptions()).root for frames in (2, 5, 8)}
    assert len(set(roots.values())) == 3 and roots[8] == FrameStore(default_work_dir(tmp_path / "a.mp4"), job.fingerprint).root


def test_a_kept_output_takes_away_the_frames_a_run_killed_after_its_record_left(
    tmp_path: Path, clip: Path, style_path: Path
) -> None:
    out = tmp_path / "a.mp4"
    work = default_work_dir(out)
    # --keep-frames leaves what a kill between the record and the removal of the frames leaves.
    stylize_video(clip, [style_path], out, settings(), lambda e: None, keep_frames=True)
    assert any(work.glob("*/frame-*.png"))
    events: list[object] = []
    stylize_video(clip, [style_path], out, settings(), events.append, keep_frames=True)
    assert Kept(out) in events and any(work.glob("*/frame-*.png"))  # still asked to keep them
    events = []
    stylize_video(clip, [style_path], out, settings(), events.append)
    assert Kept(out) in events and not work.exists()
    assert sorted(os.listdir(tmp_path)) == ["a.mp4", "a.mp4.settings.json", "in.mp4"]


def test_a_kept_output_leaves_the_frames_a_run_of_another_crf_was_painting(tmp_path: Path, clip: Path, style_path: Path) -> None:
    out = tmp_path / "a.mp4"
    stylize_video(clip, [style_path], out, settings(), lambda e: None)  # its frames go once it is out
    events: list[object] = []
    with pytest.raises(Stop):
        stylize_video(clip, [style_path], out, settings(crf=30), stop_after(3, events))
    events = []
    stylize_video(clip, [style_path], out, settings(), events.append)
    assert Kept(out) in events
    events = []
    stylize_video(clip, [style_path], out, settings(crf=30), events.append)
    assert started(events) == [3, 4, 5, 6, 7]  # the interrupted run's three frames were left to it
    assert not default_work_dir(out).exists()


def test_changed_settings_do_not_reuse_frames_but_a_new_crf_does(tmp_path: Path, clip: Path, style_path: Path) -> None:
    out, work = tmp_path / "a.mp4", tmp_path / "work"
    stylize_video(clip, [style_path], out, settings(), lambda e: None, work_dir=work, keep_frames=True)
    events: list[object] = []
    stylize_video(clip, [style_path], out, settings(crf=30), events.append, work_dir=work, keep_frames=True)
    assert started(events) == []  # only re-encoded
    # The temporal weight too, though a photo's fingerprint leaves it out (test_config).
    for changed in ({"temporal": "prev"}, {"later_iterations": 2}, {"style_weight": 2.0}, {"temporal_weight": 7.0}):
        events = []
        stylize_video(clip, [style_path], out, settings(**changed), events.append, work_dir=work, keep_frames=True)
        assert started(events) == list(range(8)), changed
    assert len(list(work.iterdir())) == 5  # one folder per job


def test_frames_read_as_other_pixels_are_painted_again(clip: Path, style_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A new reader revision (the same file decoded to other pixels) is another job: its
    # frames are not chained onto those painted from the earlier reading.
    job = make_video_job(settings(), [style_path], clip, probe(clip))
    monkeypatch.setattr(records, "READER_REVISION", records.READER_REVISION + 1)
    assert make_video_job(settings(), [style_path], clip, probe(clip)).fingerprint != job.fingerprint


def test_frames_chained_along_another_flow_are_painted_again(clip: Path, style_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job = make_video_job(settings(), [style_path], clip, probe(clip))
    monkeypatch.setattr(records, "FLOW_REVISION", records.FLOW_REVISION + 1)
    assert make_video_job(settings(), [style_path], clip, probe(clip)).fingerprint != job.fingerprint


def test_preview_of_the_first_frames(tmp_path: Path, clip: Path, style_path: Path) -> None:
    out = tmp_path / "preview.mp4"
    summary = stylize_video(clip, [style_path], out, settings(), lambda e: None, limit=3)
    info = probe(out)
    assert summary.frames == info.frame_count == 3
    assert info.has_audio and info.duration == pytest.approx(3 / 8, abs=0.1)
    # The sound under those frames, not the whole clip's second of it.
    assert 0.2 < audio_times_from_picture_start(out)[-1] < 3 / 8 + 0.07


def test_a_killed_encodes_temp_file_goes_and_other_videos_in_the_making_stay(tmp_path: Path, clip: Path, style_path: Path) -> None:
    from nstpipe.media.writer import create_temp, temp_tag

    out = tmp_path / "videos" / "v.mp4"
    out.parent.mkdir()
    leftovers = [create_temp(out.parent, temp_tag(out)), create_temp(out.parent, temp_tag(out.with_name("w.mp4")))]
    for fd, _ in leftovers:
        os.close(fd)
    stylize_video(clip, [style_path], out, settings(), lambda e: None)
    assert sorted(os.listdir(out.parent)) == sorted(["v.mp4", "v.mp4.settings.json", os.path.basename(leftovers[1][1])])


def test_a_kept_video_takes_away_what_a_killed_encode_of_another_crf_left(tmp_path: Path, clip: Path, style_path: Path) -> None:
    from nstpipe.media.writer import create_temp, record_path, temp_tag

    out = tmp_path / "v.mp4"
    stylize_video(clip, [style_path], out, settings(), lambda e: None)
    # What a run with another --crf, killed while encoding or recording, leaves beside it.
    leftovers = [create_temp(tmp_path, temp_tag(made)) for made in (out, record_path(out))]
    for fd, _ in leftovers:
        os.close(fd)
    events: list[object] = []
    stylize_video(clip, [style_path], out, settings(), events.append)
    assert Kept(out) in events
    assert sorted(os.listdir(tmp_path)) == ["in.mp4", "v.mp4", "v.mp4.settings.json"]


def test_default_work_dir_is_beside_the_output(tmp_path: Path) -> None:
    assert default_work_dir(tmp_path / "x" / "v.mp4") == tmp_path / "x" / "v.mp4.nstpipe-work"


@pytest.mark.parametrize(
    "content, reason",
    [(b"", "empty file"), (b"\x00\x01garbage" * 100, "corrupt"), (None, "file not found"), ("zero", "no video frames")],
    ids=["empty", "garbage", "missing", "zero-frames"],
)
def test_unusable_video_fails_before_any_output(tmp_path: Path, style_path: Path, content: bytes | str | None, reason: str) -> None:
    bad = tmp_path / ("bad.avi" if content == "zero" else "bad.mp4")
    if content == "zero":
        zero_frame_clip(bad)  # a video stream without a single frame
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    out = tmp_path / "out" / "o.mp4"
    with pytest.raises(InputError, match=reason) as error:
        stylize_video(bad, [style_path], out, settings(), lambda e: None)
    assert str(bad) in str(error.value) and "\n" not in str(error.value)
    assert not out.exists() and not default_work_dir(out).exists()


def test_stream_that_ends_early_is_an_error_and_keeps_the_frames(tmp_path: Path, clip: Path, style_path: Path) -> None:
    """A stream that breaks mid-way looks like an end to OpenCV; the container's count tells."""
    s = settings()
    info = dataclasses.replace(probe(clip), frame_count=11)
    job = make_video_job(s, [style_path], clip, info)
    store = FrameStore(tmp_path / "work", job.fingerprint)
    store.open({})
    with pytest.raises(InputError, match="after 8 of 11 frames"):
        stylize_chains(job, store, [Chunk(0, 11)], lambda e: None)
    assert all(store.is_done(i) for i in range(8))


def test_wrong_output_suffix_and_output_over_input(tmp_path: Path, clip: Path, style_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.mp4"):
        stylize_video(clip, [style_path], tmp_path / "o.avi", settings(), lambda e: None)
    with pytest.raises(InputError, match="is the input; the output would replace it"):
        stylize_video(clip, [style_path], clip, settings(), lambda e: None)
    with pytest.raises(InputError, match=f"{tmp_path}: is a folder; name the video to write in it"):
        stylize_video(clip, [style_path], tmp_path, settings(), lambda e: None)
    assert is_red(next(read_frames(clip)).rgb[2:14])


def test_the_size_announced_is_the_size_written(tmp_path: Path, clip: Path, style_path: Path) -> None:
    """H.264 takes even sides: the odd one is cropped, and the opening line says so."""
    events: list[object] = []
    stylize_video(clip, [style_path], tmp_path / "o.mp4", settings(size=33), events.append, limit=2)
    announced = next(e for e in events if isinstance(e, Chosen))
    info = probe(tmp_path / "o.mp4")
    assert announced.size == f"{info.width}x{info.height}" == "32x22"


def test_an_output_name_too_long_for_its_record_fails_before_any_work(tmp_path: Path, clip: Path, style_path: Path) -> None:
    """The output's name fits, its record's (``.settings.json`` added) does not: the frames
    were all painted, then the record could not be written, on every rerun."""
    from nstpipe.app import stylize_videos
    from nstpipe.media.names import name_max

    out = tmp_path / ("a" * (name_max(tmp_path) - len(".mp4")) + ".mp4")
    events: list[object] = []
    options = VideoOptions(work_dir=tmp_path / "work")
    with pytest.raises(InputError) as error:
        list(stylize_videos([clip], [style_path], out, settings(), events.append, options))
    assert str(error.value).startswith(f"{out}: the name is too long: the settings record beside it") and "\n" not in str(error.value)
    assert events == [] and sorted(os.listdir(tmp_path)) == ["in.mp4"]
    with pytest.raises(InputError, match="the name is too long"):
        stylize_video(clip, [style_path], out, settings(), events.append, work_dir=tmp_path / "work")
    assert events == [] and sorted(os.listdir(tmp_path)) == ["in.mp4"]


def test_frames_too_thin_for_the_layers_fail_before_any_output(tmp_path: Path, style_path: Path) -> None:
    thin = make_clip(tmp_path / "thin.mp4", n_frames=3, width=160, height=16)  # 32x3 at --size 32
    with pytest.raises(InputError, match=r"thin.mp4: frames of 32x3 at --size 32 are too thin.*at least 16"):
        stylize_video(thin, [style_path], tmp_path / "o.mp4", settings(), lambda e: None)
    assert os.listdir(tmp_path) == ["thin.mp4"]
    stylize_video(thin, [style_path], tmp_path / "o.mp4", settings(size=192), lambda e: None)  # 192x19
    assert probe(tmp_path / "o.mp4").frame_count == 3


class TwoChains(LocalExecutor):
    """The local executor, but splitting a video as two workers would."""

    def parallelism(self) -> int:
        return 2


def frame_errors(sources: Sequence[np.ndarray], painted: Sequence[np.ndarray], gap: int = 1) -> list[float]:
    """E_warp of each frame against the one ``gap`` before it: element i is frame i + gap's,
    along the flow computed directly between those two source frames."""
    return [frame_warping_error(sources[t], sources[t + gap], painted[t], painted[t + gap]) for t in range(len(painted) - gap)]


@pytest.mark.parametrize("gaps, passes", [((1,), 1), ((1, 2, 4, 8), 1), ((1, 2, 4, 8), 2)], ids=["gap1", "gaps1-8", "gaps1-8-back"])
def test_two_chunks_join_without_a_visible_seam(
    tmp_path: Path, photo_path: Path, painting_path: Path, gaps: tuple[int, ...], passes: int
) -> None:
    """Two workers' chains join without a step at the seam, at every distance in time,
    with the long-term loss and with a pass back over each chain."""
    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=42)
    s = settings(size=40, iterations=20, later_iterations=6, tolerance=0.0, temporal_gaps=gaps, video_passes=passes, pass_iterations=6)
    seam, blend = 21, 10
    events: list[object] = []
    own: dict[int, np.ndarray] = {}

    def keep_own_frames(job: VideoJob, store: FrameStore, chunk: Chunk, on_event: EventSink) -> FramesSummary:
        # The second chain's own first frames, before the blend redoes them: the same two
        # chains cut without the blend, so the step into the seam frame carries the whole
        # difference between them (painted once, not a second time without the blend).
        own.update({i: store.read(i) for i in range(chunk.start, chunk.start + chunk.blend)})
        return blend_seam(job, store, chunk, on_event)

    with mock.patch("nstpipe.jobs.chains.blend_seam", keep_own_frames):
        stylize_video(clip, [painting_path], tmp_path / "two.mp4", s, events.append, executor=TwoChains(), keep_frames=True)
    manifest = json.loads(next((default_work_dir(tmp_path / "two.mp4")).glob("*/manifest.json")).read_text())
    assert manifest["chunks"] == [[0, 21, 0], [seam, 42, blend]]
    # Each chain, forward then (with a pass back) back from its last frame; then the blend.
    first, second = [*range(seam)], [*range(seam, 42)]
    if passes == 2:  # a pass back leaves its first frame, the chain's last, as it is
        first, second = first + first[-2::-1], second + second[-2::-1]
    assert started(events) == [*first, *second, *range(seam, seam + blend)]
    # The painted frames as the store keeps them, before H.264: both sequences are read the
    # same way, and the encoder's own change from frame to frame stays out of the bound.
    store = FrameStore(default_work_dir(tmp_path / "two.mp4"), manifest["fingerprint"])
    sources = [f.rgb for f in read_frames(clip)]
    painted = [store.read(i) for i in range(42)]
    assert sorted(own) == [*range(seam, seam + blend)] and not any(np.array_equal(own[i], painted[i]) for i in own)
    cut_frames = [own.get(i, frame) for i, frame in enumerate(painted)]
    for gap in (1, 5):
        joined, cut = frame_errors(sources, painted, gap), frame_errors(sources, cut_frames, gap)
        # The pairs that reach into the seam frame or the blend, and the others, past the
        # first chain's own settling (which the settling figure measures).
        across = range(seam - gap, seam + blend)
        usual = max(e for i, e in enumerate(joined) if i not in across and i >= blend)
        jump = max(cut[i] for i in range(seam - gap, seam))
        # The blend spreads the difference between the chains over blend + 1 equal steps,
        # so a pair k frames apart inside it carries k/(blend + 1) of it: (k/(blend + 1))^2
        # of the cut's E_warp (a squared error), on top of a usual change between frames k
        # apart; (a + b)^2 <= 2a^2 + 2b^2 bounds it by twice the sum of the two. Both are
        # measured here, in this run, so the bound follows the precision and the versions
        # that painted the frames instead of the numbers one of them gave.
        bound = 2 * usual + 2 * jump * (gap / (blend + 1)) ** 2
        worst = max(joined[i] for i in across)
        assert worst <= bound, (gap, [round(joined[i] / usual, 2) for i in across], round(bound / usual, 2))
        assert jump > bound  # without the blend the cut shows: the check above can fail


class CountingStylizer:
    """Paints a chain's first frame as its source and every later one as its predecessor
    plus 1, and records how many frames each call got."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def stylize_many(self, frames: list[FrameInput], callback: object = None) -> list[StylizedFrame]:
        self.calls.append(len(frames))
        painted = [f.source if f.previous_output is None else f.previous_output + 1 for f in frames]
        return [StylizedFrame(rgb, 1, 0.0) for rgb in painted]


def test_chains_in_step_each_follow_their_own_predecessors_and_resume(tmp_path: Path, photo_path: Path) -> None:
    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=12)
    job = make_video_job(settings(), [photo_path], clip, probe(clip))
    store = FrameStore(tmp_path / "work", job.fingerprint)
    store.open({})
    chunks = [Chunk(0, 5), Chunk(5, 12)]
    sources = [to_rgb8(prepare(f.rgb, 32)) for f in read_frames(clip)]
    counting = CountingStylizer()
    events: list[object] = []
    # A stand-in with FrameStylizer's one method that the chains call.
    stylizer = cast(FrameStylizer, counting)
    with pytest.raises(Stop):  # interrupted after 3 frames: 0 and 5, then 1
        stylize_chains(job, store, chunks, stop_after(3, events), lambda job: stylizer)
    assert started(events) == [0, 5, 1, 6] and counting.calls == [2, 2]
    assert [i for i in range(12) if store.is_done(i)] == [0, 1, 5]
    counting.calls.clear()
    summary = stylize_chains(job, store, chunks, lambda e: None, lambda job: stylizer)
    # Resumed at different frames (2 and 6); the short chain ends first.
    assert counting.calls == [2, 2, 2, 1, 1, 1] and summary.stylized == 9 and summary.frames == 12
    for chunk in chunks:
        for index in range(chunk.start, chunk.stop):
            expected = sources[chunk.start].astype(np.uint8) + np.uint8(index - chunk.start)
            assert np.array_equal(store.read(index), expected), index


@pytest.mark.parametrize("hold", ["recent", "fading"])
def test_a_long_term_chain_resumed_midway_paints_what_an_unbroken_one_paints(tmp_path: Path, photo_path: Path, hold: str) -> None:
    """With temporal_gaps 1, 2, 4 a frame reads frames up to 4 back; after a stop those come
    back from the store, and the chain goes on as if never stopped. A view that slides
    there and back, so content hidden from the previous frame comes back."""
    from helpers import TinyEncoder, stripes_image, tiny_engine
    from nstpipe.config import VideoConfig
    from nstpipe.engine.stylize import Stylizer

    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=12, width=60, height=32)  # 4 px of travel
    base = Settings(size=32, device="cpu", engine=tiny_engine(style_layers=("relu1_1",), style_layer_weights=(1.0,), iterations=3))

    def painted(gaps: tuple[int, ...], stop: int | None = None, hold: str = hold) -> list[np.ndarray]:
        s = dataclasses.replace(base, video=VideoConfig(later_iterations=3, temporal_gaps=gaps, temporal_hold=hold))
        job = make_video_job(s, [photo_path], clip, probe(clip))
        store = FrameStore(tmp_path / f"work-{gaps}-{stop}-{hold}", job.fingerprint)
        store.open({})

        def make(job: VideoJob) -> FrameStylizer:
            return FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], job.settings.engine), job.settings)

        if stop is not None:
            with pytest.raises(Stop):
                stylize_chains(job, store, [Chunk(0, 12)], stop_after(stop, []), make)
            assert [i for i in range(12) if store.is_done(i)] == list(range(stop))
        stylize_chains(job, store, [Chunk(0, 12)], lambda e: None, make)
        return [store.read(i) for i in range(12)]

    unbroken, resumed = painted((1, 2, 4)), painted((1, 2, 4), stop=7)
    for index, (a, b) in enumerate(zip(unbroken, resumed)):
        assert np.array_equal(a, b), index
    # The frames further back change the picture: the check above would see one left out.
    assert any(not np.array_equal(a, b) for a, b in zip(unbroken[7:], painted((1,))[7:]))
    # And so does how they share a pixel.
    other = painted((1, 2, 4), hold="recent" if hold == "fading" else "fading")
    assert any(not np.array_equal(a, b) for a, b in zip(unbroken[7:], other[7:]))


def test_chain_groups() -> None:
    chunks = [Chunk(0, 21), Chunk(21, 42, 10), Chunk(42, 63, 10)]
    assert chain_groups(chunks, 2) == [tuple(chunks[:2]), (chunks[2],)]
    assert chain_groups(chunks, 1) == [(c,) for c in chunks] == chain_groups(chunks, 0)


def test_batched_chains_paint_what_separate_chains_paint(tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    """--batch 2 on one worker splits the video as two workers would, and paints each chain
    in step with the other; each frame follows the path it would follow alone."""
    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=42)
    s = settings(iterations=4, later_iterations=2)
    events: list[object] = []
    stylize_video(clip, [painting_path], tmp_path / "batched.mp4", dataclasses.replace(s, batch=2), events.append, keep_frames=True)
    stylize_video(clip, [painting_path], tmp_path / "apart.mp4", s, lambda e: None, executor=TwoChains(), keep_frames=True)
    assert started(events)[:6] == [0, 21, 1, 22, 2, 23]  # the two chains in step
    frames = {}
    for name in ("batched", "apart"):
        work = next(default_work_dir(tmp_path / f"{name}.mp4").iterdir())
        manifest = json.loads((work / "manifest.json").read_text())
        assert manifest["chunks"] == [[0, 21, 0], [21, 42, 10]]
        assert manifest["settings"]["batch"] == (2 if name == "batched" else 1)  # auto resolved: 1 on CPU
        frames[name] = [read_rgb(p).astype(int) for p in sorted(work.glob("*.png"))]
    assert len(frames["batched"]) == 42
    worst = max(np.abs(a - b).max() for a, b in zip(frames["batched"], frames["apart"]))
    assert worst <= 2


# -- passes after the first (video_passes), with the stand-in encoder --------------------------


def tiny_frames(
    tmp_path: Path, clip: Path, photo_path: Path, video: VideoConfig, chunks: Sequence[Chunk], stop: int | None = None
) -> list[np.ndarray]:
    """The frames of ``clip`` painted as ``chunks`` with the stand-in encoder at 32 px, in a
    work folder of their own; with ``stop``, interrupted after that many frames (of every
    pass) and resumed."""
    from helpers import TinyEncoder, stripes_image, tiny_engine
    from nstpipe.engine.stylize import Stylizer

    engine = tiny_engine(style_layers=("relu1_1",), style_layer_weights=(1.0,), iterations=3)
    s = Settings(size=32, device="cpu", engine=engine, video=video)
    job = make_video_job(s, [photo_path], clip, probe(clip))
    split = "-".join(f"{c.start}.{c.blend}" for c in chunks)
    store = FrameStore(tmp_path / f"work-{job.fingerprint[:8]}-{split}-{stop}", job.fingerprint)
    store.open({"chunks": [dataclasses.astuple(chunk) for chunk in chunks]})  # as the app plans them

    def make(job: VideoJob) -> FrameStylizer:
        return FrameStylizer(Stylizer(TinyEncoder(), [stripes_image(16, 16)], job.settings.engine), job.settings)

    if stop is not None:
        with pytest.raises(Stop):
            run_chunks(job, store, chunks, stop_after(stop, []), make)
    run_chunks(job, store, chunks, lambda e: None, make)
    return [store.read(i) for i in range(chunks[-1].stop)]


def gap_errors(clip: Path, painted: Sequence[np.ndarray], gap: int) -> list[float]:
    """E_warp between painted frames t and t + gap, along the flow between those source frames."""
    sources = [to_rgb8(prepare(f.rgb, 32)) for f in read_frames(clip)]
    return [frame_warping_error(sources[t], sources[t + gap], painted[t], painted[t + gap]) for t in range(len(painted) - gap)]


def test_a_chain_that_keeps_its_still_pixels_resumed_midway_paints_what_an_unbroken_one_paints(
    tmp_path: Path, photo_path: Path
) -> None:
    """With ``hold_still`` a frame keeps its predecessor where the footage stood still
    against every frame the temporal loss reads; after a stop those frames' sources come
    back from the clip and their paintings from the store. A red half that stands still
    above a bar that moves."""
    clip = make_clip(tmp_path / "bar.mp4", n_frames=12, width=48, height=32)
    held = VideoConfig(later_iterations=3, temporal_gaps=(1, 2, 4), hold_still=True)
    unbroken = tiny_frames(tmp_path, clip, photo_path, held, [Chunk(0, 12)])
    resumed = tiny_frames(tmp_path, clip, photo_path, held, [Chunk(0, 12)], stop=7)
    for index, (a, b) in enumerate(zip(unbroken, resumed)):
        assert np.array_equal(a, b), index
    # The hold changes the frames after the stop: the check above would see it left out.
    free = tiny_frames(tmp_path, clip, photo_path, dataclasses.replace(held, hold_still=False), [Chunk(0, 12)])
    assert any(not np.array_equal(a, b) for a, b in zip(unbroken[7:], free[7:]))
    # The top rows, whose neighbourhoods the bar never reaches, keep the predecessor's
    # painting in every held frame; without the hold the iterations move them.
    assert all(np.array_equal(unbroken[t][:5], unbroken[t - 1][:5]) for t in range(1, 12))
    assert any(not np.array_equal(free[t][:5], free[t - 1][:5]) for t in range(1, 12))


def test_a_pass_back_steadies_the_chain_and_resumes_where_it_stopped(tmp_path: Path, photo_path: Path) -> None:
    """The second pass walks back from the chain's settled last frame: the frame-to-frame
    and the 5-apart warping error fall. Stopped in the pass back, the run resumes there
    and paints the frames an unbroken run paints."""
    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=14, width=60, height=32)
    one = VideoConfig(later_iterations=3)
    two = dataclasses.replace(one, video_passes=2, pass_iterations=3, pass_blend=1.0)
    forward = tiny_frames(tmp_path, clip, photo_path, one, [Chunk(0, 14)])
    back = tiny_frames(tmp_path, clip, photo_path, two, [Chunk(0, 14)])
    # It takes about a fifth off at gap 1 and two thirds at gap 5; the bounds leave room for float noise.
    for gap, most in ((1, 0.9), (5, 0.5)):
        before, after = np.mean(gap_errors(clip, forward, gap)), np.mean(gap_errors(clip, back, gap))
        assert after < most * before, (gap, before, after)
    assert np.array_equal(back[13], forward[13])  # the pass back starts from the last frame as it stood
    resumed = tiny_frames(tmp_path, clip, photo_path, two, [Chunk(0, 14)], stop=14 + 5)  # 5 frames into the pass back
    for index, (a, b) in enumerate(zip(back, resumed)):
        assert np.array_equal(a, b), index


def test_a_dream_video_gets_the_long_term_loss_and_the_pass_back(tmp_path: Path, photo_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``nstpipe dream`` on a clip goes through the same video job as style transfer: the
    frames further back reach its frames, and a pass back repaints them. (The stand-in
    encoder in place of VGG19, on the path the command takes.)"""
    from helpers import TinyEncoder

    monkeypatch.setattr("nstpipe.modes.dream.encoder", lambda *args, **kwargs: TinyEncoder())
    given: list[FrameInput] = []
    real = FrameStylizer.stylize_many

    def spy(self: FrameStylizer, frames: Sequence[FrameInput], callback: object = None) -> list[StylizedFrame]:
        from nstpipe.engine.dream import Dreamer

        assert isinstance(self.again, Dreamer)
        given.extend(frames)
        return real(self, frames, None)

    monkeypatch.setattr(FrameStylizer, "stylize_many", spy)
    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=10)
    dream = {"mode": "dream", "size": 32, "device": "cpu", "dream_layers": "relu2_1", "scales": 1, "iterations": 2}
    video = {"later_iterations": 1, "temporal_gaps": "1,2,4", "video_passes": 2, "pass_iterations": 1}
    s = build_settings("dream", None, {**dream, **video})
    events: list[object] = []
    stylize_video(clip, [], tmp_path / "dream.mp4", s, events.append)
    assert started(events) == [*range(10), *range(8, -1, -1)]  # forward, then back from the last frame
    assert [len(f.earlier) for f in given[:10]] == [0, 0, 1, 1, 2, 2, 2, 2, 2, 2]  # gaps 2 and 4 as they come in reach
    assert all(f.current is not None for f in given[10:]) and len(given) == 19


def test_frames_backward_in_blocks_are_the_frames_forward_reversed(tmp_path: Path, photo_path: Path) -> None:
    from nstpipe.jobs.chains import source_frames_backward
    from nstpipe.jobs.video_job import source_frames

    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=12)
    job = make_video_job(settings(), [photo_path], clip, probe(clip))
    forward = [(f.index, rgb) for f, rgb in source_frames(job, 2, 11)]
    for block in (0, 1, 4, 9):
        backward = [(f.index, rgb) for f, rgb in source_frames_backward(job, 2, 11, block)]
        assert [i for i, _ in backward] == list(range(10, 1, -1)), block
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(backward, forward[::-1])), block


@pytest.mark.parametrize("mode, painted", [("none", 12), ("prev", 12 + 11), ("flow", 12 + 11)])
def test_passes_after_the_first_only_in_the_chained_modes(tmp_path: Path, photo_path: Path, mode: str, painted: int) -> None:
    """Frames painted alone (none) have nothing to carry back: one pass whatever video_passes says."""
    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=12)
    job = make_video_job(settings(temporal=mode, video_passes=2), [photo_path], clip, probe(clip))
    store = FrameStore(tmp_path / "work", job.fingerprint)
    store.open({})
    counting = CountingStylizer()
    summary = stylize_chains(job, store, [Chunk(0, 12)], lambda e: None, lambda job: cast(FrameStylizer, counting))
    assert sum(counting.calls) == painted and summary.stylized + summary.repainted == painted and summary.stylized == 12
