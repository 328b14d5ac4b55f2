"""The queue `make bench` feeds the trackers: the real one in its memory figures, and the
real one beside bench/naive.py in the comparison (bench/run.py, tests/test_bench_naive.py).

Two hours of simulated polls, one every 10 minutes: every download gains 1 GB a poll, except
every `stuck_every`-th, which never moves. The naive tracker keeps every poll of those hours;
the real one keeps change points.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

from common import protocol
from common.clock import ManualClock
from services.tracker.history import DetectionConfig

KINDS = ("sonarr", "radarr", "lidarr", "readarr")
GB = 10 ** 9
SIZE = 40 * GB
POLLS = 12
POLL_S = 600.0
# A stuck threshold of an hour: the last polls settle every verdict, the stuck ones stuck for nearly two.
CONFIG = DetectionConfig(threshold_s=3600.0, poll_s=POLL_S, history_s=2 * 3600.0)
START = 1_000_000.0


def client_figures(i: int, step: int) -> dict[str, Any]:
    """What qBittorrent says of one torrent: every figure its own, as in a real queue."""
    return {"name": "qbittorrent", "kind": "qbittorrent", "state": "downloading", "client_state": "downloading",
            "downloaded": step * GB + i, "size": SIZE, "download_speed": 1000 + i,
            "last_activity": 1.7e9 + i, "seeds": 3, "peers": 5, "private": False}


def queue_records(kind: str, first_id: int, count: int, step: int, *, stuck_every: int = 0,
                  with_client: bool = False) -> list[dict[str, Any]]:
    """One instance's normalised queue (protocol.RECORD_FIELDS) at poll `step`."""
    return [{"id": first_id + i, "download_id": f"{kind}-{i:08d}",
             "title": f"Some.Release.Name.S01E{i % 100:02d}.1080p.WEB.H264-GROUP{i}",
             "status": "downloading", "tracked_status": "ok", "tracked_state": "downloading",
             "error_message": None, "size": SIZE,
             "sizeleft": SIZE if stuck_every and i % stuck_every == 0 else SIZE - step * GB,
             "eta": "2026-11-24T20:00:00Z", "added": "2026-11-24T18:00:00Z",
             "protocol": "torrent", "download_client": "qBittorrent", "indexer": "Some Indexer (Prowlarr)",
             "client": client_figures(i, step) if with_client else None, "removed_before": 0}
            for i in range(count)]


def snapshot_body(kind: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"instance": kind, "kind": kind, "taken_at": time.time(), "records": records,
            "poller": {"name": "bench", "endpoint": "tcp://127.0.0.1:1", "next_within": 600},
            "health": {"state": "ok", "error": None}, "clients": []}


def queue_snapshots(downloads: int, step: int, *, stuck_every: int = 0,
                    with_client: bool = False) -> Iterator[dict[str, Any]]:
    """Poll `step` of a queue of `downloads` split across KINDS: each instance's snapshot body,
    built only when asked for, so no more than one is alive at a time."""
    per_instance = downloads // len(KINDS)
    for n, kind in enumerate(KINDS):
        yield snapshot_body(kind, queue_records(kind, n * per_instance, per_instance, step,
                                                stuck_every=stuck_every, with_client=with_client))


def received(body: dict[str, Any]) -> dict[str, Any]:
    """A snapshot body as a tracker gets it off the wire: every string its own object, as msgpack makes it."""
    return protocol.decode(protocol.encode("snapshot", body)).body


def feed_polls(tracker: Any, clock: ManualClock, downloads: int, *, stuck_every: int = 0) -> float:
    """POLLS polls of `downloads`, the clock advanced by POLL_S between them; returns the seconds
    the tracker spent in `ingest` (building and decoding the snapshots is not counted)."""
    spent = 0.0
    for step in range(POLLS):
        if step:
            clock.advance(POLL_S)
        for body in queue_snapshots(downloads, step, stuck_every=stuck_every):
            snapshot = received(body)
            started = time.perf_counter()
            tracker.ingest(snapshot)
            spent += time.perf_counter() - started
    return spent
