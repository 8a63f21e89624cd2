"""The video scheduler on a real local Ray instance, with stand-in actors that paint nothing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from nstpipe.errors import ClusterError, NstpipeError
from nstpipe.events import FrameDone, FrameStarted
from nstpipe.jobs.plan import Chunk, plan_chunks
from nstpipe.jobs.video_job import FramesSummary

ray = pytest.importorskip("ray")

from nstpipe.run import ray_video  # noqa: E402
from nstpipe.run.ray_calls import GONE, MOVED  # noqa: E402
from nstpipe.run.ray_executor import ray_session  # noqa: E402
from nstpipe.run.ray_video import VideoScheduler, seams_ready  # noqa: E402

CHUNKS = [Chunk(0, 10), Chunk(10, 20, 3), Chunk(20, 30, 3)]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_session(cpus=2):
        yield


def stand_in(log: Path, attempts: int = 1, poison: int = -1) -> Any:
    """A Ray actor class with :class:`VideoActor`'s methods: each call writes a line to
    ``log`` as it starts and as it ends, and reports its frames as painted; a chain that
    holds frame ``poison`` kills its worker. Made with ``lost_calls``, an actor's first
    chains fail as unreachable; made with a ``name`` too, its lines start with ``NAME: ``.

    Made inside a function so that Ray ships it by value: workers cannot import tests/.
    """

    def note(line: str) -> None:
        with open(log, "a") as lines:
            lines.write(line + "\n")

    class StandIn:
        def __init__(self, lost_calls: int = 0, name: str = "") -> None:
            self.lost_calls = lost_calls  # its first calls fail as when its node is lost
            self.prefix = f"{name}: " if name else ""

        def chain(self, store: object, chunks: tuple[Chunk, ...], events: Any) -> FramesSummary:
            name = "chain " + " ".join(str(c.start) for c in chunks)
            note(f"{self.prefix}start {name}")
            if self.lost_calls:
                self.lost_calls -= 1
                raise ray.exceptions.ActorUnavailableError("its node was lost", None)
            if any(c.start <= poison < c.stop for c in chunks):
                os._exit(1)
            for chunk in chunks:
                for index in range(chunk.start, chunk.stop):
                    events.put(FrameStarted(index))
                    events.put(FrameDone(index, 1, 0.0))
            note(f"{self.prefix}end {name}")
            frames = sum(len(c) for c in chunks)
            return FramesSummary(frames=frames, stylized=frames, iterations=frames)

        def seam(self, store: object, chunks: tuple[Chunk, ...], events: Any) -> FramesSummary:
            (chunk,) = chunks
            note(f"start seam {chunk.start}")
            return FramesSummary(blended=chunk.blend)

    return ray.remote(max_restarts=-1, max_task_retries=attempts - 1)(StandIn)


def test_seams_ready_wait_for_both_neighbouring_chains() -> None:
    assert seams_ready(CHUNKS, {10}, CHUNKS[1]) == []
    assert seams_ready(CHUNKS, {0, 10}, CHUNKS[1]) == [CHUNKS[1]]
    assert seams_ready(CHUNKS, {0, 10, 20}, CHUNKS[1]) == [CHUNKS[1], CHUNKS[2]]
    assert seams_ready(CHUNKS, {0, 10, 20}, CHUNKS[0]) == [CHUNKS[1]]
    assert seams_ready(plan_chunks(30, 1), {0}, Chunk(0, 30)) == []  # one chain: no seam


def test_each_seam_starts_after_both_its_chains_end(local_ray: None, tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    actor = stand_in(log)
    events: list[object] = []
    scheduler = VideoScheduler([actor.remote(), actor.remote()], None, None, CHUNKS, events.append, max_attempts=1)  # type: ignore[arg-type]
    summary = scheduler.run(batch=1)
    assert (summary.frames, summary.stylized, summary.blended) == (30, 30, 6)
    calls = log.read_text().splitlines()
    for seam, before in ((10, (0, 10)), (20, (10, 20))):
        assert all(calls.index(f"end chain {start}") < calls.index(f"start seam {seam}") for start in before)
    # Every frame event came back from the workers, and all before run() returned.
    assert sorted(e.index for e in events if isinstance(e, FrameDone)) == list(range(30))


def test_a_batch_of_chains_goes_to_one_worker_in_one_call(local_ray: None, tmp_path: Path) -> None:
    log = tmp_path / "calls.txt"
    scheduler = VideoScheduler([stand_in(log).remote()], None, None, CHUNKS, lambda e: None, max_attempts=1)  # type: ignore[arg-type]
    scheduler.run(batch=2)
    assert log.read_text().splitlines() == [
        "start chain 0 10", "end chain 0 10", "start seam 10", "start chain 20", "end chain 20", "start seam 20"
    ]


def test_a_worker_that_keeps_dying_stops_the_video_naming_its_frames(local_ray: None, tmp_path: Path) -> None:
    actor = stand_in(tmp_path / "calls.txt", attempts=2, poison=12)
    job = type("Job", (), {"source": Path("clip.mp4")})()
    scheduler = VideoScheduler([actor.remote()], job, None, CHUNKS, lambda e: None, max_attempts=2)  # type: ignore[arg-type]
    with pytest.raises(NstpipeError, match=r"clip.mp4: a worker died 2 times on frames 10-19"):
        scheduler.run(batch=1)


@pytest.mark.parametrize("fate", [MOVED, GONE])
def test_a_chain_lost_with_its_node_is_painted_again_uncounted(
    fate: str, local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MOVED: the worker is back (on another node) and paints again; GONE: it stays out of
    reach, and the other worker paints its chain and everything after."""
    monkeypatch.setattr(ray_video, "after_unreachable", lambda actor, nodes: fate)
    log = tmp_path / "calls.txt"
    actor = stand_in(log)
    lost, kept = actor.remote(1, "lost"), actor.remote(0, "kept")
    scheduler = VideoScheduler([kept, lost], None, None, CHUNKS, lambda e: None, max_attempts=1)  # type: ignore[arg-type]
    summary = scheduler.run(batch=1)
    assert (summary.frames, summary.stylized, summary.blended) == (30, 30, 6)
    lines = log.read_text().splitlines()
    calls = [line.split(": ", 1)[-1] for line in lines]
    # The lost chain starts twice and ends once, as every other chain.
    assert sorted(call for call in calls if call.startswith("end chain")) == ["end chain 0", "end chain 10", "end chain 20"]
    assert sum(call.startswith("start chain") for call in calls) == 4
    # Which worker painted: the moved one takes chains again, the gone one none after its lost call.
    by_lost = sum(line.startswith("lost: start chain") for line in lines)
    assert by_lost > 1 if fate == MOVED else by_lost == 1


