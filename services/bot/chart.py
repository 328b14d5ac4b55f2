"""A PNG chart of one download's progress history (the tracker's "history" answer).

Rendering uses matplotlib's object API on the Agg backend: no pyplot global
state, so it is safe in a worker thread (`asyncio.to_thread`), which is where
the bot runs it so the event loop never waits on it.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import discord
import matplotlib

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

CHART_NAME = "history.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_UNITS = (("TB", 1024 ** 4), ("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024), ("B", 1))
_ACTIVITY_COLOURS = {"active": "#2e86de", "failed": "#c0392b", "attention": "#f39c12",
                     "unavailable": "#8e44ad", "idle": "#7f8c8d"}


def _unit(largest: float) -> tuple[str, float]:
    for name, size in _UNITS:
        if largest >= size:
            return name, float(size)
    return "B", 1.0


def render_history_png(history: dict[str, Any]) -> bytes:
    """Downloaded bytes (steps) and progress over time, coloured by activity; PNG bytes."""
    points = sorted(history.get("points") or [], key=lambda point: point["t"])
    times = [datetime.fromtimestamp(point["t"], timezone.utc) for point in points]
    unit, scale = _unit(max((point["bytes"] for point in points), default=0))
    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    title = history.get("title") or history.get("download_id") or "download"
    axes.set_title(title if len(title) <= 90 else title[:89] + "…", fontsize=10)
    if points:
        downloaded = [point["bytes"] / scale for point in points]
        axes.step(times, downloaded, where="post", color="#2e86de", linewidth=1.8, label=f"downloaded ({unit})")
        for activity, colour in _ACTIVITY_COLOURS.items():
            chosen = [(t, b) for t, b, p in zip(times, downloaded, points) if p.get("activity") == activity]
            if chosen:
                axes.scatter([t for t, _ in chosen], [b for _, b in chosen], color=colour, s=16, zorder=3,
                             label=activity)
        progress_axes = axes.twinx()
        progress_axes.step(times, [point["progress"] for point in points], where="post", color="#27ae60",
                           linewidth=1.0, linestyle="--", label="progress (%)")
        progress_axes.set_ylim(0, 100)
        progress_axes.set_ylabel("progress (%)")
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
        handles, labels = axes.get_legend_handles_labels()
        more_handles, more_labels = progress_axes.get_legend_handles_labels()
        axes.legend(handles + more_handles, labels + more_labels, loc="upper left", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no history recorded yet", ha="center", va="center", transform=axes.transAxes)
    axes.set_ylabel(f"downloaded ({unit})")
    reason = history.get("reason")  # what it is now: "unpacking for 12 min (nzbget)", a health, a stall
    axes.set_xlabel(f"time (UTC) · now: {reason if len(reason) <= 100 else reason[:99] + '…'}" if reason
                    else "time (UTC)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def history_file(png: bytes, filename: str = CHART_NAME) -> discord.File:
    return discord.File(io.BytesIO(png), filename=filename)
