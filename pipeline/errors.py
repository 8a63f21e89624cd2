"""The project's own errors. Each one carries a one-line message meant for the user."""

from __future__ import annotations


class NstpipeError(Exception):
    """Base class: the CLI prints ``str(exc)`` on one line, no traceback (unless --debug)."""


class ConfigError(NstpipeError):
    """A bad preset, config file or flag value."""


class InputError(NstpipeError):
    """An input file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class WeightsError(NstpipeError):
    """Model weights that are missing, tampered with or cannot be fetched."""
