"""The progress display: a bar on a terminal, plain lines in a log, one line of what was chosen."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Callable, Iterator

import typer

from nstpipe.events import EventSink

# Seconds between two progress lines in a log (stderr not a terminal): a job of hours
# leaves a few hundred lines, and a stalled one shows within the interval.
LOG_INTERVAL = 10.0


class _ProgressBar:
    """Turns the pipeline's event objects into a rich progress bar on stderr."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.files: Any = None
        self.iters = progress.add_task("optimizing", total=None, rate="")

    def __call__(self, event: object) -> None:
        self._dispatch(event)
        for task in self.progress.tasks:
            speed = task.speed
            self.progress.update(task.id, rate=f"{speed:.2f}/s" if speed else "")

    def _dispatch(self, event: object) -> None:
        from nstpipe.app import ITEM_DONE
        from nstpipe.events import FrameDone, JobPlanned, Progress, ScaleDone, TaskStarted

        if isinstance(event, Progress):
            label = f"scale {event.scale + 1}/{event.scales} {event.width}x{event.height} loss {event.loss:.4g}"
            self.progress.update(self.iters, completed=event.iteration, total=event.iterations, description=label)
        elif isinstance(event, ScaleDone):
            self.progress.update(self.iters, completed=event.iterations, total=event.iterations)
        elif isinstance(event, JobPlanned):
            self.files = self.progress.add_task("files", total=event.total, rate="")
        elif isinstance(event, ITEM_DONE) and not isinstance(event, FrameDone) and self.files is not None:
            self.progress.advance(self.files)
        elif isinstance(event, TaskStarted) and self.files is not None:
            self.progress.update(self.files, description=str(event.task.relative))
        else:
            self._video_event(event)

    def _video_event(self, event: object) -> None:
        from nstpipe.events import Encoding, FrameDone, FrameStarted, VideoPlanned

        if isinstance(event, VideoPlanned):
            self.files = self.progress.add_task("frames", total=event.frames, completed=event.done, rate="")
        elif isinstance(event, FrameStarted) and self.files is not None:
            self.progress.update(self.files, description=f"frame {event.index + 1}")
        elif isinstance(event, FrameDone) and self.files is not None:
            self.progress.advance(self.files)
        elif isinstance(event, Encoding) and self.files is not None:
            self.progress.update(self.files, description=f"encoding {event.frames} frames")


