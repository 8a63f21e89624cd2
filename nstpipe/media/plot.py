"""The E_warp-over-time chart of ``nstpipe metrics --plot``, drawn with matplotlib.

The chart takes the measurements by their shape (:class:`WarpingSeries`, which the engine's
``VideoMetrics`` has), so drawing them needs no engine.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from nstpipe.errors import InputError
from nstpipe.media.writer import atomic_write_bytes

PLOT_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


class PairPoint(Protocol):
    """E_warp between frames ``first`` and ``first + gap`` of the stylized clip and of its source."""

    @property
    def first(self) -> int: ...

    @property
    def stylized(self) -> float: ...

    @property
    def source(self) -> float: ...


class WarpingSeries(Protocol):
    """Every frame pair measured, by gap, and the stylized clip's mean as a multiple of the
    source's at a gap (None without pairs, or when the source has none)."""

    @property
    def pairs(self) -> Mapping[int, Sequence[PairPoint]]: ...

    def ratio(self, gap: int) -> float | None: ...


def plot_format(path: Path) -> str:
    """The matplotlib format the suffix of ``path`` names; any other suffix is refused."""
    fmt = PLOT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        said = f"the suffix {path.suffix!r} names no chart format nstpipe writes" if path.suffix else "no suffix to name the chart format"
        raise InputError(path, f"{said}; name it {', '.join(PLOT_FORMATS)}")
    return fmt


def plot_warping_error(metrics: WarpingSeries, path: Path, title: str = "") -> None:
    """Stylized and source E_warp per frame pair as lines, one panel per gap, against the
    later frame of each pair; written atomically, in the format the suffix names (see
    :func:`plot_format`)."""
    fmt = plot_format(path)
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt

    gaps = sorted(metrics.pairs)
    fig, axes = plt.subplots(len(gaps), 1, figsize=(8, 1 + 2.75 * len(gaps)), dpi=100, sharex=True, squeeze=False)
    try:
        for gap, ax in zip(gaps, axes[:, 0]):
            pairs = metrics.pairs[gap]
            later = [p.first + gap for p in pairs]
            stylized, source = [p.stylized for p in pairs], [p.source for p in pairs]
            ax.plot(later, stylized, label="stylized")
            ax.plot(later, source, label="source", linestyle="--")
            # On a log scale a ratio is a fixed height, and a settling start stands out.
            if stylized and min(stylized + source) > 0:
                ax.set_yscale("log")
            ratio = metrics.ratio(gap)
            shown = f"{ratio:.2f} x the source's" if ratio is not None else "no pairs" if not pairs else "the source has none"
            ax.set_title(f"gap {gap}: {shown}", fontsize=10)
            ax.set_ylabel("E_warp")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        axes[-1, 0].set_xlabel("frame (the later of each pair)")
        fig.suptitle(title or "warping error per frame pair (lower is steadier)")
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt)
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
