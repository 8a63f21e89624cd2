"""The frontier's summary (the target, the knee) and its picture (per painting, the four distances against wall time)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable, Sequence

from bench.measure import DISTANCES
from nstpipe.media.writer import atomic_write_bytes

TARGET = {"wall_over_pastiche": 0.5, "distance_over_reference": 0.8, "knee_loss_slack": 1.1}


# -- the summary -------------------------------------------------------------------------------------


def loss(row: dict[str, Any]) -> float:
    """The four distances, each over the reference's, summed: no one of them decides alone."""
    return sum(row[f"{key}_over_ref"] for key in DISTANCES)


def knee_pool(ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points that meet the target with a loss within the slack of the lowest loss of ``ours``."""
    if not ours:
        return []
    best = min(loss(r) for r in ours)
    return [r for r in ours if r["target_met"] and loss(r) <= TARGET["knee_loss_slack"] * best]


def cheapest(rows: Iterable[dict[str, Any]]) -> str | None:
    rows = list(rows)
    return min(rows, key=lambda r: r["wall_s"])["name"] if rows else None


def pair_summary(rows: list[dict[str, Any]], label: str, painting: str) -> dict[str, Any]:
    ours = [r for r in rows if r["arm"] == "ours" and r["precision"] == label and r["painting"] == painting]
    default = next((r for r in ours if r["kind"] == "preset" and r["name"] == "default"), None)
    check = None
    if default is not None:
        check = {key: default[key] for key in ("wall_s", "wall_over_pastiche", *(f"{k}_over_ref" for k in DISTANCES))}
        check["met"] = default["target_met"]
    return {"precision": label, "painting": painting, "default": check,
            "meets_target": [r["name"] for r in ours if r["target_met"]],
            "cheapest_meeting_target": cheapest(r for r in ours if r["target_met"]),
            "knee": cheapest(knee_pool(ours)), "knee_pool": [r["name"] for r in knee_pool(ours)]}


def summarize(rows: list[dict[str, Any]], labels: Sequence[str], paintings: Sequence[str]) -> dict[str, Any]:
    pairs = [pair_summary(rows, label, p) for label in labels for p in paintings]
    default_met, knees = {}, {}
    for label in labels:
        mine = [s for s in pairs if s["precision"] == label]
        default_met[label] = all(s["default"] and s["default"]["met"] for s in mine)
        common = set.intersection(*(set(s["knee_pool"]) for s in mine)) if mine else set()
        walls = {n: sum(r["wall_s"] for r in rows if r["arm"] == "ours" and r["precision"] == label and r["name"] == n)
                 for n in common}
        knees[label] = min(walls, key=walls.__getitem__) if walls else None
    return {"pairs": pairs, "default_meets_target_on_every_pair": default_met, "knee_over_all_paintings": knees}


# -- the plot ----------------------------------------------------------------------------------------


def plot(report: dict[str, Any], path: Path) -> None:
    """Per painting, the four distances against wall time; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, base, target = report["rows"], report["pastiche_base_steps"], report["target"]
    paintings = [p for p in report["styles"] if any(r["painting"] == p for r in rows)]
    if not paintings:
        return
    labels = [p["label"] for p in report["precisions"]]
    knees = {(s["precision"], s["painting"]): s["knee"] for s in report["summary"]["pairs"]}
    fig, axes = plt.subplots(len(paintings), len(DISTANCES), figsize=(6.5 * len(DISTANCES), 4.6 * len(paintings)), dpi=80,
                             squeeze=False)
    try:
        for i, painting in enumerate(paintings):
            for j, key in enumerate(DISTANCES):
                draw_panel(axes[i][j], [r for r in rows if r["painting"] == painting], key, labels, base, target,
                           {label: knees.get((label, painting)) for label in labels})
                axes[i][j].set_title(f"{painting}: {key} distance at {report['size']} px ({report['device']})")
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper center", ncol=min(len(names), 5), fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (4.6 * len(paintings))))
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def draw_panel(ax: Any, rows: list[dict[str, Any]], key: str, labels: Sequence[str], base: int, target: dict[str, float],
               knees: dict[str, str | None]) -> None:
    for c, label in enumerate(labels):
        colour = f"C{c}"
        ours = [r for r in rows if r["arm"] == "ours" and r["precision"] == label]
        points = [r for r in ours if r["kind"] == "point"]
        presets = [r for r in ours if r["kind"] == "preset"]
        ax.scatter([r["wall_s"] for r in points], [r[key] for r in points], color=colour, s=22, label=f"ours, {label}")
        for r in points:
            ax.annotate(r["name"], (r["wall_s"], r[key]), fontsize=6, color=colour, xytext=(3, 3), textcoords="offset points")
        ax.scatter([r["wall_s"] for r in presets], [r[key] for r in presets], color=colour, marker="*", s=150,
                   edgecolor="black", linewidth=0.5, label=f"presets, {label}")
        for r in presets:
            ax.annotate(r["name"], (r["wall_s"], r[key]), fontsize=8, fontweight="bold", color=colour, xytext=(5, -10),
                        textcoords="offset points")
        knee = next((r for r in ours if r["name"] == knees.get(label)), None)
        if knee is not None:
            ax.scatter([knee["wall_s"]], [knee[key]], s=260, facecolors="none", edgecolors=colour, linewidth=1.5,
                       label=f"knee, {label}")
    pastiche = sorted((r for r in rows if r["arm"] == "pastiche"), key=lambda r: r["iterations"])
    ax.plot([r["wall_s"] for r in pastiche], [r[key] for r in pastiche], "s-", color="dimgray", markersize=4, label="pastiche")
    for r in pastiche:
        ax.annotate(f"{r['iterations']}", (r["wall_s"], r[key]), fontsize=7, color="dimgray", xytext=(3, 4),
                    textcoords="offset points")
    half = next((r for r in rows if r["arm"] == "half"), None)
    if half is not None and half[key] is not None:
        ax.axhline(half[key], color="navy", linestyle="--", linewidth=1, label="half of the painting")
    ref = next((r for r in rows if r["arm"] == "reference"), None)
    if ref is not None:
        ax.axhline(ref[key], color="firebrick", linestyle="--", linewidth=1, label="reference")
        ax.axhline(target["distance_over_reference"] * ref[key], color="firebrick", linestyle=":", linewidth=1.2,
                   label=f"{target['distance_over_reference']} x reference")
    anchor = next((r for r in pastiche if r["iterations"] == base), None)
    if anchor is not None:
        ax.axvline(target["wall_over_pastiche"] * anchor["wall_s"], color="seagreen", linestyle="-.", linewidth=1,
                   label=f"{target['wall_over_pastiche']} x pastiche-{base} wall")
    ax.set_xlabel("wall s (start-up included)")
    ax.set_ylabel(f"{key} d (lower is closer)")
    ax.grid(alpha=0.3)