class _LogProgress:
    """Plain progress lines for a log file (stderr is not a terminal): the items done of
    the job's total, the rate and the time left, at most one line every ``interval``
    seconds, and one when all are done. It reads the same events as the progress bar.

    The rate counts only what this run did: outputs finished by an earlier run are done
    at once, and would make the time left look shorter than it is. Before the first item
    of this run is done, the time left follows from how far the optimization of the
    current one stands (its level and iteration), so that a single picture has one too.
    """

    def __init__(self, echo: Callable[[str], None], clock: Callable[[], float] = time.monotonic, interval: float = LOG_INTERVAL) -> None:
        self.echo, self.clock, self.interval = echo, clock, interval
        self.unit = ""
        self.total = self.done = self.earlier = 0
        self.start = self.last = 0.0
        self.step = ""  # where the optimization of the current item stands
        self.part = 0.0  # how much of the current item that is, 0 to 1
        self.ended = True

    def __call__(self, event: object) -> None:
        from nstpipe.app import ITEM_DONE
        from nstpipe.events import Encoding, JobPlanned, Progress, Skipped, VideoPlanned

        if isinstance(event, JobPlanned):
            self._plan("pictures", event.total, 0)
        elif isinstance(event, VideoPlanned):
            self._plan("frames", event.frames, event.done)
        elif isinstance(event, Progress):
            self.step = f"level {event.scale + 1}/{event.scales}, iteration {event.iteration}/{event.iterations}"
            self.part = item_share(event.scale, event.scales, event.iteration, event.iterations)
        elif isinstance(event, Encoding):
            self.echo(f"nstpipe: encoding {event.frames} frames")
        elif isinstance(event, ITEM_DONE) and not self.ended:
            self.done += 1
            self.earlier += isinstance(event, Skipped)
            self.step, self.part = "", 0.0
            if self.done >= self.total:
                self.finish()
        self.poll()

    def _plan(self, unit: str, total: int, done: int) -> None:
        self.unit, self.total, self.done, self.earlier = unit, total, done, done
        self.start = self.last = self.clock()
        self.step, self.part, self.ended = "", 0.0, total <= done

    def poll(self) -> None:
        """A line if ``interval`` has passed since the last one: after any event, the
        optimizer's steps included, since one picture can take minutes."""
        now = self.clock()
        if not self.ended and now - self.last >= self.interval:
            self.last = now
            self.echo(self._line(now))

    def finish(self) -> None:
        """The closing line of a job that ended well (once)."""
        if self.ended:
            return
        self.ended = True
        self.done = max(self.done, self.total)
        seconds = self.clock() - self.start
        rate = (self.done - self.earlier) / seconds if seconds > 0 else 0.0
        self.echo(f"nstpipe: {self.total}/{self.total} {self.unit} in {_duration(seconds)} ({rate:.2f} {self.unit}/s)")

    def _line(self, now: float) -> str:
        done = min(self.done, self.total)
        seconds = max(now - self.start, 1e-9)
        rate = (done - self.earlier) / seconds
        if rate <= 0 and self.part > 0:  # nothing whole yet: from the share of the current item
            left = f"ETA {_duration((self.total - done - self.part) * seconds / self.part)}"
        else:
            left = f"ETA {_duration((self.total - done) / rate)}" if rate > 0 else "ETA unknown"
        step = f" ({self.step})" if self.step else ""
        return f"nstpipe: {done}/{self.total} {self.unit}, {rate:.2f} {self.unit}/s, {left}{step}"


def item_share(level: int, levels: int, iteration: int, iterations: int) -> float:
    """How much of an item's optimization is done at ``iteration`` of ``level`` (0-based):
    each level is taken as twice the side of the one before, so four times the work."""
    weights = [4.0**k for k in range(levels)]
    done = sum(weights[:level]) + weights[level] * min(iteration, iterations) / max(iterations, 1)
    return done / sum(weights)


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _announcing(sink: EventSink) -> EventSink:
    """``sink``, after the line saying what a command chose (size, device, precision) is
    printed: once, before the work starts, whatever the progress display."""
    from nstpipe.events import Chosen

    def report(event: object) -> None:
        if isinstance(event, Chosen):
            unit = event.unit[:-1] if event.count == 1 else event.unit  # "1 frame", "2 frames"
            count = f", {event.count} {unit}" if event.count is not None else ""
            where = f" -> {event.output}" if event.output is not None else ""
            own = f" (the input is {event.source}{'; at that size ' + event.estimate if event.estimate else ''})" if event.source else ""
            typer.echo(f"nstpipe: {event.size}{own} on {event.device} ({event.precision}){count}{where}", err=True)
        sink(event)

    return report


@contextlib.contextmanager
def reporter(quiet: bool) -> Iterator[EventSink]:
    """Where a command's events go: nowhere (-q), a bar on a terminal, lines in a log."""
    if quiet:
        yield lambda event: None
    elif sys.stderr.isatty():
        with _progress_bar() as bar:
            yield _announcing(bar)
    else:
        log = _LogProgress(lambda line: typer.echo(line, err=True), interval=LOG_INTERVAL)
        yield _announcing(log)
        log.finish()


@contextlib.contextmanager
def _progress_bar() -> Iterator[_ProgressBar]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # Throughput (items a second, over rich's recent window) and the ETA that follows from it.
    rate = TextColumn("{task.fields[rate]}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), rate, TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        yield _ProgressBar(progress)
