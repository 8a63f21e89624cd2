"""The ``nstpipe`` command line: a thin typer app over the ``nstpipe`` package.

Only this module prints. torch and the engine are imported inside the commands, so
``nstpipe --help`` answers at once. Every option is declared once, in the tables below,
which give both typer's declaration and the setting the option sets.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence

import typer
from typer.core import TyperGroup
from typing_extensions import Annotated

from nstpipe.config import (
    COLOR_MODES,
    COLOR_STARTS,
    OPTIMIZERS,
    POOLINGS,
    PRESET_DEFAULT,
    STYLE_TERMS,
    TEMPORAL_MODES,
    Settings,
    build_settings,
    config_sets,
    read_preset,
)
from nstpipe.errors import ConfigError, NstpipeError
from nstpipe.events import EventSink

try:  # typer 0.2x carries its own copy of click
    from typer._click import ClickException
except ImportError:  # pragma: no cover - typer versions that use click itself
    from click import ClickException  # type: ignore[assignment]

EXIT_FAILED_INPUTS = 1
EXIT_USAGE = 2
# Seconds between two progress lines in a log (stderr not a terminal): a job of hours
# leaves a few hundred lines, and a stalled one shows within the interval.
LOG_INTERVAL = 10.0


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


app = typer.Typer(
    name="nstpipe",
    cls=_OneLineErrors,
    help="Paint photos, photo archives and videos in the style of a painting (Gatys et al. neural style transfer).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from nstpipe import __version__

        typer.echo(f"nstpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _top(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)] = False,
) -> None:
    """Paint photos, photo archives and videos in the style of a painting (Gatys et al. neural style transfer)."""


# -- the options ------------------------------------------------------------------------------

_DEFAULTS = build_settings().to_dict()  # the default preset: what --help shows as defaults
_IN_PRESET = set(read_preset(PRESET_DEFAULT))


def _preset(key: str) -> str:
    """The default of a setting; "in the default preset" where another preset may say otherwise."""
    value = _DEFAULTS[key]
    shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
    return f"{shown} in the default preset" if key in _IN_PRESET else shown


@dataclass(frozen=True)
class Opt:
    """One option: how typer declares it, and the setting it sets (``None``: not a setting)."""

    name: str  # the command's parameter
    decls: tuple[str, ...]
    kind: Any
    help: str
    setting: str | None = None
    default: Any = None
    shown: str | bool = False  # the "[default: ...]" of --help
    limits: Mapping[str, Any] = field(default_factory=dict)

    def parameter(self) -> inspect.Parameter:
        option = typer.Option(*self.decls, help=self.help, show_default=self.shown, **self.limits)
        return inspect.Parameter(self.name, inspect.Parameter.KEYWORD_ONLY, default=self.default, annotation=Annotated[self.kind, option])


def _setting(name: str, flag: str, kind: Any, help: str, shown: str | None = None, **limits: Any) -> Opt:
    """An option that sets the setting of its own name; unset (None), the preset decides."""
    return Opt(name, (flag,), Optional[kind], help, name, None, shown or _preset(name), limits)


def _switch(name: str, decls: tuple[str, ...], help: str) -> Opt:
    return Opt(name, decls, bool, help, None, False, "off")


STYLE = (
    Opt("style", ("--style", "-s"), List[Path], "Style image (a painting); repeat to blend several.", default=inspect.Parameter.empty),
)
ITERATIONS = Opt(
    "iterations", ("--iterations", "-n"), Optional[int],
    "Optimizer iterations at full size: of each picture, and of a video's first frame (times --first-budget). The coarser pyramid "
    "levels run coarse_iterations each (a config file setting), a video's later frames --later-iterations; "
    "early stopping may end any of them sooner.",
    "iterations", None, f"{_DEFAULTS['iterations']} in the default preset; coarse_iterations {_DEFAULTS['coarse_iterations']}",
)
DEVICE = _setting("device", "--device", str, "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps.", "auto")
WEIGHTS = _setting("weights", "--weights", str, "VGG19 weights: embedded, torchvision, or a file.", "embedded")
SETTINGS = (
    _setting("size", "--size", int, "Long side of the output in pixels."),
    ITERATIONS,
    Opt("preset", ("--preset",), str, "Preset from configs/: fast, default, quality.", None, PRESET_DEFAULT, True),
    Opt("config", ("--config",), Optional[Path], "TOML file of settings; flags override it.", None, None, "none"),
    DEVICE,
    _setting("seed", "--seed", int, "Seed for noise init."),
    Opt(
        "style_weights", ("--style-weights",), Optional[str], "Blend weights for several --style images, e.g. 0.7,0.3.",
        "style_blend", None, "equal",
    ),
    _setting("style_scale", "--style-scale", float, "Style image long side as a multiple of the output's; above 0."),
    _setting("preserve_color", "--preserve-color", str, f"Keep the photo's colours: {', '.join(COLOR_MODES)}."),
    _setting("color_start", "--color-start", str, f"Start from the photo recoloured to the painting's palette: {', '.join(COLOR_STARTS)}."),
    _setting("content_weight", "--content-weight", float, "Weight of the content loss; 0 or more."),
    _setting("style_weight", "--style-weight", float, "Weight of the style loss; 0 or more."),
    _setting(
        "style_loss", "--style-loss", str,
        f"Style terms and their shares of --style-weight, e.g. gram:1,sliced:1 (of {', '.join(STYLE_TERMS)}).",
    ),
    _setting("tv_weight", "--tv-weight", float, "Weight of the total-variation loss; 0 or more."),
    _setting("optimizer", "--optimizer", str, f"{' or '.join(OPTIMIZERS)}."),
    _setting("learning_rate", "--learning-rate", float, "Adam step size (pixels in [0, 1]); above 0."),
    _setting("init", "--init", str, "content, noise, or an image file."),
    _setting("pooling", "--pooling", str, f"{' or '.join(POOLINGS)}."),
    WEIGHTS,
    _setting("scales", "--scales", int, "Levels of the coarse-to-fine pyramid."),
    _setting("content_layer", "--content-layer", str, "VGG19 layer of the content loss."),
    _setting("style_layers", "--style-layers", str, "Comma-separated VGG19 layers of the style loss."),
    _setting(
        "max_pixels", "--max-pixels", int, "Refuse images with more pixels, unread (decompression bombs); 0: no limit.",
        str(_DEFAULTS["max_pixels"]), min=0,
    ),
    _setting(
        "max_size", "--max-size", int,
        "The longest side painted: without --size, a GPU paints a photo at its own size up to this (a CPU at the preset's).",
        str(_DEFAULTS["max_size"]), min=16,
    ),
    _setting(
        "max_memory", "--max-memory", str,
        "Memory a run may take, e.g. 6G or 512M: a picture too large for it is painted in tiles, with the gradient of the "
        "whole picture (no seams).",
        "auto: 60% of the free GPU memory, or of the available RAM on a CPU",
    ),
)
VIDEO_SIZE = _setting(
    "size", "--size", int, "Long side of the painted frames in pixels.",
    "on a GPU (CUDA, MPS) the video's own, at most --max-size; else the preset's (256 in the default), never above the video's",
)
RUN = (
    _switch(
        "overwrite", ("--overwrite", "-y"),
        "Let an output replace an input, a style image or a file that nstpipe did not make (as ffmpeg's -y). "
        "Without it, only nstpipe's own outputs are replaced.",
    ),
    _switch("debug", ("--debug",), "Show tracebacks (and Ray's own log lines)."),
    _switch("quiet", ("--quiet", "-q"), "No progress display, and no line saying what was chosen (errors and the result stay)."),
)
WORKERS = Opt(
    "workers", ("--workers",), Optional[int], "Parallel workers; more than one runs on Ray.", None, None, "one per GPU, else 1", {"min": 1}
)
ADDRESS = Opt(
    "address", ("--address",), Optional[str], "Join this Ray cluster (or 'auto').", None, None,
    "$RAY_ADDRESS, else a private local instance",
)
VERBOSE = _switch("verbose", ("--verbose",), "Show Ray's own log lines (joining a cluster, workers and nodes lost); errors stay one line.")
FOLDER = (
    WORKERS,
    ADDRESS,
    VERBOSE,
    Opt(
        "batch", ("--batch",), Optional[int],
        "Images of one size optimized together on a GPU; 0: as many as its memory holds, 1 on CPU and MPS.",
        "batch", None, "0", {"min": 0},
    ),
    _switch("retry_failed", ("--retry-failed",), "Try again the inputs that failed in an earlier run (they are skipped otherwise)."),
)
VIDEO = (
    _setting(
        "temporal", "--temporal", str,
        f"{', '.join(TEMPORAL_MODES)}: start each frame from the previous one warped along the optical flow (with a temporal loss), "
        "unwarped, or not at all.",
    ),
    _setting("later_iterations", "--later-iterations", int, "Iteration budget of every frame after the first (flow, prev), at full size."),
    _setting(
        "first_budget", "--first-budget", float,
        "A chain's first frame runs this many times the iterations of a picture (flow, prev): every later frame inherits it.",
        min=1.0,
    ),
    _setting("temporal_weight", "--temporal-weight", float, "Weight of the temporal loss (flow); 0 or more."),
    _setting(
        "temporal_gaps", "--temporal-gaps", str,
        "Frame distances the temporal loss holds a frame to (flow), e.g. 1,2,4,8: beyond its predecessor, each pixel to the most "
        "recent of those earlier frames where it was visible (Ruder et al.'s long-term loss).",
    ),
    _setting("crf", "--crf", int, "H.264 quality, 0 (lossless) to 51; 18 is visually lossless."),
    Opt("work_dir", ("--work-dir",), Optional[Path], "Folder for finished frames and the manifest.", None, None, "OUTPUT.nstpipe-work"),
    Opt("frames", ("--frames",), Optional[int], "Stylize only the first N frames (a preview).", None, None, "all", {"min": 1}),
    _switch("keep_frames", ("--keep-frames",), "Keep the stylized frames (PNG) after the video is written."),
    WORKERS,
    Opt(
        "batch", ("--batch",), Optional[int],
        "Chains of frames each worker paints in step on a GPU (a long video is cut into that many more chains); "
        "0: as many as its memory holds, 1 on CPU and MPS.",
        "batch", None, "0", {"min": 0},
    ),
    ADDRESS,
    VERBOSE,
)
VIDEO_SETTINGS = tuple(VIDEO_SIZE if opt.name == "size" else opt for opt in SETTINGS)
METRICS = (DEVICE, WEIGHTS, *RUN)

TEXTURE_PRESET = "texture"
_TEXTURE_DEFAULTS = build_settings(TEXTURE_PRESET).to_dict()
_IN_TEXTURE_PRESET = set(read_preset(TEXTURE_PRESET))
# The engine settings a texture reads: no photo, so no content, colour or init options.
_TEXTURE_READS = (
    "size", "iterations", "preset", "config", "device", "seed", "style_weights", "style_scale", "style_weight", "style_loss",
    "tv_weight", "optimizer", "learning_rate", "pooling", "weights", "scales", "style_layers", "max_pixels",
)


def _for_texture(opt: Opt) -> Opt:
    """``opt`` with the texture preset's default shown (and the texture preset as the default preset)."""
    if opt.name == "preset":
        return dataclasses.replace(opt, default=TEXTURE_PRESET, help="Preset from configs/ (texture; or fast, default, quality).")
    if opt.setting in _IN_TEXTURE_PRESET:
        value = _TEXTURE_DEFAULTS[opt.setting]
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        return dataclasses.replace(opt, shown=f"{shown} in the texture preset")
    return opt


