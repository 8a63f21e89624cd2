"""File names that fit their file system: how long a name may be, and a long one shortened
the same way on every run, so that a rerun finds what the run before wrote.

Plain ``os``: the plan of a folder job uses it for every folder of an archive, and loads no
image library.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def name_max(folder: Path) -> int:
    """The longest file name, in bytes, that ``folder``'s file system takes (usually 255); a
    folder not made yet is asked of the nearest one that is, and 255 is assumed where the
    system cannot be asked."""
    for place in (folder, *folder.parents):
        try:
            most = os.pathconf(place, "PC_NAME_MAX")
        except FileNotFoundError:
            continue
        except (OSError, ValueError, AttributeError):  # no such query here (Windows has no pathconf)
            break
        return most if most > 0 else 255  # -1: the file system states no limit
    return 255


def name_bytes(path: Path) -> int:
    """The length of ``path``'s name as the file system counts it."""
    return len(os.fsencode(path.name))


def fit_name(name: str, suffix: str, most: int) -> str:
    """``name + suffix`` where it takes at most ``most`` bytes; else ``name`` cut, with a hash
    of the whole of ``name`` that tells apart two names cut alike, then ``suffix``. The same
    for every run, so a rerun finds what is so named."""
    whole = name + suffix
    if len(os.fsencode(whole)) <= most:
        return whole
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:16] + suffix
    while name and len(os.fsencode(name + tag)) > most:
        name = name[:-1]
    return name + tag
