"""Failed inputs are recorded, skipped on a rerun, and tried again only when asked or changed;
a failed write stops the run without recording the input as bad."""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pytest

from helpers import FolderExecutor
from nstpipe.app import FolderOutcome, stylize_folder
from nstpipe.config import build_settings
from nstpipe.errors import OutputError
from nstpipe.events import Skipped
from nstpipe.jobs.failures import FAILED_SUFFIX, failed_before, failure_path, read_failure, record_failure
from nstpipe.jobs.plan import ImageTask, source_identity
from nstpipe.jobs.records import ImageJob, make_job, photo_record
from nstpipe.jobs.worker import TaskResult, is_done
from nstpipe.media.writer import write_png
from nstpipe.run.executor import Summary

SETTINGS = build_settings("fast", None, {"size": 32, "iterations": 2, "device": "cpu"})


class ScriptedExecutor(FolderExecutor):
    """Fails every input whose name contains ``failing``; writes a valid output for the others."""

    def __init__(self, failing: str = "bad") -> None:
        self.seen: list[str] = []
        self.failing = failing

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: Callable[[object], None]) -> Summary:
        summary = Summary()
        for task in tasks:
            self.seen.append(task.source.name)
            if self.failing in task.source.name:
                result = TaskResult(task, False, f"{task.source}: its worker died 3 times; skipped")
            else:
                write_png(task.output, np.zeros((2, 2, 3), np.uint8), photo_record(job, source_identity(task.source), ""))
                result = TaskResult(task, True, iterations=2)
            summary.add(result)
            on_event(result)
        return summary


