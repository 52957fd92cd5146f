"""A run drawn as a Gantt chart with matplotlib (`pip install dagwire[plot]`), to PNG or SVG.

matplotlib is imported when a chart is drawn, never when dagwire is. The chart is drawn on a
`matplotlib.figure.Figure` with the Agg canvas, without pyplot: no figure, backend or style is
left registered anywhere once `plot` returns.
"""

# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false
# (matplotlib's own annotations leave the **kwargs of its drawing methods and rc_context untyped)

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..results import NodeTiming
from .timeline import Bar, bars

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["FORMATS", "plot", "rows"]

FORMATS = {".png": "png", ".svg": "svg"}

# Legend entries in order: (label, fill colour), and which outcomes each one stands for.
_LEGEND = (
    ("succeeded", "#4c9f70", ("succeeded", "ok")),
    ("cached / resumed", "#9ccfb0", ("cached", "resumed")),
    ("failed, retried", "#f0a030", ("retrying",)),
    ("failed, fallback used", "#9b6fc3", ("recovered",)),
    ("failed", "#d64545", ("failed",)),
    ("cancelled", "#9e9e9e", ("cancelled",)),
)
_COLORS = {outcome: color for _, color, outcomes in _LEGEND for outcome in outcomes}
_OTHER = ("other", "#6b8fb5")  # a whole-node bar of any other status (e.g. skipped)
_HATCH = "////"


def rows(timings: Sequence[NodeTiming]) -> list[tuple[str, list[Bar]]]:
    """One row per node that started, in start order: its attempts, then its cleanups."""
    ordered = sorted(timings, key=lambda t: t.start)
    return [(t.node, bars(t)) for t in ordered]


def _plain(text: str) -> str:
    # matplotlib reads text between two `$` as math; a node name is plain text.
    return text.replace("$", r"\$")


def _format_of(path: str | os.PathLike[str]) -> str:
    suffix = Path(path).suffix
    fmt = FORMATS.get(suffix.lower())
    if fmt is None:
        raise ValueError(
            f"plot_gantt({os.fspath(path)!r}): the file name must end in .png or .svg "
            f"(got {suffix or 'no suffix'!r})"
        )
    return fmt


def _draw_bars(ax: Axes, table: list[tuple[str, list[Bar]]], scale: float, sliver: float) -> None:
    for y, (_, row_bars) in enumerate(table):
        for b in row_bars:
            color = _COLORS.get(b.outcome, _OTHER[1])
            cleanup = b.what == "cleanup"
            ax.barh(
                y,
                max((b.end - b.start) * scale, sliver),
                left=b.start * scale,
                height=0.45 if cleanup else 0.7,
                color="white" if cleanup else color,
                edgecolor=color if cleanup else "black",
                linewidth=0.6,
                hatch=_HATCH if cleanup else None,
            )


def _legend(ax: Axes, table: list[tuple[str, list[Bar]]]) -> None:
    from matplotlib.patches import Patch

    used = {b.outcome for _, bs in table for b in bs}
    entries = [(label, color) for label, color, outcomes in _LEGEND if used & set(outcomes)]
    if used - set(_COLORS):
        entries.append(_OTHER)
    handles = [Patch(facecolor=c, edgecolor="black", linewidth=0.6, label=k) for k, c in entries]
    if any(b.what == "cleanup" for _, bs in table for b in bs):
        handles.append(Patch(facecolor="white", edgecolor="#555555", hatch=_HATCH, label="cleanup"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")


def plot(dag_name: str, timings: Sequence[NodeTiming], path: str | os.PathLike[str]) -> None:
    """Draw the run's timeline to `path`; the suffix (``.png`` or ``.svg``) picks the format.

    One row per node in start order; each attempt is a bar coloured by its outcome (green
    succeeded, orange failed and retried, purple failed with a fallback used, red failed, grey
    cancelled), each cleanup a hatched bar in the same colours (red when it failed); the x axis
    is milliseconds since the run started (seconds for runs of a second or more). Bars too
    short to see are widened to a sliver. SVG text stays text. Raises `ValueError` for another
    suffix, `ImportError` naming the extra when matplotlib is missing.
    """
    fmt = _format_of(path)
    try:
        from matplotlib import rc_context
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plot_gantt() needs matplotlib: pip install dagwire[plot] (or pip install matplotlib)"
        ) from exc
    table = rows(timings)
    span = max((b.end for _, bs in table for b in bs), default=0.0)
    scale, unit = (1000.0, "ms") if span < 1 else (1.0, "s")
    width = span * scale or 1.0

    fig = Figure(figsize=(10, 1.4 + 0.4 * max(len(table), 1)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _draw_bars(ax, table, scale, sliver=width / 400)
    ax.set_yticks(range(len(table)), [_plain(name) for name, _ in table])
    ax.set_ylim(max(len(table), 1) - 0.5, -0.5)  # the first node on top
    ax.set_xlim(0, width * 1.02)
    ax.set_xlabel(f"{'milliseconds' if unit == 'ms' else 'seconds'} since the run started")
    ax.set_title(_plain(f"{dag_name}: {len(table)} nodes, {span * scale:.4g} {unit}"))
    ax.grid(axis="x", linestyle=":", linewidth=0.6)
    ax.set_axisbelow(True)
    if not table:
        ax.text(0.5, 0.5, "no node ran", transform=ax.transAxes, ha="center", va="center")
    _legend(ax, table)
    # Text stays text in SVG (searchable, readable by tests), ids are stable; the rc change is
    # undone when the block ends.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "dagwire"}):
        fig.savefig(path, format=fmt, dpi=120)
