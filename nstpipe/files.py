"""What any layer may ask of a path before opening it: pure Python, no layer imported.

The folder plan (which must not load PIL) and the media readers ask the same question, so
the rule lives here once.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from nstpipe.errors import InputError


def is_special_file(path: Path) -> bool:
    """Whether ``path`` is a FIFO, socket or device (a link's target counts): opening one to
    read waits for a writer, maybe forever. A regular file or a folder is not; nor is a path
    that cannot be looked at (a broken link, a missing file), whose open names the reason."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def refuse_special_file(path: Path) -> None:
    """Raise :class:`InputError` ("not a regular file") for a path :func:`is_special_file`
    refuses, before anything opens it."""
    if is_special_file(path):
        raise InputError(path, "not a regular file")
