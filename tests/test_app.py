"""The driver (checks, resume, records) and the local executor, with stand-ins for the engine."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pytest

from helpers import FolderExecutor
from nstpipe.app import SETTINGS_FILE, FolderOutcome, check_inputs, check_writable, stylize_folder
from nstpipe.config import build_settings
from nstpipe.errors import InputError
from nstpipe.events import JobPlanned, Skipped, TaskStarted
from nstpipe.jobs.plan import ImageTask, source_identity
from nstpipe.jobs.records import ImageJob, make_job, photo_record
from nstpipe.jobs.worker import TaskResult, is_done
from nstpipe.media.imaging import PICTURE_READER_REVISION
from nstpipe.media.writer import TEMP_PREFIX, write_png
from nstpipe.run.executor import LocalExecutor, Summary

SETTINGS = build_settings("fast", None, {"size": 32, "iterations": 2, "device": "cpu"})


class RecordingExecutor(FolderExecutor):
    """Writes a blank output with a proper resume record for every task it is given."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def run_images(self, job: ImageJob, tasks: Iterable[ImageTask], on_event: Callable[[object], None]) -> Summary:
        summary = Summary()
        for task in tasks:
            self.seen.append(str(task.relative))
            write_png(task.output, np.zeros((2, 2, 3), np.uint8), photo_record(job, source_identity(task.source), ""))
            summary.add(TaskResult(task, True, iterations=2))
        return summary


@pytest.fixture
def archive(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    root = tmp_path / "in"
    make_rgb(root / "a.jpg", 16, 16)
    make_rgb(root / "sub" / "b.png", 16, 24)
    make_rgb(root / "sub" / "c.png", 24, 16)
    return root


@pytest.fixture
def style(tmp_path: Path, make_rgb: Callable[..., Path]) -> Path:
    return make_rgb(tmp_path / "style.png", 16, 16, seed=9)


def run_folder(archive: Path, style: Path, out: Path) -> tuple[RecordingExecutor, list[object], FolderOutcome]:
    executor = RecordingExecutor()
    events: list[object] = []
    outcome = stylize_folder(archive, [style], out, SETTINGS, events.append, executor=executor)
    return executor, events, outcome


def test_check_inputs(tmp_path: Path, style: Path) -> None:
    check_inputs([style], SETTINGS)
    with pytest.raises(InputError, match="at least one style"):
        check_inputs([], SETTINGS)
    with pytest.raises(InputError, match="gone.jpg: file not found"):
        check_inputs([style, tmp_path / "gone.jpg"], SETTINGS)
    bad_init = build_settings("fast", None, {"init": str(tmp_path / "init.png")})
    with pytest.raises(InputError, match="init.png"):
        check_inputs([style], bad_init)


def test_check_writable(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "folder")
    assert (tmp_path / "new" / "folder").is_dir()
    assert os.listdir(tmp_path / "new" / "folder") == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="not writable"):
        check_writable(blocker / "below")
    with pytest.raises(InputError, match="file: is a file, not a folder"):
        check_writable(blocker)  # images -o FILE, --work-dir FILE


def test_check_name_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nstpipe.app.checks import check_name_fits
    from nstpipe.media.names import name_max

    folder = tmp_path / "not" / "made"  # asked of the nearest folder there is
    most = name_max(folder)
    check_name_fits(folder / ("a" * (most - len(".png.settings.json")) + ".png"))
    with pytest.raises(InputError, match=rf"the settings record beside it \(.settings.json added\) would take {most + 1} bytes"):
        check_name_fits(folder / ("a" * (most + 1 - len(".png.settings.json")) + ".png"))
    with pytest.raises(InputError, match=rf"the name is too long: it takes {most + 1} bytes, and this file system holds {most} at most"):
        check_name_fits(folder / ("a" * (most + 1 - len(".png")) + ".png"))

    def unknown(path: object, name: str) -> int:
        raise ValueError(name)

    monkeypatch.setattr(os, "pathconf", unknown)
    assert name_max(tmp_path) == 255
    monkeypatch.setattr(os, "pathconf", lambda path, name: -1)  # a file system that states no limit
    assert name_max(tmp_path) == 255


