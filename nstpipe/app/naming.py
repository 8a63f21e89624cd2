"""Output names beside the input: ``photo.monet.jpg``, ``photos.monet/``, ``clip.dream.mp4``.

What a name says of how it was painted is the mode's (:attr:`ModeSpec.tag`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from nstpipe.errors import InputError
from nstpipe.jobs.plan import VIDEO_SUFFIXES, output_names, stem_key
from nstpipe.media.names import name_max
from nstpipe.media.writer import IMAGE_FORMATS, RECORD_SUFFIX
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
    if not named.name:
        raise InputError(folder, "give -o: a folder with no name (the root) has none to name the output after")
    return named.with_name(f"{named.name}.{style_tag(styles, mode)}")


def default_video_output(source: Path, styles: Sequence[Path], mode: str = "style", limit: int | None = None) -> Path:
    """``clip.monet.mp4`` beside ``clip.mov``; ``clip.mov.monet.mp4`` when another video
    beside it shares its stem (``clip.mp4``), so that neither overwrites the other: the rule
    of a folder's pictures (:func:`~nstpipe.jobs.plan.output_names`), a name too long for
    the file system cut with a hash, leaving room for the settings record beside it.

    The clash is looked for among the files in the folder, not among the inputs of one
    run, so a video keeps its output's name whichever of its neighbours a run is given.
    A preview of the first ``limit`` frames is ``clip.monet.first30.mp4``, apart from the
    whole video's name.
    """
    most = name_max(source.parent) - len(RECORD_SUFFIX)
    preview = "" if limit is None else f".first{limit}"
    return source.with_name(output_names(_same_stem(source), f".{style_tag(styles, mode)}{preview}.mp4", most=most)[source.name])


def _same_stem(source: Path) -> list[str]:
    """``source``'s name and those of the videos beside it whose outputs it could clash with."""
    try:
        beside = [p.name for p in source.parent.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()]
    except OSError:
        beside = []  # an unreadable folder: the video itself fails, naming it, when it is read
    return sorted({source.name, *(name for name in beside if stem_key(name) == stem_key(source.name))})


def default_work_dir(output: Path) -> Path:
    return output.with_name(output.name + ".nstpipe-work")
