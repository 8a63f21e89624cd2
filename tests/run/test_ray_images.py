"""The image scheduler on a real local Ray instance, with stand-in actors that paint nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest

from nstpipe.errors import ClusterError, InputError, OutputError
from nstpipe.events import TaskStarted, WorkerLost
from nstpipe.jobs.plan import ImageTask
from nstpipe.jobs.worker import TaskResult

ray = pytest.importorskip("ray")

from nstpipe.run import ray_images  # noqa: E402
from nstpipe.run.ray_calls import GONE, MOVED  # noqa: E402
from nstpipe.run.ray_executor import ray_session  # noqa: E402
from nstpipe.run.ray_images import ImageActor, ImageScheduler  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    with ray_session(cpus=2):
        yield


def stand_in(log: Path, batch: int, attempts: int, poison: str = "") -> Any:
    """A Ray actor class with :class:`ImageActor`'s methods: it writes each call's inputs
    as a line to ``log`` and dies on a call that holds ``poison``; Ray restarts it and
    runs the call again, ``attempts`` tries in all.

    Made inside a function so that Ray ships it by value: workers cannot import tests/.
    """

    class StandIn:
        def process_batch(self, tasks: list[ImageTask]) -> list[TaskResult]:
            with open(log, "a") as lines:
                lines.write(" ".join(task.source.name for task in tasks) + "\n")
            if any(task.source.name == poison for task in tasks):
                os._exit(1)
            return [TaskResult(task, True, iterations=1) for task in tasks]

        def batch(self) -> int:
            return batch

    return ray.remote(max_restarts=-1, max_task_retries=attempts - 1)(StandIn)


def tasks(count: int, pulled: list[str] | None = None) -> Iterator[ImageTask]:
    for i in range(count):
        if pulled is not None:
            pulled.append(f"t{i}")
        yield ImageTask(Path(f"t{i}"), Path(f"t{i}"), Path(f"out/t{i}.png"))


def test_tasks_are_pulled_only_as_workers_take_them(local_ray: None, tmp_path: Path) -> None:
    actor = stand_in(tmp_path / "calls.txt", batch=2, attempts=1)
    pulled: list[str] = []
    events: list[object] = []

    def report(event: object) -> None:
        # When the first result is in, two workers hold one batch of two each, no more.
        if isinstance(event, TaskResult) and not any(isinstance(e, TaskResult) for e in events):
            assert len(pulled) == 2 * 2
        events.append(event)

    summary = ImageScheduler([actor.remote(), actor.remote()], report, max_attempts=1).run(tasks(9, pulled))
    assert (summary.done, summary.iterations, summary.failed) == (9, 9, [])
    assert sorted(e.task.source.name for e in events if isinstance(e, TaskStarted)) == sorted(f"t{i}" for i in range(9))
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert sorted(len(call.split()) for call in calls) == [1, 2, 2, 2, 2]


def test_a_batch_that_keeps_killing_its_worker_is_split_and_only_the_culprit_fails(local_ray: None, tmp_path: Path) -> None:
    actor = stand_in(tmp_path / "calls.txt", batch=3, attempts=2, poison="t1")
    events: list[object] = []
    summary = ImageScheduler([actor.remote()], events.append, max_attempts=2).run(tasks(4))
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    # Two tries of the batch, then each of its tasks alone: t1 twice more; then the last task.
    assert calls == ["t0 t1 t2", "t0 t1 t2", "t0", "t1", "t1", "t2", "t3"]
    assert summary.done == 3 and [f.task.source.name for f in summary.failed] == ["t1"]
    assert "died 2 times" in (summary.failed[0].error or "")
    assert [(e.task.source.name, e.attempts) for e in events if isinstance(e, WorkerLost)] == [("t1", 2)]
    # A task sent again alone is not reported as started twice.
    assert sorted(e.task.source.name for e in events if isinstance(e, TaskStarted)) == ["t0", "t1", "t2", "t3"]


def cut_off(log: Path) -> Any:
    """A Ray actor class with :class:`ImageActor`'s methods, made with a name and how many
    of its first calls fail as they do when its node is lost (unreachable); each call
    writes a line ``NAME: INPUTS`` to ``log``."""

    class StandIn:
        def __init__(self, name: str, lost_calls: int) -> None:
            self.name, self.lost_calls = name, lost_calls

        def process_batch(self, tasks: list[ImageTask]) -> list[TaskResult]:
            with open(log, "a") as lines:
                lines.write(f"{self.name}: " + " ".join(task.source.name for task in tasks) + "\n")
            if self.lost_calls:
                self.lost_calls -= 1
                raise ray.exceptions.ActorUnavailableError("its node was lost", None)
            return [TaskResult(task, True, iterations=1) for task in tasks]

        def batch(self) -> int:
            return 1

    return ray.remote(StandIn)


@pytest.mark.parametrize("fate", [MOVED, GONE])
def test_a_call_lost_with_its_node_is_sent_again_uncounted(
    fate: str, local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MOVED: the worker is back (on another node) and takes calls again; GONE: it stays
    out of reach, and the other worker takes its call and every later one."""
    monkeypatch.setattr(ray_images, "after_unreachable", lambda actor, nodes: fate)
    actor = cut_off(tmp_path / "calls.txt")
    summary = ImageScheduler([actor.remote("a", 1), actor.remote("b", 0)], lambda e: None, max_attempts=1).run(tasks(6))
    # One try each: a try counted for the lost call would have failed its input.
    assert (summary.done, summary.failed) == (6, [])
    calls = [call.split(": ") for call in (tmp_path / "calls.txt").read_text().splitlines()]
    on_a = [inputs for name, inputs in calls if name == "a"]
    assert sorted(inputs for _, inputs in calls) == sorted([*(f"t{i}" for i in range(6)), on_a[0]])  # the lost one twice
    assert len(on_a) == 1 if fate == GONE else len(on_a) > 1


