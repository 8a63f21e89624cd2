"""Output names beside the input: ``photo.monet.jpg``, ``photos.monet/``, ``clip.dream.mp4``.

What a name says of how it was painted is the mode's (:attr:`ModeSpec.tag`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from nstpipe.media.writer import IMAGE_FORMATS
from nstpipe.modes import spec_of


def style_tag(styles: Sequence[Path], mode: str = "style") -> str:
    """``monet``, ``monet+klimt``; ``dream``, or ``dream-clouds`` for a dream guided by ``clouds.jpg``."""
    return spec_of(mode).tag(styles)


def default_image_output(content: Path, styles: Sequence[Path], mode: str = "style") -> Path:
    """``photo.monet.jpg`` beside ``photo.jpg``: the photo's format where nstpipe writes it, else PNG."""
    suffix = content.suffix if content.suffix.lower() in IMAGE_FORMATS else ".png"
    return content.with_name(f"{content.stem}.{style_tag(styles, mode)}{suffix}")


def default_folder_output(folder: Path, styles: Sequence[Path], mode: str = "style") -> Path:
    """``photos.monet/`` beside the folder ``photos/``."""
    named = folder if folder.name not in ("", ".", "..") else Path(os.path.abspath(folder))
    return named.with_name(f"{named.name}.{style_tag(styles, mode)}")


def default_video_output(source: Path, styles: Sequence[Path], mode: str = "style") -> Path:
    return source.with_name(f"{source.stem}.{style_tag(styles, mode)}.mp4")


def default_work_dir(output: Path) -> Path:
    return output.with_name(output.name + ".nstpipe-work")
