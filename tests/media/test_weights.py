"""Reading the VGG19 weights: the embedded file and its pinned SHA-256, local files in either layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from nstpipe.errors import WeightsError
from nstpipe.media.weights import (
    EMBEDDED_FILE,
    EMBEDDED_SHA256,
    TORCHVISION_CONV_INDEX,
    LoadedWeights,
    embedded_weights_path,
    load_quantized,
    load_weights,
    sha256_file,
)


def test_embedded_file_matches_the_pinned_sha256() -> None:
    path = embedded_weights_path()
    assert path.name == EMBEDDED_FILE
    assert sha256_file(path) == EMBEDDED_SHA256


def test_conv_shapes(vgg_weights: LoadedWeights) -> None:
    assert vgg_weights.preprocessing == "caffe" and vgg_weights.source == "embedded"
    assert len(vgg_weights.convs) == 16
    expected = {
        "conv1_1": (64, 3), "conv1_2": (64, 64), "conv2_1": (128, 64), "conv2_2": (128, 128),
        "conv3_1": (256, 128), "conv3_4": (256, 256), "conv4_1": (512, 256), "conv5_4": (512, 512),
    }
    for name, (out_ch, in_ch) in expected.items():
        weight, bias = vgg_weights.convs[name]
        assert tuple(weight.shape) == (out_ch, in_ch, 3, 3), name
        assert tuple(bias.shape) == (out_ch,), name
        assert weight.dtype == torch.float32 and bias.dtype == torch.float32
        assert torch.isfinite(weight).all() and weight.std() > 1e-3


def test_tampered_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "weights.bin"
    shutil.copyfile(embedded_weights_path(), copy)
    with open(copy, "r+b") as fh:
        fh.seek(copy.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(WeightsError, match="SHA-256") as info:
        load_quantized(copy, EMBEDDED_SHA256, "x")
    assert str(copy) in str(info.value)


def test_missing_weights_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.bin"
    with pytest.raises(WeightsError, match="not found"):
        load_quantized(missing, EMBEDDED_SHA256, "x")
    with pytest.raises(WeightsError, match="nothing.bin"):
        load_weights(str(missing))


def test_file_that_is_not_weights(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="not a loadable weights file"):
        load_weights(str(junk))


def test_torchvision_layout_file_is_recognized(tmp_path: Path) -> None:
    state = {}
    for i in TORCHVISION_CONV_INDEX:
        state[f"features.{i}.weight"] = torch.full((2, 2, 3, 3), float(i))
        state[f"features.{i}.bias"] = torch.zeros(2)
    path = tmp_path / "tv.pth"
    torch.save(state, path)
    weights = load_weights(str(path))
    assert weights.preprocessing == "torchvision"
    assert weights.source.startswith("file:")
    assert weights.convs["conv2_1"][0][0, 0, 0, 0].item() == 5.0  # conv2_1 is features.5

    del state["features.34.bias"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(WeightsError, match="features.34.bias"):
        load_weights(str(broken))


def test_unknown_layout_file(tmp_path: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(WeightsError, match="unknown weights layout"):
        load_weights(str(path))
