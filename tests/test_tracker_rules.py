"""The stuck and inactive rules of SPEC section 3, with a clock the tests move."""
import pytest

from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from tests.records import GB, MB, client_figures, record, snapshot

THRESHOLD = 120 * 60  # DetectionConfig's default, which the tracker fixture (conftest) uses
POLL = 30
KB = 1024


def poll(tracker, clock, instance, records, seconds=POLL):
    tracker.ingest(snapshot(instance, records))
    clock.advance(seconds)


def found(tracker, category):
    return sorted(item["download_id"] for item in tracker.progress({})[category])


def test_a_stalled_download_is_stuck_at_the_threshold_and_not_a_poll_before(tracker, clock):
    # It moves for ten minutes, then nothing: stuck exactly THRESHOLD after its last move.
    downloaded = 0
    for _ in range(20):
        downloaded += 200 * MB
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=downloaded)])
    stalled_at = clock.now() - POLL  # the last poll that saw it move
    while clock.now() < stalled_at + THRESHOLD:
        tracker.ingest(snapshot("sonarr", [record(1, "A", downloaded=downloaded)]))
        assert found(tracker, "stuck") == [], f"stuck {clock.now() - stalled_at}s after its last move"
        clock.advance(POLL)
    tracker.ingest(snapshot("sonarr", [record(1, "A", downloaded=downloaded)]))
    assert found(tracker, "stuck") == ["A"]
    item = tracker.progress({})["stuck"][0]
    assert item["stalled_minutes"] == pytest.approx(120)
    assert item["category"] == "stuck"
    assert item["evidence"]["start_bytes"] == item["evidence"]["end_bytes"] == downloaded


def test_a_download_seen_for_less_than_the_threshold_is_never_stuck(tracker, clock):
    for _ in range(THRESHOLD // POLL):  # seen at 0 s ... THRESHOLD - POLL
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    assert found(tracker, "stuck") == []
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])  # seen at THRESHOLD
    assert found(tracker, "stuck") == ["A"]


def test_time_without_observations_is_no_evidence(tracker, clock):
    # A healthy 1 MB/s download, then three hours nobody looked (the host slept, the tracker was down).
    # The *arr's first answers after the gap still show the figures from before it.
    downloaded = 0
    for _ in range(20):
        downloaded += POLL * MB
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=downloaded)])
    clock.advance(3 * 3600)
    for _ in range(4):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=downloaded)])
        assert found(tracker, "stuck") == [] and tracker.analyze(False)["candidates"] == []
    # Seen not to move for a whole observed threshold after the gap, it is stuck.
    for _ in range(THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=downloaded)])
    assert found(tracker, "stuck") == ["A"]


def test_a_download_stuck_before_a_gap_stays_stuck_after_it(tracker, clock):
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    assert found(tracker, "stuck") == ["A"]
    clock.advance(2 * THRESHOLD)
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    [item] = tracker.progress({})["stuck"]
    assert item["stalled_minutes"] == pytest.approx(THRESHOLD / 60 + 1.5, abs=1)  # the gap is not counted


