"""The Ray executor on a real local Ray instance (2 CPUs, tiny images)."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pytest

from nstpipe.app import stylize_folder
from nstpipe.config import Settings, build_settings
from nstpipe.events import EventSink, FrameDone, FrameStarted, TaskStarted, WorkerLost
from nstpipe.jobs.plan import ImageTask
from nstpipe.jobs.records import ImageJob
from nstpipe.jobs.worker import ImageWorker, TaskResult, WorkerFactory
from nstpipe.media.imaging import read_rgb
from nstpipe.run.executor import LocalExecutor
from nstpipe.run.ray_executor import RayExecutor, ray_session

ray = pytest.importorskip("ray")

SETTINGS = build_settings("fast", None, {"size": 32, "scales": 1, "iterations": 3, "tolerance": 0.0, "device": "cpu"})


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_session(cpus=2):
        yield


@pytest.fixture
def archive(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    root = tmp_path / "in"
    for i in range(6):
        make_rgb(root / f"d{i % 2}" / f"p{i}.png", 16 + 2 * i, 20, seed=i)
    return root


def outputs(root: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(root)): read_rgb(p) for p in sorted(root.rglob("*.png"))}


def run(executor, archive: Path, out: Path, style: Path, events: list[object] | None = None):
    sink = events.append if events is not None else (lambda e: None)
    try:
        return stylize_folder(archive, [style], out, SETTINGS, sink, executor=executor)
    finally:
        if isinstance(executor, RayExecutor):
            executor.close()


def test_two_workers_give_the_same_files_as_one(local_ray: None, archive: Path, tmp_path: Path, painting_path: Path) -> None:
    one = run(LocalExecutor(), archive, tmp_path / "one", painting_path)
    two = run(RayExecutor(workers=2, threads=1), archive, tmp_path / "two", painting_path)
    assert one.done == two.done == 6 and not two.failed
    a, b = outputs(tmp_path / "one"), outputs(tmp_path / "two")
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


def test_a_killed_worker_costs_only_what_it_held(local_ray: None, archive: Path, tmp_path: Path, painting_path: Path) -> None:
    executor = RayExecutor(workers=2, threads=1)
    events: list[object] = []
    killed: list[int] = []

    def report(event: object) -> None:
        events.append(event)
        if isinstance(event, TaskResult) and not killed:
            killed.append(executor.pids()[0])
            os.kill(killed[0], signal.SIGKILL)

    outcome = stylize_folder(archive, [painting_path], tmp_path / "out", SETTINGS, report, executor=executor)
    executor.close()
    assert killed and not any(isinstance(e, WorkerLost) for e in events)
    assert outcome.done == 6 and not outcome.failed
    assert len(outputs(tmp_path / "out")) == 6


def poisoned(log: Path | None = None) -> WorkerFactory:
    """Workers that die (as a segfaulting decoder would) on a call holding an input named
    p3, after writing the call's inputs as a line to ``log``.

    The factory is made inside a function so that Ray ships it by value: workers cannot
    import tests/.
    """

    def factory(job: ImageJob) -> ImageWorker:
        class Poisoned(ImageWorker):
            def process_batch(self, tasks: Sequence[ImageTask], callback: EventSink | None = None) -> list[TaskResult]:
                if log is not None:
                    with open(log, "a") as lines:
                        lines.write(" ".join(task.source.stem for task in tasks) + "\n")
                if any(task.source.stem == "p3" for task in tasks):
                    os._exit(1)
                return super().process_batch(tasks, callback)

        return Poisoned(job)

    return factory


def test_an_input_that_keeps_killing_its_worker_is_skipped(local_ray: None, archive: Path, tmp_path: Path, painting_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    executor = RayExecutor(workers=2, threads=1, max_attempts=2, worker_factory=poisoned(calls))
    events: list[object] = []
    outcome = run(executor, archive, tmp_path / "out", painting_path, events)
    # On CPU workers the automatic batch is 1: one input a call, as p3's two tries show.
    assert sorted(calls.read_text().splitlines()) == ["p0", "p1", "p2", "p3", "p3", "p4", "p5"]
    assert outcome.done == 5
    assert [Path(f.task.source).name for f in outcome.failed] == ["p3.png"]
    assert outcome.failed[0].error is not None and "died 2 times" in outcome.failed[0].error
    lost = [e for e in events if isinstance(e, WorkerLost)]
    assert [(e.task.source.name, e.attempts) for e in lost] == [("p3.png", 2)]


def test_a_batch_that_keeps_killing_its_worker_costs_only_the_culprit(
    local_ray: None, archive: Path, tmp_path: Path, painting_path: Path
) -> None:
    calls = tmp_path / "calls.txt"
    executor = RayExecutor(workers=2, threads=1, max_attempts=2, worker_factory=poisoned(calls))
    events: list[object] = []
    settings = dataclasses.replace(SETTINGS, batch=3)
    try:
        outcome = stylize_folder(archive, [painting_path], tmp_path / "out", settings, events.append, executor=executor)
    finally:
        executor.close()
    # The plan's order is d0/p0, d0/p2, d0/p4, d1/p1, d1/p3, d1/p5: the second batch dies on
    # both tries, then its pictures go one per call and only p3 dies (twice) on its own.
    assert sorted(calls.read_text().splitlines()) == sorted(["p0 p2 p4", "p1 p3 p5", "p1 p3 p5", "p1", "p3", "p3", "p5"])
    assert outcome.done == 5 and [f.task.source.name for f in outcome.failed] == ["p3.png"]
    assert outcome.failed[0].error is not None and "died 2 times" in outcome.failed[0].error
    assert [(e.task.source.name, e.attempts) for e in events if isinstance(e, WorkerLost)] == [("p3.png", 2)]
    assert sorted(e.task.source.stem for e in events if isinstance(e, TaskStarted)) == [f"p{i}" for i in range(6)]
    assert len(outputs(tmp_path / "out")) == 5


def test_a_dream_folder_on_two_workers_gives_the_files_of_one(local_ray: None, archive: Path, tmp_path: Path) -> None:
    dream = build_settings(
        "dream", None, {"mode": "dream", "size": 32, "scales": 2, "iterations": 2, "coarse_iterations": 2, "device": "cpu"}
    )
    one = stylize_folder(archive, [], tmp_path / "one", dream, lambda e: None, executor=LocalExecutor())
    executor = RayExecutor(workers=2, threads=1)
    try:
        two = stylize_folder(archive, [], tmp_path / "two", dream, lambda e: None, executor=executor)
    finally:
        executor.close()
    assert one.done == two.done == 6 and not two.failed
    a, b = outputs(tmp_path / "one"), outputs(tmp_path / "two")
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name


VIDEO = {"size": 32, "scales": 1, "iterations": 4, "later_iterations": 2, "tolerance": 0.0, "device": "cpu"}


def painted_both_ways(
    tmp_path: Path, clip: Path, painting: Path, settings: Settings, local: LocalExecutor, workers: int
) -> tuple[list[object], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``clip`` painted by ``local`` and by ``workers`` Ray workers of one thread: the Ray
    run's events and both runs' frames."""
    from nstpipe.app import default_work_dir, stylize_video

    stylize_video(clip, [painting], tmp_path / "local.mp4", settings, lambda e: None, executor=local, keep_frames=True)
    events: list[object] = []
    executor = RayExecutor(workers=workers, threads=1)
    try:
        stylize_video(clip, [painting], tmp_path / "ray.mp4", settings, events.append, executor=executor, keep_frames=True)
    finally:
        executor.close()
    frames = [outputs(next(default_work_dir(tmp_path / f"{name}.mp4").iterdir())) for name in ("local", "ray")]
    return events, frames[0], frames[1]