def test_a_video_whose_every_worker_stays_out_of_reach_stops_in_one_line(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray_video, "after_unreachable", lambda actor, nodes: GONE)
    actor = stand_in(tmp_path / "calls.txt")
    scheduler = VideoScheduler([actor.remote(9), actor.remote(9)], None, None, CHUNKS, lambda e: None, max_attempts=1)  # type: ignore[arg-type]
    with pytest.raises(ClusterError, match=r"^the cluster lost every worker \(2\)"):
        scheduler.run(batch=1)


def test_a_lost_queue_of_frame_events_ends_the_run_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue is an actor: lost (with the cluster, or alone), its error is a one-line
    ClusterError after the head is asked, not Ray's traceback; a lost head is named as such."""
    from ray.exceptions import ActorUnavailableError

    class LostQueue:
        def empty(self) -> bool:
            raise ActorUnavailableError("the queue's actor is unavailable", None)

    asked: list[bool] = []
    monkeypatch.setattr(ray_video, "check_head", lambda: asked.append(True))
    with pytest.raises(ClusterError, match=r"^lost the queue of frame events on the Ray cluster \(ActorUnavailableError\): finished"):
        ray_video._drain(LostQueue(), lambda event: None)
    assert asked == [True]

    def head_lost() -> None:
        raise ClusterError("lost the Ray cluster at 127.0.0.1:1 (Connection refused)")

    monkeypatch.setattr(ray_video, "check_head", head_lost)
    with pytest.raises(ClusterError, match=r"^lost the Ray cluster at"):
        ray_video._drain(LostQueue(), lambda event: None)
