"""A mode as one spec: what the command line, the drivers and the workers ask of it.

Pure Python at import (``nstpipe --help`` reads the specs): a painter's model and torch
are loaded inside its factory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, cast

from nstpipe.config import Settings

if TYPE_CHECKING:
    import numpy as np

    from nstpipe.engine.painters import CanvasPainter, Painter, PhotoPainter
    from nstpipe.engine.stylize import Result

PICTURE, FOLDER, VIDEO, NONE = "picture", "folder", "video", "none"
"""The kinds of input a command takes: a photo, a folder of photos, a video, or nothing."""


@dataclass(frozen=True)
class Flag:
    """One option or argument of the command line, declared once.

    ``setting``: the setting it sets, by its value as given, or through the mode's
    :attr:`ModeSpec.derive` where ``direct`` is False; None: the command reads it itself.
    ``shown``: the "[default: ...]" of the help; None: the mode preset's value of ``setting``.
    ``inputs``: the kinds of input it means something for; given with another, it is refused.
    """

    name: str  # the command's parameter, and the name a spec lists it by
    decls: tuple[str, ...]  # empty: a positional argument
    kind: Any  # the annotation typer reads
    help: str
    setting: str | None = None
    shown: str | bool | None = None
    default: Any = None
    limits: Mapping[str, Any] = field(default_factory=dict)
    inputs: frozenset[str] | None = None
    direct: bool = True

    def given(self, value: Any) -> bool:
        """Whether a value came from the command line (unset options are None, False or empty)."""
        return value is not None and value is not False and value != [] and value != self.default


@dataclass(frozen=True)
class Retell:
    """A shared flag as one mode uses it: another help, default shown, setting or type."""

    name: str
    changes: Mapping[str, Any]

    def apply(self, flag: Flag) -> Flag:
        return replace(flag, **self.changes)


def retell(name: str, **changes: Any) -> Retell:
    return Retell(name, changes)


ITERATIONS_OF_A_PICTURE = retell(
    "iterations", help="Optimizer iterations at full size. The coarser pyramid levels run coarse_iterations each "
    "and the coarsest coarsest_iterations where set (config file settings); early stopping may end any of them sooner.",
)
"""-n for a mode of pictures alone: no video frames to speak of."""

FlagUse = str | Flag | Retell
"""How a spec lists an option: a shared flag by name, its own flag, or a shared one retold."""


@dataclass(frozen=True)
class Command:
    """One command of a mode: the input it takes and what it says of its output."""

    name: str
    summary: str  # the command's help: first line, blank line, more
    inputs: frozenset[str]
    source: Flag | None  # the positional argument naming the input; None: no input
    output: Retell  # the help and default of -o
    flags: tuple[FlagUse, ...] = ()  # besides the mode's, or retold for this command


@dataclass(frozen=True)
class Canvas:
    """How a mode without an input names, sizes and finishes its pictures."""

    default_output: Callable[[Sequence[Path], Settings], Path]
    # The files written and what each record adds to the job's identity (a variation's k).
    outputs: Callable[[Path, Settings], list[tuple[Path, dict[str, Any]]]]
    size: Callable[[Settings], tuple[int, int, int]]  # height, width, pictures
    # The pictures to write (one per output) and each one's result for its record.
    finish: Callable[[Result, Settings, float], list[tuple[np.ndarray, dict[str, Any]]]]


def no_derived(options: Mapping[str, Any]) -> dict[str, Any]:
    return {}


def tag_of_styles(styles: Sequence[Path]) -> str:
    """``monet``, ``monet+klimt``: what an output name says of the paintings."""
    return "+".join(path.stem for path in styles)


@dataclass(frozen=True)
class ModeSpec:
    """A mode: its command(s), options, preset, settings section, painter and output naming.

    ``styles``: what the pictures given besides the input are to it: ``paintings`` (one
    or more, needed), ``guide`` (one at most), or ``none``; ``style_flag`` names them.
    """

    name: str  # also ``Settings.mode``
    preset: str  # configs/<preset>.toml
    commands: tuple[Command, ...]
    flags: tuple[FlagUse, ...]
    painter: Callable[[Settings, Sequence[Path]], Painter]
    styles: str = "paintings"
    style_flag: str = "style"  # the flag or argument that names them
    section: type | None = None  # its own section of Settings, where it has one
    tag: Callable[[Sequence[Path]], str] = tag_of_styles  # in output names beside the input
    derive: Callable[[Mapping[str, Any]], dict[str, Any]] = no_derived  # settings no single flag sets
    canvas: Canvas | None = None  # a mode without an input

    def photo_painter(self, settings: Settings, styles: Sequence[Path]) -> PhotoPainter:
        """The painter of a mode that reads photos (what the worker and the video job call)."""
        return cast("PhotoPainter", self.painter(settings, styles))

    def canvas_painter(self, settings: Settings, styles: Sequence[Path]) -> CanvasPainter:
        """The painter of a mode that paints from a size alone."""
        return cast("CanvasPainter", self.painter(settings, styles))
