"""Checks made before any work: the inputs, the styles, the outputs and ``-y``.

Bad styles, an unwritable output, an output that would replace a file nstpipe did not
make, and unknown settings fail here, each as one line naming the file and the reason.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping, Sequence

from nstpipe.config import Settings
from nstpipe.errors import ConfigError, InputError
from nstpipe.files import refuse_special_file
from nstpipe.jobs.plan import SETTINGS_FILE, walk_images
from nstpipe.jobs.records import made_by_nstpipe
from nstpipe.media.imaging import picture_header, read_rgb
from nstpipe.media.names import name_bytes, name_max
from nstpipe.media.video import VIDEO_CONTAINERS, VideoInfo, probe
from nstpipe.media.writer import IMAGE_FORMATS, RECORD_SUFFIX, record_path
from nstpipe.modes import spec_of
from nstpipe.modes.base import FOLDER, PICTURE, VIDEO

VIDEO_SUFFIXES = tuple(VIDEO_CONTAINERS)
# Still pictures by their suffix, beyond those nstpipe writes: a file so named is taken for a
# picture, and one that cannot be read is refused as a picture, not as "not a video". WebP
# is one, animated or not: FFmpeg cannot decode an animated WebP's frames, so every command
# reads its first frame, as it reads a style or a folder's pictures.
PICTURE_SUFFIXES = frozenset({*IMAGE_FORMATS, ".jpeg", ".jpe", ".jfif", ".tiff", ".heic", ".heif", ".jxl", ".jp2"})
# Pictures that may be animated, which the video reader takes; one that PIL cannot read is
# refused as the picture its name says.
ANIMATED_SUFFIXES = frozenset({".gif"})
ANIMATED_WEBP = "animated WebP: FFmpeg here cannot decode its frames; convert it to a GIF or MP4"


def check_inputs(styles: Sequence[Path], settings: Settings) -> None:
    """Fail before any work on a missing or unreadable style or init image, or on blend
    weights that do not match the style images."""
    role = spec_of(settings.mode).styles
    if role == "guide" and len(styles) > 1:
        raise InputError("--guide", "a dream takes one guide image at most")
    if role == "paintings" and not styles:
        raise InputError("--style", "at least one style image is needed")
    blend = settings.engine.style_blend
    if blend and len(blend) != len(styles):
        raise ConfigError(f"setting 'style_blend': {len(blend)} weights for {len(styles)} style image(s)", "style_blend")
    for path in styles:
        read_rgb(path, draft_side=64, max_pixels=settings.max_pixels)
    if settings.engine.init_is_file:
        read_rgb(Path(settings.engine.init), draft_side=64, max_pixels=settings.max_pixels)


def check_writable(folder: Path) -> None:
    """The folder outputs go into can be written, made where missing; a file of that name
    is named as such (``images DIR -o notes``, ``--work-dir`` naming a file), not as a
    folder that is not writable."""
    if os.path.lexists(folder) and not folder.is_dir():
        raise InputError(folder, "is a file, not a folder; name a folder for the outputs")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".nstpipe-tmp-"):
            pass
    except OSError as exc:
        raise InputError(folder, f"output folder is not writable ({exc.strerror or exc})") from None


def protected(styles: Sequence[Path], settings: Settings, *inputs: Path) -> dict[str, list[Path]]:
    """The files a command reads, by what they are to it: an output must not replace them."""
    files = {"input": list(inputs), "guide image" if spec_of(settings.mode).styles == "guide" else "style image": list(styles)}
    if settings.engine.init_is_file:
        files["init image"] = [Path(settings.engine.init)]
    return files


def check_output(output: Path, inputs: Mapping[str, Sequence[Path]], overwrite: bool) -> None:
    """Refuse, before any work, an output that would replace one of ``inputs`` or a file
    nstpipe did not make; ``overwrite`` (``-y``, as in ffmpeg) lifts both."""
    if output.is_dir():
        raise InputError(output, "is a folder; name the output file")
    if overwrite or not os.path.lexists(output):
        return
    advice = "give another -o, or -y to replace it"
    for what, paths in inputs.items():
        if any(_same_file(output, path) for path in paths):
            raise InputError(output, f"is the {what}; the output would replace it ({advice})")
    if not made_by_nstpipe(output):
        raise InputError(output, f"exists and was not made by nstpipe ({advice})")


def check_name_fits(output: Path) -> None:
    """Refuse, before any work, an output whose name, or that of the record beside it
    (:func:`~nstpipe.media.writer.record_path`), is longer than its folder's file system
    holds: the record is written last, so the work would be done, then lost, on every
    rerun. (A video's default work folder, ``OUT.nstpipe-work``, is shorter than the record.)"""
    most = name_max(output.parent)
    own, record = name_bytes(output), name_bytes(record_path(output))
    if record > most:
        what = f"it takes {own} bytes" if own > most else f"the settings record beside it ({RECORD_SUFFIX} added) would take {record} bytes"
        raise InputError(output, f"the name is too long: {what}, and this file system holds {most} at most; give -o a shorter name")


def check_folder_output(output: Path) -> None:
    """A folder job's output is a folder: a name with a picture's or a video's suffix is
    surely meant as a file, and would make a folder so named."""
    if output.suffix.lower() in PICTURE_SUFFIXES | set(VIDEO_SUFFIXES) and not output.is_dir():
        raise InputError(output, "the output of a folder is a folder: name it without a file suffix")


def check_output_apart(folder: Path, output: Path) -> None:
    """Refuse, before any work, an output folder inside the input folder that holds
    pictures and is no earlier run's output (:data:`~nstpipe.jobs.plan.SETTINGS_FILE`):
    the walk leaves the output folder out, and the settings file written into it marks
    it as an output for good, so its pictures would be left out of this run and of every
    later one, whatever its -o."""
    root, inside = Path(os.path.realpath(folder)), Path(os.path.realpath(output))
    if root not in inside.parents or not inside.is_dir():
        return
    # A folder in an earlier output is walked past already, as part of that output.
    if any((above / SETTINGS_FILE).is_file() for above in (inside, *inside.parents[: inside.parents.index(root)])):
        return
    held = next(walk_images(inside), None)
    if held is not None:
        here, names, _ = held
        shown = output / (here / names[0]).relative_to(inside)
        raise InputError(
            output,
            f"the output folder is inside the input folder and holds pictures of its own ({shown}), which would never be "
            "painted; give -o a new folder, or one outside the input",
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def input_kind(source: Path, output: Path | None = None) -> str:
    """``folder``, ``picture`` or ``video``: what a command of several inputs was given (a
    missing file is named as such). A file named as a picture is one, readable or not, so
    that a broken one is refused for what it is; an animated WebP is read as a picture
    unless ``output`` names a video, which it cannot become."""
    if source.is_dir():
        return FOLDER
    if not source.exists():
        raise InputError(source, "no such file or folder")
    refuse_special_file(source)
    suffix = source.suffix.lower()
    to_video = output is not None and output.suffix.lower() in VIDEO_SUFFIXES
    # The header is read once, and only where something turns on it.
    header = picture_header(source) if to_video or suffix not in PICTURE_SUFFIXES else None
    if header is not None and to_video and header.animated_webp:
        raise InputError(source, ANIMATED_WEBP)
    if suffix in PICTURE_SUFFIXES:
        return PICTURE
    frames = header.frames if header is not None else None
    if suffix in ANIMATED_SUFFIXES:
        return VIDEO if frames is not None and frames > 1 else PICTURE
    return PICTURE if frames == 1 else VIDEO


def check_video_suffix(output: Path) -> None:
    if output.is_dir():
        raise InputError(output, f"is a folder; name the video to write in it, e.g. {output / 'clip.mp4'}")
    if output.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(output, f"the output is H.264 video: name it {', '.join(VIDEO_SUFFIXES)}")


def check_video_source(source: Path) -> VideoInfo:
    """The video's properties; a still image is named as such (FFmpeg would take it for a
    video of one frame, which then fails deep inside the job)."""
    header = picture_header(source)
    if header is not None and header.still:
        raise InputError(source, "is a still image, not a video; use `nstpipe image`")
    if header is not None and header.animated_webp:
        raise InputError(source, ANIMATED_WEBP)
    return probe(source)  # a missing, empty or corrupt file fails here, before any work