@pytest.fixture
def archive(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    root = tmp_path / "in"
    make_rgb(root / "good.png", 16, 16)
    make_rgb(root / "sub" / "bad.png", 16, 16, seed=1)
    return root


def run(archive: Path, style: Path, out: Path, **kwargs: bool) -> tuple[ScriptedExecutor, list[object], FolderOutcome]:
    executor = ScriptedExecutor()
    events: list[object] = []
    outcome = stylize_folder(archive, [style], out, SETTINGS, events.append, executor, **kwargs)
    return executor, events, outcome


def test_a_failure_is_recorded_and_not_retried_until_asked(archive: Path, painting_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    executor, _, outcome = run(archive, painting_path, out)
    assert executor.seen == ["good.png", "bad.png"] and len(outcome.failed) == 1
    record = read_failure(outcome.failed[0].task)
    assert record is not None and "died 3 times" in record["reason"] and record["input"] == "sub/bad.png"
    assert (out / "sub" / f"bad.png{FAILED_SUFFIX}").is_file()

    executor, events, outcome = run(archive, painting_path, out)
    assert executor.seen == []  # neither the finished input nor the failed one is tried again
    assert outcome.skipped == 1 and [s.task.source.name for s in outcome.failed_before] == ["bad.png"]
    assert any(isinstance(e, Skipped) and e.failed and "died 3 times" in e.failed for e in events)

    executor, _, outcome = run(archive, painting_path, out, retry_failed=True)
    assert executor.seen == ["bad.png"] and len(outcome.failed) == 1 and outcome.failed_before == []


def test_a_changed_input_is_tried_again_and_success_clears_the_record(
    archive: Path, painting_path: Path, tmp_path: Path, make_rgb: Callable[..., Path]
) -> None:
    out = tmp_path / "out"
    _, _, outcome = run(archive, painting_path, out)
    task = outcome.failed[0].task
    record = read_failure(task)
    assert record is not None
    fingerprint, limits = record["fingerprint"], record["limits"]
    assert failed_before(task, fingerprint, limits) is not None
    make_rgb(task.source, 20, 20, seed=2)  # the user repairs the file: another size
    assert failed_before(task, fingerprint, limits) is None

    executor = ScriptedExecutor(failing="nothing")
    stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, executor)
    assert executor.seen == ["bad.png"]
    assert not failure_path(task).exists() and is_done(task, make_job(SETTINGS, [painting_path]))


def test_other_settings_try_a_failed_input_again(archive: Path, painting_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(archive, painting_path, out)
    executor = ScriptedExecutor()
    events: list[object] = []
    other = build_settings("fast", None, {"size": 24, "iterations": 2, "device": "cpu"})
    stylize_folder(archive, [painting_path], out, other, events.append, executor)
    assert executor.seen == ["good.png", "bad.png"]


@pytest.mark.parametrize("batch", [1, 2])
def test_a_full_disk_stops_the_run_keeps_finished_outputs_and_blames_no_input(
    archive: Path, painting_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_rgb: Callable[..., Path], batch: int
) -> None:
    """Writes fail with ENOSPC once the first output is written: the real worker raises
    OutputError, nothing partial is left under a final name, and no failure is recorded;
    also when both inputs share a batch and the disk fills between their two writes."""
    from nstpipe.jobs.worker import ImageWorker
    from nstpipe.media import writer
    from nstpipe.run.executor import LocalExecutor

    make_rgb(archive / "sub" / "bad.png", 16, 16, seed=1)  # a valid image despite its name
    real_fdopen, writes = os.fdopen, []

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> object:
        handle: Any = real_fdopen(fd, mode, *args, **kwargs)
        writes.append(1)
        if "w" in mode and len(writes) > 2:  # the settings file, the first output, then full

            real_write = handle.write

            def write(data: bytes) -> int:
                real_write(data[: len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            handle.write = write
        return handle

    monkeypatch.setattr(writer.os, "fdopen", fdopen)
    out, settings = tmp_path / "out", dataclasses.replace(SETTINGS, batch=batch)
    with pytest.raises(OutputError, match=r"bad.png: cannot write \(No space left on device\)"):
        stylize_folder(archive, [painting_path], out, settings, lambda e: None, LocalExecutor(ImageWorker))
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["good.png", "nstpipe-settings.json"]  # no temp file, no failure record
    monkeypatch.undo()

    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, LocalExecutor(ImageWorker))
    assert outcome.skipped == 1 and outcome.done == 1 and not outcome.failed


def test_a_new_pixel_limit_tries_a_failed_input_again(archive: Path, painting_path: Path, tmp_path: Path) -> None:
    """--max-pixels does not change outputs (not in the fingerprint) but decides failures."""
    out = tmp_path / "out"
    run(archive, painting_path, out)
    executor = ScriptedExecutor()
    stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, executor)
    assert executor.seen == []
    raised = build_settings("fast", None, {"size": 32, "iterations": 2, "device": "cpu", "max_pixels": SETTINGS.max_pixels * 4})
    assert raised.fingerprint() == SETTINGS.fingerprint()
    stylize_folder(archive, [painting_path], out, raised, lambda e: None, executor)
    assert executor.seen == ["bad.png"]


@pytest.mark.parametrize("module", ["nstpipe.jobs.failures", "nstpipe.jobs.plan"])
def test_the_plan_and_the_failure_records_load_without_torch(module: str) -> None:
    # The driver reads them for every input of an archive; a model needs neither.
    code = f"import sys, {module}; print(sorted({{'torch', 'ray'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_failure_under_other_settings_removes_the_earlier_output(archive: Path, painting_path: Path, tmp_path: Path) -> None:
    """The painting made under the old settings goes when the input fails under the new
    ones: the folder holds a valid output or a recorded failure for each input, never both."""
    out = tmp_path / "out"
    stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, ScriptedExecutor(failing="nothing"))
    assert (out / "sub" / "bad.png").is_file()
    other = build_settings("fast", None, {"size": 24, "iterations": 2, "device": "cpu"})
    outcome = stylize_folder(archive, [painting_path], out, other, lambda e: None, ScriptedExecutor())
    assert [f.task.source.name for f in outcome.failed] == ["bad.png"]
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["good.png", "nstpipe-settings.json", f"sub/bad.png{FAILED_SUFFIX}"]


def test_a_failure_keeps_a_file_nstpipe_did_not_make_and_a_finished_output(
    archive: Path, painting_path: Path, tmp_path: Path
) -> None:
    """Only an output that nstpipe made under other settings goes: not someone else's file
    (replaced only with -y, by a success), nor an output of these very settings and input."""
    out = tmp_path / "out"
    theirs = out / "sub" / "bad.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"someone's own file")
    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, ScriptedExecutor(), overwrite=True)
    assert theirs.read_bytes() == b"someone's own file" and failure_path(outcome.failed[0].task).is_file()

    task, job = outcome.failed[0].task, make_job(SETTINGS, [painting_path])
    write_png(task.output, np.zeros((2, 2, 3), np.uint8), photo_record(job, source_identity(task.source), ""))
    record_failure(task, job.fingerprint, "its worker died after writing it")
    assert is_done(task, job)


