"""The driver behind the commands: check everything up front, plan, execute, record.

Bad styles, an unwritable output and unknown settings fail here before any work starts.
Events go to a ``report`` callable (the CLI's progress bar); nothing is printed.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from pipeline import __version__
from pipeline.config import Settings
from pipeline.device import resolve_device
from pipeline.errors import InputError
from pipeline.executor import Executor, LocalExecutor, Summary
from pipeline.imaging import read_rgb, to_rgb8
from pipeline.plan import ImageTask, plan_images
from pipeline.worker import ImageJob, ImageWorker, TaskResult, is_done, make_job
from pipeline.writer import atomic_write_json, clean_temp_files, write_image

Report = Callable[[object], None]
SETTINGS_FILE = "nstpipe-settings.json"


@dataclass(frozen=True)
class Skipped:
    """An input whose output is already complete for these settings."""

    task: ImageTask


@dataclass(frozen=True)
class JobPlanned:
    total: int


@dataclass
class FolderOutcome:
    done: int = 0
    skipped: int = 0
    failed: list[TaskResult] = field(default_factory=list)


def check_inputs(styles: Sequence[Path], settings: Settings) -> None:
    """Fail before any work on a missing or unreadable style or init image."""
    if not styles:
        raise InputError("--style", "at least one style image is needed")
    for path in styles:
        read_rgb(path, draft_side=64)
    init = settings.engine.init
    if init not in ("content", "noise"):
        read_rgb(Path(init), draft_side=64)


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nstpipe-tmp-"):
            pass
    except OSError as exc:
        raise InputError(folder, f"output folder is not writable ({exc.strerror or exc})") from None


def settings_record(job: ImageJob, device: str) -> dict[str, object]:
    settings = job.settings.to_dict()
    settings["device"] = device  # what "auto" resolved to
    return {
        "nstpipe": __version__,
        "fingerprint": job.fingerprint,
        "styles": [str(p) for p in job.styles],
        "settings": settings,
    }


def stylize_one(content: Path, styles: Sequence[Path], output: Path, settings: Settings, report: Report) -> None:
    check_inputs(styles, settings)
    read_rgb(content, draft_side=64)
    check_writable(output.parent)
    job = make_job(settings, list(styles))
    worker = ImageWorker(job)
    start = time.perf_counter()
    result = worker.stylize_file(content, callback=report)
    seconds = time.perf_counter() - start
    write_image(output, to_rgb8(result.image))
    record = settings_record(job, str(worker.stylizer.device))
    record["result"] = {"iterations": result.iterations, "seconds": round(seconds, 3), "loss": result.loss}
    atomic_write_json(output.with_name(output.stem + ".settings.json"), record)


def stylize_folder(
    folder: Path,
    styles: Sequence[Path],
    output: Path,
    settings: Settings,
    report: Report,
    executor: Executor | None = None,
) -> FolderOutcome:
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    check_inputs(styles, settings)
    check_writable(output)
    job = make_job(settings, list(styles))
    report(JobPlanned(sum(1 for _ in plan_images(folder, output))))  # also refuses output == input
    atomic_write_json(output / SETTINGS_FILE, settings_record(job, str(resolve_device(settings.device))))
    outcome = FolderOutcome()

    def todo() -> Iterator[ImageTask]:
        cleaned: set[Path] = set()
        for task in plan_images(folder, output):
            if task.output.parent not in cleaned:
                clean_temp_files(task.output.parent)
                cleaned.add(task.output.parent)
            if is_done(task, job.fingerprint):
                outcome.skipped += 1
                report(Skipped(task))
            else:
                yield task

    summary: Summary = (executor or LocalExecutor()).run_images(job, todo(), report)
    outcome.done = summary.done
    outcome.failed = summary.failed
    return outcome
