"""The download client's own figures as evidence: which bytes count, what protects, what is withheld."""
import pytest

from services.poller.download_clients import unreachable_figures
from services.tracker import checkpoint
from services.tracker.history import DownloadHistory
from services.tracker.state import Tracker
from tests.records import GB, MB, client_figures, record, snapshot
from tests.test_tracker_rules import THRESHOLD

POLL = 60
QBIT_OK = [{"name": "qbittorrent", "kind": "qbittorrent", "state": "ok", "error": None}]


def run_for(tracker, clock, seconds, records_at, clients=QBIT_OK):
    """Poll every POLL seconds for `seconds`; records_at(t) gives the queue at t seconds in."""
    start = clock.now()
    while clock.now() - start <= seconds:
        tracker.ingest(snapshot("sonarr", records_at(clock.now() - start), clients=clients))
        clock.advance(POLL)


def stuck_ids(tracker):
    return [item["download_id"] for item in tracker.progress({})["stuck"]]


def test_the_clients_byte_counts_win_over_a_stale_queue(tracker, clock):
    # The *arr's queue has not refreshed: its sizeleft stands still. The client moves 50 MB a minute.
    def queue(t):
        return [record(1, "A", downloaded=GB, client=client_figures(GB + int(t / POLL) * 50 * MB, 10 * GB,
                                                                         state="downloading"))]
    run_for(tracker, clock, 3 * THRESHOLD, queue)
    assert stuck_ids(tracker) == []
    item = tracker.check()["downloads"][0]
    assert item["evidence"]["source"] == "qbittorrent"
    assert item["evidence"]["end_bytes"] == item["client"]["downloaded"] > GB


def test_a_client_with_no_bytes_moving_makes_it_stuck_and_the_finding_says_so(tracker, clock):
    # The queue's figures wobble upwards (a client reporting rounding); the client's bytes stand still.
    def queue(t):
        return [record(1, "A", status="warning", downloaded=GB + int(t / POLL) * 200 * MB,
                       client=client_figures(GB, 10 * GB, seeds=0, peers=0))]
    run_for(tracker, clock, THRESHOLD, queue)
    assert stuck_ids(tracker) == ["A"]
    item = tracker.progress({})["stuck"][0]
    assert item["evidence"]["source"] == "qbittorrent"
    assert item["evidence"]["start_bytes"] == item["evidence"]["end_bytes"] == GB
    assert "qbittorrent: stalledDL, 0 seeds, 0 peers" in item["reason"]


def test_without_client_figures_the_queue_is_the_source(tracker, clock):
    run_for(tracker, clock, THRESHOLD, lambda t: [record(1, "A", downloaded=GB)], clients=[])
    assert tracker.progress({})["stuck"][0]["evidence"]["source"] == "queue"


@pytest.mark.parametrize("client_state", ["paused", "queued", "checking", "completed"])
def test_a_torrent_the_client_is_not_downloading_is_never_stuck(tracker, clock, client_state):
    # The *arr still says "warning, downloading" from its last refresh; the client knows better.
    run_for(tracker, clock, 2 * THRESHOLD,
            lambda t: [record(1, "A", status="warning", client=client_figures(GB, state=client_state))])
    assert stuck_ids(tracker) == []


def test_an_unreachable_client_changes_nothing_and_removes_nothing(tracker, clock):
    run_for(tracker, clock, THRESHOLD, lambda t: [record(1, "A", client=client_figures(GB))])
    assert stuck_ids(tracker) == ["A"]
    down = [{"name": "qbittorrent", "kind": "qbittorrent", "state": "unreachable",
             "error": "cannot connect to qbittorrent at http://127.0.0.1:8080"}]
    # The client is down for longer than the threshold, and the *arr's figures are not used instead.
    run_for(tracker, clock, 2 * THRESHOLD,
            lambda t: [record(1, "A", downloaded=5 * GB, client=unreachable_figures(["qbittorrent"]))], clients=down)
    progress = tracker.progress({})
    assert [item["download_id"] for item in progress["stuck"]] == ["A"]  # what was known is kept
    assert progress["stuck"][0]["evidence"]["end_bytes"] == GB
    assert "qbittorrent cannot be reached" in progress["stuck"][0]["withheld"]
    analysis = tracker.analyze(include_import_blocked=False)
    assert analysis["candidates"] == []
    assert [item["download_id"] for item in analysis["withheld"]] == ["A"]
    assert progress["download_clients"] == [{"name": "qbittorrent", "kind": "qbittorrent", "healthy": False,
                                             "state": "unreachable", "error": down[0]["error"],
                                             "last_report_age_s": float(POLL)}]
    # A download first seen while its client is down is not tracked on the *arr's word alone.
    tracker.ingest(snapshot("sonarr", [record(1, "A", client=unreachable_figures(["qbittorrent"])),
                                       record(2, "B", client=unreachable_figures(["qbittorrent"]))], clients=down))
    assert [item["download_id"] for item in tracker.check()["downloads"]] == ["A"]
    # Back: the evidence is fresh again and the download is a candidate again.
    tracker.ingest(snapshot("sonarr", [record(1, "A", client=client_figures(GB))]))
    assert [item["download_id"] for item in tracker.analyze(include_import_blocked=False)["candidates"]] == ["A"]


def test_a_download_that_came_back_after_a_removal_is_marked_recurring(tracker, clock):
    run_for(tracker, clock, THRESHOLD, lambda t: [record(1, "A", removed_before=2)])
    item = tracker.progress({})["stuck"][0]
    assert item["recurring"] is True and item["removed_before"] == 2
    assert item["reason"].startswith("recurring (removed 2x before): no progress for")


def test_client_figures_survive_a_checkpoint_and_old_checkpoints_still_load(tracker, clock, tmp_path):
    run_for(tracker, clock, POLL, lambda t: [record(1, "A", downloaded=GB, client=client_figures(GB, private=True))])
    path = tmp_path / "state.msgpack"
    checkpoint.save(tracker, path)
    restored = Tracker(tracker.config, clock)
    assert checkpoint.load(restored, path)
    assert restored.check()["downloads"][0]["private"] is True
    # A checkpoint from before download-client figures: its records lack "client" and "removed_before".
    state = tracker.downloads["sonarr"]["A"].to_state()
    for stored in state["records"]:
        del stored["client"], stored["removed_before"]
    old = DownloadHistory.from_state(state)
    assert old.first.client is None and old.first.removed_before == 0 and old.measured()[2] == GB


def test_an_instance_names_every_client_it_sent_downloads_to_after_they_left_and_a_restart(tracker, clock, tmp_path):
    # While an instance does not answer, automatic cleanup leaves alone the clients it has been seen using:
    # what it sent there since cannot be seen (SPEC 4.1). The tracker remembers them past the downloads.
    tracker.ingest(snapshot("sonarr", [record(1, "A"), record(2, "B", download_client="SABnzbd"),
                                       record(3, "C", client=client_figures(GB))]))
    clock.advance(POLL)
    tracker.ingest(snapshot("sonarr", []))  # all imported
    tracker.ingest(snapshot("sonarr", None, state="unreachable", error="cannot connect"))
    [instance] = tracker.check()["instances"]
    assert not instance["healthy"] and instance["clients"] == ["SABnzbd", "qBittorrent", "qbittorrent"]
    path = tmp_path / "state.msgpack"
    checkpoint.save(tracker, path)
    restored = Tracker(tracker.config, clock)
    assert checkpoint.load(restored, path)
    assert restored.check()["instances"][0]["clients"] == ["SABnzbd", "qBittorrent", "qbittorrent"]
