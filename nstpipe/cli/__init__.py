"""The ``nstpipe`` command line: a thin typer app over the ``nstpipe`` package.

``options`` declares every flag once, ``commands`` builds a command per mode from its
spec, ``progress`` shows the work. Nothing here imports torch until a command runs.
"""

from __future__ import annotations

import sys

from nstpipe.cli.commands import build_app
from nstpipe.cli.progress import _LogProgress, _ProgressBar

app = build_app()


def main() -> None:
    # File names that are not valid UTF-8 arrive as surrogate escapes (PEP 383): print them
    # as their own bytes, as Python does in the C locale, rather than fail on them once the
    # work is done. (stderr already escapes them with backslashes.)
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")
    app()


__all__ = ["_LogProgress", "_ProgressBar", "app", "main"]