TEXTURE_SETTINGS = tuple(_for_texture(opt) for name in _TEXTURE_READS for opt in SETTINGS if opt.name == name)
TEXTURE = (
    Opt("texture_count", ("--count",), Optional[int],
        "Variations to make, picture k from seed + k, optimized together in one batch.", "texture_count", None, "1"),
    Opt("texture_width", ("--width",), Optional[int],
        "Width in pixels, with --height (a rectangle); without them, a square of --size.", "texture_width", None, "--size"),
    Opt("texture_height", ("--height",), Optional[int], "Height in pixels, with --width.", "texture_height", None, "--size"),
    Opt("tileable", ("--tileable/--no-tileable",), Optional[bool],
        "Wrap around, so that tiles of the texture meet without a seam; the size is rounded to a multiple of 32 "
        "(16 for VGG19's pooling, times 2 for each coarser level).", "tileable", None, "off"),
)

VISUALIZE_PRESET = "visualize"
_VISUALIZE_DEFAULTS = build_settings(VISUALIZE_PRESET).to_dict()
_IN_VISUALIZE_PRESET = set(read_preset(VISUALIZE_PRESET))
# The engine settings a visualization reads: no photo and no painting.
_VISUALIZE_READS = (
    "size", "iterations", "preset", "config", "device", "seed", "tv_weight", "optimizer", "learning_rate", "pooling",
    "weights", "scales",
)


