"""What to do for a folder of images: pure Python, no torch, no ray, no image decoding.

Inputs are discovered lazily, one directory at a time, so an archive of millions of files
is never listed in memory at once. Each input maps to an output under the output root
with the same relative folder and the suffix ``.png``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Callable, Iterable, Iterator

from nstpipe.errors import InputError, os_reason
from nstpipe.events import ImageTask
from nstpipe.files import is_special_file
from nstpipe.media.names import fit_name, name_max

# Every name here is a format that Pillow reads; a file of another is passed over unread.
# AVIF needs a Pillow built with libavif, as the pinned wheels are; under one without, each
# .avif is reported as unreadable, not passed over in silence.
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif", ".ppm", ".pgm", ".pbm"}
)
OUTPUT_SUFFIX = ".png"
# A folder job's settings, in its output folder: the mark of an output folder. Here and not
# in records, which loads torch; the plan must not.
SETTINGS_FILE = "nstpipe-settings.json"


def source_identity(path: Path) -> dict[str, int]:
    """What tells a changed input from the one that was stylized, without reading it."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_image_name(name: str) -> bool:
    return PurePath(name).suffix.lower() in IMAGE_SUFFIXES


def stem_key(name: str) -> str:
    """What two names share when their outputs, named after their stems, would clash: the
    stem without regard to case, as case-insensitive file systems (macOS, Windows) compare it."""
    return PurePath(name).stem.casefold()


def output_names(
    names: Iterable[str], suffix: str = OUTPUT_SUFFIX, reserved: Iterable[str] = (), most: int = 255
) -> dict[str, str]:
    """Output file name for each input name of one folder.

    ``photo.jpg`` -> ``photo.png``; when two inputs share a stem (``a.jpg`` and ``a.png``)
    both keep their whole name (``a.jpg.png``, ``a.png.png``) so neither overwrites the other.
    Names are compared without regard to case (:func:`stem_key`). ``reserved`` names are never given out: the sibling folders, which the
    output mirrors, so that ``x.jpg`` beside a folder ``x.png/`` does not become ``x.png``.
    A name longer than ``most`` bytes (a stem of 250 kept whole) is cut, with a hash of
    what it would have been (:func:`~nstpipe.media.names.fit_name`): distinct, and the
    same on every run, so a resume finds its outputs.
    """
    names = sorted(names)
    stems = Counter(stem_key(n) for n in names)
    chosen: dict[str, str] = {}
    taken = {name.casefold() for name in reserved}
    for name in names:
        base = PurePath(name).stem if stems[stem_key(name)] == 1 else name
        candidate, n = fit_name(base, suffix, most), 1
        while candidate.casefold() in taken:  # only for contrived names such as a.png.jpg next to a.png + a.jpg
            candidate = fit_name(f"{base}~{n}", suffix, most)
            n += 1
        taken.add(candidate.casefold())
        chosen[name] = candidate
    return chosen


def walk_images(
    root: Path, skip: Path | None = None, onerror: Callable[[OSError], None] | None = None
) -> Iterator[tuple[Path, list[str], list[str]]]:
    """(folder, image file names, subfolder names) for every folder under ``root`` that
    holds images, sorted, depth first.

    Symbolic links to folders are not followed (no loops, no escaping the root); a link
    to a file is kept only when its target lies inside ``root``. Only regular files are
    kept: reading a FIFO, a socket or a device named like a picture would wait, maybe
    forever, for a writer. The folder ``skip`` (the output root, when it lies inside
    ``root``) is not entered, nor any subfolder that holds a folder job's
    :data:`SETTINGS_FILE` (the output of an earlier run with another ``-o``), so outputs
    never become inputs. A folder that cannot be listed goes to
    ``onerror`` with its OSError, and the walk goes on.
    """
    root_real = Path(os.path.realpath(root))
    skip_real = os.path.realpath(skip) if skip is not None else None
    for folder, dirs, files in os.walk(root, onerror=onerror, followlinks=False):
        subfolders = sorted(dirs)  # links to folders too: not walked, but their names are taken
        dirs[:] = [d for d in subfolders if not _is_output(os.path.join(folder, d), skip_real)]
        here = Path(folder)
        names = [f for f in sorted(files) if is_image_name(f) and _inside(here / f, root_real) and not is_special_file(here / f)]
        if names:
            yield here, names, subfolders


