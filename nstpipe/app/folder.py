"""A folder of photos, painted by any mode that reads one: resumable, failures recorded."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from nstpipe.app.checks import check_folder_output, check_inputs, check_output, check_output_apart, check_writable, protected
from nstpipe.app.naming import default_folder_output
from nstpipe.app.sizes import chosen, folder_settings
from nstpipe.config import Settings
from nstpipe.engine.device import resolve_device, visible_gpus
from nstpipe.errors import InputError
from nstpipe.events import EventSink, JobPlanned, Skipped
from nstpipe.jobs.failures import clear_failure, failed_before, record_failure
from nstpipe.jobs.plan import SETTINGS_FILE, ImageTask, plan_images
from nstpipe.jobs.records import ImageJob, input_limits, make_job, settings_record
from nstpipe.jobs.worker import TaskResult, is_done
from nstpipe.media.lock import FOLDER_LOCK, output_lock
from nstpipe.media.writer import atomic_write_json, clean_temp_files
from nstpipe.run.executor import Executor, LocalExecutor, Summary


@dataclass
class FolderOutcome:
    done: int = 0
    skipped: int = 0
    failed: list[TaskResult] = field(default_factory=list)
    failed_before: list[Skipped] = field(default_factory=list)
    output: Path = Path()

    def failures(self) -> list[str]:
        """Each failure's line (with the file and the reason), this run's after the earlier ones'."""
        return [f"failed in an earlier run: {s.failed}" for s in self.failed_before] + [f"failed: {f.error}" for f in self.failed]


def stylize_folder(
    folder: Path, styles: Sequence[Path], output: Path | None, settings: Settings, report: EventSink,
    executor: Executor | None = None, retry_failed: bool = False, overwrite: bool = False, size_from_device: bool = False,
) -> FolderOutcome:
    """Paint every image under ``folder`` into ``output`` (by default beside it), skipping finished ones.

    Inputs that failed in an earlier run are skipped too (see :mod:`nstpipe.jobs.failures`)
    unless ``retry_failed``; each new failure is recorded the moment it is reported. A
    subfolder that cannot be read fails too, unrecorded: a rerun tries to read it again.
    ``size_from_device``: no --size was given (see :func:`~nstpipe.app.sizes.folder_settings`).
    """
    settings = folder_settings(settings, size_from_device)
    target = output or default_folder_output(folder, styles, settings.mode)
    with contextlib.ExitStack() as held:
        job = start_folder(folder, styles, target, settings, report, overwrite, held)
        return paint_folder(folder, target, job, report, executor, retry_failed)


def paint_folder(
    folder: Path, target: Path, job: ImageJob, report: EventSink, executor: Executor | None, retry_failed: bool
) -> FolderOutcome:
    """:func:`stylize_folder` once its checks are passed and its output folder's lock is held."""
    outcome = FolderOutcome(output=target)
    limits = input_limits(job.settings)
    unread: list[TaskResult] = []

    def todo() -> Iterator[ImageTask]:
        cleaned: set[Path] = set()
        for task in plan_images(folder, target, lambda error: unread.append(unread_folder(error, folder, target))):
            if task.output.parent not in cleaned:
                clean_temp_files(task.output.parent)
                cleaned.add(task.output.parent)
            if is_done(task, job):
                outcome.skipped += 1
                report(Skipped(task))
                continue
            # Looked up only for inputs without an output: a resume of a big archive
            # should not probe a failure record beside every finished output.
            reason = None if retry_failed else failed_before(task, job.fingerprint, limits)
            if reason is not None:
                outcome.failed_before.append(Skipped(task, reason))
                report(outcome.failed_before[-1])
            else:
                yield task

    def record(event: object) -> None:
        if isinstance(event, TaskResult) and event.ok:
            clear_failure(event.task)
        elif isinstance(event, TaskResult):
            record_failure(event.task, job.fingerprint, event.error or "failed", limits, event.lasting)
        report(event)

    summary: Summary = (executor or LocalExecutor()).run_images(job, todo(), record)
    outcome.done = summary.done
    outcome.failed = summary.failed + unread
    return outcome


def unread_folder(error: InputError, folder: Path, output: Path) -> TaskResult:
    """A subfolder that cannot be read, as a failure of its own, like a bad picture's: the
    run goes on, and ends saying so."""
    path = Path(str(error.path))
    task = ImageTask(source=path, relative=path.relative_to(folder), output=output / path.relative_to(folder))
    return TaskResult(task, False, str(error))


def start_folder(
    folder: Path, styles: Sequence[Path], output: Path, settings: Settings, report: EventSink, overwrite: bool,
    held: contextlib.ExitStack,
) -> ImageJob:
    """Everything a folder job checks and reports before the first picture: the job. The
    output folder's lock goes to ``held`` once the folder is made, before anything is
    written or cleaned up in it (a lock file inside it, not beside it: its parent may
    well be a folder this run cannot write in)."""
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    check_folder_output(output)
    check_output_apart(folder, output)
    check_inputs(styles, settings)
    device = resolve_device(settings.device)  # an unknown device fails here, before any output
    check_writable(output)
    held.enter_context(output_lock(output, output / FOLDER_LOCK))
    job = make_job(settings, list(styles))
    total = count_planned(folder, output, protected(styles, settings), overwrite)  # also refuses output == input
    size = f"each its own size, long side at most {settings.max_size}" if settings.own_size else f"long side {settings.size}"
    report(chosen(settings, size, output, total, "pictures"))
    report(JobPlanned(total))
    atomic_write_json(output / SETTINGS_FILE, settings_record(job, str(device)))
    return job


def count_planned(folder: Path, output: Path, inputs: Mapping[str, Sequence[Path]], overwrite: bool) -> int:
    """The images a folder job will go through, each planned output checked first as
    :func:`~nstpipe.app.checks.check_output` checks a single one (the inputs themselves
    cannot be outputs: the plan keeps the output folder out of the walk)."""
    total = 0
    for task in plan_images(folder, output):
        check_output(task.output, inputs, overwrite)
        total += 1
    return total


@contextlib.contextmanager
def open_executor(workers: int | None = None, address: str | None = None, verbose: bool = False) -> Iterator[Executor]:
    """Ray actors when there is more than one worker or a cluster; else this process.

    One worker on one machine gains nothing from Ray but its start-up time (seconds), so
    that case runs in-process; everything else (``--workers N``, several GPUs,
    ``--address`` or ``RAY_ADDRESS``) goes through Ray. A private instance counts at least
    one CPU a worker, so that ``--workers`` above the machine's cores shares them rather
    than leaving workers waiting; ``verbose`` lets Ray's own log lines through.
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address is None and (workers or max(1, visible_gpus())) == 1:
        yield LocalExecutor()
        return
    from nstpipe.run.ray_executor import RayExecutor, ray_session

    with ray_session(address, max(os.cpu_count() or 1, workers or 1), verbose):
        executor = RayExecutor(workers)
        executor.check_fits()  # before any line about the job: the cluster may not hold the workers
        try:
            yield executor
        finally:
            executor.close()
