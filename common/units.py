"""Human-readable sizes and durations, the same in the tracker's reasons and on the board."""
from __future__ import annotations

import math


def human_size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(count) < 1024 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _nearest(value: float) -> int:
    """Rounded half up (round() rounds 2.5 to 2)."""
    return math.floor(value + 0.5)


def human_duration(minutes: float) -> str:
    """A duration given in minutes, to the unit a person would say.

    "45 s" below a minute, "59 min" below an hour, "2 h 5 min" or "2 h" below a day,
    "1 d 4 h" or "1 d" below two days, then whole days: "24 days". Negative is "0 s", infinite "forever".
    """
    if math.isinf(minutes) and minutes > 0:
        return "forever"
    seconds = _nearest(max(0.0, minutes) * 60)
    if seconds < 60:
        return f"{seconds} s"
    whole_minutes = _nearest(minutes)
    if whole_minutes < 60:
        return f"{whole_minutes} min"
    if whole_minutes < 24 * 60:
        hours, rest = divmod(whole_minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    hours = _nearest(minutes / 60)
    if hours < 48:
        return f"1 d {hours - 24} h" if hours > 24 else "1 d"
    return f"{_nearest(minutes / 1440)} days"
