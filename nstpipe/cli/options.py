"""Every option of the command line, declared once: the shared table, and what a mode makes of it.

A mode lists the shared flags it reads by name (retold where it reads them its own way)
and declares its own; the typer options, the defaults the help shows (from the mode's own
preset), the settings they set and the names in error lines all come from here.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Sequence, get_args

import typer
from typing_extensions import Annotated

from nstpipe.config import (
    COLOR_MODES,
    COLOR_STARTS,
    OPTIMIZERS,
    POOLINGS,
    STYLE_TERMS,
    TEMPORAL_HOLDS,
    TEMPORAL_MODES,
    Settings,
    build_settings,
    read_preset,
)
from nstpipe.errors import ConfigError
from nstpipe.modes.base import FOLDER, VIDEO, Command, Flag, FlagUse, ModeSpec, Retell

_WORK = frozenset({FOLDER, VIDEO})  # the jobs that run on workers, resumably
_VIDEO = frozenset({VIDEO})


def _set(name: str, decls: tuple[str, ...], kind: Any, help: str, **more: Any) -> Flag:
    """An option that sets the setting of its own name; unset (None), the preset decides."""
    return Flag(name, decls, Optional[kind], help, name, **more)


def _switch(name: str, decls: tuple[str, ...], help: str, **more: Any) -> Flag:
    return Flag(name, decls, bool, help, shown="off", default=False, **more)


SHARED: tuple[Flag, ...] = (
    Flag("output", ("--output", "-o"), Optional[Path], "Output file."),
    Flag("style", ("--style", "-s"), List[Path], "Style image (a painting); repeat to blend several.", default=inspect.Parameter.empty),
    _set("size", ("--size",), int, "Long side of the output in pixels."),
    Flag(
        "iterations", ("--iterations", "-n"), Optional[int],
        "Optimizer iterations at full size: of each picture, and of a video's first frame (times --first-budget). The coarser pyramid "
        "levels run coarse_iterations each and the coarsest coarsest_iterations where set (config file settings), a video's "
        "later frames --later-iterations; "
        "early stopping may end any of them sooner.",
        "iterations", "{iterations} in the {preset} preset; coarse_iterations {coarse_iterations}",
    ),
    Flag("preset", ("--preset",), str, "Preset from configs/: fast, default, quality.", shown=True),
    Flag("config", ("--config",), Optional[Path], "TOML file of settings; flags override it.", shown="none"),
    _set("device", ("--device",), str, "auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps.", shown="auto"),
    _set("seed", ("--seed",), int, "Seed for noise init."),
    Flag("style_weights", ("--style-weights",), Optional[str], "Blend weights for several --style images, e.g. 0.7,0.3.",
         "style_blend", "equal"),
    _set("style_scale", ("--style-scale",), float, "Style image long side as a multiple of the output's; above 0."),
    _set("preserve_color", ("--preserve-color",), str, f"Keep the photo's colours: {', '.join(COLOR_MODES)}."),
    _set("color_start", ("--color-start",), str,
         f"The start recoloured to the painting's palette (from noise: every level's start): {', '.join(COLOR_STARTS)}."),
    _set("content_weight", ("--content-weight",), float, "Weight of the content loss; 0 or more."),
    _set("style_weight", ("--style-weight",), float, "Weight of the style loss; 0 or more."),
    _set("style_loss", ("--style-loss",), str,
         f"Style terms and their shares of --style-weight, e.g. gram:1,sliced:1 (of {', '.join(STYLE_TERMS)})."),
    _set("tv_weight", ("--tv-weight",), float, "Weight of the total-variation loss; 0 or more."),
    _set("optimizer", ("--optimizer",), str, f"{' or '.join(OPTIMIZERS)}."),
    _set("learning_rate", ("--learning-rate",), float, "Adam step size (pixels in [0, 1]); above 0."),
    _set("init", ("--init",), str, "content, noise, or an image file."),
    _set("pooling", ("--pooling",), str, f"{' or '.join(POOLINGS)}."),
    _set("weights", ("--weights",), str, "VGG19 weights: embedded, torchvision, or a file.", shown="embedded"),
    _set("scales", ("--scales",), int, "Levels of the coarse-to-fine pyramid."),
    _set("content_layer", ("--content-layer",), str, "VGG19 layer of the content loss."),
    _set("style_layers", ("--style-layers",), str, "Comma-separated VGG19 layers of the style loss."),
    _set("max_pixels", ("--max-pixels",), int, "Refuse images with more pixels, unread (decompression bombs); 0: no limit.",
         shown="{max_pixels}", limits={"min": 0}),
    _set("max_size", ("--max-size",), int,
         "The longest side painted: without --size, a GPU paints a photo at its own size up to this (a CPU at the preset's).",
         shown="{max_size}", limits={"min": 16}),
    _set("max_memory", ("--max-memory",), str,
         "Memory a run may take, e.g. 6G or 512M: a picture too large for it is painted in tiles, with the gradient of the "
         "whole picture (no seams).", shown="auto: 60% of the free GPU memory, or of the available RAM on a CPU"),
    Flag("layer", ("--layer",), Optional[List[str]], "VGG19 layer.", "dream_layers"),
    Flag("channel", ("--channel",), Optional[List[int]], "A channel of the layer.", "dream_channels"),
    _set("jitter", ("--jitter",), int, "Pixels of random roll at each step; 0 or more.", limits={"min": 0}),
    Flag("workers", ("--workers",), Optional[int], "Parallel workers; more than one runs on Ray.", shown="one per GPU, else 1",
         limits={"min": 1}, inputs=_WORK),
    Flag("address", ("--address",), Optional[str], "Join this Ray cluster (or 'auto').",
         shown="$RAY_ADDRESS, else a private local instance", inputs=_WORK),
    _switch("verbose", ("--verbose",), "Show Ray's own log lines (joining a cluster, workers and nodes lost); errors stay one line.",
            inputs=_WORK),
    _set("batch", ("--batch",), int,
         "Pictures of one size (a folder), or chains of frames each worker paints in step (a video: a long one is cut into that many "
         "more chains), optimized together on a GPU; 0: as many as its memory holds, 1 on CPU and MPS.",
         shown="0", limits={"min": 0}, inputs=_WORK),
    _switch("retry_failed", ("--retry-failed",), "Try again the inputs that failed in an earlier run (they are skipped otherwise).",
            inputs=frozenset({FOLDER})),
    _set("temporal", ("--temporal",), str,
         f"{', '.join(TEMPORAL_MODES)}: start each frame from the previous one warped along the optical flow (with a temporal loss), "
         "unwarped, or not at all.", inputs=_VIDEO),
    _set("later_iterations", ("--later-iterations",), int, "Iteration budget of every frame after the first (flow, prev), at full size.",
         inputs=_VIDEO),
    _set("first_budget", ("--first-budget",), float,
         "A chain's first frame runs this many times the iterations of a picture (flow, prev): every later frame inherits it.",
         limits={"min": 1.0}, inputs=_VIDEO),
    _set("temporal_weight", ("--temporal-weight",), float, "Weight of the temporal loss (flow); 0 or more.", inputs=_VIDEO),
    _set("temporal_gaps", ("--temporal-gaps",), str,
         "Frame distances the temporal loss holds a frame to (flow), e.g. 1,2,4,8: beyond its predecessor, each pixel to the most "
         "recent of those earlier frames where it was visible (Ruder et al.'s long-term loss).", inputs=_VIDEO),
    _set("temporal_hold", ("--temporal-hold",), str,
         f"{', '.join(TEMPORAL_HOLDS)}: hold each pixel to the most recent of the --temporal-gaps frames where it was visible, or "
         "to every one of them, each half as strongly as the nearer one (flow).", inputs=_VIDEO),
    Flag("passes", ("--passes",), Optional[int],
         "Passes over each chain, back and forth (Ruder et al.'s multi-pass; flow, prev): 2 adds a pass back from the last "
         "frame to the first.", "video_passes", limits={"min": 1}, inputs=_VIDEO),
    _set("pass_iterations", ("--pass-iterations",), int, "Iterations of each frame in a pass after the first.", limits={"min": 0},
         inputs=_VIDEO),
    _set("pass_blend", ("--pass-blend",), float,
         "How far a frame of a later pass starts toward its neighbour's new painting where the flow is trusted (1: wholly).",
         inputs=_VIDEO),
    _set("temporal_blend", ("--temporal-blend",), float,
         "After a later frame's iterations, move its pixels this share of the way back toward the earlier frames warped onto it, "
         "where the flow is trusted (flow; 0: off, below 1).", inputs=_VIDEO),
    _set("hold_still", ("--hold-still",), str,
         "on, off: where the footage stood still against every --temporal-gaps frame, a later frame keeps the earlier "
         "painting exactly (flow).", inputs=_VIDEO),
    _set("crf", ("--crf",), int, "H.264 quality, 0 (lossless) to 51; 18 is visually lossless.", inputs=_VIDEO),
    Flag("work_dir", ("--work-dir",), Optional[Path], "Folder for finished frames and the manifest.", shown="OUTPUT.nstpipe-work",
         inputs=_VIDEO),
    Flag("frames", ("--frames",), Optional[int], "Stylize only the first N frames (a preview).", shown="all", limits={"min": 1},
         inputs=_VIDEO),
    _switch("keep_frames", ("--keep-frames",), "Keep the stylized frames (PNG) after the video is written.", inputs=_VIDEO),
    _switch("overwrite", ("--overwrite", "-y"),
            "Let an output replace an input, a style image or a file that nstpipe did not make (as ffmpeg's -y). "
            "Without it, only nstpipe's own outputs are replaced."),
    _switch("debug", ("--debug",), "Show tracebacks (and Ray's own log lines)."),
    _switch("quiet", ("--quiet", "-q"), "No progress display, and no line saying what was chosen (errors and the result stay)."),
    Flag("json_path", ("--json",), Optional[Path], "Write the per-frame numbers here.", shown="none"),
    Flag("plot", ("--plot",), Optional[Path],
         "Draw E_warp over time into this chart, one panel per gap; its suffix decides the format: .png, .svg, .pdf.", shown="none"),
    Flag("gaps", ("--gaps",), str,
         "Compare frames t and t+k for each k, e.g. 1,5,15: the flow is computed directly between source frames t and t+k, "
         "and the footage's own E_warp at each gap is the yardstick (ratio). Gap 1 is always measured.", shown=True, default="1"),
)
TABLE: dict[str, Flag] = {flag.name: flag for flag in SHARED}
RUN = ("overwrite", "debug", "quiet")  # every command's


def resolve(uses: Iterable[FlagUse]) -> list[Flag]:
    """The flags of ``uses``: shared ones by name, retold ones changed, a mode's own as they are."""
    flags: list[Flag] = []
    for use in uses:
        if isinstance(use, Flag):
            flags.append(use)
        elif isinstance(use, Retell):
            flags.append(use.apply(TABLE[use.name]))
        else:
            flags.append(TABLE[use])
    return flags