def assert_same_frames(local: dict[str, np.ndarray], remote: dict[str, np.ndarray], frames: int, tolerance: int) -> None:
    assert sorted(local) == sorted(remote) and len(local) == frames
    for name in local:
        assert np.abs(local[name].astype(int) - remote[name].astype(int)).max() <= tolerance, name


def test_video_chunks_run_on_two_workers_like_locally(local_ray: None, tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    from clips import make_pan

    class TwoChains(LocalExecutor):
        def parallelism(self) -> int:
            return 2

    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=42)
    s = build_settings("fast", None, VIDEO)
    events, local, remote = painted_both_ways(tmp_path, clip, painting_path, s, TwoChains(), workers=2)
    # Progress came back frame by frame from both workers: every chain frame and blend frame.
    assert sorted(e.index for e in events if isinstance(e, FrameDone)) == sorted([*range(42), *range(21, 31)])
    assert_same_frames(local, remote, 42, tolerance=1)


def test_one_worker_paints_its_chains_in_step_like_locally(local_ray: None, tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    """--batch 2 with one Ray worker: two chains in one call, painted in step as locally."""
    from clips import make_pan

    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=42)
    s = build_settings("fast", None, {**VIDEO, "batch": 2})
    events, local, remote = painted_both_ways(tmp_path, clip, painting_path, s, LocalExecutor(), workers=1)
    # Both chains on the one worker, in step; then the blend.
    assert [e.index for e in events if isinstance(e, FrameStarted)] == [
        *(i for pair in zip(range(21), range(21, 42)) for i in pair), *range(21, 31)
    ]
    assert_same_frames(local, remote, 42, tolerance=2)


