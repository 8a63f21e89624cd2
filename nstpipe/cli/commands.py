"""The commands: one thin command per mode's command, built from its spec, plus metrics and presets.

Only the CLI prints. torch and the engine are imported inside the commands, so
``nstpipe --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import typer
from typer.core import TyperGroup
from typing_extensions import Annotated

from nstpipe.cli.options import (
    SHARED,
    Defaults,
    command_flags,
    flag_names,
    parameter,
    refuse_empty,
    refuse_unused,
    resolve,
    settings_of,
    with_flag,
)
from nstpipe.cli.progress import reporter
from nstpipe.errors import ConfigError, NstpipeError
from nstpipe.modes import MODES
from nstpipe.modes.base import FOLDER, NONE, PICTURE, VIDEO, Command, Flag, ModeSpec, retell

try:  # typer 0.2x carries its own copy of click
    from typer._click import ClickException
except ImportError:  # pragma: no cover - typer versions that use click itself
    from click import ClickException  # type: ignore[assignment]

EXIT_FAILED_INPUTS = 1
EXIT_USAGE = 2
SUMMARY = "Paint photos, photo archives and videos in the style of a painting (Gatys et al. neural style transfer)."


class _OneLineErrors(TyperGroup):
    """A mistake on the command line (a missing option, a value of the wrong type) is one
    line on stderr and exit status 2, like every other mistake; click's own report is the
    usage text and a framed box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `nstpipe`: the help, as asked for
                typer.echo(exc.format_message())
                sys.exit(0)
            typer.echo(_usage_line(exc), err=True)
            sys.exit(exc.exit_code)
        sys.exit(code if isinstance(code, int) else 0)


def _usage_line(exc: ClickException) -> str:
    text = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
    return f"nstpipe: error: {text}{hint}"


def _print_version(value: bool) -> None:
    if value:
        from nstpipe import __version__

        typer.echo(f"nstpipe {__version__}")
        raise typer.Exit()


def _top(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)] = False,
) -> None:
    """Paint photos, photo archives and videos in the style of a painting (Gatys et al. neural style transfer)."""