def _for_visualize(opt: Opt) -> Opt:
    """``opt`` with the visualize preset's default shown (and that preset as the default preset)."""
    if opt.name == "preset":
        return dataclasses.replace(opt, default=VISUALIZE_PRESET, help="Preset from configs/ (visualize; or another).")
    if opt.setting in _IN_VISUALIZE_PRESET:
        value = _VISUALIZE_DEFAULTS[opt.setting]
        return dataclasses.replace(opt, shown=f"{value} in the visualize preset")
    return opt


VISUALIZE_SETTINGS = tuple(_for_visualize(opt) for name in _VISUALIZE_READS for opt in SETTINGS if opt.name == name)
VISUALIZE = (
    Opt("visualize_layer", ("--layer",), Optional[str], "VGG19 layer whose channel to show, e.g. relu3_1, relu4_1.",
        "visualize_layer", None, f"{_VISUALIZE_DEFAULTS['visualize_layer']} in the visualize preset"),
    Opt("channel", ("--channel",), Optional[int], "The channel to show: one picture.", None, None, "none; this or --channels"),
    Opt("channels", ("--channels",), Optional[str], "A range A-B of channels: one labelled contact sheet, one tile each.",
        None, None, "none; this or --channel"),
    Opt("visualize_jitter", ("--jitter",), Optional[int], "Pixels of random roll at each step; 0 or more.",
        "visualize_jitter", None, f"{_VISUALIZE_DEFAULTS['visualize_jitter']} in the visualize preset", {"min": 0}),
    Opt("visualize_scale", ("--jitter-scale",), Optional[float], "Random scaling at each step by 1 +- this; 0 to below 1.",
        "visualize_scale", None, "0"),
    Opt("visualize_degrees", ("--jitter-degrees",), Optional[float], "Random turn at each step by +- this many degrees.",
        "visualize_degrees", None, "0"),
)

