"""Feature visualization: what drives up a channel of a VGG19 layer, from noise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from nstpipe.config import Settings, VisualizeConfig
from nstpipe.errors import ConfigError
from nstpipe.modes.base import ITERATIONS_OF_A_PICTURE, NONE, Canvas, Command, Flag, ModeSpec, retell
from nstpipe.modes.model import encoder, engine_config

if TYPE_CHECKING:
    import numpy as np

    from nstpipe.engine.stylize import Result
    from nstpipe.engine.visualize import Visualizer


def painter(settings: Settings, styles: Sequence[Path]) -> Visualizer:
    """VGG19 cut after the layer shown."""
    from nstpipe.engine.device import resolve_device
    from nstpipe.engine.visualize import Visualizer

    device = resolve_device(settings.device)
    shown = settings.visualize
    model = encoder(settings, (shown.visualize_layer,), device=device)
    jitter = (shown.visualize_jitter, shown.visualize_scale, shown.visualize_degrees)
    return Visualizer(model, shown.visualize_layer, shown.visualize_channels, engine_config(settings, device), device, jitter)


def default_output(styles: Sequence[Path], settings: Settings) -> Path:
    """``relu4_1-7.png`` for one channel, ``relu4_1-0-15.png`` for a range, in the current folder."""
    shown = settings.visualize
    channels = shown.visualize_channels
    span = f"{channels[0]}" if len(channels) == 1 else f"{channels[0]}-{channels[-1]}"
    return Path(f"{shown.visualize_layer}-{span}.png")


def outputs(output: Path, settings: Settings) -> list[tuple[Path, dict[str, Any]]]:
    return [(output, {})]


def size(settings: Settings) -> tuple[int, int, int]:
    return settings.size, settings.size, len(settings.visualize.visualize_channels)


def finish(result: Result, settings: Settings, seconds: float) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """The picture for one channel; a contact sheet labelled by channel for several."""
    from nstpipe.engine.tensors import to_rgb8
    from nstpipe.media.sheet import contact_sheet

    channels = settings.visualize.visualize_channels
    made = [to_rgb8(result.image[k]) for k in range(len(channels))]
    picture = made[0] if len(made) == 1 else contact_sheet(made, [str(c) for c in channels])
    outcome = {"iterations": result.iterations, "seconds": round(seconds, 3), "losses": list(result.item_losses)}
    return [(picture, {"result": outcome, "layer": settings.visualize.visualize_layer, "channels": list(channels)})]


def derive(options: Mapping[str, Any]) -> dict[str, Any]:
    """The setting's text, "K" or "A-B", from --channel K or --channels A-B (one of them)."""
    channel, channels = options.get("channel"), options.get("channels")
    if (channel is None) == (channels is None):
        raise ConfigError("give one channel (--channel K) or a range of channels (--channels A-B)", "visualize_channels")
    return {"visualize_channels": str(channel) if channels is None else channels}


SPEC = ModeSpec(
    name="visualize",
    preset="visualize",
    commands=(
        Command(
            "visualize",
            "Feature visualization: a picture that drives up one channel of a VGG19 layer, from noise;\n"
            "a range of channels gives one contact sheet labelled by channel.",
            frozenset({NONE}),
            None,
            retell("output", help="Output image; its suffix decides the format.", shown="LAYER-K.png or LAYER-A-B.png here"),
        ),
    ),
    flags=(
        "size",
        ITERATIONS_OF_A_PICTURE,
        retell("preset", help="Preset from configs/ (visualize; or another)."),
        "config", "device", "seed", "tv_weight", "optimizer", "learning_rate", "pooling", "weights", "scales",
        retell("layer", kind=Optional[str], help="VGG19 layer whose channel to show, e.g. relu3_1, relu4_1.", setting="visualize_layer"),
        retell("channel", kind=Optional[int], help="The channel to show: one picture.", shown="none; this or --channels",
               setting="visualize_channels", direct=False),
        Flag("channels", ("--channels",), Optional[str], "A range A-B of channels: one labelled contact sheet, one tile each.",
             "visualize_channels", "none; this or --channel", direct=False),
        retell("jitter", setting="visualize_jitter"),
        Flag("visualize_scale", ("--jitter-scale",), Optional[float], "Random scaling at each step by 1 +- this; 0 to below 1.",
             "visualize_scale", "0"),
        Flag("visualize_degrees", ("--jitter-degrees",), Optional[float], "Random turn at each step by +- this many degrees.",
             "visualize_degrees", "0"),
    ),
    painter=painter,
    styles="none",
    section=VisualizeConfig,
    derive=derive,
    canvas=Canvas(default_output, outputs, size, finish),
)