def test_a_worker_killed_mid_video_costs_only_its_frame_in_flight(
    local_ray: None, tmp_path: Path, photo_path: Path, painting_path: Path
) -> None:
    from clips import make_pan
    from nstpipe.app import stylize_video
    from nstpipe.media.video import probe

    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=42)
    s = build_settings("fast", None, VIDEO)
    executor = RayExecutor(workers=2, threads=1)
    events: list[object] = []
    killed: list[int] = []

    def report(event: object) -> None:
        events.append(event)
        if isinstance(event, FrameDone) and event.index == 5 and not killed:
            killed.append(executor.pids()[0])
            os.kill(killed[0], signal.SIGKILL)

    try:
        summary = stylize_video(clip, [painting_path], tmp_path / "out.mp4", s, report, executor=executor)
        assert killed and executor.pids()[0] != killed[0]  # the kill landed: Ray restarted the worker
    finally:
        executor.close()
    assert probe(tmp_path / "out.mp4").frame_count == summary.frames == 42
    starts = [e.index for e in events if isinstance(e, FrameStarted)]
    # Every frame once, the 10 blend frames twice (chain, then blend), plus what the dead
    # worker held: the frame it was painting when killed, if any.
    assert len(starts) - 42 - 10 <= 1


def test_an_interrupted_driver_resumes_on_two_workers(local_ray: None, tmp_path: Path, photo_path: Path, painting_path: Path) -> None:
    from clips import make_pan
    from nstpipe.app import stylize_video

    clip = make_pan(tmp_path / "pan.mp4", photo_path, n_frames=42)
    s = build_settings("fast", None, VIDEO)
    work = tmp_path / "work"
    first: list[object] = []
    second: list[object] = []

    class Stop(Exception):
        pass

    def stop_after_ten(event: object) -> None:
        first.append(event)
        if sum(isinstance(e, FrameDone) for e in first) == 10:
            raise Stop

    executor = RayExecutor(workers=2, threads=1)
    with pytest.raises(Stop):
        stylize_video(clip, [painting_path], tmp_path / "out.mp4", s, stop_after_ten, work_dir=work, executor=executor)
    executor.close()  # the driver is gone: its workers go with it
    done = {p.name: p.stat().st_mtime_ns for p in next(work.iterdir()).glob("frame-*.png")}
    assert len(done) >= 10 and not (tmp_path / "out.mp4").exists()

    executor = RayExecutor(workers=2, threads=1)
    try:
        stylize_video(clip, [painting_path], tmp_path / "out.mp4", s, second.append, work_dir=work, executor=executor, keep_frames=True)
    finally:
        executor.close()
    store = next(work.iterdir())
    # No frame finished before the interruption was painted again (blend frames excepted:
    # the blend runs only once both chains are complete, which they were not).
    assert {name: (store / name).stat().st_mtime_ns for name in done if int(name[6:12]) not in range(21, 31)} == {
        name: t for name, t in done.items() if int(name[6:12]) not in range(21, 31)
    }
    restarted = {e.index for e in second if isinstance(e, FrameStarted)}
    assert not restarted & {int(name[6:12]) for name in done if int(name[6:12]) not in range(21, 31)}
    assert len(list(store.glob("frame-*.png"))) == 42