def command_flags(spec: ModeSpec, command: Command) -> list[Flag]:
    """A command's options: its output, the mode's flags that mean something for its input
    (retold for the command where it says so), and the run flags; its arguments first."""
    own = {use.name: use for use in command.flags if isinstance(use, Retell)}
    flags = [own.get(_name(use), use) for use in spec.flags]
    extra = [use for use in command.flags if not isinstance(use, Retell)]
    chosen = [flag for flag in resolve([command.output, *flags, *RUN]) if flag.inputs is None or flag.inputs & command.inputs]
    arguments = [command.source] if command.source is not None else []
    return [*arguments, *resolve(extra), *chosen]


def mode_flags(spec: ModeSpec) -> list[Flag]:
    """Every flag of a mode, whatever its input."""
    return resolve([*spec.flags, *RUN])


def _name(use: FlagUse) -> str:
    return use if isinstance(use, str) else use.name


class Defaults:
    """A preset's values, as the help of a mode shows them."""

    def __init__(self, preset: str) -> None:
        self.preset = preset
        self.values = build_settings(preset).to_dict()
        self.in_preset = set(read_preset(preset))

    def shown(self, flag: Flag) -> str | bool:
        """"60 in the default preset" where a preset may say otherwise; a fixed text where the flag has one."""
        if isinstance(flag.shown, bool) or (flag.shown is not None and "{" not in flag.shown):
            return flag.shown
        fields = {key: _text(value) for key, value in self.values.items()}
        if flag.shown is not None:
            return flag.shown.format(preset=self.preset, **fields)
        if flag.setting is None:
            return False
        value = fields[flag.setting]
        return f"{value} in the {self.preset} preset" if flag.setting in self.in_preset else value


