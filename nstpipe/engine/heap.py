"""The C heap's freed pages, handed back to the system."""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Callable


def trim_heap() -> None:
    """Hand the C heap's free pages back to the system where the C library can (glibc).

    A tiled level allocates and frees one tile's activations many times over, in pieces of
    all sizes; glibc keeps the freed holes mapped, and a 4000 px picture's process grew
    by a gigabyte past its budget that way. The trim costs milliseconds beside a tile's
    pass of seconds.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        function: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: macOS, Windows, musl
        return None
    return function
