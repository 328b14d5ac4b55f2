"""The benchmark's naive tracker (bench/naive.py) names the same stuck downloads as the real one,
so `make bench` compares like with like."""
from __future__ import annotations

from bench.naive import NaiveTracker
from bench.scenario import CONFIG, KINDS, START, feed_polls
from common.clock import ManualClock
from services.tracker.state import Tracker


def test_naive_and_real_tracker_find_the_same_stuck_downloads():
    real_clock, naive_clock = ManualClock(START), ManualClock(START)
    real, naive = Tracker(CONFIG, real_clock), NaiveTracker(CONFIG, naive_clock)
    for tracker, clock in ((real, real_clock), (naive, naive_clock)):
        feed_polls(tracker, clock, 20 * len(KINDS), stuck_every=7)  # 20 downloads an instance, 3 never move

    stuck = {(kind, f"{kind}-{i:08d}") for kind in KINDS for i in (0, 7, 14)}
    assert {(c["instance"], c["download_id"]) for c in naive.analyze()} == stuck
    assert {(c["instance"], c["download_id"]) for c in real.analyze(False)["candidates"]} == stuck
