"""The ``nstpipe`` command line: a thin typer app over the ``pipeline`` package.

Only this module prints. torch and the engine are imported inside the commands, so
``nstpipe --help`` answers at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

import typer
from typing_extensions import Annotated

from pipeline.config import COLOR_MODES, OPTIMIZERS, POOLINGS, PRESET_DEFAULT, TEMPORAL_MODES, Settings, build_settings
from pipeline.errors import NstpipeError

app = typer.Typer(
    name="nstpipe",
    help="Paint photos, photo archives and videos in the style of a painting (Gatys et al. neural style transfer).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_FAILED_INPUTS = 1
EXIT_USAGE = 2

# -- options shared by the commands ----------------------------------------------------------

StyleOpt = Annotated[List[Path], typer.Option("--style", "-s", help="Style image; repeat to blend several.", show_default=False)]
SizeOpt = Annotated[Optional[int], typer.Option("--size", help="Long side of the output in pixels.", show_default=False)]
ItersOpt = Annotated[Optional[int], typer.Option("--iterations", "-n", help="Optimizer iterations at the final scale.", show_default=False)]
PresetOpt = Annotated[str, typer.Option("--preset", help="Preset from configs/: fast, default, quality.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="TOML file of settings; flags override it.", show_default=False)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:1, mps.", show_default=False)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed for noise init.", show_default=False)]
BlendOpt = Annotated[Optional[str], typer.Option("--style-weights", help="Blend weights for several --style images, e.g. 0.7,0.3.", show_default=False)]
StyleScaleOpt = Annotated[Optional[float], typer.Option("--style-scale", help="Style image long side as a multiple of the output's.", show_default=False)]
ColorOpt = Annotated[Optional[str], typer.Option("--preserve-color", help=f"Keep the photo's colours: {', '.join(COLOR_MODES)}.", show_default=False)]
ContentWOpt = Annotated[Optional[float], typer.Option("--content-weight", help="Weight of the content loss.", show_default=False)]
StyleWOpt = Annotated[Optional[float], typer.Option("--style-weight", help="Weight of the style loss.", show_default=False)]
TvOpt = Annotated[Optional[float], typer.Option("--tv-weight", help="Weight of the total-variation loss.", show_default=False)]
OptimOpt = Annotated[Optional[str], typer.Option("--optimizer", help=f"{' or '.join(OPTIMIZERS)}.", show_default=False)]
LrOpt = Annotated[Optional[float], typer.Option("--learning-rate", help="Adam step size (pixels in [0, 1]).", show_default=False)]
InitOpt = Annotated[Optional[str], typer.Option("--init", help="content, noise, or an image file.", show_default=False)]
PoolOpt = Annotated[Optional[str], typer.Option("--pooling", help=f"{' or '.join(POOLINGS)}.", show_default=False)]
WeightsOpt = Annotated[Optional[str], typer.Option("--weights", help="VGG19 weights: embedded, torchvision, or a file.", show_default=False)]
ScalesOpt = Annotated[Optional[int], typer.Option("--scales", help="Levels of the coarse-to-fine pyramid.", show_default=False)]
ContentLayerOpt = Annotated[Optional[str], typer.Option("--content-layer", help="VGG19 layer of the content loss.", show_default=False)]
StyleLayersOpt = Annotated[Optional[str], typer.Option("--style-layers", help="Comma-separated VGG19 layers of the style loss.", show_default=False)]
MaxPixelsOpt = Annotated[Optional[int], typer.Option("--max-pixels", help="Refuse images with more pixels, unread (decompression bombs); 0: no limit [default: 89478485].", min=0, show_default=False)]
TemporalOpt = Annotated[
    Optional[str],
    typer.Option("--temporal", help=f"{', '.join(TEMPORAL_MODES)}: start each frame from the previous one warped along the optical flow (with a temporal loss), unwarped, or not at all.", show_default=False),
]
LaterItersOpt = Annotated[Optional[int], typer.Option("--later-iterations", help="Iteration budget of every frame after the first (flow, prev).", show_default=False)]
TemporalWOpt = Annotated[Optional[float], typer.Option("--temporal-weight", help="Weight of the temporal loss (flow).", show_default=False)]
CrfOpt = Annotated[Optional[int], typer.Option("--crf", help="H.264 quality, 0 (lossless) to 51; 18 is visually lossless.", show_default=False)]
WorkDirOpt = Annotated[Optional[Path], typer.Option("--work-dir", help="Folder for finished frames and the manifest [default: OUTPUT.nstpipe-work].", show_default=False)]
FramesOpt = Annotated[Optional[int], typer.Option("--frames", help="Stylize only the first N frames (a preview).", min=1, show_default=False)]
KeepFramesOpt = Annotated[bool, typer.Option("--keep-frames", help="Keep the stylized frames (PNG) after the video is written.")]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help="Parallel workers [default: one per GPU, else 1]; more than one runs on Ray.", min=1, show_default=False)]
BatchOpt = Annotated[
    Optional[int],
    typer.Option("--batch", help="Images of one size optimized together on a GPU; 0: as many as its memory holds, 1 on CPU and MPS [default: 0].", min=0, show_default=False),
]
VideoBatchOpt = Annotated[
    Optional[int],
    typer.Option("--batch", help="Chains of frames each worker paints in step on a GPU (a long video is cut into that many more chains); 0: as many as its memory holds, 1 on CPU and MPS [default: 0].", min=0, show_default=False),
]
AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Join this Ray cluster (or 'auto'); default: $RAY_ADDRESS, else a private local instance.", show_default=False)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


# Flags that map one-to-one onto settings keys (see pipeline.config); unset ones are None.
_SETTING_FLAGS = (
    "size", "iterations", "device", "seed", "style_scale", "preserve_color", "content_weight", "style_weight",
    "tv_weight", "optimizer", "learning_rate", "init", "pooling", "weights", "scales", "content_layer", "style_layers",
    "max_pixels",
)

_VIDEO_FLAGS = ("temporal", "later_iterations", "temporal_weight", "crf")
_FOLDER_FLAGS = ("batch",)


def _settings(flags: dict[str, Any]) -> Settings:
    """Preset < --config file < flags (the command's options; unset ones are None)."""
    overrides = {key: flags[key] for key in _SETTING_FLAGS}
    overrides["style_blend"] = flags["style_weights"]
    for key in (*_VIDEO_FLAGS, *_FOLDER_FLAGS):
        overrides[key] = flags.get(key)
    return build_settings(flags["preset"], flags["config"], overrides)


@contextlib.contextmanager
def _user_errors(debug: bool) -> Iterator[None]:
    """Project errors become one line on stderr and exit status 2; --debug keeps the traceback."""
    try:
        yield
    except NstpipeError as exc:
        if debug:
            raise
        typer.echo(f"nstpipe: error: {exc}", err=True)
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


def _common_options(
    size: SizeOpt = None,
    iterations: ItersOpt = None,
    preset: PresetOpt = PRESET_DEFAULT,
    config: ConfigOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    style_weights: BlendOpt = None,
    style_scale: StyleScaleOpt = None,
    preserve_color: ColorOpt = None,
    content_weight: ContentWOpt = None,
    style_weight: StyleWOpt = None,
    tv_weight: TvOpt = None,
    optimizer: OptimOpt = None,
    learning_rate: LrOpt = None,
    init: InitOpt = None,
    pooling: PoolOpt = None,
    weights: WeightsOpt = None,
    scales: ScalesOpt = None,
    content_layer: ContentLayerOpt = None,
    style_layers: StyleLayersOpt = None,
    max_pixels: MaxPixelsOpt = None,
    debug: DebugOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Never called: its signature declares the options every stylizing command takes."""


def _with_common_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command(positional..., **options)`` the parameters of :func:`_common_options`.

    typer builds a command's options from its signature, so the shared options are
    declared once and appended to each command's own parameters.
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
    shared = inspect.signature(_common_options, eval_str=True).parameters.values()
    command.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    return command


@app.command()
@_with_common_options
def image(
    content: Annotated[Path, typer.Argument(help="The photo to paint.", show_default=False)],
    style: StyleOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image (.png, .jpg, .webp).", show_default=False)],
    **options: Any,
) -> None:
    """Stylize one image."""
    with _user_errors(options["debug"]):
        settings = _settings(options)
        from pipeline.app import stylize_one

        with _reporter(options["quiet"]) as report:
            stylize_one(content, style, output, settings, report)
        typer.echo(f"wrote {output}")


@app.command()
@_with_common_options
def images(
    folder: Annotated[Path, typer.Argument(help="Folder of images, searched recursively.", show_default=False)],
    style: StyleOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder; the input layout is mirrored, as PNG.", show_default=False)],
    workers: WorkersOpt = None,
    address: AddressOpt = None,
    batch: BatchOpt = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again the inputs that failed in an earlier run (they are skipped otherwise).")] = False,
    **options: Any,
) -> None:
    """Stylize every image under FOLDER; rerun to resume (finished outputs are skipped)."""
    with _user_errors(options["debug"]):
        settings = _settings({**options, "batch": batch})
        from pipeline.app import open_executor, stylize_folder

        with _reporter(options["quiet"]) as report, open_executor(workers, address) as executor:
            outcome = stylize_folder(folder, style, output, settings, report, executor, retry_failed)
        for skipped in outcome.failed_before:
            typer.echo(f"nstpipe: failed in an earlier run: {skipped.failed}", err=True)
        for failure in outcome.failed:
            typer.echo(f"nstpipe: failed: {failure.error}", err=True)
        earlier = f" (+{len(outcome.failed_before)} in an earlier run; --retry-failed tries them again)" if outcome.failed_before else ""
        typer.echo(
            f"{outcome.done} stylized, {outcome.skipped} already done, {len(outcome.failed)} failed{earlier}; outputs in {output}"
        )
        if outcome.failed or outcome.failed_before:
            raise typer.Exit(EXIT_FAILED_INPUTS)


@app.command()
@_with_common_options
def video(
    sources: Annotated[List[Path], typer.Argument(help="The video(s) to paint, or folders of videos.", show_default=False)],
    style: StyleOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output video (.mp4, H.264); a folder for several inputs.", show_default=False)],
    temporal: TemporalOpt = None,
    later_iterations: LaterItersOpt = None,
    temporal_weight: TemporalWOpt = None,
    crf: CrfOpt = None,
    work_dir: WorkDirOpt = None,
    frames: FramesOpt = None,
    keep_frames: KeepFramesOpt = False,
    workers: WorkersOpt = None,
    batch: VideoBatchOpt = None,
    address: AddressOpt = None,
    **options: Any,
) -> None:
    """Stylize videos frame by frame, stable over time; rerun to resume after an interruption."""
    with _user_errors(options["debug"]):
        flags = {**options, "temporal": temporal, "later_iterations": later_iterations, "temporal_weight": temporal_weight, "crf": crf, "batch": batch}
        settings = _settings(flags)
        from pipeline.app import open_executor, stylize_video
        from pipeline.errors import InputError
        from pipeline.jobs.plan import plan_videos

        single = len(sources) == 1 and not sources[0].is_dir()
        jobs = [(sources[0], output)] if single else plan_videos(sources, output)
        failed = 0
        with _reporter(options["quiet"]) as report, open_executor(workers, address) as executor:
            for source, target in jobs:
                try:
                    summary = stylize_video(source, style, target, settings, report, work_dir, frames, keep_frames, executor)
                except InputError as exc:
                    if single:
                        raise
                    failed += 1
                    typer.echo(f"nstpipe: failed: {exc}", err=True)
                    continue
                resumed = summary.frames - summary.stylized
                typer.echo(f"wrote {target}: {summary.frames} frames ({resumed} from an earlier run), {summary.iterations} iterations")
        if failed:
            raise typer.Exit(EXIT_FAILED_INPUTS)


@app.command()
def metrics(
    source: Annotated[Path, typer.Argument(help="The original video.", show_default=False)],
    stylized: Annotated[Path, typer.Argument(help="Its stylized version.", show_default=False)],
    style: Annotated[Optional[Path], typer.Option("--style", "-s", help="The painting, for style distances.", show_default=False)] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the per-frame numbers here.", show_default=False)] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Draw E_warp over time into this PNG.", show_default=False)] = None,
    device: DeviceOpt = None,
    weights: WeightsOpt = None,
    debug: DebugOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Temporal stability (warping error E_warp, Lai et al. 2018) and per-frame content and style distances."""
    with _user_errors(debug):
        settings = build_settings(overrides={"device": device, "weights": weights})
        from pipeline.app import measure_video
        from pipeline.media.writer import atomic_write_json

        with _reporter(quiet) as report:
            result = measure_video(source, stylized, style, settings, report)
        summary = result.summary()
        for key, value in summary.items():
            shown = "-" if value is None else (f"{value:.6f}" if isinstance(value, float) else str(value))
            typer.echo(f"{key:<22}{shown:>12}")
        if json_path is not None:
            frames = [dataclasses.asdict(f) for f in result.frames]
            record = {"source": str(source), "stylized": str(stylized), "style": str(style) if style else None,
                      "width": result.width, "height": result.height, "summary": summary, "frames": frames}
            atomic_write_json(json_path, record)
        if plot is not None:
            from pipeline.media.plot import plot_warping_error

            plot_warping_error(result, plot, title=f"E_warp: {stylized.name}")


@app.command()
def presets() -> None:
    """List the presets and their settings."""
    from pipeline.config import preset_names, read_preset

    for name in preset_names():
        values = ", ".join(f"{k}={v}" for k, v in read_preset(name).items())
        typer.echo(f"{name}: {values}")


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
        from pipeline.events import JobPlanned, Progress, ScaleDone, Skipped, TaskStarted
        from pipeline.jobs.worker import TaskResult

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
        from pipeline.events import Encoding, FrameDone, FrameStarted, VideoPlanned

        if isinstance(event, VideoPlanned):
            self.files = self.progress.add_task("frames", total=event.frames, completed=event.done, rate="")
        elif isinstance(event, FrameStarted) and self.files is not None:
            self.progress.update(self.files, description=f"frame {event.index + 1}")
        elif isinstance(event, FrameDone) and self.files is not None:
            self.progress.advance(self.files)
        elif isinstance(event, Encoding) and self.files is not None:
            self.progress.update(self.files, description=f"encoding {event.frames} frames")


@contextlib.contextmanager
def _reporter(quiet: bool) -> Iterator[Any]:
    if quiet or not sys.stderr.isatty():
        yield lambda event: None
        return
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