def _text(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def parameter(flag: Flag, defaults: Defaults) -> inspect.Parameter:
    """typer's declaration of ``flag``, with the default of the mode's preset in its help."""
    shown = defaults.shown(flag)
    default = defaults.preset if flag.name == "preset" else flag.default
    parser = path_given if Path in (flag.kind, *_leaves(flag.kind)) else None
    if flag.decls:
        declared: Any = typer.Option(*flag.decls, help=flag.help, show_default=shown, parser=parser, **flag.limits)
    else:
        declared = typer.Argument(help=flag.help, show_default=False, parser=parser)
        default = inspect.Parameter.empty
    return inspect.Parameter(flag.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[flag.kind, declared])


def path_given(text: str) -> Path:
    """A path from the command line. An empty one ('') is refused as a slip: as a Path it
    would read as '.', the current folder, and fail later with a line about '.'."""
    if not text:
        raise typer.BadParameter("an empty path")
    return Path(text)


def _leaves(kind: Any) -> tuple[Any, ...]:
    """The types inside ``Optional[...]`` and ``List[...]``, nested ones too."""
    return tuple(leaf for arg in get_args(kind) for leaf in (arg, *_leaves(arg)))


def refuse_unused(flags: Sequence[Flag], options: Mapping[str, Any], kind: str) -> None:
    """A flag given for an input it means nothing for is refused, not accepted and ignored."""
    for flag in flags:
        if flag.inputs is not None and kind not in flag.inputs and flag.given(options.get(flag.name)):
            where = " or ".join(sorted(flag.inputs))
            raise ConfigError(f"{flag.decls[0]} applies to a {where}, not to a {kind}")


def refuse_empty(flags: Sequence[Flag], options: Mapping[str, Any]) -> None:
    """A flag given an empty text (``--preset ''``) is a slip, refused, not read as left out."""
    for flag in flags:
        value = options.get(flag.name)
        if isinstance(value, str) and not value.strip():
            raise ConfigError(f"{flag.decls[0] if flag.decls else flag.name}: give a value, not an empty one")


def settings_of(spec: ModeSpec, options: Mapping[str, Any]) -> Settings:
    """Preset < --config file < flags (unset ones are None); the mode's derived settings;
    the command decides the mode, whatever a config file says."""
    overrides: dict[str, Any] = {}
    for flag in mode_flags(spec):
        if flag.setting is not None and flag.direct and flag.name in options:
            value = options[flag.name]
            overrides[flag.setting] = value if value != [] else None
    derived = spec.derive(options)
    return build_settings(options.get("preset") or spec.preset, options.get("config"), {**overrides, **derived, "mode": spec.name})


def flag_names(flags: Iterable[Flag]) -> dict[str, str]:
    """The flag(s) that set each setting, as an error line names them: ``--channel/--channels``."""
    names: dict[str, list[str]] = {}
    for flag in flags:
        if flag.setting is not None and flag.decls:
            names.setdefault(flag.setting, []).append(flag.decls[0])
    return {setting: "/".join(dict.fromkeys(decls)) for setting, decls in names.items()}


def with_flag(message: str, key: str | None, names: Mapping[str, str]) -> str:
    """The error's line, with the flag that sets the setting it names."""
    prefix = f"setting {key!r}"
    if key is not None and key in names and message.startswith(prefix):
        return f"{prefix} ({names[key]}){message[len(prefix):]}"
    return message

