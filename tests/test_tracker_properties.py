"""Properties of the tracker over random progress traces (hypothesis)."""
from hypothesis import given, settings
from hypothesis import strategies as st

from common.clock import ManualClock
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from tests.records import GB, MB, record, snapshot

MIN_BYTES = 100 * MB
THRESHOLD = 7200.0
SIZE = 10_000 * GB  # so big that only the bytes rule matters (1 point = 100 GB)

# One poll: seconds since the previous one, and bytes gained since.
polls = st.lists(
    st.tuples(st.floats(min_value=1, max_value=900),
              st.one_of(st.just(0), st.integers(0, 5 * MB), st.integers(0, 300 * MB))),
    min_size=1, max_size=400)


def replay(trace, max_points=50):
    clock = ManualClock()
    tracker = Tracker(DetectionConfig(threshold_s=THRESHOLD, min_bytes=MIN_BYTES, min_progress=1.0,
                                      max_points=max_points), clock)
    observed = []  # (time, bytes) of every poll
    downloaded = 0
    for gap, gained in trace:
        clock.advance(gap)
        downloaded += gained
        tracker.ingest(snapshot("sonarr", [record(1, "A", size=SIZE, downloaded=downloaded)]))
        observed.append((clock.now(), downloaded))
        yield clock.now(), observed, tracker


@settings(max_examples=200, deadline=None)
@given(polls)
def test_a_download_that_gained_min_size_change_within_the_threshold_is_never_stuck(trace):
    for now, observed, tracker in replay(trace):
        before = [b for t, b in observed if t <= now - THRESHOLD]
        if not before:
            continue  # not yet seen for a whole threshold
        gained = observed[-1][1] - before[-1]
        if gained >= MIN_BYTES:
            assert tracker.progress({})["stuck"] == [], (now, gained)


@settings(max_examples=200, deadline=None)
@given(polls, st.integers(2, 60))
def test_memory_per_download_never_exceeds_its_bound(trace, max_points):
    for _, _, tracker in replay(trace, max_points=max_points):
        history = tracker.downloads["sonarr"]["A"]
        assert len(history.points) <= max_points


@settings(max_examples=200, deadline=None)
@given(polls, st.floats(min_value=1, max_value=600))
def test_a_download_that_stops_is_stuck_one_threshold_later(trace, poll_gap):
    # Whatever came before, once it has not moved at all for a threshold, it is stuck.
    still = [(poll_gap, 0)] * (int(THRESHOLD // poll_gap) + 2)
    *_, (now, observed, tracker) = replay(trace + still)
    assert [item["download_id"] for item in tracker.progress({})["stuck"]] == ["A"]