def test_videos_of_a_long_shared_stem_get_default_outputs_that_fit(tmp_path: Path) -> None:
    """clip.mp4 and clip.mov beside each other keep their whole names, as a folder's pictures
    do; with a stem of 240 bytes those would not fit with their settings record, and each
    is cut, with a hash, the same on every call."""
    from nstpipe.app.checks import check_name_fits
    from nstpipe.app.naming import default_video_output

    for name in ("clip.mp4", "clip.MOV", "x" * 240 + ".mp4", "x" * 240 + ".mov"):
        (tmp_path / name).write_bytes(b"")
    style = [Path("monet.jpg")]
    assert default_video_output(tmp_path / "clip.mp4", style).name == "clip.mp4.monet.mp4"
    assert default_video_output(tmp_path / "clip.MOV", style).name == "clip.MOV.monet.mp4"
    long = [default_video_output(tmp_path / ("x" * 240 + suffix), style) for suffix in (".mp4", ".mov")]
    assert long[0] != long[1] and all(p.name.startswith("x" * 200) and p.name.endswith(".monet.mp4") for p in long)
    for path in long:
        check_name_fits(path)
    assert default_video_output(tmp_path / ("x" * 240 + ".mov"), style) == long[1]


def test_videos_into_a_folder_get_outputs_that_fit_with_their_records(tmp_path: Path) -> None:
    """Two videos of a 245-byte shared stem painted into ``-o DIR`` keep their whole names,
    which with ``.mp4`` and the settings record beside them would not fit: each is cut, with
    a hash, and passes the check made before any work."""
    from nstpipe.app.checks import check_name_fits
    from nstpipe.app.video import video_targets

    sources = [tmp_path / ("v" * 245 + suffix) for suffix in (".mp4", ".mov")]
    for source in sources:
        source.write_bytes(b"")
    targets = video_targets(sources, [Path("monet.jpg")], tmp_path / "out")
    outputs = [target for _, target in targets]
    assert len(set(outputs)) == 2 and all(p.parent == tmp_path / "out" and p.name.startswith("v" * 200) for p in outputs)
    for output in outputs:
        check_name_fits(output)
    assert video_targets(sources, [Path("monet.jpg")], tmp_path / "out") == targets


def test_input_kind_of_animations_and_broken_pictures(tmp_path: Path) -> None:
    """An animated GIF is a video; an animated WebP a picture (FFmpeg cannot decode its
    frames), refused where a video is asked for; a file named as a picture that cannot be
    read is a picture, to be refused as one; a still under another name is a picture."""
    from PIL import Image

    from nstpipe.app import input_kind

    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    for name in ("anim.gif", "anim.webp"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / "still.gif")
    frames[0].save(tmp_path / "still.bin", format="PNG")
    for name in ("bad.gif", "bad.webp", "junk.bin"):
        (tmp_path / name).write_bytes(b"not a picture")
    kinds = {name: input_kind(tmp_path / name) for name in sorted(os.listdir(tmp_path))}
    assert kinds == {
        "anim.gif": "video", "anim.webp": "picture", "bad.gif": "picture", "bad.webp": "picture", "junk.bin": "video",
        "still.bin": "picture", "still.gif": "picture",
    }
    assert input_kind(tmp_path / "anim.gif", tmp_path / "x.mp4") == "video"
    with pytest.raises(InputError, match="anim.webp: animated WebP: FFmpeg here cannot decode its frames; convert it to a GIF or MP4"):
        input_kind(tmp_path / "anim.webp", tmp_path / "x.mp4")


def test_a_video_source_has_its_picture_header_opened_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whether a file given as a video is a still or an animated WebP is one question of its
    header, asked once; a clip goes on to FFmpeg's probe."""
    from PIL import Image

    from clips import make_clip
    from nstpipe.app import input_kind
    from nstpipe.app.checks import check_video_source
    from nstpipe.media import imaging

    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=100)
    frames[0].save(tmp_path / "still.png")
    clip = make_clip(tmp_path / "clip.mp4", n_frames=2, fps=10)
    opened: list[Path] = []
    pil_open = imaging.Image.open

    def counted(path: Path, *args: Any) -> Image.Image:
        opened.append(path)
        return pil_open(path, *args)

    monkeypatch.setattr(imaging.Image, "open", counted)
    for name, refusal in (("still.png", "is a still image"), ("anim.webp", "animated WebP")):
        with pytest.raises(InputError, match=refusal):
            check_video_source(tmp_path / name)
    assert check_video_source(clip).frame_count == 2
    assert input_kind(clip, tmp_path / "out.mp4") == "video"
    assert opened == [tmp_path / "still.png", tmp_path / "anim.webp", clip, clip]


