"""Style transfer (Gatys et al.): a photo, a folder of photos or a video in a painting's style."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Sequence

from nstpipe.config import Settings
from nstpipe.modes.base import FOLDER, PICTURE, VIDEO, Command, Flag, ModeSpec, retell
from nstpipe.modes.model import encoder, engine_config, pictures

if TYPE_CHECKING:
    from nstpipe.engine.stylize import Stylizer


def painter(settings: Settings, styles: Sequence[Path]) -> Stylizer:
    from nstpipe.engine.device import resolve_device
    from nstpipe.engine.stylize import Stylizer, encoder_layers

    device = resolve_device(settings.device)
    engine = engine_config(settings, device)
    return Stylizer(encoder(settings, encoder_layers(engine), device=device), pictures(settings, styles), engine, device)


IMAGE = Command(
    "image",
    "Stylize one image; a rerun with the same settings keeps the finished output.",
    frozenset({PICTURE}),
    Flag("content", (), Path, "The photo to paint."),
    retell(
        "output", help="Output image; its suffix decides the format: .png, .jpg, .webp, .tif, .bmp (.avif where Pillow has it).",
        shown="PHOTO.STYLE.SUFFIX beside the photo",
    ),
)
IMAGES = Command(
    "images",
    "Stylize every image under FOLDER; rerun to resume (finished outputs are skipped).",
    frozenset({FOLDER}),
    Flag("folder", (), Path, "Folder of images, searched recursively."),
    retell("output", help="Output folder; the input layout is mirrored, as PNG.", shown="FOLDER.STYLE beside the folder"),
)
VIDEOS = Command(
    "video",
    "Stylize videos frame by frame, stable over time; rerun to resume after an interruption.",
    frozenset({VIDEO}),
    Flag("sources", (), List[Path], "The video(s) to paint, or folders of videos."),
    retell(
        "output", help="Output video (.mp4, .m4v or .mov; H.264); a folder for several inputs.",
        shown="VIDEO.STYLE.mp4 beside each video",
    ),
    (retell("size", help="Long side of the painted frames in pixels.", shown="on a GPU (CUDA, MPS) the video's own, at most "
            "--max-size; else the preset's (256 in the default), never above the video's"),),
)

SPEC = ModeSpec(
    name="style",
    preset="default",
    commands=(IMAGE, IMAGES, VIDEOS),
    flags=(
        "style", "size", "iterations", "preset", "config", "device", "seed", "style_weights", "style_scale", "preserve_color",
        "color_start", "content_weight", "style_weight", "style_loss", "tv_weight", "optimizer", "learning_rate", "init",
        "pooling", "weights", "scales", "content_layer", "style_layers", "max_pixels", "max_size", "max_memory",
        "workers", "address", "verbose", "batch", "retry_failed",
        "temporal", "later_iterations", "first_budget", "temporal_weight", "temporal_gaps", "temporal_hold", "passes", "pass_iterations",
        "pass_blend", "temporal_blend", "hold_still", "crf", "work_dir", "frames",
        "keep_frames",
    ),
    painter=painter,
)
