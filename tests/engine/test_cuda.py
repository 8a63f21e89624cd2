"""The CUDA path on a real GPU: the device and precision chosen, channels_last and bf16, the
compiled pass, batching, the fallbacks after running out of real GPU memory, and both
commands end to end.

Skipped where no CUDA GPU is visible (CI has none). On a GPU machine:
``python -m pytest tests/engine/test_cuda.py``. Speed is measured by python -m bench hardware, never here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pytest
import torch

from helpers import grad_of
from nstpipe.config import Settings, build_settings
from nstpipe.engine.cudagraph import GraphedLosses
from nstpipe.engine.device import resolve_batch, resolve_device
from nstpipe.engine.stylize import GRAPH_MIN_STEPS, Stylizer, resolve_precision
from nstpipe.engine.temporal import FrameInput, FrameStylizer
from nstpipe.engine.vgg import VGGFeatures, VGGWeights
from nstpipe.events import Progress
from nstpipe.jobs.plan import ImageTask
from nstpipe.jobs.records import make_job
from nstpipe.jobs.worker import ImageWorker, build_painter
from nstpipe.media.imaging import read_rgb
from nstpipe.media.video import probe
from nstpipe.modes.model import read_image

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")

CUDA = torch.device("cuda")
ASSETS = Path(__file__).resolve().parents[2] / "assets"
PHOTO, PAINTING, CLIP = ASSETS / "tubingen.jpg", ASSETS / "starry_night.jpg", ASSETS / "clip.mp4"


@pytest.fixture(scope="module")
def pictures() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The bundled photo and painting at 128 px, and a picture part way between them."""
    photo, painting = read_image(PHOTO, 128), read_image(PAINTING, 128)
    between = (0.6 * photo + 0.4 * torch.nn.functional.interpolate(painting, size=photo.shape[-2:])).clamp(0, 1)
    return photo, painting, between


def stylizer_on(device: torch.device, weights: VGGWeights, painting: torch.Tensor, **changes: Any) -> Stylizer:
    cfg = dataclasses.replace(build_settings("default").engine, **changes)
    encoder = VGGFeatures(weights, cfg.layers, cfg.pooling).to(device)
    return Stylizer(encoder, [painting], cfg, device)


def loss_and_gradient(stylizer: Stylizer, photo: torch.Tensor, image: torch.Tensor) -> tuple[float, torch.Tensor]:
    device = stylizer.device
    objective = stylizer.objective(photo.to(device))
    x = image.to(device).clone().requires_grad_(True)
    loss = objective(x)
    loss.backward()
    assert loss.dtype == grad_of(x).dtype == torch.float32  # the picture, the loss and its gradient stay fp32
    return loss.item(), grad_of(x).cpu()


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


# -- device, precision, memory layout --------------------------------------------------------------


def test_auto_picks_the_gpu_and_bf16_where_it_has_bf16_tensor_cores() -> None:
    assert resolve_device("auto").type == "cuda"
    expected = "bf16" if torch.cuda.get_device_capability() >= (8, 0) else "fp32"
    assert resolve_precision("auto", CUDA) == expected


def test_the_bf16_pass_runs_channels_last_on_a_copy_and_gives_bf16_features(vgg_weights: VGGWeights, pictures: Any) -> None:
    photo, painting, _ = pictures
    stylizer = stylizer_on(CUDA, vgg_weights, painting, precision="bf16")
    assert isinstance(stylizer.features.encoder, torch.nn.Module) and isinstance(stylizer.encoder, torch.nn.Module)
    convs = [m for m in stylizer.features.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.dtype == torch.bfloat16 for c in convs)
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) and not c.weight.is_contiguous() for c in convs)
    assert all(p.dtype == torch.float32 for p in stylizer.encoder.parameters())  # the caller's encoder untouched
    features = stylizer.features(photo.to(CUDA))
    assert all(f.dtype == torch.bfloat16 and f.device.type == CUDA.type for f in features.values())


def test_gpu_loss_matches_the_cpu_and_bf16_stays_within_one_percent_of_fp32(vgg_weights: VGGWeights, pictures: Any) -> None:
    photo, painting, between = pictures
    cpu_loss, cpu_grad = loss_and_gradient(stylizer_on(torch.device("cpu"), vgg_weights, painting, precision="fp32"), photo, between)
    fp32_loss, fp32_grad = loss_and_gradient(stylizer_on(CUDA, vgg_weights, painting, precision="fp32"), photo, between)
    bf16_loss, bf16_grad = loss_and_gradient(stylizer_on(CUDA, vgg_weights, painting, precision="bf16"), photo, between)
    # fp32 on the GPU lets cuDNN use TF32 (PyTorch's default): about 1e-3 off the CPU.
    assert relative(fp32_loss, cpu_loss) < 5e-3 and cosine(fp32_grad, cpu_grad) > 0.999
    assert 0 < relative(bf16_loss, fp32_loss) < 0.01  # > 0: the bf16 pass really ran
    assert cosine(bf16_grad, fp32_grad) > 0.98