def _is_output(folder: str, skip_real: str | None) -> bool:
    return os.path.realpath(folder) == skip_real or os.path.isfile(os.path.join(folder, SETTINGS_FILE))


def _inside(path: Path, root_real: Path) -> bool:
    if not path.is_symlink():
        return True
    target = Path(os.path.realpath(path))
    return target == root_real or root_real in target.parents


def plan_images(root: Path, out_root: Path, unreadable: Callable[[InputError], None] | None = None) -> Iterator[ImageTask]:
    """The tasks of every image under ``root``; each folder that cannot be listed goes to
    ``unreadable`` as an error naming it and the reason (none: passed over)."""
    if not root.is_dir():
        raise InputError(root, "not a folder")
    if os.path.realpath(out_root) == os.path.realpath(root):
        raise InputError(out_root, "the output folder is the input folder; outputs would overwrite inputs")

    def onerror(exc: OSError) -> None:
        if unreadable is not None:
            reason = os_reason(exc) or exc.strerror or str(exc)
            unreadable(InputError(exc.filename, f"cannot read the folder ({reason}); its pictures are skipped"))

    for folder, names, subfolders in walk_images(root, skip=out_root, onerror=onerror):
        rel_folder = folder.relative_to(root)
        most = name_max(out_root / rel_folder)
        for name, out_name in output_names(names, reserved=subfolders, most=most).items():
            yield ImageTask(source=folder / name, relative=rel_folder / name, output=out_root / rel_folder / out_name)


@dataclass(frozen=True)
class Chunk:
    """Frames ``start`` .. ``stop - 1`` of a video, painted as one chain by one worker.

    Every chunk but the first begins without a predecessor; once the previous chunk is
    done, its first ``blend`` frames are redone as a cross-fade along the optical flow from
    that chunk's last frame into this chunk's own chain, so that the cut does not show.
    """

    start: int
    stop: int
    blend: int = 0

    def __len__(self) -> int:
        return self.stop - self.start


def plan_chunks(frames: int, chunks: int, blend: int = 10, min_length: int = 8) -> list[Chunk]:
    """Split ``frames`` into at most ``chunks`` contiguous chains of near-equal length.

    A chunk is never shorter than ``min_length`` (nor than 2 * ``blend``, so that a blend
    never reaches the chunk's last frame, which the next seam starts from): a short video
    runs as fewer chains rather than as many seams.
    """
    if frames <= 0:
        return []
    most = max(1, frames // max(min_length, 2 * blend + 1))
    count = max(1, min(chunks, most))
    bounds = [round(i * frames / count) for i in range(count + 1)]
    return [Chunk(a, b, blend if i else 0) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]


VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"})


def plan_videos(inputs: Iterable[Path], output_dir: Path, most: int = 255) -> list[tuple[Path, Path]]:
    """(source, output) for each video given, a folder standing for the videos in it.

    Outputs are ``output_dir/<stem>.mp4`` (the whole name when stems clash, as for images),
    at most ``most`` bytes (room left for the settings record beside each).
    """
    sources: list[Path] = []
    for path in inputs:
        if path.is_dir():
            sources += sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        else:
            sources.append(path)
    names = Counter(p.name for p in sources)
    clash = next((name for name, count in names.items() if count > 1), None)
    if clash is not None:
        raise InputError(clash, "two inputs have this name; their outputs would collide")
    chosen = output_names([p.name for p in sources], ".mp4", most=most)
    return [(p, output_dir / chosen[p.name]) for p in sources]
