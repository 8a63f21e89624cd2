"""The levels of a run, coarse to fine: their sizes, their budgets, and where each starts."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nstpipe.config import EngineConfig
from nstpipe.engine.resize import fit_long_side, resize


def pyramid(
    height: int, width: int, scales: int, min_size: int, min_side: int = 1, ratio: float = 2.0
) -> list[tuple[int, int]]:
    """Sizes from coarse to fine; each level divides the long side by ``ratio`` (rounded
    down), none below ``min_size``, and none with a short side below ``min_side`` (what
    the encoder's layers need)."""
    long_side = max(height, width)
    sizes = [(height, width)]
    for k in range(1, scales):
        side = int(long_side / ratio**k)
        size = fit_long_side(height, width, side)
        if side < min_size or min(size) < min_side:
            break
        sizes.insert(0, size)
    return sizes


def fine_levels(height: int, width: int, fine_side: int, ratio: float = 2.0) -> list[tuple[int, int]]:
    """The sizes from the largest at most ``fine_side`` up to the full size, each ``ratio``
    times the one before (the last the full size); none where the picture is not larger."""
    long_side = max(height, width)
    if not fine_side or long_side <= fine_side:
        return []
    steps = math.ceil(math.log(long_side / fine_side, ratio))
    return [fit_long_side(height, width, round(long_side / ratio**k)) for k in range(steps, 0, -1)] + [(height, width)]


@dataclass(frozen=True)
class LevelPlan:
    index: int  # 0 = coarsest
    count: int  # levels in the run
    size: tuple[int, int]
    budget: int  # iterations at most
    fine: bool = False  # above the preset's finest level (fine_side): it refines, see Schedule.carry


@dataclass(frozen=True)
class Schedule:
    """How a run climbs its pyramid: the levels' sizes and budgets, the first level's start,
    and how a finer level starts from the coarser one's result."""

    scales: int = 1
    min_scale_size: int = 64
    iterations: int = 300  # at full size
    coarse_iterations: int = 200  # at every coarser level
    coarsest_iterations: int = 0  # at the coarsest level where it is a coarser one (0: coarse_iterations)
    init: str = "content"  # "content", "noise", or a picture that the caller passes to :meth:`start`
    seed: int = 0
    # See EngineConfig.content_mix: the share of the photo in a finer level's start.
    content_mix: float = 0.0
    # See EngineConfig.photo_share: the photo's share in a start from noise.
    photo_share: float = 0.0
    # Noise of its own for each picture of a batch, picture k from seed + k (variations of a
    # texture); else one draw that every picture shares (a batch of photos).
    spread_seeds: bool = False
    # The pictures wrap around (a tileable texture): a finer level's start is upsampled
    # as a torus (see resize_wrapped), so the seam starts as smooth as the inside.
    wrap: bool = False
    # The long side of a level over the next coarser one's (DeepDream's octave scale, 1.4).
    ratio: float = 2.0
    # A finer level starts from its own start (the photo, or ``init``) plus the coarser
    # level's change to that start, upsampled: the octaves of DeepDream, which keep the
    # photo's fine detail sharp and add the dream's coarse detail to it.
    detail: bool = False

    # See EngineConfig.fine_side: above this long side (0: never), levels double up to the
    # full size, each with half the steps of the one below.
    fine_side: int = 0

    @classmethod
    def of(cls, config: EngineConfig) -> Schedule:
        return cls(config.scales, config.min_scale_size, config.iterations, config.coarse_iterations,
                   config.coarsest_iterations, config.init, config.seed, config.content_mix, config.photo_share,
                   fine_side=config.fine_side)

    def levels(self, height: int, width: int, min_side: int) -> list[LevelPlan]:
        fine = fine_levels(height, width, self.fine_side, self.ratio)
        base = fine[0] if fine else (height, width)
        sizes = pyramid(base[0], base[1], self.scales, self.min_scale_size, min_side, self.ratio) + fine[1:]
        top = len(sizes) - len(fine[1:]) - 1  # the preset's finest level: its full budget
        # Halved per level above, but never to nothing where the run has steps at all.
        budgets = [self.coarse_iterations] * top + [max(min(1, self.iterations), self.iterations >> k) for k in range(len(sizes) - top)]
        if top and self.coarsest_iterations:
            budgets[0] = self.coarsest_iterations
        return [LevelPlan(i, len(sizes), size, budget, i > top) for i, (size, budget) in enumerate(zip(sizes, budgets))]

    def start(
        self, size: tuple[int, int], count: int, content: torch.Tensor | None, init: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor:
        """The first level's pixels for ``count`` pictures: ``init`` where given, else the
        configured start. None of the inputs is modified."""
        if init is not None:
            return resize(init.to(device, torch.float32), size).expand(count, -1, -1, -1)
        if self.init == "noise" and self.spread_seeds:
            # Each picture from its own seed: picture k is the same made alone with seed + k.
            gens = [torch.Generator().manual_seed(self.seed + k) for k in range(count)]
            return torch.cat([torch.rand((1, 3) + size, generator=gen) for gen in gens]).to(device)
        if self.init == "noise":
            # One draw shared by the batch: each picture starts from the noise it gets alone.
            gen = torch.Generator().manual_seed(self.seed)
            noise = torch.rand((1, 3) + size, generator=gen).to(device)
            if self.photo_share > 0 and content is not None:
                return self.photo_share * resize(content, size) + (1 - self.photo_share) * noise
            return noise.expand(count, -1, -1, -1)
        if content is None:
            raise ValueError("a run without a content photo starts from noise or from a given picture")
        # "content", and a file path that the caller has already turned into ``init``.
        return resize(content, size)

    def carry(
        self, image: torch.Tensor, size: tuple[int, int], content: torch.Tensor | None, init: torch.Tensor | None, fine: bool = False
    ) -> torch.Tensor:
        """A finer level's start: the coarser result upsampled, with a share of the photo
        mixed in when the run started from the photo; or, with ``detail`` or on a ``fine``
        level, the level's own start plus the coarser level's change to its start.

        A fine level (above fine_side) has few steps: a share of the photo mixed in at each
        of several such levels would wash out what the preset's levels painted, which they
        cannot repaint; the photo's detail alone, added to the upsampled painting, keeps it.
        """
        if (self.detail or fine) and (init is not None or content is not None):
            start = init if init is not None else content
            assert start is not None
            base = start.to(image.device, image.dtype)
            change = image - resize(base, (image.shape[-2], image.shape[-1]))
            # Bilinear and unclamped: the change is signed, and resize() clamps to [0, 1].
            change = F.interpolate(change, size=size, mode="bilinear", align_corners=False)
            return (resize(base, size) + change).clamp(0, 1)
        image = resize_wrapped(image, size) if self.wrap else resize(image, size)
        mix = self.content_mix
        if mix > 0 and init is None and self.init == "content" and content is not None:
            # See EngineConfig.content_mix: the photo's detail, which half size lost.
            image = (1 - mix) * image + mix * resize(content, size)
        return image


def resize_wrapped(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` upsampled as a torus, in the Fourier domain: its spectrum padded with zeros.

    Not bilinear or bicubic: those give every second pixel of the finer level a mix of two
    coarse pixels and the others a mix leaning on one, so the finer start steps more from
    an odd pixel to the next even one than inside a pair. The finer level's iterations do
    not undo that rhythm, and a tiling's wrap edge (from the last pixel, odd, to the first)
    is one of those larger steps, which shows as a seam.
    A band-limited upsampling has no such rhythm and wraps by construction. Whole factors
    only (the pyramid's 2, on the sizes a tileable texture is rounded to); any other size
    is resized plainly.
    """
    height, width = image.shape[-2:]
    if (height, width) == tuple(size) or size[0] % height or size[1] % width:
        return resize(image, size)
    dims = (-2, -1)
    spectrum = torch.fft.fftshift(torch.fft.fft2(image.float()), dim=dims)
    padded = spectrum.new_zeros((*image.shape[:-2], size[0], size[1]))
    top, left = size[0] // 2 - height // 2, size[1] // 2 - width // 2  # where frequency 0 goes
    padded[..., top : top + height, left : left + width] = spectrum
    # .real: an even side's Nyquist frequency lands on one side only; its real part is the
    # cosine it stood for, so the coarse pixels are kept exactly.
    picture: torch.Tensor = torch.fft.ifft2(torch.fft.ifftshift(padded, dim=dims)).real * (size[0] * size[1] / (height * width))
    return picture.to(image.dtype).clamp(0, 1)
