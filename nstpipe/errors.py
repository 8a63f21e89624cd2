"""The project's own errors. Each one carries a one-line message meant for the user."""

from __future__ import annotations

import errno


class NstpipeError(Exception):
    """Base class: the CLI prints ``str(exc)`` on one line, no traceback (unless --debug)."""


class ConfigError(NstpipeError):
    """A bad preset, config file or flag value; ``key`` names the setting when there is one,
    so that the CLI can name the flag that sets it."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InputError(NstpipeError):
    """An input file that cannot be used; the message names the file and the reason.

    ``lasting``: the file itself is at fault (its content, its kind), so that reading it
    again would fail the same way; False where the machine is (permission denied, too many
    open files), which a later run may well not meet.
    """

    def __init__(self, path: object, reason: str, lasting: bool = True) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.lasting = lasting

    def __reduce__(self) -> tuple[type, tuple[object, str, bool]]:
        # Rebuilt from its arguments, not from its message: a worker's error crosses to the
        # driver pickled (Ray), and there it must still be this error, one line.
        return type(self), (self.path, self.reason, self.lasting)


_OS_REASONS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "file not found"),
    (IsADirectoryError, "is a directory"),
    (PermissionError, "permission denied"),
)
OS_INPUT_ERRORS = tuple(kind for kind, _ in _OS_REASONS)


def os_reason(exc: BaseException) -> str | None:
    """The one-line reason for an OS error on an input file, or None for other errors."""
    return next((reason for kind, reason in _OS_REASONS if isinstance(exc, kind)), None)


# OS errors that say what the machine refused, not what the file holds: its permissions,
# the process's limits, a busy or unanswering file server, a disk that failed to read (EIO:
# a loose cable, a USB drive gone to sleep, a sector that reads on a second try), a device
# or a connection gone. Reading the same file later may well succeed; bad data in the file
# is another error (PIL's, without an errno).
_PASSING_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EBUSY, errno.EINTR,
     errno.ETIMEDOUT, errno.ESTALE, errno.EIO, errno.ENXIO, errno.ENODEV, errno.ENOTCONN, errno.ECONNRESET,
     errno.ECONNABORTED, errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH}
)


def is_passing(exc: BaseException) -> bool:
    """Whether ``exc`` is an OS error whose cause lies outside the file (see :data:`_PASSING_ERRNOS`)."""
    return isinstance(exc, PermissionError) or (isinstance(exc, OSError) and exc.errno in _PASSING_ERRNOS)


class OutputError(NstpipeError):
    """Writing failed for a reason that is not the input's: a full disk, a read-only or
    vanished output folder. The run stops (every later write would fail the same way);
    what was already written is complete and kept, so a rerun continues from there."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: cannot write ({reason}); finished outputs are kept, rerun to continue")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[object, str]]:
        return type(self), (self.path, self.reason)


def output_error(path: object, exc: OSError) -> OutputError:
    return OutputError(path, exc.strerror or str(exc))


class TooThinError(NstpipeError):
    """A picture too small on a side for the network's layers; the engine knows no file, so
    the command that read the picture names it."""


class WeightsError(NstpipeError):
    """Model weights that are missing, tampered with or cannot be fetched."""


class ClusterError(NstpipeError):
    """A Ray cluster that cannot be joined or cannot run the workers asked for: the message
    names the address and the reason (no answer, a token refused, too few resources)."""