@contextlib.contextmanager
def user_errors(debug: bool, names: Mapping[str, str]) -> Iterator[None]:
    """Project errors become one line on stderr and exit status 2, naming the flag of the
    setting at fault; --debug keeps the traceback."""
    try:
        yield
    except NstpipeError as exc:
        if debug:
            raise
        typer.echo(f"nstpipe: error: {with_flag(str(exc), getattr(exc, 'key', None), names)}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        typer.echo("nstpipe: interrupted; finished outputs are kept, rerun to continue", err=True)
        raise typer.Exit(130) from None
    except OSError as exc:
        # A last resort: the pipeline names its files in its own errors, but a folder
        # deleted under a running job can still surface as a bare OS error.
        if debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"nstpipe: error: {where}{exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _declare(name: str, summary: str, flags: Sequence[Flag], defaults: Defaults, run: Callable[..., None]) -> Callable[..., None]:
    """``run(**options)`` with the signature typer builds the command from."""

    def command(**options: Any) -> None:
        run(**options)

    command.__signature__ = inspect.Signature([parameter(flag, defaults) for flag in flags])  # type: ignore[attr-defined]
    command.__doc__, command.__name__ = summary, name
    return command


def mode_command(spec: ModeSpec, command: Command) -> Callable[..., None]:
    """The command of a mode for one kind of input (or several: a dream's)."""
    flags = command_flags(spec, command)
    names = flag_names(flags)

    def run(**given: Any) -> None:
        options = {**UNSET, **given}  # a flag the mode does not list reads as unset
        with user_errors(options["debug"], names):
            source = options[command.source.name] if command.source is not None else None
            kind = _kind(command, source, options.get("output"))
            refuse_unused(flags, options, kind)
            refuse_empty(flags, options)
            settings = settings_of(spec, options)
            styles = _paths(options.get(spec.style_flag))
            DRIVERS[kind](source, styles, settings, options)

    return _declare(command.name, command.summary, flags, Defaults(spec.preset), run)


UNSET = {flag.name: None if flag.default is inspect.Parameter.empty else flag.default for flag in SHARED}


def _kind(command: Command, source: Any, output: Path | None) -> str:
    if len(command.inputs) == 1:
        return next(iter(command.inputs))
    from nstpipe.app import input_kind

    return input_kind(source, output)


def _size_from_device(options: Mapping[str, Any]) -> bool:
    """No size was asked for, by --size or the config file: the device decides (see nstpipe.app.sizes)."""
    from nstpipe.config import config_sets

    return options.get("size") is None and not config_sets(options["config"], "size")


def _paths(value: Any) -> list[Path]:
    return list(value) if isinstance(value, (list, tuple)) else [value] if value is not None else []


def _picture(source: Path, styles: list[Path], settings: Any, options: Mapping[str, Any]) -> None:
    from nstpipe.app import paint_picture

    with reporter(options["quiet"]) as report:
        target, written = paint_picture(
            source, styles, options["output"], settings, report, options["overwrite"], _size_from_device(options)
        )
    typer.echo(f"wrote {target}" if written else f"kept {target}: made earlier with these settings")


def _canvas(source: None, styles: list[Path], settings: Any, options: Mapping[str, Any]) -> None:
    from nstpipe.app import paint_canvas

    with reporter(options["quiet"]) as report:
        outputs, made = paint_canvas(styles, options["output"], settings, report, options["overwrite"])
    for path in outputs:
        typer.echo(f"wrote {path}" if made else f"kept {path}: made earlier with these settings")


def _folder(source: Path, styles: list[Path], settings: Any, options: Mapping[str, Any]) -> None:
    """The failures, one line each, and the count line of a folder; exit 1 if any failed."""
    from nstpipe.app import stylize_folder

    with reporter(options["quiet"]) as report, _executor(options) as executor:
        outcome = stylize_folder(
            source, styles, options["output"], settings, report, executor, options["retry_failed"], options["overwrite"],
            _size_from_device(options),
        )
    for line in outcome.failures():
        typer.echo(f"nstpipe: {line}", err=True)
    earlier = f" (+{len(outcome.failed_before)} in an earlier run; --retry-failed tries them again)" if outcome.failed_before else ""
    typer.echo(
        f"{outcome.done} stylized, {outcome.skipped} already done, {len(outcome.failed)} failed{earlier}; outputs in {outcome.output}"
    )
    if outcome.failed or outcome.failed_before:
        raise typer.Exit(EXIT_FAILED_INPUTS)


def _video(source: Path | list[Path], styles: list[Path], settings: Any, options: Mapping[str, Any]) -> None:
    from nstpipe.app import VideoOptions, stylize_videos

    run = VideoOptions(options["work_dir"], options["frames"], options["keep_frames"], options["overwrite"], _size_from_device(options))
    failed = 0
    with reporter(options["quiet"]) as report, _executor(options) as executor:
        for outcome in stylize_videos(_paths(source), styles, options["output"], settings, report, run, executor):
            failed += _print_video(outcome)
    if failed:
        raise typer.Exit(EXIT_FAILED_INPUTS)


def _print_video(outcome: Any) -> int:
    """The line of one video's outcome, and the source's fault beside a video written
    despite it (see VideoOutcome.error); 1 when it failed, or has such a fault."""
    summary = outcome.summary
    if summary is None:
        typer.echo(f"nstpipe: failed: {outcome.error}", err=True)
        return 1
    if outcome.kept:
        typer.echo(f"kept {outcome.output}: {summary.frames} frames, made earlier with these settings")
    else:
        resumed = summary.frames - summary.stylized
        typer.echo(f"wrote {outcome.output}: {summary.frames} frames ({resumed} from an earlier run), {summary.iterations} iterations")
    if outcome.error is not None:
        typer.echo(f"nstpipe: {outcome.error}", err=True)
        return 1
    return 0


DRIVERS: dict[str, Callable[[Any, list[Path], Any, Mapping[str, Any]], None]] = {
    PICTURE: _picture, FOLDER: _folder, VIDEO: _video, NONE: _canvas,
}


def _executor(options: Mapping[str, Any]) -> Any:
    """The executor of --workers and --address (a context manager); Ray's own log lines
    with --verbose or --debug."""
    from nstpipe.app import open_executor

    return open_executor(options["workers"], options["address"], options["verbose"] or options["debug"])


METRICS = (
    Flag("source", (), Path, "The original video."),
    Flag("stylized", (), Path, "Its stylized version: a video, or the folder of painted frames that --keep-frames leaves."),
    *resolve([retell("style", kind=Optional[Path], help="The painting, for style distances.", default=None, shown="none"),
              "json_path", "plot", "gaps", "device", "weights", "overwrite", "debug", "quiet"]),
)


def _metrics(**options: Any) -> None:
    with user_errors(options["debug"], flag_names(METRICS)):
        from nstpipe.app import measure_video, parse_gaps

        refuse_empty(METRICS, options)
        settings = settings_of(MODES["style"], options)
        try:
            measured = parse_gaps(options["gaps"])
        except ValueError as exc:
            raise ConfigError(f"--gaps: {exc}") from None
        with reporter(options["quiet"]) as report:
            result = measure_video(
                options["source"], options["stylized"], options["style"], settings, report, options["json_path"], options["plot"],
                options["overwrite"], measured,
            )
        summary = result.summary()
        width = max(22, *(len(key) + 2 for key in summary))
        for key, value in summary.items():
            shown = "-" if value is None else (f"{value:.6f}" if isinstance(value, float) else str(value))
            typer.echo(f"{key:<{width}}{shown:>12}")


def presets() -> None:
    """List the presets and their settings."""
    from nstpipe.config import preset_names, read_preset

    for name in preset_names():
        values = ", ".join(f"{k}={v}" for k, v in read_preset(name).items())
        typer.echo(f"{name}: {values}")


def build_app(modes: Iterable[ModeSpec] | None = None) -> typer.Typer:
    """The ``nstpipe`` app: a command for each command of each registered mode, then metrics and presets."""
    app = typer.Typer(
        name="nstpipe", cls=_OneLineErrors, help=SUMMARY, no_args_is_help=True, add_completion=False,
        pretty_exceptions_enable=False, context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_top)
    for spec in MODES.values() if modes is None else modes:
        for command in spec.commands:
            app.command(command.name)(mode_command(spec, command))
    metrics = _declare(
        "metrics",
        "Temporal stability (warping error E_warp, Lai et al. 2018, as a multiple of the footage's own at each gap),\n"
        "the settling of the first frames, and per-frame content and style distances.",
        METRICS, Defaults("default"), _metrics,
    )
    app.command("metrics")(metrics)
    app.command("presets")(presets)
    return app
