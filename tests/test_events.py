"""The progress events: one module, one sink type, plain objects that cross processes."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import nstpipe
from nstpipe import events

TASK = events.ImageTask(Path("in/a.jpg"), Path("a.jpg"), Path("out/a.png"))
SAMPLES = [
    TASK,
    events.TaskResult(TASK, True, iterations=3, seconds=0.5),
    events.TaskResult(TASK, False, "in/a.jpg: not an image"),
    events.Progress(0, 2, 1, 10, 0.5, 24, 32),
    events.ScaleDone(0, 2, 10, 0.5, False),
    events.JobPlanned(3),
    events.Skipped(TASK),
    events.Skipped(TASK, "a.jpg: not an image"),
    events.TaskStarted(TASK),
    events.WorkerLost(TASK, 3),
    events.VideoPlanned(10, 4),
    events.FrameStarted(4),
    events.FrameDone(4, 7, 0.25),
    events.Encoding(10),
    events.Chosen("256x144", "cpu", "fp32", Path("clip.starry_night.mp4"), 60, "frames"),
    events.Kept(Path("photo.starry_night.jpg")),
]


def event_classes() -> list[type]:
    return [c for _, c in inspect.getmembers(events, inspect.isclass) if c.__module__ == events.__name__]


def test_every_event_class_has_a_sample() -> None:
    assert {type(e) for e in SAMPLES} == set(event_classes())


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_an_event_is_frozen_and_survives_pickling(event: object) -> None:
    # Ray carries the frame events back from its workers pickled.
    assert pickle.loads(pickle.dumps(event)) == event
    assert dataclasses.is_dataclass(event)
    field = dataclasses.fields(event)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, None)


def test_importing_the_events_loads_neither_torch_nor_ray() -> None:
    code = "import sys, nstpipe.events; print(sorted({'torch', 'ray'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_other_module_defines_an_event_or_a_sink_type() -> None:
    names = {c.__name__ for c in event_classes()} | {"EventSink", "Callback", "Report"}
    for module_info in pkgutil.walk_packages(nstpipe.__path__, "nstpipe."):
        if module_info.name == events.__name__:
            continue
        module = importlib.import_module(module_info.name)
        for name in names & set(vars(module)):
            assert getattr(module, name) is getattr(events, name, None), f"{module_info.name}.{name}"
