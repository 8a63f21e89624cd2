"""What every use of FFmpeg here shares: the containers written, how a file is named to
FFmpeg, and its failures as one line naming the file."""

from __future__ import annotations

import os
from pathlib import Path

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
