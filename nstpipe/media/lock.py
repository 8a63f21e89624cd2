"""One nstpipe run per output at a time: an advisory lock held while a run writes.

Two runs writing the same output would paint it twice, and each one's clean-up of a killed
run's temp files (:func:`~nstpipe.media.writer.clean_output_leftovers`) would delete the
other's files in the making; a video's second run would publish and remove the work folder
under the first. So each run takes the output's lock before any such clean-up, and a run
that finds it taken is refused.

The lock is an OS lock on a small file (``flock`` on POSIX, ``msvcrt.locking`` on Windows),
which the kernel releases when its process ends however it ends: a killed run leaves no lock
behind, at most the empty file, which the next run takes and uses. Where neither exists, or
the file cannot be made (a read-only folder, where no run can write anyway), the run goes
on unlocked, as without this module.

Where the lock file lies: a single output's is hidden beside it (``.OUT.nstpipe-lock``), a
folder's (a folder job's output, a video's work folder) inside it. Each is removed when its
run ends, while still held, so that finished outputs have nothing beside them; a run that
opened the file just before it was removed finds, once it holds it, that it is no longer
the file at that name, and takes the lock anew (see :func:`_take`). Windows removes no open
file: there the empty file stays, and the next run takes it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

from nstpipe.errors import InputError
from nstpipe.media.names import fit_name, name_max

LOCK_SUFFIX = ".nstpipe-lock"
FOLDER_LOCK = LOCK_SUFFIX  # the lock file inside a locked folder
BUSY = "another nstpipe run is writing it; wait for that run to end, or give another -o"


def lock_path(output: Path) -> Path:
    """The lock file of the single output ``output``: hidden beside it, named after it; a
    name too long for the file system cut and told apart by a hash (the rule of every
    name nstpipe makes, :func:`~nstpipe.media.names.fit_name`), so that the lock's name fits
    wherever the output's does."""
    return output.with_name(fit_name("." + output.name, LOCK_SUFFIX, name_max(output.parent)))


@contextlib.contextmanager
def output_lock(output: Path, lock: Path | None = None, busy: str = BUSY, scratch: bool = False) -> Iterator[None]:
    """Hold ``output``'s lock (``lock``: its file, by default :func:`lock_path`) while the
    block runs; refused with an :class:`InputError` naming ``output`` and ``busy`` when
    another process holds it. The lock file's folder is made where missing, and removed
    afterwards when left empty if it was made here or is ``scratch`` (a work folder, which
    the removal of its last frames would have removed but for the lock file)."""
    lock = lock if lock is not None else lock_path(output)
    created = scratch or not lock.parent.exists()
    fd = None
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = _take(lock)
    except BlockingIOError:
        raise InputError(output, busy, lasting=False) from None
    except OSError:
        pass  # a folder no file can be made in: the checks that follow name what is wrong
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock)  # while still held: see the module's note
            os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                lock.parent.rmdir()


def _take(lock: Path) -> int | None:
    """An open descriptor of ``lock`` holding its lock, None where this platform has no
    lock; BlockingIOError while another process holds it. A file removed by its holder
    between being opened and locked here is not the lock any more: taken again."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            if not _lock(fd):
                os.close(fd)
                return None
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                return fd
        except FileNotFoundError:
            pass  # removed by its holder: take it anew
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _lock(fd: int) -> bool:
    """Lock ``fd`` without waiting; False where this platform has no lock."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            raise BlockingIOError("locked") from None
        return True
    try:
        import fcntl
    except ImportError:
        return False
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
