"""Test helpers shared by several modules: synthetic images and a stand-in encoder."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nstpipe.config import EngineConfig
from nstpipe.engine.features import resolve_precision

if TYPE_CHECKING:
    from typer.testing import Result

    from nstpipe.events import EventSink
    from nstpipe.jobs.plan import Chunk
    from nstpipe.jobs.records import VideoJob
    from nstpipe.jobs.video_job import FramesSummary
    from nstpipe.media.framestore import FrameStore

DATA = Path(__file__).parent / "data"

# What precision "auto" runs on this machine's CPU: bf16 where it multiplies bf16 natively
# (AMX, AVX-512 bf16), else fp32. The opening line of a command names it.
CPU_AUTO = resolve_precision("auto", torch.device("cpu"))


def tiny_engine(**overrides: Any) -> EngineConfig:
    """Settings for the layers the TinyEncoder provides: one scale, no early stopping unless asked."""
    values: dict[str, Any] = dict(
        content_layer="relu2_1", style_layers=("relu1_1", "relu2_1"), style_layer_weights=(1.0, 1.0),
        style_weight=5.0, scales=1, min_scale_size=8, tolerance=0.0,
    )
    values.update(overrides)
    return EngineConfig(**values)


class TinyEncoder:
    """A fixed random two-layer conv net that answers to VGG19 layer names.

    ``relu1_1`` is full resolution with 6 channels, ``relu2_1`` is half resolution with
    8 channels. ``calls`` records the shape of every input, so tests can count passes.
    """

    def __init__(self, seed: int = 0, circular: bool = False, replicate: bool = False) -> None:
        self.circular = circular  # pad as a torus (see VGGFeatures.wrapped)
        self.replicate = replicate  # pad by repeating the edge (see VGGFeatures.replicated)
        gen = torch.Generator().manual_seed(seed)
        self.w1 = torch.randn(6, 3, 3, 3, generator=gen) * 0.5
        self.b1 = torch.randn(6, generator=gen) * 0.1
        self.w2 = torch.randn(8, 6, 3, 3, generator=gen) * 0.3
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor) -> Mapping[str, torch.Tensor]:
        self.calls.append(tuple(x.shape))
        h1 = F.relu(self._conv(x, self.w1, self.b1))
        h2 = F.relu(self._conv(F.avg_pool2d(h1, 2, ceil_mode=True), self.w2, None))
        return {"relu1_1": h1, "relu2_1": h2}

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.circular or self.replicate:
            return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="circular" if self.circular else "replicate"), weight, bias)
        return F.conv2d(x, weight, bias, padding=1)

    def wrapped(self) -> TinyEncoder:
        """The same weights, padding circularly."""
        return self._padded(TinyEncoder(circular=True))

    def replicated(self) -> TinyEncoder:
        """The same weights, padding by repeating the edge."""
        return self._padded(TinyEncoder(replicate=True))

    def _padded(self, other: TinyEncoder) -> TinyEncoder:
        other.w1, other.b1, other.w2 = self.w1, self.b1, self.w2
        return other

    def count(self, shape: tuple[int, ...]) -> int:
        return sum(1 for s in self.calls if s == shape)


def smooth_image(height: int, width: int, phase: float = 0.0) -> torch.Tensor:
    """A deterministic colourful (1, 3, H, W) image in [0.1, 0.9]."""
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    r = 0.5 + 0.4 * torch.sin(6.0 * x + phase) * torch.cos(3.0 * y)
    g = 0.5 + 0.4 * torch.cos(5.0 * y + 2.0 * x + phase)
    b = 0.5 + 0.4 * torch.sin(9.0 * x * y + phase)
    return torch.stack([r, g, b]).unsqueeze(0).float()


def stripes_image(height: int, width: int, period: int = 4) -> torch.Tensor:
    """Diagonal colour stripes, a 'painting' with a strong texture."""
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    band = ((xx + yy) // period) % 2
    rgb = torch.stack([band * 0.9 + 0.05, (1 - band) * 0.7 + 0.1, torch.full_like(band, 0.3, dtype=torch.float)])
    return rgb.float().unsqueeze(0)


def grad_of(t: torch.Tensor) -> torch.Tensor:
    """``t.grad``, read after a backward pass has filled it."""
    assert t.grad is not None, "no gradient: backward() did not reach this tensor"
    return t.grad


def write_rgb(path: Path, height: int, width: int, seed: int = 0, **save: Any) -> Path:
    """A small smooth RGB picture saved with PIL (format from the suffix)."""
    rgb = (smooth_image(height, width, phase=float(seed))[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb, "RGB").save(path, **save)
    return path


class FolderExecutor:
    """The rest of an Executor for stand-ins that only run folders: one worker, no videos."""

    def parallelism(self) -> int:
        return 1

    def run_video(
        self, job: VideoJob, store: FrameStore, chunks: Sequence[Chunk], on_event: EventSink, batch: int = 1
    ) -> FramesSummary:
        raise AssertionError("this stand-in runs folders only")


def invoke(*args: object) -> Result:
    """The ``nstpipe`` command line in this process, every argument as a string."""
    from typer.testing import CliRunner

    from nstpipe.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` by its path and the SHA-256 of its bytes: a misuse must leave it as it was."""
    files = (p for p in sorted(folder.rglob("*")) if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def pixels(path: Path) -> np.ndarray:
    """A picture's RGB pixels as int16, so that differences do not wrap around."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)