def test_a_failure_the_machine_caused_is_reported_but_not_recorded(
    archive: Path, painting_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied is no fault of the picture: once its permissions are mended, the
    next run paints it, with no --retry-failed. (Root reads whatever chmod says, so here the
    reader itself is refused, where the OS would refuse it.)"""
    from nstpipe.jobs.worker import ImageWorker
    from nstpipe.media import imaging
    from nstpipe.run.executor import LocalExecutor

    real_open = imaging.Image.open

    def refuse(fp: Any, *args: Any, **kwargs: Any) -> Any:
        if str(fp).endswith("bad.png"):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(imaging.Image, "open", refuse)
    out = tmp_path / "out"
    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, LocalExecutor(ImageWorker))
    (failed,) = outcome.failed
    assert failed.error == f"{archive / 'sub' / 'bad.png'}: permission denied" and not failed.lasting
    assert not failure_path(failed.task).exists()
    monkeypatch.undo()

    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, LocalExecutor(ImageWorker))
    assert (outcome.done, outcome.skipped, outcome.failed, outcome.failed_before) == (1, 1, [], [])


def test_a_passing_failure_clears_an_earlier_record_and_keeps_the_output(archive: Path, painting_path: Path, tmp_path: Path) -> None:
    """Tried again (--retry-failed) and refused by the machine this time: the earlier
    record goes, so the next run tries it again, and an earlier output stays."""
    out = tmp_path / "out"
    _, _, outcome = run(archive, painting_path, out)
    task = outcome.failed[0].task
    assert failure_path(task).exists()
    write_png(task.output, np.zeros((2, 2, 3), np.uint8), {"fingerprint": "other settings", "source": None})
    record_failure(task, "fingerprint", f"{task.source}: permission denied", lasting=False)
    assert not failure_path(task).exists() and task.output.is_file()


def test_a_failure_too_long_to_record_beside_its_output_is_recorded_and_the_run_goes_on(
    archive: Path, painting_path: Path, tmp_path: Path, make_rgb: Callable[..., Path]
) -> None:
    """An input of 250 bytes: its record's name would be 262, over the file system's 255, and
    writing it stopped the whole run. A shortened name, found again by the next run."""
    long = archive / ("bad" + "y" * 243 + ".png")
    long.write_bytes(b"not a picture")
    make_rgb(archive / "zz.png", 16, 16)  # after the long name: still painted
    out = tmp_path / "out"
    executor, _, outcome = run(archive, painting_path, out)
    assert sorted(executor.seen) == sorted(["good.png", long.name, "zz.png", "bad.png"])
    assert (out / "zz.png").is_file() and sorted(f.task.source.name for f in outcome.failed) == sorted(["bad.png", long.name])
    (task,) = [f.task for f in outcome.failed if f.task.source == long]
    path = failure_path(task)
    assert path.is_file() and path.parent == out and len(os.fsencode(path.name)) <= os.pathconf(out, "PC_NAME_MAX")
    assert path.name.startswith("bad" + "y" * 100) and path.name.endswith(FAILED_SUFFIX)

    executor, _, outcome = run(archive, painting_path, out)
    assert executor.seen == [] and sorted(s.task.source.name for s in outcome.failed_before) == sorted(["bad.png", long.name])


def test_two_inputs_of_a_long_shared_stem_get_distinct_names_that_fit(
    archive: Path, painting_path: Path, tmp_path: Path, make_rgb: Callable[..., Path]
) -> None:
    """Stems of 250 bytes shared by a .jpg and a .png: the whole names, each with .png added,
    would take 258 bytes, and writing the first stopped the whole run. Each gets a shortened
    name with a hash of the whole, the same on the next run, which finds both done."""
    stem = "s" * 250
    make_rgb(archive / f"{stem}.jpg", 16, 16)
    make_rgb(archive / f"{stem}.png", 16, 16, seed=2)
    out = tmp_path / "out"
    executor = ScriptedExecutor(failing="nothing")
    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, executor)
    assert (outcome.done, outcome.failed) == (4, [])
    made = sorted(p.name for p in out.iterdir() if p.name.startswith("s" * 200))
    assert len(made) == 2 and all(len(os.fsencode(n)) <= os.pathconf(out, "PC_NAME_MAX") for n in made)
    assert all(n.endswith(".png") for n in made)

    executor = ScriptedExecutor(failing="nothing")
    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, executor)
    assert (executor.seen, outcome.done, outcome.skipped) == ([], 0, 4)


def test_a_read_error_of_the_disk_is_tried_again_and_bad_data_is_not(
    archive: Path, painting_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EIO while the pixels are read: the disk or the file server failed, not the picture;
    the next run paints it, with no --retry-failed. A picture cut short stays recorded."""
    from PIL import ImageFile

    from nstpipe.jobs.worker import ImageWorker
    from nstpipe.run.executor import LocalExecutor

    (archive / "cut.png").write_bytes((archive / "good.png").read_bytes()[:60])
    real_load = ImageFile.ImageFile.load

    def fail_to_read(self: ImageFile.ImageFile) -> Any:
        if str(getattr(self, "filename", "")).endswith("bad.png"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail_to_read)
    out = tmp_path / "out"
    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, LocalExecutor(ImageWorker))
    failed = {f.task.source.name: f for f in outcome.failed}
    assert sorted(failed) == ["bad.png", "cut.png"] and failed["cut.png"].lasting and failure_path(failed["cut.png"].task).exists()
    assert failed["bad.png"].error == f"{archive / 'sub' / 'bad.png'}: cannot be read now ({os.strerror(errno.EIO)})"
    assert not failed["bad.png"].lasting and not failure_path(failed["bad.png"].task).exists()
    monkeypatch.undo()

    outcome = stylize_folder(archive, [painting_path], out, SETTINGS, lambda e: None, LocalExecutor(ImageWorker))
    assert (outcome.done, outcome.skipped, outcome.failed) == (1, 1, [])
    assert [s.task.source.name for s in outcome.failed_before] == ["cut.png"]