DREAM_PRESET = "dream"
_DREAM_DEFAULTS = build_settings(DREAM_PRESET).to_dict()
_IN_DREAM_PRESET = set(read_preset(DREAM_PRESET))
# The engine settings a dream reads: a photo but no painting, so no style or content options.
_DREAM_READS = (
    "preset", "config", "device", "seed", "optimizer", "learning_rate", "pooling", "weights", "max_pixels", "style_loss", "style_weight",
)


def _for_dream(opt: Opt) -> Opt:
    """``opt`` with the dream preset's default shown (and that preset as the default preset)."""
    if opt.name == "preset":
        return dataclasses.replace(opt, default=DREAM_PRESET, help="Preset from configs/ (dream; or another).")
    if opt.name == "learning_rate":
        return dataclasses.replace(
            opt, help="Step size: the mean change of a pixel per step, in [0, 1] units (the notebook's 1.5 of 255 is 0.00588).",
            shown=f"{_DREAM_DEFAULTS['learning_rate']} in the dream preset",
        )
    if opt.name == "seed":
        return dataclasses.replace(opt, help="Seed of the random jitter.")
    if opt.name == "style_loss":
        return dataclasses.replace(
            opt, help="With --guide: gram (the notebook's guide term) and the distribution terms towards the guide's features, "
            "with their shares, e.g. gram:1,sliced:1.", shown="gram",
        )
    if opt.name == "style_weight":
        return dataclasses.replace(opt, help="With --guide: the weight of the distribution terms of --style-loss.", shown="1.0")
    if opt.setting in _IN_DREAM_PRESET:
        return dataclasses.replace(opt, shown=f"{_DREAM_DEFAULTS[opt.setting]} in the dream preset")
    return opt


def _dream_default(key: str) -> str:
    value = _DREAM_DEFAULTS[key]
    return f"{','.join(map(str, value)) if isinstance(value, tuple) else value} in the dream preset"


DREAM_SIZE = _setting(
    "size", "--size", int, "Long side of the output in pixels (of the painted frames, for a video).", _dream_default("size")
)
DREAM_SETTINGS = (DREAM_SIZE, *(_for_dream(opt) for name in _DREAM_READS for opt in SETTINGS if opt.name == name))
DREAM = (
    Opt("layers", ("--layer",), Optional[List[str]], "VGG19 layer whose activations to climb; repeat for several.",
        None, None, _dream_default("dream_layers")),
    Opt("dream_channels", ("--channel",), Optional[List[int]],
        "Climb only this channel of the layers; repeat for several.", None, None, "all channels"),
    Opt("octaves", ("--octaves",), Optional[int], "Octaves: sizes climbed from coarse to fine.", None, None,
        _dream_default("scales"), {"min": 1}),
    Opt("octave_scale", ("--octave-scale",), Optional[float], "Each octave's size over the next coarser one's; above 1.",
        "octave_scale", None, _dream_default("octave_scale")),
    Opt("steps", ("--iterations", "-n"), Optional[int], "Steps in each octave (a video's later frames: --later-iterations).",
        None, None, _dream_default("iterations"), {"min": 0}),
    Opt("dream_jitter", ("--jitter",), Optional[int], "Pixels of random roll at each step; 0 or more.", "dream_jitter", None,
        _dream_default("dream_jitter"), {"min": 0}),
    Opt("guide", ("--guide",), Optional[Path],
        "Grow what this picture shows: climb the match to its features rather than the raw activations.", None, None, "none"),
)
DREAM_FOLDER = tuple(opt for opt in FOLDER if opt.name == "retry_failed")
DREAM_VIDEO = tuple(_for_dream(opt) for opt in VIDEO)

_ALL = (*STYLE, *SETTINGS, VIDEO_SIZE, *RUN, *FOLDER, *VIDEO, *TEXTURE, *VISUALIZE, *DREAM)
_FLAG_OF = {opt.setting: opt.decls[0] for opt in _ALL if opt.setting} | {
    "visualize_channels": "--channel/--channels", "dream_layers": "--layer", "dream_channels": "--channel",
}


