"""Human-readable sizes and durations, the same in the tracker's reasons and on the board."""
from __future__ import annotations


def human_size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def human_duration(minutes: float) -> str:
    if minutes >= 2880:
        return f"{minutes / 1440:.1f} d"
    if minutes >= 90:
        return f"{minutes / 60:.1f} h"
    if minutes >= 1:
        return f"{minutes:.0f} min"
    return f"{minutes * 60:.0f} s"
