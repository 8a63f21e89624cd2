"""What every use of FFmpeg here shares: the containers written, how a file is named to
FFmpeg, its failures as one line naming the file, and where its timestamps start again."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import av

from nstpipe.errors import InputError, os_reason

# The containers written, by the output's suffix: .m4v is Apple's name for MP4.
VIDEO_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov"}


def local(path: Path | str) -> str:
    """The path as FFmpeg must be given a file: absolute, so that a name with a colon
    (``2024-06-01T10:30:00.mp4``, a dashcam's) is not read as a protocol's URL."""
    return os.path.abspath(path)


def open_error(path: Path, exc: BaseException) -> InputError:
    reason = os_reason(exc)
    if reason is not None:
        return InputError(path, reason)
    if _is_empty(path):
        return InputError(path, "empty file")
    # FFmpeg's own words ("Invalid data found when processing input"), without the errno
    # and the path that str() adds: the path leads the message already.
    message = getattr(exc, "strerror", None) or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    return InputError(path, f"not a video file FFmpeg can read, or corrupt ({message})")


def _is_empty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size == 0
    except OSError:
        return False


# FFmpeg's AVFMT_TS_DISCONT: a format whose timestamps may restart midway (MPEG-TS, files
# joined end to end); in others a step back is a glitch to nudge past, not a new start.
TS_DISCONT = 0x200


@dataclass(frozen=True)
class Shifts:
    """Seconds to add to each stream's times, from its n-th packet on: where the file's
    timestamps jumped back, what follows is laid after what came before, by one shift for
    every stream, so that sound and picture keep the distance they had in each part."""

    starts: Mapping[int, Sequence[tuple[int, float]]]  # stream index -> (packet number, seconds)

    def at(self, stream: int, number: int) -> float:
        shift = 0.0
        for first, seconds in self.starts.get(stream, ()):
            if number < first:
                break
            shift = seconds
        return shift


def shifts(path: Path) -> Shifts:
    """Where ``path``'s timestamps jump back, read from its packets (no decoding), for a
    format that may restart them (TS_DISCONT); none for any other, and none when the
    file cannot be read through (the reader then names the problem).

    Read once per process for each version of a file: the frames of a video split into
    chains are read once a chain, and its audio once more. The key is the file's name,
    size and modification time, so a file changed in between is read again.
    """
    try:
        status = os.stat(path)
        return _shifts(local(path), status.st_size, status.st_mtime_ns)
    except (av.error.FFmpegError, OSError, ValueError):
        # Not cached: the reader names what is wrong, and a passing failure (too many open
        # files) must not stay the answer for the file.
        return Shifts({})


@functools.lru_cache(maxsize=32)
def _shifts(name: str, size: int, mtime_ns: int) -> Shifts:
    """:func:`shifts` of the file ``name``; ``size`` and ``mtime_ns`` are only the cache's key."""
    with av.open(name) as container:
        if not container.format.flags & TS_DISCONT:
            return Shifts({})
        return Shifts({stream: tuple(starts) for stream, starts in _starts(container).items()})


def _starts(container: av.container.InputContainer) -> dict[int, list[tuple[int, float]]]:
    """One pass over ``container``'s packets: for each stream, the packet numbers from which
    its times are shifted, and by how many seconds."""
    starts: dict[int, list[tuple[int, float]]] = {}
    offset, end = 0.0, 0.0
    counts: dict[int, int] = {}
    last: dict[int, tuple[float, float]] = {}  # stream -> its last packet's time and length
    for packet in container.demux():
        if not packet.size or packet.dts is None or packet.time_base is None:
            continue
        index = packet.stream.index
        time = float(packet.dts * packet.time_base)
        length = float((packet.duration or 0) * packet.time_base)
        before = last.get(index)
        # Back by more than a packet's length: the stream starts again.
        if before is not None and time + offset < before[0] - max(before[1], 1e-3):
            offset = end - time
            for stream in set(counts) | {index}:
                starts.setdefault(stream, []).append((counts.get(stream, 0), offset))
        last[index] = (time + offset, length)
        end = max(end, time + offset + length)
        counts[index] = counts.get(index, 0) + 1
    return starts
