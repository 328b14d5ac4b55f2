"""Properties of the tracker over random progress traces (hypothesis).

Traces include gaps of up to days (a host that slept, a tracker that was down) and
figures that the *arr refreshes only every few polls, as real Sonarr and Radarr do.
"""
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from common.clock import ManualClock
from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from tests.records import GB, MB, record, snapshot

MIN_BYTES = 100 * MB
THRESHOLD = 7200.0
POLL = 30.0
GAP = 3 * POLL  # longer than this between two observations: time nobody saw
SIZE = 10_000 * GB  # so big that only the bytes rule matters (1 point = 100 GB)


def config(max_points=50):
    return DetectionConfig(threshold_s=THRESHOLD, min_bytes=MIN_BYTES, min_progress=1.0, max_points=max_points,
                           poll_s=POLL, refresh_s=2 * POLL)


intervals = st.one_of(st.floats(min_value=1, max_value=GAP), st.floats(min_value=1, max_value=900),
                      st.floats(min_value=GAP, max_value=3 * 86400))
gains = st.one_of(st.just(0), st.integers(0, 5 * MB), st.integers(0, 300 * MB))
# One poll: seconds since the previous one, bytes gained since, and whether the *arr refreshed its figures.
polls = st.lists(st.tuples(intervals, gains, st.booleans()), min_size=1, max_size=300)


def replay(trace, max_points=50):
    clock = ManualClock()
    tracker = Tracker(config(max_points), clock)
    observed = []  # (time, bytes shown) of every poll
    downloaded = shown = 0
    for gap, gained, refreshed in trace:
        clock.advance(gap)
        downloaded += gained
        if refreshed or not observed:
            shown = downloaded
        tracker.ingest(snapshot("sonarr", [record(1, "A", size=SIZE, downloaded=shown)]))
        observed.append((clock.now(), shown))
        yield clock.now(), observed, tracker


def bytes_one_observed_threshold_ago(observed):
    """The bytes shown at the newest observation at least THRESHOLD of observed time before the last one."""
    counted = 0.0
    for (then, shown), (later, _) in zip(reversed(observed[:-1]), reversed(observed[1:])):
        step = later - then
        counted += step if step <= GAP else 0.0
        if counted >= THRESHOLD:
            return shown
    return None


@settings(max_examples=200, deadline=None)
@given(polls)
def test_a_download_that_gained_min_size_change_within_the_observed_threshold_is_never_stuck(trace):
    for now, observed, tracker in replay(trace):
        before = bytes_one_observed_threshold_ago(observed)
        if before is not None and observed[-1][1] - before >= MIN_BYTES:
            assert tracker.progress({})["stuck"] == [], (now, observed[-1][1] - before)


@settings(max_examples=200, deadline=None)
@given(polls, st.integers(2, 60))
def test_memory_per_download_never_exceeds_its_bound(trace, max_points):
    for _, _, tracker in replay(trace, max_points=max_points):
        history = tracker.downloads["sonarr"]["A"]
        assert len(history.points) <= max_points


@settings(max_examples=200, deadline=None)
@given(polls, st.floats(min_value=1, max_value=GAP))
def test_a_download_that_stops_is_stuck_one_observed_threshold_later(trace, poll_gap):
    # Whatever came before, once it has not moved at all for a threshold of observed time, it is stuck.
    still = [(poll_gap, 0, True)] * (int(THRESHOLD // poll_gap) + 2)
    *_, (now, observed, tracker) = replay(trace + still)
    assert [item["download_id"] for item in tracker.progress({})["stuck"]] == ["A"]


DOWNLOADS = ("D1", "D2", "D3", "D4")
# One poll of a client with four downloads: the interval, each one's gain, each one's status, and
# whether the tracker restarts (from its checkpoint) before it.
client_polls = st.lists(st.tuples(
    st.one_of(st.floats(min_value=1, max_value=GAP), st.floats(min_value=GAP, max_value=86400)),
    st.one_of(st.just((0, 0, 0, 0)), st.tuples(*[st.sampled_from([0, 0, 10 * MB])] * 4)),
    st.one_of(st.just(("downloading",) * 4),
              st.tuples(*[st.sampled_from(["downloading", "downloading", "downloadClientUnavailable", "paused"])] * 4)),
    st.integers(0, 30).map(lambda n: n == 0)), min_size=1, max_size=150)


@settings(max_examples=150, deadline=None)
@given(client_polls)
def test_no_hold_outlives_its_outage(trace):
    clock = ManualClock()
    tracker = Tracker(config(), clock)
    downloaded = dict.fromkeys(DOWNLOADS, GB)
    with tempfile.TemporaryDirectory() as folder:
        state = Path(folder) / "state"
        for gap, gained, statuses, restart in trace:
            if restart:
                checkpoint.save(tracker, state)
                tracker = Tracker(config(), clock)
                checkpoint.load(tracker, state)
            clock.advance(gap)
            for key, gain in zip(DOWNLOADS, gained):
                downloaded[key] += gain
            tracker.ingest(snapshot("sonarr", [record(i, key, downloaded=downloaded[key], status=status)
                                               for i, (key, status) in enumerate(zip(DOWNLOADS, statuses), 1)]))
            held = {h.key for h in tracker.downloads["sonarr"].values() if h.on_hold}
            reported = {key for outage in tracker.progress({})["outages"] for key in outage["downloads"]}
            assert held <= reported, (held, reported)
