"""Protection (SPEC 4.2) in the tracker: downloads a rule protects or an admin kept are tracked, shown and
warned about, never candidates; keeps survive restarts; each instance is judged by its own thresholds."""
from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from tests.records import GB, record, snapshot

MINUTE = 60
POLL = 30


def stalled(clock, tracker, instance, records, minutes):
    for _ in range(int(minutes * MINUTE // POLL)):
        tracker.ingest(snapshot(instance, records))
        clock.advance(POLL)


def ids(items):
    return sorted(item["download_id"] for item in items)


def test_a_protected_download_is_stuck_shown_and_never_a_candidate(tracker, clock):
    records = [record(1, "TAGGED", downloaded=GB, protected_by="tag `dont-kill`"), record(2, "PLAIN", downloaded=GB)]
    stalled(clock, tracker, "sonarr", records, 130)
    assert ids(tracker.progress({})["stuck"]) == ["PLAIN", "TAGGED"]  # still tracked, shown, warned about
    analysis = tracker.analyze(False)
    assert ids(analysis["candidates"]) == ["PLAIN"]
    [protected] = analysis["protected"]
    assert protected["protected_by"] == "tag `dont-kill`" and protected["category"] == "stuck"


def test_a_kept_download_is_protected_until_it_leaves_the_queue_or_for_good(tracker, clock, tmp_path):
    queue = [record(1, "KEPT", downloaded=GB), record(2, "GOOD", downloaded=GB)]
    stalled(clock, tracker, "sonarr", queue, 130)
    assert tracker.keep("sonarr", "KEPT", "alice", False)["kept"] == "kept by alice"
    tracker.keep("sonarr", "GOOD", "bob", True)
    assert tracker.analyze(False)["candidates"] == []
    assert tracker.protection([{"instance": "sonarr", "download_id": "KEPT"}]) == {
        "protected": {"sonarr/KEPT": "kept by alice"}}
    checkpoint.save(tracker, tmp_path / "state")  # every restart keeps them
    restarted = Tracker(tracker.config, clock)
    assert checkpoint.load(restarted, tmp_path / "state")
    assert restarted.analyze(False)["candidates"] == []
    assert {i["download_id"]: i["protected_by"] for i in restarted.check()["downloads"]} == {
        "KEPT": "kept by alice", "GOOD": "kept by bob for good"}
    restarted.ingest(snapshot("sonarr", []))  # both leave the queue ...
    stalled(clock, restarted, "sonarr", queue, 130)  # ... and the same releases come back, stuck
    assert ids(restarted.analyze(False)["candidates"]) == ["KEPT"]  # only a keep for good outlives a stay
    restarted.unkeep("sonarr", "GOOD")
    assert ids(restarted.analyze(False)["candidates"]) == ["GOOD", "KEPT"]


def test_each_instance_is_judged_by_its_own_threshold(clock):
    overrides = {"radarr": DetectionConfig(threshold_s=1 * MINUTE), "radarr4k": DetectionConfig(threshold_s=3 * MINUTE)}
    tracker = Tracker(DetectionConfig(), clock, configure=lambda instance: overrides[instance])
    same = [record(1, "D", downloaded=GB)]
    stuck_at = {}
    for second in range(0, 5 * MINUTE, POLL):
        for instance in overrides:
            tracker.ingest(snapshot(instance, same))
        for item in tracker.progress({})["stuck"]:
            stuck_at.setdefault(item["instance"], second)
        clock.advance(POLL)
    assert stuck_at == {"radarr": 1 * MINUTE, "radarr4k": 3 * MINUTE}
    shown = {i["name"]: i["thresholds"]["stuck_threshold_minutes"] for i in tracker.progress({})["instances"]}
    assert shown == {"radarr": 1.0, "radarr4k": 3.0}
