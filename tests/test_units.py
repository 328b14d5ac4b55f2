"""Human-readable durations, as the tracker's reasons and the bot show them."""
import pytest

from common.units import human_duration


@pytest.mark.parametrize("minutes, text", [
    (0, "0 s"), (0.75, "45 s"), (59.4 / 60, "59 s"),      # seconds
    (59.6 / 60, "1 min"), (1, "1 min"), (59, "59 min"),   # minutes: never "60 s"
    (60, "1 h"), (125, "2 h 5 min"), (120, "2 h"),        # hours and minutes, no "0 min"
    (23 * 60 + 59, "23 h 59 min"), (1439.6, "1 d"),       # never "24 h" nor "23 h 60 min"
    (1440, "1 d"), (28 * 60, "1 d 4 h"), (47 * 60, "1 d 23 h"),
    (48 * 60, "2 days"), (3 * 1440 + 4 * 60, "3 days"), (24 * 1440, "24 days"),  # whole days from 2 on
])
def test_human_duration(minutes, text):
    assert human_duration(minutes) == text


def test_human_duration_of_nothing_or_never():
    assert human_duration(-5) == "0 s"
    assert human_duration(float("inf")) == "forever"