def test_the_compiled_pass_gives_the_eager_loss(vgg_weights: VGGWeights, pictures: Any) -> None:
    photo, painting, between = pictures
    eager = loss_and_gradient(stylizer_on(CUDA, vgg_weights, painting, precision="bf16"), photo, between)
    compiled_stylizer = stylizer_on(CUDA, vgg_weights, painting, precision="bf16", compile=True)
    # torch.compile's module keeps the one it compiled: without it, both passes are eager.
    assert hasattr(compiled_stylizer.features.encoder, "_orig_mod")
    compiled = loss_and_gradient(compiled_stylizer, photo, between)
    assert relative(compiled[0], eager[0]) < 0.01 and cosine(compiled[1], eager[1]) > 0.98


# -- batching ----------------------------------------------------------------------------------------


@pytest.fixture
def no_tf32() -> Iterator[None]:
    """Plain fp32 convolutions: TF32 rounding differs between a batch and a single picture
    (other algorithms), and L-BFGS grows such differences within a few steps."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize("graphs", [True, False])
def test_a_gpu_batch_gives_each_picture_what_it_gets_alone(vgg_weights: VGGWeights, pictures: Any, no_tf32: None, graphs: bool) -> None:
    photo, painting, _ = pictures
    stylizer = stylizer_on(CUDA, vgg_weights, painting, precision="fp32", scales=1, iterations=8, tolerance=0.0, cuda_graphs=graphs)
    batch = torch.cat([photo, photo.flip(-1), 1 - photo])
    together = stylizer.run(batch)
    for i in range(batch.shape[0]):
        alone = stylizer.run(batch[i : i + 1])
        assert together.item_losses[i] == pytest.approx(alone.item_losses[0], rel=1e-3), i
        assert (together.image[i] - alone.image[0]).abs().max().item() < 2 / 255, i


def test_a_level_replayed_from_a_cuda_graph_follows_the_eager_run(
    vgg_weights: VGGWeights, pictures: Any, no_tf32: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nstpipe.engine.optimize

    recordings: list[tuple[int, ...]] = []

    class Counted(GraphedLosses):
        def __init__(self, losses: Any, example: torch.Tensor) -> None:
            recordings.append(tuple(example.shape))
            super().__init__(losses, example)

    monkeypatch.setattr(nstpipe.engine.optimize, "GraphedLosses", Counted)
    photo, painting, _ = pictures
    runs = {}
    for graphs in (True, False):
        stylizer = stylizer_on(CUDA, vgg_weights, painting, precision="fp32", iterations=12, coarse_iterations=10, tolerance=0.0,
                               cuda_graphs=graphs)
        losses: list[float] = []

        def record(event: object, losses: list[float] = losses) -> None:
            if isinstance(event, Progress):
                losses.append(event.loss)

        runs[graphs] = (stylizer.run(photo, callback=record), losses)
    (graphed, graphed_losses), (eager, eager_losses) = runs[True], runs[False]
    assert len(recordings) == 2 and recordings[1] == tuple(photo.shape)  # one recording per level
    assert len(graphed_losses) == len(eager_losses) == 22  # both levels ran their whole budgets
    assert graphed_losses == pytest.approx(eager_losses, rel=1e-3)  # step by step, not only at the end
    assert (graphed.image - eager.image).abs().max().item() < 2 / 255


def test_graphed_losses_replay_at_new_pixels_like_an_eager_pass(vgg_weights: VGGWeights, pictures: Any, no_tf32: None) -> None:
    photo, painting, between = pictures
    stylizer = stylizer_on(CUDA, vgg_weights, painting, precision="bf16")
    objective = stylizer.objective(photo.to(CUDA))
    graphed = GraphedLosses(objective.losses, photo.to(CUDA))
    for pixels in (between, photo, torch.rand_like(photo)):
        losses, grad = graphed(pixels.to(CUDA))
        x = pixels.to(CUDA).requires_grad_(True)
        eager = objective.losses(x)
        eager.sum().backward()
        assert losses.item() == pytest.approx(eager.item(), rel=1e-3)
        assert cosine(grad, grad_of(x)) > 0.999


def test_auto_batch_on_this_gpu_is_several_pictures_and_fewer_for_larger_ones() -> None:
    engine = build_settings("default").engine
    small, large = resolve_batch(0, CUDA, 256, engine), resolve_batch(0, CUDA, 2048, engine)
    assert small > 1 and 1 <= large <= small


# -- out of real GPU memory ----------------------------------------------------------------------------


@contextlib.contextmanager
def gpu_memory_cap(total_bytes: int) -> Iterator[None]:
    """Let this process's allocator hold at most ``total_bytes`` of the GPU (a real CUDA OOM past it)."""
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(total_bytes / torch.cuda.get_device_properties(CUDA).total_memory)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def peak_reserved(work: Callable[[], object]) -> int:
    """Bytes the allocator held at most while ``work`` ran, starting from an empty cache."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    work()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_reserved()


def gpu_settings(side: int, graphs: bool) -> Settings:
    """512 px pictures make the activations, which grow with the batch, outweigh the weights."""
    overrides = {"size": side, "device": "cuda", "scales": 1, "iterations": GRAPH_MIN_STEPS, "tolerance": 0.0, "cuda_graphs": graphs}
    return build_settings("default", None, overrides)


# The batch runs out of memory in an eager pass, or in a CUDA graph's warm-up or recording.
PASSES = pytest.mark.parametrize("graphs", [False, True], ids=["eager", "graphed"])


def ooms() -> int:
    return int(torch.cuda.memory_stats().get("num_ooms", 0))


def run_out_of_memory(one: Callable[[], object], four: Callable[[], object], engine_batches: list[tuple[int, ...]]) -> Any:
    """``four`` (a batch of four pictures) with room for one picture and a half, measured
    by ``one``: four at once cannot fit, one at a time must. A retry made while the failed
    batch's activations are still held would run out again. What ``four`` returns."""
    single = peak_reserved(one)
    engine_batches.clear()
    before = ooms()
    with gpu_memory_cap(int(single * 1.5)):
        result = four()
    assert ooms() > before, "the batch of four should have run out of memory"
    assert [shape[0] for shape in engine_batches] == [4, 1, 1, 1, 1]
    return result