def test_a_job_whose_every_worker_stays_out_of_reach_stops_in_one_line(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ray_images, "after_unreachable", lambda actor, nodes: GONE)
    actor = cut_off(tmp_path / "calls.txt")
    with pytest.raises(ClusterError, match=r"^the cluster lost every worker \(2\)"):
        ImageScheduler([actor.remote("a", 9), actor.remote("b", 9)], lambda e: None, max_attempts=1).run(tasks(6))


def failing(kind: str) -> Any:
    """A worker factory for :class:`ImageActor` whose worker cannot start (``start``: a style
    image missing on its node) or cannot write (``write``: a full disk). Made inside a
    function so that Ray ships it by value."""

    def factory(job: object) -> Any:
        if kind == "start":
            raise InputError(Path("/cluster/styles/s.jpg"), "file not found")

        class Full:
            batch = 1

            def process_batch(self, tasks: list[ImageTask]) -> list[TaskResult]:
                raise OutputError(tasks[0].output, "No space left on device")

        return Full()

    return factory


@pytest.mark.parametrize(
    "kind, error, line",
    [
        ("start", InputError, r"/cluster/styles/s\.jpg: file not found"),
        ("write", OutputError, r"out/t\d\.png: cannot write \(No space left on device\)"),  # whichever worker writes first
    ],
)
def test_a_worker_that_cannot_start_or_write_stops_the_job_with_its_own_line(
    kind: str, error: type[Exception], line: str, local_ray: None
) -> None:
    actor = ray.remote(max_restarts=-1, max_task_retries=1)(ImageActor)
    events: list[object] = []
    workers = [actor.remote(None, 1, failing(kind)) for _ in range(2)]
    with pytest.raises(error) as raised:
        ImageScheduler(workers, events.append, max_attempts=2).run(tasks(4))
    # The worker's own error, as a local run gives it; no input is charged with a dead worker.
    assert re.match(line, str(raised.value))
    assert not any(isinstance(e, (WorkerLost, TaskResult)) for e in events)
