"""The E_warp-over-time chart of ``nstpipe metrics --plot``, drawn with matplotlib."""

from __future__ import annotations

import io
from pathlib import Path

from pipeline.engine.metrics import VideoMetrics
from pipeline.errors import InputError
from pipeline.media.writer import atomic_write_bytes

PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def plot_format(path: Path) -> str:
    """The matplotlib format the suffix of ``path`` names; any other suffix is refused."""
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        said = f"the suffix {path.suffix!r} names no chart format nstpipe writes" if path.suffix else "no suffix to name the chart format"
        raise InputError(path, f"{said}; name it {', '.join(PLOT_FORMATS)}")
    return fmt


def plot_warping_error(metrics: VideoMetrics, path: Path, title: str = "") -> None:
    """Stylized and source E_warp per frame as lines; written atomically, in the format
    the suffix names (see :func:`plot_format`)."""
    fmt = plot_format(path)
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    frames = [f for f in metrics.frames if f.warping_error is not None]
    # A missing value is a gap in the line, as matplotlib draws NaN.
    nan = float("nan")
    index = [f.index for f in frames]
    stylized = [nan if f.warping_error is None else f.warping_error for f in frames]
    source = [nan if f.source_warping_error is None else f.source_warping_error for f in frames]
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    try:
        ax.plot(index, stylized, label="stylized")
        ax.plot(index, source, label="source", linestyle="--")
        ax.set_xlabel("frame")
        ax.set_ylabel("E_warp")
        ax.set_title(title or "warping error per frame (lower is steadier)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
