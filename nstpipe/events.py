"""What the pipeline reports while it works: small frozen event objects, and the callable that takes them.

Every producer (the engine's optimizer, the workers, the video job, the executors, the
driver in :mod:`nstpipe.app`) reports through one :data:`EventSink` and never prints;
the caller decides what to show (the CLI's progress bar) or keep (tests, benchmarks).
A folder job's inputs (:class:`ImageTask`) and what became of each (:class:`TaskResult`)
live here too: they travel through the same sink, and whoever shows them needs no jobs layer.

Pure Python, no torch and no ray: the command line can tell events apart without loading
a model, and Ray carries them back from workers as plain objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable

EventSink = Callable[[object], None]


# -- one optimization (nstpipe.engine.stylize) ---------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Sent after every optimizer iteration."""

    scale: int  # 0 = coarsest
    scales: int
    iteration: int  # 1-based, within this scale
    iterations: int  # budget of this scale
    loss: float
    height: int
    width: int


@dataclass(frozen=True)
class ScaleDone:
    """Sent when one level of the pyramid is finished."""

    scale: int
    scales: int
    iterations: int  # actually run
    loss: float
    stopped_early: bool


# -- a folder of images (nstpipe.app, the executors) ----------------------------------------


@dataclass(frozen=True)
class ImageTask:
    """One input of a folder job (planned by :mod:`nstpipe.jobs.plan`) and where its output goes."""

    source: Path
    relative: PurePath  # of the source, below the input root
    output: Path


@dataclass(frozen=True)
class TaskResult:
    """What became of ``task``: painted (``ok``), or failed with a one-line ``error``;
    ``lasting``: a failure of the input itself, which a rerun skips (see
    :mod:`nstpipe.jobs.failures`), not one the machine caused (permission denied)."""

    task: ImageTask
    ok: bool
    error: str | None = None
    iterations: int = 0
    seconds: float = 0.0
    lasting: bool = True


@dataclass(frozen=True)
class JobPlanned:
    """The number of inputs a folder job found, before any is stylized."""

    total: int


@dataclass(frozen=True)
class Skipped:
    """An input whose output is already complete for these settings, or (``failed`` set)
    one that failed in an earlier run and is unchanged since."""

    task: ImageTask
    failed: str | None = None


@dataclass(frozen=True)
class TaskStarted:
    """An input handed to a worker; its :class:`TaskResult` follows."""

    task: ImageTask


@dataclass(frozen=True)
class WorkerLost:
    """``task`` killed its worker on every one of ``attempts`` tries; it is skipped."""

    task: ImageTask
    attempts: int


# -- a video (nstpipe.jobs.video_job, nstpipe.app) ------------------------------------------


@dataclass(frozen=True)
class VideoPlanned:
    """A video's frames are planned, before any is painted (also before ``nstpipe metrics``)."""

    frames: int  # frames this run will have when done
    done: int  # already in the work folder


@dataclass(frozen=True)
class FrameStarted:
    """A worker starts painting frame ``index`` (again, for a frame of a seam)."""

    index: int


@dataclass(frozen=True)
class FrameDone:
    """Frame ``index`` is in the frame store (or measured, for ``nstpipe metrics``)."""

    index: int
    iterations: int
    seconds: float


@dataclass(frozen=True)
class Encoding:
    """The stylized frames are being encoded into the output video."""

    frames: int


# -- what a command settled on (nstpipe.app) ------------------------------------------------


@dataclass(frozen=True)
class Chosen:
    """What a command settled on, reported before the work starts: the size of the output
    (``256x144``, or ``long side 256`` for a folder), the device and its precision."""

    size: str
    device: str
    precision: str
    output: Path | None = None
    count: int | None = None
    unit: str = ""
    source: str = ""  # the input's own size (``4000x3000``), where it has one
    estimate: str = ""  # on a CPU, about how long the input's own size would take


@dataclass(frozen=True)
class Kept:
    """A single output already made by nstpipe with these settings from this input: left as it is."""

    output: Path
