"""Texture synthesis (Gatys et al. 2015): a painting's texture from noise, no photo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Mapping, Optional, Sequence

from nstpipe.config import Settings, TextureConfig, texture_size
from nstpipe.errors import ConfigError, InputError
from nstpipe.modes.base import ITERATIONS_OF_A_PICTURE, NONE, Canvas, Command, Flag, ModeSpec, retell
from nstpipe.modes.model import encoder, engine_config, pictures

if TYPE_CHECKING:
    import numpy as np

    from nstpipe.engine.stylize import Result
    from nstpipe.engine.texture import Texturer


def painter(settings: Settings, styles: Sequence[Path]) -> Texturer:
    """VGG19 cut after the deepest style layer, and the paintings."""
    from nstpipe.engine.device import resolve_device
    from nstpipe.engine.modes import texture
    from nstpipe.engine.texture import Texturer

    device = resolve_device(settings.device)
    engine = engine_config(settings, device)
    model = encoder(settings, texture(engine).layers, device=device)
    return Texturer(model, pictures(settings, styles), engine, device, settings.texture.tileable)


def default_output(styles: Sequence[Path], settings: Settings) -> Path:
    """``starry.texture.png`` beside the (first) painting ``starry.jpg``."""
    if not styles:
        raise InputError("STYLE", "at least one painting is needed")
    return styles[0].with_name(f"{styles[0].stem}.texture.png")


def outputs(output: Path, settings: Settings) -> list[tuple[Path, dict[str, Any]]]:
    """The file of each variation: ``output`` for one; ``OUT-0.png``, ``OUT-1.png``... for several."""
    count = settings.texture.texture_count
    if count == 1:
        return [(output, {"variation": 0})]
    return [(output.with_name(f"{output.stem}-{k}{output.suffix}"), {"variation": k}) for k in range(count)]


def size(settings: Settings) -> tuple[int, int, int]:
    return (*texture_size(settings), settings.texture.texture_count)


def finish(result: Result, settings: Settings, seconds: float) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Each variation k with its own loss; its record says its seed (seed + k)."""
    from nstpipe.engine.tensors import to_rgb8

    made = []
    for k in range(settings.texture.texture_count):
        outcome = {"iterations": result.iterations, "seconds": round(seconds, 3), "loss": result.item_losses[k]}
        made.append((to_rgb8(result.image[k]), {"result": outcome, "seed": settings.engine.seed + k}))
    return made


def derive(options: Mapping[str, Any]) -> dict[str, Any]:
    """--size makes a square; --width and --height a rectangle, and then --size has no say."""
    # A width and height of 0 are the square of --size, as their help says.
    if options.get("size") is not None and (options.get("texture_width") or options.get("texture_height")):
        raise ConfigError("--size does not apply with --width and --height (they give the texture's size): give one or the other")
    return {}


SPEC = ModeSpec(
    name="texture",
    preset="texture",
    commands=(
        Command(
            "texture",
            "Texture synthesis (Gatys et al. 2015): a painting's texture from noise, no photo.",
            frozenset({NONE}),
            None,
            retell(
                "output", help="Output image; its suffix decides the format. With --count N: OUT-0.png ... OUT-{N-1}.png.",
                shown="PAINTING.texture.png beside the first painting",
            ),
            (Flag("styles", (), List[Path], "The painting(s); several are blended (--style-weights)."),),
        ),
    ),
    flags=(
        "size",
        ITERATIONS_OF_A_PICTURE,
        retell("preset", help="Preset from configs/ (texture; or fast, default, quality)."),
        "config", "device", "seed", "style_weights", "style_scale", "style_weight", "style_loss", "tv_weight", "optimizer",
        "learning_rate", "pooling", "weights", "scales", "style_layers", "max_pixels",
        Flag("texture_count", ("--count",), Optional[int], "Variations to make, picture k from seed + k, optimized together in one batch.",
             "texture_count"),
        Flag("texture_width", ("--width",), Optional[int],
             "Width in pixels, with --height (a rectangle); without them, a square of --size.", "texture_width", "--size"),
        Flag("texture_height", ("--height",), Optional[int], "Height in pixels, with --width.", "texture_height", "--size"),
        Flag("tileable", ("--tileable/--no-tileable",), Optional[bool],
             "Wrap around, so that tiles of the texture meet without a seam; the size is rounded to a multiple of 32 "
             "(16 for VGG19's pooling, times 2 for each coarser level).", "tileable", "off"),
    ),
    painter=painter,
    style_flag="styles",
    section=TextureConfig,
    derive=derive,
    canvas=Canvas(default_output, outputs, size, finish),
)
