"""The same pictures as the committed outputs in tests/data/golden/.

``image``, ``images --batch 2`` and a 12-frame ``video`` with flow, at 48 px on the CPU in
fp32, through the real command line and the embedded VGG19. The outputs were made by the
engine as it was before the objective was split into terms; a refactor of the engine, the
jobs or the executors must leave every pixel as it was, since finished outputs are kept by
their settings fingerprint and must not differ from what a rerun would paint.

Regenerate (only when the pictures change on purpose, with a new ENGINE_REVISION, or a new
READER_REVISION or FLOW_REVISION where only the video's frames change), on a machine of
each CPU maker (:data:`VENDOR_FOLDERS`): ``.venv/bin/python tests/test_golden.py``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from bench.common import machine
from nstpipe.cli import app

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_ROOT = Path(__file__).parent / "data" / "golden"


# fp32 pictures differ between CPU makers by more than the reassociation of a sum: the
# math libraries choose other kernels by vendor, and L-BFGS carries the difference on (up
# to 5/255 in a photo, more in the flow-warped frames of a video). So each maker has its
# own committed pictures; within one, a refactor must leave every pixel as it was.
VENDOR_FOLDERS = {"AuthenticAMD": "", "GenuineIntel": "intel"}
GOLDEN = GOLDEN_ROOT / VENDOR_FOLDERS.get(machine()["vendor"], "other")
PHOTO = Path(__file__).parent / "data" / "tubingen_64.jpg"
PAINTING = Path(__file__).parent / "data" / "starry_night_64.jpg"
CLIP = ROOT / "assets" / "clip.mp4"
CONFIG = GOLDEN_ROOT / "golden.toml"
VIDEO_FRAMES = 12
# A pixel may differ by one level of 8 bits where float sums are reassociated (another
# thread count, another kernel for the same product): a lasting change to the engine moves
# many pixels by far more than that.
MAX_DIFF = 1


def _run(*args: object) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def make_outputs(out: Path) -> dict[str, list[Path]]:
    """Paint the three jobs into ``out``; returns each job's pictures, in a fixed order."""
    common = ("--config", CONFIG, "--device", "cpu", "--size", 48, "-q")
    _run("image", PHOTO, "--style", PAINTING, "-o", out / "image.png", *common)
    folder = out / "folder-in"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PHOTO, folder / "a.jpg")
    Image.open(PHOTO).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(folder / "b.png")
    _run("images", folder, "--style", PAINTING, "-o", out / "folder", "--batch", 2, *common)
    work = out / "video-work"
    _run("video", CLIP, "--style", PAINTING, "-o", out / "video.mp4", "--frames", VIDEO_FRAMES,
         "--work-dir", work, "--keep-frames", "--temporal", "flow", *common)
    return {
        "image": [out / "image.png"],
        "images": sorted((out / "folder").glob("*.png")),
        "video": sorted(work.glob("*/frame-*.png")),
    }


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.mark.slow
@pytest.mark.skipif(not (GOLDEN / "image").is_dir(), reason="no committed pictures for this CPU's maker (see the module's docstring)")
def test_outputs_match_the_committed_pictures(tmp_path: Path) -> None:
    made = make_outputs(tmp_path)
    assert [len(made[k]) for k in ("image", "images", "video")] == [1, 2, VIDEO_FRAMES]
    for kind, paths in made.items():
        for path in paths:
            golden = GOLDEN / kind / path.name
            assert golden.exists(), f"no committed picture for {kind}/{path.name}"
            ours, theirs = _pixels(path), _pixels(golden)
            assert ours.shape == theirs.shape, (kind, path.name, ours.shape, theirs.shape)
            diff = int(np.abs(ours - theirs).max())
            assert diff <= MAX_DIFF, f"{kind}/{path.name}: pixels differ by up to {diff}/255"


def _regenerate() -> None:
    import tempfile

    import torch

    torch.set_num_threads(1)  # as tests/conftest.py runs the suite: the same sums, the same order

    with tempfile.TemporaryDirectory() as tmp:
        made = make_outputs(Path(tmp))
        for kind, paths in made.items():
            target = GOLDEN / kind
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for path in paths:
                shutil.copy(path, target / path.name)
            print(f"{kind}: {len(paths)} pictures in {target}", file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    _regenerate()