def test_a_huge_download_moving_500mb_in_two_hours_is_not_stuck(tracker, clock):
    size = 200 * GB  # 500 MB is a quarter of a percent: only the bytes rule keeps it alive
    for step in range(2 * THRESHOLD // POLL):
        poll(tracker, clock, "radarr", [record(1, "BIG", size=size, downloaded=step * 500 * MB * POLL // THRESHOLD)])
    assert found(tracker, "stuck") == []


def test_a_small_download_moving_10mb_in_two_hours_is_not_stuck(tracker, clock):
    size = 50 * MB  # 10 MB is twenty points: only the progress rule keeps it alive
    for step in range(2 * THRESHOLD // POLL):
        poll(tracker, clock, "radarr", [record(1, "SMALL", size=size, downloaded=step * 10 * MB * POLL // THRESHOLD)])
    assert found(tracker, "stuck") == []


def test_a_slow_crawl_below_both_thresholds_is_stuck(tracker, clock):
    size = 200 * GB  # 50 MB in two hours: under 100 MB and under one point
    for step in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "radarr", [record(1, "CRAWL", size=size, downloaded=step * 50 * MB * POLL // THRESHOLD)])
    assert found(tracker, "stuck") == ["CRAWL"]


def test_a_pause_in_the_middle_restarts_the_clock(tracker, clock):
    for _ in range(THRESHOLD // POLL // 2):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB, status="paused")])
    for _ in range(THRESHOLD // POLL - 1):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    assert found(tracker, "stuck") == []  # 1.5 thresholds since first seen, but not unbroken
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    assert found(tracker, "stuck") == ["A"]


@pytest.mark.parametrize("status, state, error, size, active", [
    ("downloading", "downloading", None, GB, True),
    ("warning", "downloading", "The download is stalled with no connections", GB, True),
    ("queued", "downloading", "qBittorrent is downloading metadata", 0, True),
    ("queued", "downloading", None, 0, True),
    ("queued", "downloading", None, GB, False),
    ("paused", "downloading", None, GB, False),
    ("delay", "downloading", None, GB, False),
    ("completed", "importPending", None, GB, False),
    ("downloadClientUnavailable", "downloading", None, GB, False),
    # The tracked state decides over the status.
    ("downloading", "importPending", None, GB, False),
    ("downloading", "importing", None, GB, False),
    ("warning", "importPending", "The download is stalled with no connections", GB, False),
    ("downloading", "ignored", None, GB, False),
    # Old servers send no tracked state: the status alone says it.
    ("downloading", None, None, GB, True),
    ("warning", None, "The download is stalled with no connections", GB, True),
    ("queued", "downloading", "", GB, False),  # an empty errorMessage is no error
])
def test_which_statuses_count_as_active(tracker, clock, status, state, error, size, active):
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "sonarr", [record(1, "A", size=size, downloaded=0, status=status,
                                               tracked_state=state, error_message=error or None)])
    assert found(tracker, "stuck") == (["A"] if active else [])
    assert [c["download_id"] for c in tracker.analyze(True)["candidates"]] == (["A"] if active else [])


def finished_usenet(downloaded=4 * GB, **fields):
    """A usenet job SABnzbd is verifying, repairing or unpacking: Sonarr says downloading, nothing left."""
    return record(1, "SABnzbd_nzo_abc_1", size=4 * GB, downloaded=downloaded, protocol="usenet",
                  download_client="SABnzbd", **fields)


def test_a_finished_usenet_download_in_post_processing_is_never_stuck_and_needs_attention(tracker, clock):
    for _ in range(3 * THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", [finished_usenet()])
        assert found(tracker, "stuck") == []
        assert tracker.analyze(True)["candidates"] == [], "a complete download offered for removal"
    [item] = tracker.progress({})["attention"]
    assert item["category"] == "attention" and item["attention"] == "not_imported"
    assert item["reason"].startswith("finished ") and "not imported" in item["reason"]
    assert tracker.analyze(include_import_blocked=True)["candidates"] == []


def test_a_finished_download_needs_attention_only_after_the_threshold(tracker, clock):
    for _ in range(THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", [finished_usenet()])
        assert found(tracker, "attention") == []
    poll(tracker, clock, "sonarr", [finished_usenet()])
    assert found(tracker, "attention") == ["SABnzbd_nzo_abc_1"]
    for _ in range(5 * 60 // POLL):
        poll(tracker, clock, "sonarr", [finished_usenet()])
    [item] = tracker.progress({})["attention"]
    assert item["reason"] == ("finished 2 h 5 min ago, not imported: the *arr is still waiting for its "
                              "download client (unpacking?)")


def test_a_stalled_download_that_finishes_is_no_longer_stuck(tracker, clock):
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "sonarr", [finished_usenet(downloaded=GB)])
    assert found(tracker, "stuck") == ["SABnzbd_nzo_abc_1"]
    poll(tracker, clock, "sonarr", [finished_usenet()])  # the last articles came: it is unpacking
    assert found(tracker, "stuck") == [] and tracker.analyze(True)["candidates"] == []


def test_finished_by_the_clients_figures_even_when_the_arr_lags(tracker, clock):
    # The *arr still shows bytes left from its last refresh; the client says nothing is left.
    figures = client_figures(10 * GB, 10 * GB, state="downloading")
    for _ in range(2 * THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=3 * GB, client=figures)])
    assert found(tracker, "stuck") == [] and found(tracker, "attention") == ["A"]


def test_a_season_pack_is_one_download(tracker, clock):
    pack = [record(i, "PACK", size=20 * GB, downloaded=5 * GB) for i in range(1, 9)]
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "sonarr", pack)
    progress = tracker.progress({})
    assert progress["tracked"] == 1
    [item] = progress["stuck"]
    assert item["queue_ids"] == list(range(1, 9))
    assert item["size"] == 20 * GB  # the pack's size repeated on every record, not added up
    assert item["progress"] == 25.0


def test_a_record_without_download_id_is_its_own_download(tracker, clock):
    poll(tracker, clock, "sonarr", [record(7, None), record(8, None)])
    assert tracker.progress({})["tracked"] == 2


def test_failed_downloads_are_inactive_at_once(tracker, clock):
    poll(tracker, clock, "sonarr", [
        record(1, "F1", status="failed", tracked_status="error", tracked_state="failed"),
        record(2, "F2", status="completed", tracked_status="warning", tracked_state="failedPending"),
        record(3, "F3", status="completed", tracked_status="warning", tracked_state="downloadFailedPending"),
    ])
    assert found(tracker, "inactive") == ["F1", "F2", "F3"]


def test_a_tracked_error_is_inactive_only_after_the_threshold(tracker, clock):
    def errored():
        return [record(1, "E", status="completed", tracked_status="error", tracked_state="importPending")]
    for _ in range(THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", errored())
    assert found(tracker, "inactive") == []
    poll(tracker, clock, "sonarr", errored())
    assert found(tracker, "inactive") == ["E"]


def test_import_blocked_needs_attention_and_is_no_candidate_by_default(tracker, clock):
    poll(tracker, clock, "radarr", [record(1, "IB", status="completed", tracked_status="warning",
                                           tracked_state="importBlocked", downloaded=10 * GB)])
    assert found(tracker, "attention") == ["IB"]
    assert tracker.analyze(include_import_blocked=False)["candidates"] == []
    assert [c["download_id"] for c in tracker.analyze(include_import_blocked=True)["candidates"]] == ["IB"]


def test_two_instances_polled_alternately_keep_both_histories(tracker, clock):
    for _ in range(THRESHOLD // (2 * POLL) + 2):
        poll(tracker, clock, "sonarr", [record(1, "S", downloaded=GB)], seconds=POLL)
        poll(tracker, clock, "radarr", [record(1, "R", downloaded=GB)], seconds=POLL)
    assert found(tracker, "stuck") == ["R", "S"]


def test_an_unhealthy_poll_wipes_no_history(tracker, clock):
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "sonarr", [record(1, "S", downloaded=GB)])
    poll(tracker, clock, "sonarr", None)
    tracker.ingest(snapshot("sonarr", None, state="unreachable", error="cannot connect"))
    assert found(tracker, "stuck") == ["S"]
    [health] = tracker.progress({})["instances"]
    assert health == {"name": "sonarr", "kind": "sonarr", "healthy": False, "state": "unreachable",
                      "error": "cannot connect", "records": 1, "last_snapshot_age_s": 0.0, "poller": "poller",
                      "thresholds": {"stuck_threshold_minutes": 120.0, "min_progress_change": 1.0,
                                     "min_size_change": 104857600.0, "slow_max_eta_hours": 72.0},
                      "clients": ["qBittorrent"]}


def test_downloads_that_leave_the_queue_leave_the_tracker(tracker, clock):
    poll(tracker, clock, "sonarr", [record(1, "A"), record(2, "B")])
    poll(tracker, clock, "sonarr", [record(2, "B")])
    assert [item["download_id"] for item in tracker.check()["downloads"]] == ["B"]


def test_an_incomplete_read_of_the_queue_drops_no_history(tracker, clock):
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB), record(2, "B", downloaded=GB)])
    # Records moved between pages while the poller read them: A was not seen, but it did not leave.
    tracker.ingest(dict(snapshot("sonarr", [record(2, "B", downloaded=GB)]), complete=False))
    assert found(tracker, "stuck") == ["A", "B"]
    poll(tracker, clock, "sonarr", [record(2, "B", downloaded=GB)])
    assert found(tracker, "stuck") == ["B"]


def test_a_client_outage_holds_the_clocks_instead_of_reporting_everything_stuck(tracker, clock):
    def queue(moved):
        return [record(i, f"D{i}", downloaded=moved + i * MB) for i in range(1, 5)]
    for step in range(1, 6):
        poll(tracker, clock, "sonarr", queue(step * 500 * MB))
    for _ in range(2 * THRESHOLD // POLL):  # the client dies: every download stops in the same poll
        poll(tracker, clock, "sonarr", queue(5 * 500 * MB))
    progress = tracker.progress({})
    assert progress["stuck"] == []
    # Stopped is judged over a window of max(3 polls, the *arr's refresh), not a single poll.
    [outage] = progress["outages"]
    assert (outage["instance"], outage["download_client"]) == ("sonarr", "qBittorrent")
    assert outage["since"] == pytest.approx(clock.now() - 2 * THRESHOLD + 3 * POLL, abs=POLL)
    assert outage["downloads"] == ["D1", "D2", "D3", "D4"]
    poll(tracker, clock, "sonarr", queue(5 * 500 * MB + 200 * MB))  # it comes back
    assert tracker.progress({})["outages"] == []


def test_history_reaches_back_over_the_threshold_at_a_5s_poll_with_50_points(clock):
    tracker = Tracker(DetectionConfig(threshold_s=THRESHOLD, max_points=50), clock)
    downloaded = 0
    for _ in range(3 * THRESHOLD // 5):
        downloaded += 3 * MB  # every poll moves it past the point step
        poll(tracker, clock, "sonarr", [record(1, "A", size=500 * GB, downloaded=downloaded)], seconds=5)
        points = tracker.downloads["sonarr"]["A"].points
        assert len(points) <= 50
    assert clock.now() - 5 - points[0][0] >= THRESHOLD


def test_the_history_query_returns_the_points(tracker, clock):
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=2 * GB)])
    history = tracker.history("sonarr", "A")
    assert [p["bytes"] for p in history["points"]] == [GB, 2 * GB]
    with pytest.raises(LookupError, match="no download 'Z'"):
        tracker.history("sonarr", "Z")


def test_soon_stuck_past_three_quarters_and_a_completion_estimate_for_movers(tracker, clock):
    def queue(minute):
        return [record(1, "STALL", downloaded=GB), record(2, "MOVE", size=100 * GB, downloaded=minute * 60 * MB)]
    for minute in range(90):  # seen at 0 ... 89 minutes
        poll(tracker, clock, "sonarr", queue(minute), seconds=60)
    items = {item["download_id"]: item for item in tracker.check()["downloads"]}
    assert not items["STALL"]["soon_stuck"] and not items["MOVE"]["soon_stuck"]
    remaining = 100 * GB - 89 * 60 * MB
    assert items["MOVE"]["estimated_completion"] == pytest.approx(clock.now() - 60 + remaining / MB, rel=0.01)
    assert items["STALL"]["estimated_completion"] is None
    poll(tracker, clock, "sonarr", queue(90), seconds=60)  # 90 minutes: three quarters of the threshold
    [soon] = tracker.progress({})["soon_stuck"]
    assert soon["download_id"] == "STALL" and soon["category"] is None
    assert soon["reason"] == "no progress for 1 h 30 min, stuck in 30 min"


def test_soon_stuck_after_a_little_progress_says_too_little_not_none(tracker, clock):
    for minute in range(91):  # 1 MB a minute: 90 MB in 90 minutes, under both thresholds
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=minute * MB)], seconds=60)
    [soon] = tracker.progress({})["soon_stuck"]
    assert soon["reason"] == "too little progress for 1 h 30 min, stuck in 30 min"


def test_a_download_that_moved_too_little_says_how_much_and_what_it_needed(clock):
    # 30 MB in a minute is +0.98 points of this download: under 1 point and under 100 MB.
    tracker = Tracker(DetectionConfig(threshold_s=60), clock)
    for step in range(3):  # seen at 0, 30 and 60 s
        poll(tracker, clock, "sonarr", [record(1, "A", size=3060 * MB, downloaded=step * 15 * MB)])
    [item] = tracker.progress({})["stuck"]
    assert item["reason"] == "too little progress for 1 min: +0.98 points and 30.0 MB (needs 1 point or 100.0 MB)"


def test_a_download_that_moved_nothing_says_no_progress_with_the_clients_word(tracker, clock):
    for _ in range(125 * 60 // POLL + 1):  # seen at 0 ... 2 h 5 min
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB, removed_before=2, client=client_figures(GB))])
    [item] = tracker.progress({})["stuck"]
    assert item["reason"] == ("recurring (removed 2x before): no progress for 2 h 5 min; "
                              "qbittorrent: stalledDL, 0 seeds, 0 peers")


def test_a_slow_download_says_its_speed_and_how_long_it_needs(tracker, clock):
    # 20 KB/s keeps it clear of stuck (140 MB in two hours), but 40 GB at that speed takes 24 days.
    for step in range(THRESHOLD // POLL + 1):
        poll(tracker, clock, "sonarr", [record(1, "A", size=40 * GB, downloaded=step * POLL * 20 * KB)])
    assert found(tracker, "stuck") == []
    [item] = tracker.progress({})["slow"]
    assert item["reason"] == "at 20.0 KB/s it needs 24 days (more than 3 days)"


def test_a_record_without_status_keeps_the_download_as_it_was(tracker, clock):
    for _ in range(THRESHOLD // POLL + 2):
        poll(tracker, clock, "sonarr", [record(1, "A", downloaded=GB)])
    poll(tracker, clock, "sonarr", [record(1, "A", downloaded=0, status="unknown", size=0)])
    assert found(tracker, "stuck") == ["A"]
    assert tracker.check()["downloads"][0]["size"] == 10 * GB


def test_a_client_shared_by_two_instances_is_one_outage_of_all_their_downloads(tracker, clock):
    # The usual home setup: Sonarr and Radarr on one qBittorrent, two downloads each. The VPN drops:
    # all four stop together. Two per instance is below the outage's three, four on the client are not.
    def queue(instance, moved):
        return [record(i, f"{instance}-{i}", downloaded=moved + i * MB) for i in (1, 2)]
    for step in range(1, 6):
        poll(tracker, clock, "sonarr", queue("sonarr", step * 500 * MB), seconds=POLL / 2)
        poll(tracker, clock, "radarr", queue("radarr", step * 500 * MB), seconds=POLL / 2)
    for _ in range(2 * THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", queue("sonarr", 5 * 500 * MB), seconds=POLL / 2)
        poll(tracker, clock, "radarr", queue("radarr", 5 * 500 * MB), seconds=POLL / 2)
    progress = tracker.progress({})
    assert progress["stuck"] == []
    outages = {outage["instance"]: outage for outage in progress["outages"]}
    assert sorted(outages) == ["radarr", "sonarr"]
    assert outages["sonarr"]["downloads"] == ["sonarr-1", "sonarr-2"]
    assert outages["radarr"]["instances"] == ["radarr", "sonarr"]
    assert tracker.analyze(False)["candidates"] == []
    poll(tracker, clock, "radarr", queue("radarr", 5 * 500 * MB + 200 * MB))  # Radarr's downloads move again
    assert tracker.progress({})["outages"] == []


def test_downloads_of_two_pollers_are_never_one_outage(tracker, clock):
    def queue(instance, moved):
        return [record(i, f"{instance}-{i}", downloaded=moved + i * MB) for i in (1, 2)]

    def both(moved):
        tracker.ingest(snapshot("sonarr", queue("sonarr", moved), poller="site-a"))
        tracker.ingest(snapshot("radarr", queue("radarr", moved), poller="site-b"))
        clock.advance(POLL)
    for step in range(1, 6):
        both(step * 500 * MB)
    for _ in range(THRESHOLD // POLL + 2):  # two qBittorrents of one name, at two sites: no outage
        both(5 * 500 * MB)
    assert tracker.progress({})["outages"] == []
    assert found(tracker, "stuck") == ["radarr-1", "radarr-2", "sonarr-1", "sonarr-2"]


def test_a_finished_download_with_an_error_needs_attention_and_is_never_inactive(tracker, clock):
    # Nothing left, the *arr shows an error (a warning about the import) while the usenet client unpacks.
    unpacking = [record(1, "U", size=GB, downloaded=GB, tracked_status="error", protocol="usenet")]
    for _ in range(3 * THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", unpacking)
    assert found(tracker, "inactive") == [] and tracker.analyze(False)["candidates"] == []
    [attention] = tracker.progress({})["attention"]
    assert attention["attention"] == "not_imported" and "not imported" in attention["reason"]


def test_an_error_on_a_download_that_still_moves_is_not_giving_up(tracker, clock):
    # Found by the household simulation: the *arr shows an error (trackedDownloadStatus) while the download
    # goes on at 2 MB/s. It has not given up on it: never inactive while it moves by the thresholds.
    downloaded = 0
    for _ in range(3 * THRESHOLD // POLL):
        downloaded += 60 * MB
        poll(tracker, clock, "sonarr", [record(1, "E", size=500 * GB, downloaded=downloaded, tracked_status="error")])
        assert found(tracker, "inactive") == []
    for _ in range(THRESHOLD // POLL + 1):  # then it stops, the error still shown: inactive after the threshold
        poll(tracker, clock, "sonarr", [record(1, "E", size=500 * GB, downloaded=downloaded, tracked_status="error")])
    assert found(tracker, "inactive") == ["E"]


def test_a_paused_or_queued_download_with_an_error_is_never_inactive(tracker, clock):
    for _ in range(3 * THRESHOLD // POLL):
        poll(tracker, clock, "sonarr", [
            record(1, "P", status="paused", tracked_status="error"),
            record(2, "Q", status="queued", tracked_status="error"),
            record(3, "C", tracked_status="error", client=client_figures(0, state="paused"))])
    assert found(tracker, "inactive") == [] and tracker.analyze(False)["candidates"] == []
