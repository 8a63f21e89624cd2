"""Several pictures in one optimization: the same outputs as one at a time, groups by size,
failures that stay with their own file, resume across batch sizes, a GPU out of memory.

Real workers (VGG19) at 32 px and a few iterations; speed is never asserted here.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pytest
import torch

from helpers import DATA
from nstpipe.app import FolderOutcome, stylize_folder
from nstpipe.config import build_settings
from nstpipe.engine.device import run_or_split
from nstpipe.engine.stylize import Stylizer
from nstpipe.jobs.plan import ImageTask
from nstpipe.jobs.records import make_job
from nstpipe.jobs.worker import ImageWorker
from nstpipe.media.imaging import read_rgb
from nstpipe.media.writer import read_record
from nstpipe.run.executor import LocalExecutor

SETTINGS = build_settings(
    "fast", None, {"size": 32, "scales": 1, "iterations": 3, "tolerance": 0.0, "device": "cpu", "precision": "fp32"}
)


@pytest.fixture(scope="module")
def worker() -> ImageWorker:
    """One real worker (VGG19 and the style loaded once) that takes up to 8 pictures a call."""
    return ImageWorker(make_job(dataclasses.replace(SETTINGS, batch=8), [DATA / "starry_night_64.jpg"]))


def paint(folder: Path, out: Path, batch: int, style: Path) -> FolderOutcome:
    settings = dataclasses.replace(SETTINGS, batch=batch)
    return stylize_folder(folder, [style], out, settings, lambda event: None, LocalExecutor())


def photos(folder: Path, make_rgb: Callable[..., Path], shapes: list[tuple[int, int]]) -> list[Path]:
    return [make_rgb(folder / f"p{i}.png", h, w, seed=i) for i, (h, w) in enumerate(shapes)]


def task_for(out: Path, source: Path) -> ImageTask:
    return ImageTask(source=source, relative=Path(source.name), output=out / (source.stem + ".png"))


def assert_same_picture(a: Path, b: Path) -> None:
    """Equal up to float rounding: a batched convolution may sum in another order."""
    x, y = read_rgb(a).astype(int), read_rgb(b).astype(int)
    assert x.shape == y.shape and np.abs(x - y).max() <= 1, (a, b)


def mtimes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*.png"))}


def test_a_batch_paints_each_picture_as_it_is_painted_alone(
    tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path, engine_batches: list[tuple[int, ...]]
) -> None:
    sources = photos(tmp_path / "in", make_rgb, [(24, 32)] * 4)
    alone = paint(tmp_path / "in", tmp_path / "alone", 1, painting_path)
    assert engine_batches == [(1, 3, 24, 32)] * 4
    engine_batches.clear()
    together = paint(tmp_path / "in", tmp_path / "together", 4, painting_path)
    assert engine_batches == [(4, 3, 24, 32)]
    assert alone.done == together.done == 4 and not together.failed
    for source in sources:
        name = source.stem + ".png"
        assert_same_picture(tmp_path / "alone" / name, tmp_path / "together" / name)
        assert read_record(tmp_path / "together" / name) == read_record(tmp_path / "alone" / name)
    # The photos differ, so a picture written under another's name would show.
    first, second = (read_rgb(tmp_path / "alone" / n).astype(int) for n in ("p0.png", "p1.png"))
    assert np.abs(first - second).max() > 10


def test_a_batch_of_mixed_sizes_runs_one_optimization_per_size(
    tmp_path: Path, make_rgb: Callable[..., Path], worker: ImageWorker, engine_batches: list[tuple[int, ...]]
) -> None:
    shapes = [(24, 32), (32, 20), (24, 32), (32, 20), (24, 32)]
    sources = photos(tmp_path / "in", make_rgb, shapes)
    together = worker.process_batch([task_for(tmp_path / "together", s) for s in sources])
    assert engine_batches == [(3, 3, 24, 32), (2, 3, 32, 20)]
    assert [r.task.source for r in together] == sources and all(r.ok for r in together)
    alone = [worker.process_batch([task_for(tmp_path / "alone", s)])[0] for s in sources]
    for single, batched, (height, width) in zip(alone, together, shapes):
        assert read_rgb(batched.task.output).shape == (height, width, 3)
        assert_same_picture(single.task.output, batched.task.output)
        assert batched.iterations == single.iterations == 3


def test_a_bad_file_in_a_batch_fails_alone_and_the_others_are_written(
    tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path, engine_batches: list[tuple[int, ...]]
) -> None:
    folder, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "c", "e"):
        make_rgb(folder / f"{name}.png", 24, 32, seed=ord(name))
    (folder / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole JPEG")
    make_rgb(folder / "d.png", 32, 8)  # too thin for the VGG19 layers: its own group fails
    outcome = paint(folder, out, 5, painting_path)
    assert engine_batches == [(3, 3, 24, 32), (1, 3, 32, 8)]
    assert outcome.done == 3
    failed = {f.task.source.name: f.error or "" for f in outcome.failed}
    assert sorted(failed) == ["b.jpg", "d.png"]
    assert failed["b.jpg"].startswith(str(folder / "b.jpg")) and "too thin" in failed["d.png"]
    assert sorted(mtimes(out)) == ["a.png", "c.png", "e.png"]
    assert sorted(p.name for p in out.glob("*.failed.json")) == ["b.png.failed.json", "d.png.failed.json"]


def test_a_rerun_after_a_batched_run_redoes_nothing(
    tmp_path: Path, make_rgb: Callable[..., Path], painting_path: Path, engine_batches: list[tuple[int, ...]]
) -> None:
    photos(tmp_path / "in", make_rgb, [(24, 32), (24, 32), (32, 20), (24, 32), (24, 32)])
    out = tmp_path / "out"
    assert paint(tmp_path / "in", out, 3, painting_path).done == 5
    before = mtimes(out)
    engine_batches.clear()
    for batch in (1, 0, 4):
        again = paint(tmp_path / "in", out, batch, painting_path)
        assert (again.done, again.skipped, again.failed) == (0, 5, []), batch
    assert engine_batches == [] and mtimes(out) == before


def test_a_batch_out_of_gpu_memory_goes_one_picture_at_a_time(
    tmp_path: Path, make_rgb: Callable[..., Path], worker: ImageWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    handling: list[object] = []  # the exception being handled when each run starts
    fits = {"pictures": 1}
    real = Stylizer.run

    def run(self: Stylizer, content: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        sizes.append(content.shape[0])
        handling.append(sys.exc_info()[0])
        if content.shape[0] > fits["pictures"]:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real(self, content, *args, **kwargs)

    monkeypatch.setattr(Stylizer, "run", run)
    sources = photos(tmp_path / "in", make_rgb, [(24, 32)] * 3)
    results = worker.process_batch([task_for(tmp_path / "out", s) for s in sources])
    assert sizes == [3, 1, 1, 1]
    # Retried after the handler, not inside it: there, the traceback would still hold the
    # failed batch's activations (tests/engine/test_cuda.py runs out of real GPU memory).
    assert handling == [None] * 4
    assert all(r.ok for r in results) and all(r.task.output.is_file() for r in results)
    fits["pictures"] = 0
    with pytest.raises(torch.cuda.OutOfMemoryError):  # not the input's fault: the run stops
        worker.process_batch([task_for(tmp_path / "again", sources[0])])[0]


def test_run_or_split_runs_alone_only_what_ran_out_of_memory_together() -> None:
    calls: list[list[int]] = []
    handling: list[object] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        handling.append(sys.exc_info()[0])
        if len(items) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return [10 * item for item in items]

    assert run_or_split([1, 2, 3], run) == [10, 20, 30]
    assert calls == [[1, 2, 3], [1], [2], [3]] and handling == [None] * 4
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_or_split([4], lambda items: run([*items, *items]))


def test_run_or_split_lets_other_errors_through_untouched() -> None:
    def run(items: Sequence[int]) -> list[int]:
        raise ValueError("not a memory problem")

    with pytest.raises(ValueError):
        run_or_split([1, 2], run)