@PASSES
def test_an_image_batch_that_runs_out_of_gpu_memory_is_painted_one_picture_at_a_time(
    tmp_path: Path, make_rgb: Callable[..., Path], engine_batches: list[tuple[int, ...]], graphs: bool
) -> None:
    worker = ImageWorker(make_job(dataclasses.replace(gpu_settings(512, graphs), batch=4), [PAINTING]))
    sources = [make_rgb(tmp_path / "in" / f"p{i}.png", 512, 512, seed=i) for i in range(4)]
    tasks = [ImageTask(source=s, relative=Path(s.name), output=tmp_path / "out" / s.name) for s in sources]
    results = run_out_of_memory(lambda: worker.process_batch([tasks[0]])[0], lambda: worker.process_batch(tasks), engine_batches)
    assert all(r.ok for r in results), [r.error for r in results]
    assert all(read_rgb(t.output).shape == (512, 512, 3) for t in tasks)


@PASSES
def test_a_frame_batch_that_runs_out_of_gpu_memory_is_painted_one_frame_at_a_time(
    engine_batches: list[tuple[int, ...]], graphs: bool
) -> None:
    settings = gpu_settings(512, graphs)
    frames = FrameStylizer(build_painter(settings, (PAINTING,)), settings)
    gen = np.random.default_rng(0)
    inputs = [FrameInput(gen.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(4)]
    painted = run_out_of_memory(lambda: frames.stylize_many(inputs[:1]), lambda: frames.stylize_many(inputs), engine_batches)
    assert [p.rgb.shape for p in painted] == [(512, 512, 3)] * 4


# -- the commands, end to end --------------------------------------------------------------------------


def test_the_image_command_paints_on_the_gpu_by_default(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nstpipe.cli import app

    out = tmp_path / "painted.png"
    result = CliRunner().invoke(app, ["image", str(PHOTO), "--style", str(PAINTING), "-o", str(out), "--size", "256", "-q"])
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_name("painted.png.settings.json").read_text())
    assert record["settings"]["device"] == "cuda"
    assert record["settings"]["precision"] == resolve_precision("auto", CUDA)
    assert max(read_rgb(out).shape[:2]) == 256


def test_the_video_command_paints_chains_in_step_on_the_gpu(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nstpipe.cli import app

    out, work = tmp_path / "painted.mp4", tmp_path / "work"
    args = ["video", str(CLIP), "--style", str(PAINTING), "-o", str(out), "--size", "128", "-n", "40",
            "--later-iterations", "10", "--work-dir", str(work), "--keep-frames", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads(next(work.rglob("manifest.json")).read_text())
    assert manifest["settings"]["device"] == "cuda"
    assert manifest["settings"]["batch"] > 1  # auto: chains painted in step
    source, painted = probe(CLIP), probe(out)
    assert painted.frame_count == source.frame_count and painted.fps == source.fps
    measured = CliRunner().invoke(app, ["metrics", str(CLIP), str(out), "--style", str(PAINTING)])
    assert measured.exit_code == 0, measured.output  # the frames meet the encoder on the GPU


def test_a_video_without_size_keeps_its_own_size_on_the_gpu(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nstpipe.cli import app

    out = tmp_path / "painted.mp4"
    args = ["video", str(CLIP), "--style", str(PAINTING), "-o", str(out), "--frames", "3", "-n", "5", "--later-iterations", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    source, painted = probe(CLIP), probe(out)
    precision = resolve_precision("auto", CUDA)
    assert f"nstpipe: {source.width}x{source.height} on cuda ({precision}), 3 frames -> {out}" in result.stderr
    assert (painted.width, painted.height) == (source.width, source.height)
    assert json.loads(out.with_name("painted.mp4.settings.json").read_text())["settings"]["size"] == max(source.width, source.height)