def _options(*groups: tuple[Opt, ...]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give ``command(own parameters..., **options)`` the options of ``groups``.

    typer builds a command's options from its signature, so the table's options are
    appended to each command's own parameters; they arrive in ``options`` by name.
    """

    def attach(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        command.__signature__ = inspect.Signature([*own, *(opt.parameter() for group in groups for opt in group)])  # type: ignore[attr-defined]
        return command

    return attach


def _settings(options: Mapping[str, Any], mode: str = "style", extra: Mapping[str, Any] | None = None) -> Settings:
    """Preset < --config file < flags (the command's options; unset ones are None, ``extra``:
    settings that no single option sets). The command decides the mode, whatever a config
    file says."""
    overrides = {opt.setting: options[opt.name] for opt in _ALL if opt.setting and opt.name in options}
    return build_settings(options.get("preset", PRESET_DEFAULT), options.get("config"), {**overrides, **(extra or {}), "mode": mode})


def _message(exc: NstpipeError) -> str:
    """The error's line, with the flag that sets the setting it names."""
    text, key = str(exc), getattr(exc, "key", None)
    prefix = f"setting {key!r}"
    if key in _FLAG_OF and text.startswith(prefix):
        return f"{prefix} ({_FLAG_OF[key]}){text[len(prefix):]}"
    return text


@contextlib.contextmanager
def _user_errors(debug: bool) -> Iterator[None]:
    """Project errors become one line on stderr and exit status 2; --debug keeps the traceback."""
    try:
        yield
    except NstpipeError as exc:
        if debug:
            raise
        typer.echo(f"nstpipe: error: {_message(exc)}", err=True)
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


# -- commands -----------------------------------------------------------------------------------


@app.command()
@_options(STYLE, SETTINGS, RUN)
def image(
    content: Annotated[Path, typer.Argument(help="The photo to paint.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o",
            help="Output image; its suffix decides the format: .png, .jpg, .webp, .tif, .bmp (.avif where Pillow has it).",
            show_default="PHOTO.STYLE.SUFFIX beside the photo",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Stylize one image; a rerun with the same settings keeps the finished output."""
    with _user_errors(options["debug"]):
        settings = _settings(options)
        from nstpipe.app import default_image_output, stylize_one

        target = output or default_image_output(content, options["style"])
        size_from_device = options["size"] is None and not config_sets(options["config"], "size")
        with _reporter(options["quiet"]) as report:
            written = stylize_one(content, options["style"], target, settings, report, options["overwrite"], size_from_device)
        typer.echo(f"wrote {target}" if written else f"kept {target}: made earlier with these settings")


@app.command()
@_options(STYLE, SETTINGS, FOLDER, RUN)
def images(
    folder: Annotated[Path, typer.Argument(help="Folder of images, searched recursively.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Output folder; the input layout is mirrored, as PNG.", show_default="FOLDER.STYLE beside the folder"
        ),
    ] = None,
    **options: Any,
) -> None:
    """Stylize every image under FOLDER; rerun to resume (finished outputs are skipped)."""
    with _user_errors(options["debug"]):
        settings = _settings(options)
        from nstpipe.app import default_folder_output, stylize_folder

        target = output or default_folder_output(folder, options["style"])
        size_from_device = options["size"] is None and not config_sets(options["config"], "size")
        with _reporter(options["quiet"]) as report, _executor(options) as executor:
            outcome = stylize_folder(
                folder, options["style"], target, settings, report, executor, options["retry_failed"], options["overwrite"],
                size_from_device,
            )
        _print_folder(outcome, target)


def _print_folder(outcome: Any, target: Path) -> None:
    """The failures, one line each, and the count line of a folder; exit 1 if any failed."""
    for skipped in outcome.failed_before:
        typer.echo(f"nstpipe: failed in an earlier run: {skipped.failed}", err=True)
    for failure in outcome.failed:
        typer.echo(f"nstpipe: failed: {failure.error}", err=True)
    earlier = f" (+{len(outcome.failed_before)} in an earlier run; --retry-failed tries them again)" if outcome.failed_before else ""
    typer.echo(f"{outcome.done} stylized, {outcome.skipped} already done, {len(outcome.failed)} failed{earlier}; outputs in {target}")
    if outcome.failed or outcome.failed_before:
        raise typer.Exit(EXIT_FAILED_INPUTS)


@app.command()
@_options(STYLE, VIDEO_SETTINGS, VIDEO, RUN)
def video(
    sources: Annotated[List[Path], typer.Argument(help="The video(s) to paint, or folders of videos.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o",
            help="Output video (.mp4, .m4v or .mov; H.264); a folder for several inputs.",
            show_default="VIDEO.STYLE.mp4 beside each video",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Stylize videos frame by frame, stable over time; rerun to resume after an interruption."""
    with _user_errors(options["debug"]):
        settings = _settings(options)
        from nstpipe.app import VideoOptions, stylize_videos

        size_from_device = options["size"] is None and not config_sets(options["config"], "size")
        run = VideoOptions(options["work_dir"], options["frames"], options["keep_frames"], options["overwrite"], size_from_device)
        failed = 0
        with _reporter(options["quiet"]) as report, _executor(options) as executor:
            for outcome in stylize_videos(sources, options["style"], output, settings, report, run, executor):
                failed += _print_video(outcome)
        if failed:
            raise typer.Exit(EXIT_FAILED_INPUTS)


def _print_video(outcome: Any) -> int:
    """The line of one video's outcome; 1 when it failed."""
    if outcome.error is not None:
        typer.echo(f"nstpipe: failed: {outcome.error}", err=True)
        return 1
    summary = outcome.summary
    if outcome.kept:
        typer.echo(f"kept {outcome.output}: {summary.frames} frames, made earlier with these settings")
    else:
        resumed = summary.frames - summary.stylized
        typer.echo(f"wrote {outcome.output}: {summary.frames} frames ({resumed} from an earlier run), {summary.iterations} iterations")
    return 0


@app.command()
@_options(METRICS)
def metrics(
    source: Annotated[Path, typer.Argument(help="The original video.", show_default=False)],
    stylized: Annotated[Path, typer.Argument(help="Its stylized version.", show_default=False)],
    style: Annotated[Optional[Path], typer.Option("--style", "-s", help="The painting, for style distances.", show_default="none")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the per-frame numbers here.", show_default="none")] = None,
    plot: Annotated[
        Optional[Path],
        typer.Option(
            "--plot", help="Draw E_warp over time into this chart, one panel per gap; its suffix decides the format: .png, .svg, .pdf.",
            show_default="none",
        ),
    ] = None,
    gaps: Annotated[
        str,
        typer.Option(
            "--gaps",
            help="Compare frames t and t+k for each k, e.g. 1,5,15: the flow is computed directly between source frames t and t+k, "
            "and the footage's own E_warp at each gap is the yardstick (ratio). Gap 1 is always measured.",
        ),
    ] = "1",
    **options: Any,
) -> None:
    """Temporal stability (warping error E_warp, Lai et al. 2018, as a multiple of the footage's own at each gap),
    the settling of the first frames, and per-frame content and style distances."""
    with _user_errors(options["debug"]):
        settings = _settings(options)
        from nstpipe.app import measure_video
        from nstpipe.engine.metrics import parse_gaps

        try:
            measured = parse_gaps(gaps)
        except ValueError as exc:
            raise ConfigError(f"--gaps: {exc}") from None
        with _reporter(options["quiet"]) as report:
            result = measure_video(source, stylized, style, settings, report, json_path, plot, options["overwrite"], measured)
        summary = result.summary()
        width = max(22, *(len(key) + 2 for key in summary))
        for key, value in summary.items():
            shown = "-" if value is None else (f"{value:.6f}" if isinstance(value, float) else str(value))
            typer.echo(f"{key:<{width}}{shown:>12}")


@app.command()
@_options(TEXTURE_SETTINGS, TEXTURE, RUN)
def texture(
    styles: Annotated[
        List[Path], typer.Argument(help="The painting(s); several are blended (--style-weights).", show_default=False)
    ],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Output image; its suffix decides the format. With --count N: OUT-0.png ... OUT-{N-1}.png.",
            show_default="PAINTING.texture.png beside the first painting",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Texture synthesis (Gatys et al. 2015): a painting's texture from noise, no photo."""
    with _user_errors(options["debug"]):
        settings = _settings(options, mode="texture")
        from nstpipe.app import default_texture_output, make_texture

        target = output or default_texture_output(styles)
        with _reporter(options["quiet"]) as report:
            outcome = make_texture(styles, target, settings, report, options["overwrite"])
        for path in outcome.outputs:
            typer.echo(f"kept {path}: made earlier with these settings" if outcome.kept else f"wrote {path}")


@app.command()
@_options(VISUALIZE_SETTINGS, VISUALIZE, RUN)
def visualize(
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Output image; its suffix decides the format.", show_default="LAYER-K.png or LAYER-A-B.png here"
        ),
    ] = None,
    **options: Any,
) -> None:
    """Feature visualization: a picture that drives up one channel of a VGG19 layer, from noise;
    a range of channels gives one contact sheet labelled by channel."""
    with _user_errors(options["debug"]):
        chosen = {"visualize_channels": _channels(options["channel"], options["channels"])}
        settings = _settings(options, mode="visualize", extra=chosen)
        from nstpipe.app import default_visualization_output, make_visualization

        target = output or default_visualization_output(settings)
        with _reporter(options["quiet"]) as report:
            made = make_visualization(target, settings, report, options["overwrite"])
        typer.echo(f"wrote {target}" if made else f"kept {target}: made earlier with these settings")


@app.command()
@_options(DREAM_SETTINGS, DREAM, DREAM_FOLDER, DREAM_VIDEO, RUN)
def dream(
    source: Annotated[Path, typer.Argument(help="A photo, a folder of photos (searched recursively) or a video.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="Output image, folder or video, as for `image`, `images` and `video`.",
            show_default="NAME.dream.SUFFIX beside the input (NAME.dream-GUIDE with --guide)",
        ),
    ] = None,
    **options: Any,
) -> None:
    """DeepDream (Mordvintsev et al. 2015): climb VGG19's activations from a photo, over octaves.

    A folder is dreamed as `images` paints it (resumable), a video as `video` does: each
    frame starts from the previous dream warped along the optical flow."""
    with _user_errors(options["debug"]):
        settings = _settings(options, mode="dream", extra=_dream_extra(options))
        from nstpipe.app import input_kind

        guides = [options["guide"]] if options["guide"] is not None else []
        kind = input_kind(source)
        if kind == "image":
            _dream_image(source, guides, output, settings, options)
        elif kind == "folder":
            _dream_folder(source, guides, output, settings, options)
        else:
            _dream_video(source, guides, output, settings, options)


def _dream_extra(options: Mapping[str, Any]) -> dict[str, Any]:
    """The dream's settings that no single option sets alone: --iterations is every
    octave's budget, --octaves the pyramid's levels, repeated --layer and --channel lists."""
    steps = options["steps"]
    return {
        "iterations": steps, "coarse_iterations": steps, "scales": options["octaves"],
        "dream_layers": options["layers"] or None, "dream_channels": options["dream_channels"] or None,
    }


def _dream_image(source: Path, guides: list[Path], output: Path | None, settings: Settings, options: Mapping[str, Any]) -> None:
    from nstpipe.app import default_image_output, stylize_one

    target = output or default_image_output(source, guides, "dream")
    with _reporter(options["quiet"]) as report:
        written = stylize_one(source, guides, target, settings, report, options["overwrite"])
    typer.echo(f"wrote {target}" if written else f"kept {target}: made earlier with these settings")


def _dream_folder(source: Path, guides: list[Path], output: Path | None, settings: Settings, options: Mapping[str, Any]) -> None:
    from nstpipe.app import default_folder_output, stylize_folder

    target = output or default_folder_output(source, guides, "dream")
    with _reporter(options["quiet"]) as report, _executor(options) as executor:
        outcome = stylize_folder(source, guides, target, settings, report, executor, options["retry_failed"], options["overwrite"])
    _print_folder(outcome, target)


def _dream_video(source: Path, guides: list[Path], output: Path | None, settings: Settings, options: Mapping[str, Any]) -> None:
    from nstpipe.app import VideoOptions, stylize_videos

    size_from_device = options["size"] is None and not config_sets(options["config"], "size")
    run = VideoOptions(options["work_dir"], options["frames"], options["keep_frames"], options["overwrite"], size_from_device)
    with _reporter(options["quiet"]) as report, _executor(options) as executor:
        failed = sum(_print_video(outcome) for outcome in stylize_videos([source], guides, output, settings, report, run, executor))
    if failed:
        raise typer.Exit(EXIT_FAILED_INPUTS)


def _channels(channel: int | None, channels: str | None) -> str:
    """The setting's text, "K" or "A-B", from --channel K or --channels A-B (one of them)."""
    if (channel is None) == (channels is None):
        raise ConfigError("give one channel (--channel K) or a range of channels (--channels A-B)", "visualize_channels")
    return str(channel) if channels is None else channels


@app.command()
def presets() -> None:
    """List the presets and their settings."""
    from nstpipe.config import preset_names, read_preset

    for name in preset_names():
        values = ", ".join(f"{k}={v}" for k, v in read_preset(name).items())
        typer.echo(f"{name}: {values}")


# -- progress -----------------------------------------------------------------------------------


class _ProgressBar:
    """Turns the pipeline's event objects into a rich progress bar on stderr."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress
        self.files: Any = None
        self.iters = progress.add_task("optimizing", total=None, rate="")

    def __call__(self, event: object) -> None:
        self._dispatch(event)
        for task in self.progress.tasks:
            speed = task.speed
            self.progress.update(task.id, rate=f"{speed:.2f}/s" if speed else "")

    def _dispatch(self, event: object) -> None:
        from nstpipe.events import JobPlanned, Progress, ScaleDone, Skipped, TaskStarted
        from nstpipe.jobs.worker import TaskResult

        if isinstance(event, Progress):
            label = f"scale {event.scale + 1}/{event.scales} {event.width}x{event.height} loss {event.loss:.4g}"
            self.progress.update(self.iters, completed=event.iteration, total=event.iterations, description=label)
        elif isinstance(event, ScaleDone):
            self.progress.update(self.iters, completed=event.iterations, total=event.iterations)
        elif isinstance(event, JobPlanned):
            self.files = self.progress.add_task("files", total=event.total, rate="")
        elif isinstance(event, (Skipped, TaskResult)) and self.files is not None:
            self.progress.advance(self.files)
        elif isinstance(event, TaskStarted) and self.files is not None:
            self.progress.update(self.files, description=str(event.task.relative))
        else:
            self._video_event(event)

    def _video_event(self, event: object) -> None:
        from nstpipe.events import Encoding, FrameDone, FrameStarted, VideoPlanned

        if isinstance(event, VideoPlanned):
            self.files = self.progress.add_task("frames", total=event.frames, completed=event.done, rate="")
        elif isinstance(event, FrameStarted) and self.files is not None:
            self.progress.update(self.files, description=f"frame {event.index + 1}")
        elif isinstance(event, FrameDone) and self.files is not None:
            self.progress.advance(self.files)
        elif isinstance(event, Encoding) and self.files is not None:
            self.progress.update(self.files, description=f"encoding {event.frames} frames")


class _LogProgress:
    """Plain progress lines for a log file (stderr is not a terminal): the items done of
    the job's total, the rate and the time left, at most one line every ``interval``
    seconds, and one when all are done. It reads the same events as the progress bar.

    The rate counts only what this run did: outputs finished by an earlier run are done
    at once, and would make the time left look shorter than it is.
    """

    def __init__(self, echo: Callable[[str], None], clock: Callable[[], float] = time.monotonic, interval: float = LOG_INTERVAL) -> None:
        self.echo, self.clock, self.interval = echo, clock, interval
        self.unit = ""
        self.total = self.done = self.earlier = 0
        self.start = self.last = 0.0
        self.step = ""  # where the optimization of the current item stands
        self.ended = True

    def __call__(self, event: object) -> None:
        from nstpipe.events import Encoding, FrameDone, JobPlanned, Progress, Skipped, VideoPlanned
        from nstpipe.jobs.worker import TaskResult

        if isinstance(event, JobPlanned):
            self._plan("pictures", event.total, 0)
        elif isinstance(event, VideoPlanned):
            self._plan("frames", event.frames, event.done)
        elif isinstance(event, Progress):
            self.step = f"level {event.scale + 1}/{event.scales}, iteration {event.iteration}/{event.iterations}"
        elif isinstance(event, Encoding):
            self.echo(f"nstpipe: encoding {event.frames} frames")
        elif isinstance(event, (Skipped, TaskResult, FrameDone)) and not self.ended:
            self.done += 1
            self.earlier += isinstance(event, Skipped)
            self.step = ""
            if self.done >= self.total:
                self.finish()
        self.poll()

    def _plan(self, unit: str, total: int, done: int) -> None:
        self.unit, self.total, self.done, self.earlier = unit, total, done, done
        self.start = self.last = self.clock()
        self.step, self.ended = "", total <= done

    def poll(self) -> None:
        """A line if ``interval`` has passed since the last one: after any event, the
        optimizer's steps included, since one picture can take minutes."""
        now = self.clock()
        if not self.ended and now - self.last >= self.interval:
            self.last = now
            self.echo(self._line(now))

    def finish(self) -> None:
        """The closing line of a job that ended well (once)."""
        if self.ended:
            return
        self.ended = True
        self.done = max(self.done, self.total)
        seconds = self.clock() - self.start
        rate = (self.done - self.earlier) / seconds if seconds > 0 else 0.0
        self.echo(f"nstpipe: {self.total}/{self.total} {self.unit} in {_duration(seconds)} ({rate:.2f} {self.unit}/s)")

    def _line(self, now: float) -> str:
        done = min(self.done, self.total)
        rate = (done - self.earlier) / max(now - self.start, 1e-9)
        left = f"ETA {_duration((self.total - done) / rate)}" if rate > 0 else "ETA unknown"
        step = f" ({self.step})" if self.step else ""
        return f"nstpipe: {done}/{self.total} {self.unit}, {rate:.2f} {self.unit}/s, {left}{step}"


def _duration(seconds: float) -> str:
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _announcing(sink: EventSink) -> EventSink:
    """``sink``, after the line saying what a command chose (size, device, precision) is
    printed: once, before the work starts, whatever the progress display."""
    from nstpipe.events import Chosen

    def report(event: object) -> None:
        if isinstance(event, Chosen):
            unit = event.unit[:-1] if event.count == 1 else event.unit  # "1 frame", "2 frames"
            count = f", {event.count} {unit}" if event.count is not None else ""
            where = f" -> {event.output}" if event.output is not None else ""
            own = f" (the input is {event.source}{'; at that size ' + event.estimate if event.estimate else ''})" if event.source else ""
            typer.echo(f"nstpipe: {event.size}{own} on {event.device} ({event.precision}){count}{where}", err=True)
        sink(event)

    return report


def _executor(options: Mapping[str, Any]) -> Any:
    """The executor of --workers and --address (a context manager); Ray's own log lines
    with --verbose or --debug."""
    from nstpipe.app import open_executor

    return open_executor(options["workers"], options["address"], options["verbose"] or options["debug"])


@contextlib.contextmanager
def _reporter(quiet: bool) -> Iterator[EventSink]:
    if quiet:
        yield lambda event: None
    elif sys.stderr.isatty():
        with _progress_bar() as bar:
            yield _announcing(bar)
    else:
        log = _LogProgress(lambda line: typer.echo(line, err=True), interval=LOG_INTERVAL)
        yield _announcing(log)
        log.finish()


@contextlib.contextmanager
def _progress_bar() -> Iterator[_ProgressBar]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    # Throughput (items a second, over rich's recent window) and the ETA that follows from it.
    rate = TextColumn("{task.fields[rate]}")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), rate, TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as progress:
        yield _ProgressBar(progress)


def main() -> None:
    # File names that are not valid UTF-8 arrive as surrogate escapes (PEP 383): print them
    # as their own bytes, as Python does in the C locale, rather than fail on them once the
    # work is done. (stderr already escapes them with backslashes.)
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="surrogateescape")
    app()


if __name__ == "__main__":
    main()
