"""What the machine has free: the RAM a run may plan to use."""

from __future__ import annotations

import os


def available_ram() -> int:
    """RAM the system can give without swapping: MemAvailable where /proc says it, else all of it."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
