"""The tracker as first designed, kept only for `make bench` to measure the real one against.

Per download it keeps the snapshot's record dicts as received, one per poll with the time it
was seen, and every analysis walks each download's list. A download is stuck when it is
active and over the last threshold its downloaded bytes (size - sizeleft) rose by less than
`min_bytes` and its progress by less than `min_progress` points. It knows nothing of
download-client figures, outages, holds or unseen time: on a queue without those it names
the same stuck downloads as services.tracker.state.Tracker (tests/test_bench_naive.py).
"""
from __future__ import annotations

from typing import Any

from common.clock import Clock
from common.downloads import download_key
from services.tracker.history import DetectionConfig

ACTIVE_STATUSES = ("downloading", "warning")


def _downloaded_and_progress(record: dict[str, Any]) -> tuple[int, float]:
    downloaded = record["size"] - record["sizeleft"]
    return downloaded, 100.0 * downloaded / record["size"] if record["size"] > 0 else 0.0


class NaiveTracker:
    def __init__(self, config: DetectionConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        # instance -> download key -> every record seen of it, oldest first, each with its "seen_at"
        self.downloads: dict[str, dict[str, list[dict[str, Any]]]] = {}

    def ingest(self, snapshot: dict[str, Any]) -> None:
        """One instance's snapshot body; downloads no longer in its queue are forgotten."""
        if snapshot["records"] is None:
            return  # an unhealthy poll says nothing about the queue
        now = self.clock.now()
        previous = self.downloads.get(snapshot["instance"], {})
        current: dict[str, list[dict[str, Any]]] = {}
        for record in snapshot["records"]:
            key = download_key(record)
            if key not in current:
                current[key] = previous.get(key, [])
            current[key].append(dict(record, seen_at=now))
        horizon = now - self.config.history_s
        for key, seen in current.items():
            current[key] = [record for record in seen if record["seen_at"] >= horizon][-self.config.max_points:]
        self.downloads[snapshot["instance"]] = current

    def analyze(self) -> list[dict[str, Any]]:
        """The stuck downloads: {"instance", "download_id", "title", "reason"} each."""
        now = self.clock.now()
        window_start = now - self.config.threshold_s
        candidates = []
        for instance, downloads in self.downloads.items():
            for key, seen in downloads.items():
                latest = seen[-1]
                if latest["status"] not in ACTIVE_STATUSES:
                    continue
                start = None
                for record in seen:  # the newest record at or before the window's start
                    if record["seen_at"] > window_start:
                        break
                    start = record
                if start is None:
                    continue  # not seen for a whole threshold yet
                start_bytes, start_progress = _downloaded_and_progress(start)
                end_bytes, end_progress = _downloaded_and_progress(latest)
                moved, change = end_bytes - start_bytes, end_progress - start_progress
                if moved < self.config.min_bytes and change < self.config.min_progress:
                    candidates.append({
                        "instance": instance, "download_id": key, "title": latest["title"],
                        "reason": f"{moved} bytes and {change:+.2f} points in {now - start['seen_at']:.0f} s"})
        return candidates
