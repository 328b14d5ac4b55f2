"""The poller's normalisation copes with what real and broken servers send."""
import json
from pathlib import Path

from common import protocol
from services.poller.normalize import normalize_record

SAMPLE = Path(__file__).parent / "fixtures" / "sonarr-queue-page.json"


def test_decimal_sizes_become_whole_bytes():
    record = normalize_record({"id": 5, "size": 4467066880.0, "sizeleft": 1000.0, "status": "downloading"})
    assert record["size"] == 4467066880 and record["sizeleft"] == 1000
    assert isinstance(record["size"], int)


def test_sonarr_v5_spelling_of_sizeleft():
    assert normalize_record({"id": 5, "size": 100, "sizeLeft": 40})["sizeleft"] == 40


def test_missing_and_null_fields_get_safe_values():
    record = normalize_record({"id": 9, "size": None, "title": None})
    assert record == {
        "id": 9, "download_id": None, "title": "queue item 9", "status": "unknown", "tracked_status": None,
        "tracked_state": None, "error_message": None, "size": 0, "sizeleft": 0, "eta": None, "added": None,
        "protocol": None, "download_client": None, "indexer": None,
        "client": None, "removed_before": 0}
    protocol.validate("snapshot", {"instance": "s", "kind": "sonarr", "taken_at": 0.0,
                                   "poller": {"name": "p", "endpoint": "tcp://127.0.0.1:1", "next_within": 1},
                                   "health": {"state": "ok"}, "clients": [], "records": [record]})


def test_a_lying_server_cannot_produce_negative_progress():
    record = normalize_record({"id": 1, "size": 100, "sizeleft": 500})
    assert record["sizeleft"] == 100
    assert normalize_record({"id": 1, "size": -3, "sizeleft": "x"})["size"] == 0


def test_a_record_without_an_integer_id_is_dropped():
    assert normalize_record({"id": "7"}) is None
    assert normalize_record({"id": True}) is None


def test_every_record_of_a_real_queue_page_normalises():
    page = json.loads(SAMPLE.read_text())
    records = [normalize_record(raw) for raw in page["records"]]
    assert all(records)
    by_state = {(r["status"], r["tracked_state"]) for r in records}
    assert ("completed", "importBlocked") in by_state


def test_a_record_without_size_counts_as_size_0_not_as_unreadable():
    record = normalize_record({"id": 1, "status": "queued", "trackedDownloadState": "downloading"})
    assert (record["status"], record["size"], record["sizeleft"]) == ("queued", 0, 0)
    assert normalize_record({"id": 1, "status": "downloading", "size": None})["status"] == "downloading"


def test_a_record_without_status_keeps_its_last_known_state():
    assert normalize_record({"id": 1, "size": 100, "sizeleft": 5})["status"] == "unknown"
