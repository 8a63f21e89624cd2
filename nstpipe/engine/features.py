"""The encoder as the optimizer runs it: the precision chosen for the hardware, the memory
layout, compilation."""

from __future__ import annotations

import copy
from typing import Callable, Mapping

import torch
from torch import nn

from nstpipe.config import EngineConfig

Encoder = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where the hardware multiplies bf16 natively, else ``fp32``."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        # Tensor cores with bf16 start at compute capability 8 (Ampere). Older GPUs emulate
        # bf16 (torch.cuda.is_bf16_supported() can still say yes), which is slower than fp32.
        return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp32"
    if device.type == "cpu" and (_cpu_has("_is_amx_tile_supported") or _cpu_has("_is_avx512_bf16_supported")):
        # AMX tiles, and AVX-512's bf16 dot products (VDPBF16PS), run oneDNN's bf16
        # convolutions natively: faster than fp32 (``python -m bench hardware`` times both). A CPU without either
        # emulates bf16, which is slower than fp32.
        return "bf16"
    return "fp32"


def _cpu_has(probe_name: str) -> bool:
    probe = getattr(torch.cpu, probe_name, None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


class FeaturePass:
    """The encoder as the optimizer runs it: precision, memory layout, compilation.

    Same contract as the encoder it wraps (RGB in, {layer: feature} out). With bf16, the
    VGG19 pass runs under autocast on a bf16 copy of the weights (autocast would cast
    frozen weights again on every call), and the features come out in bf16: the Gram
    products then run on the bf16 matrix units too (in fp32 they took a fifth of a bf16
    iteration on the CPU), and the losses widen their results to fp32
    (:mod:`nstpipe.engine.losses`), so the image, the loss and the optimizer stay fp32.
    Channels-last is what the convolutions of cuDNN and oneDNN run fastest on, in fp32 as
    in bf16 (``python -m bench hardware`` times the iterations); MPS keeps the plain layout. The
    caller's encoder is never modified: a changed layout or dtype applies to a copy.
    """

    def __init__(self, encoder: Encoder, device: torch.device, config: EngineConfig) -> None:
        self.precision = resolve_precision(config.precision, device)
        self.device_type = device.type
        self.channels_last = device.type in ("cpu", "cuda")
        self.encoder = _prepared(encoder, self.precision, self.channels_last)
        if config.compile:
            self.encoder = torch.compile(self.encoder)

    def __call__(self, rgb: torch.Tensor) -> Mapping[str, torch.Tensor]:
        if self.channels_last:
            rgb = rgb.contiguous(memory_format=torch.channels_last)
        # No cast cache: the weights are bf16 already, and a cache would hold casts made
        # while a CUDA graph records (nstpipe.engine.cudagraph).
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16", cache_enabled=False):
            feats = self.encoder(rgb)
        return feats

    def stage(
        self, x: torch.Tensor, after: str | None = None, through: str | None = None
    ) -> tuple[Mapping[str, torch.Tensor], torch.Tensor]:
        """The encoder's :meth:`~nstpipe.engine.vgg.VGGFeatures.stage`, in this pass's
        precision and layout."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.precision == "bf16", cache_enabled=False):
            features, out = self.encoder.stage(x, after, through)  # type: ignore[attr-defined]
        return features, out


def _inner(encoder: Encoder) -> Encoder:
    """The encoder that a :class:`FeaturePass` wraps, or ``encoder`` itself."""
    return encoder.encoder if isinstance(encoder, FeaturePass) else encoder


def splits(encoder: Encoder) -> bool:
    """Whether ``encoder`` runs in parts (``stage``, as :class:`~nstpipe.engine.vgg.VGGFeatures`
    does), which a tiled pass may ask of it."""
    return hasattr(_inner(encoder), "stage")


def stops_short(encoder: Encoder, layer: str) -> bool:
    """Whether ``encoder`` runs in parts (:func:`splits`) and a pass through ``layer`` leaves
    some of its layers unrun: only then is that part cheaper than the whole pass, which
    ``compile`` may have compiled."""
    names: tuple[str, ...] = tuple(getattr(_inner(encoder), "names", ()))
    return splits(encoder) and layer in names[:-1]


def _prepared(encoder: Encoder, precision: str, channels_last: bool) -> Encoder:
    if not isinstance(encoder, nn.Module) or (precision != "bf16" and not channels_last):
        return encoder
    module = copy.deepcopy(encoder)
    if precision == "bf16":
        for param in module.parameters():  # buffers (the preprocessing constants) stay fp32
            param.data = param.data.to(torch.bfloat16)
    return module.to(memory_format=torch.channels_last) if channels_last else module
