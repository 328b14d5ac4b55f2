"""The tracker's outcome rows (SPEC 5.1) in a real SQLite file: one per stay, each right."""
import pytest

from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from services.tracker.stats import StatsStore
from tests.records import GB, MB, record, snapshot

POLL = 30
THRESHOLD = 7200


@pytest.fixture
def store(tmp_path, clock):
    store = StatsStore(tmp_path / "stats.sqlite3", 365, clock)
    yield store
    store.close()


@pytest.fixture
def tracker(clock, store):
    return Tracker(DetectionConfig(), clock, store)


def poll(tracker, clock, records, removals=(), seconds=POLL):
    tracker.ingest(dict(snapshot("sonarr", records), removals=list(removals)))
    clock.advance(seconds)


def rows(store, by="instance"):
    return {row["key"]: row for row in store.stats(0, by)}


def removal(download_id, requested_by, clock, category="stuck"):
    return {"download_id": download_id, "category": category, "requested_by": requested_by, "at": clock.now()}


def test_each_outcome_is_recorded_once_and_right(tracker, clock, store):
    def queue(**states):
        return [record(i, key, indexer="IndexerA", title=f"Show.S01E0{i}.1080p.WEB-DL-GRP{key}", **fields)
                for i, (key, fields) in enumerate(sorted(states.items()), start=1)]
    stalled = {"downloaded": GB}
    everything = {"DONE": {"downloaded": 9 * GB}, "HAND": stalled, "AUTO": stalled,
                  "FAIL": {"status": "failed", "tracked_status": "error", "tracked_state": "failed"},
                  "GONE": {"downloaded": 2 * GB}}
    for step in range(THRESHOLD // POLL + 2):
        everything["DONE"] = {"downloaded": min(10 * GB, 9 * GB + step * 50 * MB)}
        poll(tracker, clock, queue(**everything))
    everything["DONE"] = {"downloaded": 10 * GB, "status": "completed", "tracked_state": "importPending"}
    poll(tracker, clock, queue(**everything), removals=[removal("HAND", "discord:admin (1)", clock),
                                                        removal("AUTO", "auto", clock)])
    poll(tracker, clock, [])  # every one of them left the queue
    poll(tracker, clock, [])  # and nothing is recorded twice
    by_download = {row["key"]: row for row in store.stats(0, "group")}
    assert {key: (r["downloads"], r["completed"], r["removed"]) for key, r in by_download.items()} == {
        "GRPDONE": (1, 1, 0), "GRPHAND": (1, 0, 1), "GRPAUTO": (1, 0, 1), "GRPFAIL": (1, 0, 0), "GRPGONE": (1, 0, 0)}
    assert by_download["GRPHAND"]["stuck"] == by_download["GRPAUTO"]["stuck"] == 1
    assert by_download["GRPFAIL"]["inactive"] == 1
    [indexer] = store.stats(0, "indexer")
    assert (indexer["key"], indexer["downloads"], indexer["completed"], indexer["removed"]) == ("IndexerA", 5, 1, 2)
    assert indexer["median_hours_to_complete"] == pytest.approx((THRESHOLD + 3 * POLL) / 3600, rel=0.05)


def test_a_season_pack_is_one_row_and_a_recurring_download_one_row_per_stay(tracker, clock, store):
    pack = [record(i, "PACK", size=20 * GB, downloaded=5 * GB) for i in range(1, 7)]
    poll(tracker, clock, pack)
    poll(tracker, clock, [], removals=[removal("PACK", "cli:me", clock)])
    poll(tracker, clock, [record(7, "PACK", size=20 * GB, downloaded=5 * GB, removed_before=1)])  # it came back
    poll(tracker, clock, [])
    [row] = store.stats(0, "instance")
    assert (row["downloads"], row["removed"], row["recurring"]) == (2, 1, 1)


def test_a_restart_loses_no_row_and_writes_no_duplicate(tracker, clock, store, tmp_path):
    poll(tracker, clock, [record(1, "A"), record(2, "B")])
    checkpoint.save(tracker, tmp_path / "state")  # a checkpoint from before A left
    poll(tracker, clock, [record(2, "B")])
    restarted = Tracker(tracker.config, clock, store)
    checkpoint.load(restarted, tmp_path / "state")
    poll(restarted, clock, [record(2, "B")])  # A leaves again, as far as the restarted tracker knows
    assert rows(store)["sonarr"]["downloads"] == 1


def test_a_download_still_queued_is_no_outcome(tracker, clock, store):
    poll(tracker, clock, [record(1, "A")])
    tracker.ingest(dict(snapshot("sonarr", [record(2, "B")]), complete=False))  # an incomplete read
    assert store.stats(0, "instance") == []
