"""DeepDream (Mordvintsev et al. 2015): a photo, a folder or a video climbed along VGG19's activations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

from nstpipe.config import DreamConfig, Settings
from nstpipe.modes.base import FOLDER, PICTURE, VIDEO, Command, Flag, ModeSpec, retell
from nstpipe.modes.model import encoder, engine_config, pictures

if TYPE_CHECKING:
    from nstpipe.engine.dream import Dreamer


def painter(settings: Settings, guides: Sequence[Path] = ()) -> Dreamer:
    """VGG19 cut after the deepest layer climbed; ``guides``: none or one."""
    from nstpipe.engine.device import resolve_device
    from nstpipe.engine.dream import Dreamer

    device = resolve_device(settings.device)
    shown = settings.dream
    model = encoder(settings, shown.dream_layers, device=device)
    guide = pictures(settings, guides[:1])[0] if guides else None
    engine = engine_config(settings, device)
    return Dreamer(model, shown.dream_layers, engine, device, shown.dream_channels, guide, shown.octave_scale, shown.dream_jitter)


def tag(guides: Sequence[Path]) -> str:
    """``dream``, or ``dream-clouds`` for a dream guided by ``clouds.jpg``."""
    return "-".join(["dream", *(path.stem for path in guides)])


def derive(options: Mapping[str, Any]) -> dict[str, Any]:
    """-n is every octave's budget, the finest's and the coarser ones' alike."""
    return {"coarse_iterations": options.get("iterations")}


SPEC = ModeSpec(
    name="dream",
    preset="dream",
    commands=(
        Command(
            "dream",
            "DeepDream (Mordvintsev et al. 2015): climb VGG19's activations from a photo, over octaves.\n\n"
            "A folder is dreamed as `images` paints it (resumable), a video as `video` does: each\n"
            "frame starts from the previous dream warped along the optical flow.",
            frozenset({PICTURE, FOLDER, VIDEO}),
            Flag("source", (), Path, "A photo, a folder of photos (searched recursively) or a video."),
            retell(
                "output", help="Output image, folder or video, as for `image`, `images` and `video`.",
                shown="NAME.dream.SUFFIX beside the input (NAME.dream-GUIDE with --guide)",
            ),
        ),
    ),
    flags=(
        retell("size", help="Long side of the output in pixels (of the painted frames, for a video)."),
        retell("preset", help="Preset from configs/ (dream; or another)."),
        "config", "device",
        retell("seed", help="Seed of the random jitter."),
        "optimizer",
        retell("learning_rate", help="Step size: the mean change of a pixel per step, in [0, 1] units (the notebook's 1.5 of 255 "
               "is 0.00588)."),
        "pooling", "weights", "max_pixels", "max_size", "max_memory",
        retell("style_loss", help="With --guide: gram (the notebook's guide term) and the distribution terms towards the guide's "
               "features, with their shares, e.g. gram:1,sliced:1.", shown="gram"),
        retell("style_weight", help="With --guide: the weight of the distribution terms of --style-loss.", shown="1.0"),
        retell("layer", help="VGG19 layer whose activations to climb; repeat for several.", setting="dream_layers"),
        retell("channel", help="Climb only this channel of the layers; repeat for several.", shown="all channels",
               setting="dream_channels"),
        Flag("octaves", ("--octaves",), Optional[int], "Octaves: sizes climbed from coarse to fine.", "scales", limits={"min": 1}),
        Flag("octave_scale", ("--octave-scale",), Optional[float], "Each octave's size over the next coarser one's; above 1.",
             "octave_scale"),
        retell("iterations", help="Steps in each octave (a video's later frames: --later-iterations).", shown=None, limits={"min": 0}),
        retell("jitter", setting="dream_jitter"),
        Flag("guide", ("--guide",), Optional[Path],
             "Grow what this picture shows: climb the match to its features rather than the raw activations.", shown="none"),
        "workers", "address", "verbose", "batch", "retry_failed",
        "temporal", "later_iterations", "first_budget", "temporal_weight", "temporal_gaps", "temporal_hold", "passes", "pass_iterations",
        "pass_blend", "temporal_blend", "hold_still", "crf", "work_dir", "frames",
        "keep_frames",
    ),
    painter=painter,
    styles="guide",
    style_flag="guide",
    section=DreamConfig,
    tag=tag,
    derive=derive,
)