def test_folder_run_records_and_resumes(archive: Path, style: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    executor, events, outcome = run_folder(archive, style, out)
    assert executor.seen == ["a.jpg", "sub/b.png", "sub/c.png"]
    assert (outcome.done, outcome.skipped, outcome.failed) == (3, 0, [])
    assert JobPlanned(3) in events
    record = json.loads((out / SETTINGS_FILE).read_text())
    assert record["fingerprint"] == make_job(SETTINGS, [style]).fingerprint
    assert record["settings"]["size"] == 32

    again, events, outcome = run_folder(archive, style, out)
    assert again.seen == []
    assert (outcome.done, outcome.skipped) == (0, 3)
    assert sum(isinstance(e, Skipped) for e in events) == 3


def test_changed_source_is_redone(archive: Path, style: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_folder(archive, style, out)
    stat = (archive / "sub" / "b.png").stat()
    os.utime(archive / "sub" / "b.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    executor, _, outcome = run_folder(archive, style, out)
    assert executor.seen == ["sub/b.png"]
    assert (outcome.done, outcome.skipped) == (1, 2)


def test_changed_style_bytes_redo_everything(archive: Path, style: Path, tmp_path: Path, make_rgb: Callable[..., Path]) -> None:
    out = tmp_path / "out"
    run_folder(archive, style, out)
    make_rgb(style, 16, 16, seed=10)  # same path, new picture
    executor, _, _ = run_folder(archive, style, out)
    assert executor.seen == ["a.jpg", "sub/b.png", "sub/c.png"]


def test_leftover_temp_files_are_cleaned(archive: Path, style: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_folder(archive, style, out)
    (out / "sub" / f"{TEMP_PREFIX}killed").write_bytes(b"partial")
    run_folder(archive, style, out)
    assert sorted(os.listdir(out / "sub")) == ["b.png", "c.png"]


def test_folder_checks_come_before_any_output(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match="missing.png"):
        stylize_folder(archive, [tmp_path / "missing.png"], out, SETTINGS, lambda e: None, executor=RecordingExecutor())
    with pytest.raises(InputError, match="not a folder"):
        stylize_folder(tmp_path / "nope", [tmp_path / "missing.png"], out, SETTINGS, lambda e: None)
    assert not out.exists()


def test_fingerprint_follows_style_bytes_not_paths(style: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "renamed.png"
    moved.parent.mkdir()
    shutil.copyfile(style, moved)
    assert make_job(SETTINGS, [style]).fingerprint == make_job(SETTINGS, [moved]).fingerprint
    other = build_settings("fast", None, {"size": 32, "iterations": 3, "device": "cpu"})
    assert make_job(SETTINGS, [style]).fingerprint != make_job(other, [style]).fingerprint
    assert make_job(SETTINGS, [style]).fingerprint != make_job(SETTINGS, [style, style]).fingerprint


def test_fingerprint_follows_what_the_reader_makes_of_a_style(style: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same style read as other pixels (a colour profile applied) repaints every
    output; a reader revision that reads it alike repaints none. A visualization reads no
    picture: its identity follows neither."""
    import nstpipe.media.imaging as imaging

    visualize = build_settings("visualize", None, {"mode": "visualize", "device": "cpu"})
    before = make_job(SETTINGS, [style]), make_job(visualize, [])
    monkeypatch.setattr("nstpipe.jobs.records.PICTURE_READER_REVISION", PICTURE_READER_REVISION + 1)
    raised = make_job(SETTINGS, [style]), make_job(visualize, [])
    assert [job.fingerprint for job in raised] == [job.fingerprint for job in before]
    assert raised[0].by_revision != before[0].by_revision  # what earlier versions recorded
    real = imaging.read_rgb
    monkeypatch.setattr(imaging, "read_rgb", lambda *args, **kwargs: 255 - real(*args, **kwargs))
    other = make_job(SETTINGS, [style]), make_job(visualize, [])
    assert other[0].fingerprint != before[0].fingerprint and other[1].fingerprint == before[1].fingerprint


def test_is_done(archive: Path, style: Path, tmp_path: Path) -> None:
    task = ImageTask(source=archive / "a.jpg", relative=Path("a.jpg"), output=tmp_path / "o" / "a.png")
    job = make_job(SETTINGS, [style])
    assert not is_done(task, job)  # no output yet
    write_png(task.output, np.zeros((2, 2, 3), np.uint8), {"fingerprint": "other", "source": source_identity(task.source)})
    assert not is_done(task, job)
    write_png(task.output, np.zeros((2, 2, 3), np.uint8), photo_record(job, source_identity(task.source), ""))
    assert is_done(task, job)
    task.source.write_bytes(task.source.read_bytes() + b"\0")  # the photo changed
    assert not is_done(task, job)


class FakeWorker:
    created = 0
    batch = 1

    def __init__(self, job: ImageJob) -> None:
        FakeWorker.created += 1

    def process_batch(self, tasks: list[ImageTask], callback: Callable[[object], None] | None = None) -> list[TaskResult]:
        results = []
        for task in tasks:
            if callback is not None:
                callback(f"progress {task.relative}")
            ok = task.relative.name != "bad.jpg"
            results.append(TaskResult(task, ok, None if ok else f"{task.source}: broken", iterations=4 if ok else 0))
        return results


def test_local_executor_loads_the_worker_lazily_and_reports_in_order(tmp_path: Path) -> None:
    FakeWorker.created = 0
    executor = LocalExecutor(FakeWorker)  # type: ignore[arg-type]
    job = make_job(SETTINGS, [])
    assert executor.run_images(job, [], lambda e: None).done == 0
    assert FakeWorker.created == 0

    tasks = [ImageTask(tmp_path / n, Path(n), tmp_path / "o" / n) for n in ("good.jpg", "bad.jpg")]
    events: list[object] = []
    summary = executor.run_images(job, tasks, events.append)
    assert FakeWorker.created == 1
    assert [type(e).__name__ if not isinstance(e, str) else e for e in events] == [
        "TaskStarted", "progress good.jpg", "TaskResult", "TaskStarted", "progress bad.jpg", "TaskResult",
    ]
    assert events[0] == TaskStarted(tasks[0])
    assert (summary.done, summary.iterations, [f.task.relative.name for f in summary.failed]) == (1, 4, ["bad.jpg"])


def test_local_executor_hands_the_worker_its_batch_of_tasks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeWorker, "batch", 2)
    names = ("a.jpg", "bad.jpg", "c.jpg")
    tasks = [ImageTask(tmp_path / n, Path(n), tmp_path / "o" / n) for n in names]
    events: list[object] = []
    summary = LocalExecutor(FakeWorker).run_images(make_job(SETTINGS, []), iter(tasks), events.append)  # type: ignore[arg-type]
    assert [type(e).__name__ if not isinstance(e, str) else e for e in events] == [
        "TaskStarted", "TaskStarted", "progress a.jpg", "progress bad.jpg", "TaskResult", "TaskResult",
        "TaskStarted", "progress c.jpg", "TaskResult",
    ]
    assert [e.task.relative.name for e in events if isinstance(e, TaskResult)] == list(names)
    assert (summary.done, [f.task.relative.name for f in summary.failed]) == (2, ["bad.jpg"])


def test_an_earlier_output_folder_inside_the_input_is_not_painted_again(archive: Path, style: Path) -> None:
    """``images in -o in/monet``, then ``images in -o in/klimt``: the second run paints the
    inputs, not the first run's outputs (no klimt/monet/..., deeper on every run)."""
    run_folder(archive, style, archive / "monet")
    executor, _, outcome = run_folder(archive, style, archive / "klimt")
    assert executor.seen == ["a.jpg", "sub/b.png", "sub/c.png"] and outcome.done == 3
    assert not (archive / "klimt" / "monet").exists()


def test_an_output_folder_inside_the_input_that_holds_its_pictures_is_refused(archive: Path, style: Path) -> None:
    """``images in -o in/sub``: the walk leaves the output folder out, and the settings file
    would mark in/sub as an output for every later run, so in/sub's pictures were never
    painted, with exit status 0. Refused before any work instead, naming the folder."""
    before = sorted(p.name for p in (archive / "sub").iterdir())
    with pytest.raises(InputError) as error:
        run_folder(archive, style, archive / "sub")
    assert str(error.value) == (
        f"{archive / 'sub'}: the output folder is inside the input folder and holds pictures of its own "
        f"({archive / 'sub' / 'b.png'}), which would never be painted; give -o a new folder, or one outside the input"
    )
    assert sorted(p.name for p in (archive / "sub").iterdir()) == before  # no settings file, no output
    # An earlier output folder, and a folder inside one, hold outputs only: taken as before.
    run_folder(archive, style, archive / "monet")
    (archive / "monet" / "inner").mkdir()
    shutil.copy(archive / "monet" / "a.png", archive / "monet" / "inner" / "a.png")
    for out in (archive / "monet", archive / "monet" / "inner", archive / "new"):
        _, _, outcome = run_folder(archive, style, out)
        assert outcome.done + outcome.skipped == 3


def test_an_unreadable_subfolder_is_a_failure_line_and_exit_status_1(
    archive: Path, style: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other pictures are painted, the folder is named with the reason on one line,
    and the run ends with status 1. (Tests run as root, so listing the folder fails instead.)"""
    import errno

    from helpers import invoke

    locked, real_scandir = archive / "sub", os.scandir

    def scandir(path: Any = ".") -> Any:
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = tmp_path / "out"
    result = invoke("images", archive, "-s", style, "-o", out, "--preset", "fast", "--size", "16", "-n", "1", "-q")
    assert result.exit_code == 1, result.output
    line = f"nstpipe: failed: {locked}: cannot read the folder (permission denied); its pictures are skipped"
    assert result.stderr.splitlines() == [line]
    assert "1 stylized, 0 already done, 1 failed" in result.stdout and (out / "a.png").is_file()
