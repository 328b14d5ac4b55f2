"""What a usenet client's own word means to the tracker (SPEC 3.1): post-processing stages, health below
critical, paused and queued jobs and a client paused as a whole, with a clock the tests move."""
from tests.records import GB, MB, client_figures, record, snapshot
from tests.test_tracker_rules import THRESHOLD

POLL = 60
NZBGET = [{"name": "nzbget", "kind": "nzbget", "state": "ok", "error": None}]


def job(downloaded=GB, state="downloading", client_state="DOWNLOADING", **figures):
    """A usenet job NZBGet knows (its drone id as downloadId), as a snapshot record."""
    return client_figures(downloaded, GB, state=state, name="nzbget", kind="nzbget", client_state=client_state,
                          private=None, **figures)


def poll(tracker, clock, records, times=1):
    for _ in range(times):
        tracker.ingest(snapshot("sonarr", records, clients=NZBGET))
        clock.advance(POLL)


def items(tracker, category):
    return [item for item in tracker.progress({})[category]]


def test_a_job_unpacking_for_three_thresholds_is_never_a_candidate_and_needs_attention_with_its_stage(
        tracker, clock):
    # The *arr says downloading, nothing left, and shows an error about the import meanwhile.
    verifying = [record(1, "D1", size=GB, downloaded=GB, protocol="usenet", tracked_status="error",
                        client=job(stage="verifying", state="post_processing", client_state="VERIFYING_SOURCES"))]
    poll(tracker, clock, verifying, times=5)
    [item] = tracker.check()["downloads"]
    assert item["reason"] == "verifying for 4 min (nzbget)"  # seen at 0, 1, ... 4 min
    unpacking = [dict(verifying[0], client=job(stage="unpacking", state="post_processing",
                                               client_state="UNPACKING"))]
    for _ in range(3 * THRESHOLD // POLL):
        poll(tracker, clock, unpacking)
        assert tracker.analyze(True)["candidates"] == [] and items(tracker, "stuck") == []
        assert items(tracker, "inactive") == []
    [attention] = items(tracker, "attention")
    assert attention["attention"] == "not_imported"
    assert attention["reason"].startswith("finished ") and "not imported: unpacking for " in attention["reason"]


def test_a_job_in_post_processing_is_finished_whatever_the_arr_still_shows(tracker, clock):
    # The *arr's last refresh still shows bytes left; the client already repairs: complete, never stuck.
    repairing = [record(1, "D1", size=GB, downloaded=GB // 2, protocol="usenet",
                        client=job(downloaded=GB, stage="repairing", state="post_processing",
                                   client_state="REPAIRING"))]
    poll(tracker, clock, repairing, times=2 * THRESHOLD // POLL)
    assert items(tracker, "stuck") == [] and tracker.analyze(True)["candidates"] == []
    assert [item["attention"] for item in items(tracker, "attention")] == ["not_imported"]


def test_a_job_below_critical_health_is_inactive_at_once_with_its_health(tracker, clock):
    dying = [record(1, "D1", size=GB, downloaded=GB // 3, protocol="usenet",
                    client=job(downloaded=GB // 3, health=72.3, critical_health=85.0))]
    poll(tracker, clock, dying)
    [item] = tracker.analyze(False)["candidates"]
    assert item["category"] == "inactive"
    assert item["reason"] == "articles missing: health 72.3 %, needs 85.0 % (nzbget)"
    assert item["evidence"]["source"] == "nzbget"


def test_a_healthy_job_is_judged_on_its_bytes(tracker, clock):
    moving = iter(range(1, 10_000))

    def healthy():
        return [record(1, "D1", size=GB, protocol="usenet",
                       client=job(downloaded=next(moving) * 20 * MB % GB, health=99.0, critical_health=85.0))]
    for _ in range(2 * THRESHOLD // POLL):
        poll(tracker, clock, healthy())
    assert tracker.analyze(False)["candidates"] == []


def test_jobs_paused_or_queued_in_the_client_or_a_client_paused_as_a_whole_are_never_stuck(tracker, clock):
    records = [record(1, "P", size=GB, downloaded=GB // 2, protocol="usenet",
                      client=job(downloaded=GB // 2, state="paused", client_state="PAUSED")),
               record(2, "Q", size=GB, protocol="usenet", client=job(downloaded=0, state="queued",
                                                                     client_state="QUEUED")),
               record(3, "W", size=GB, downloaded=GB // 4, protocol="usenet",
                      client=job(downloaded=GB // 4, state="paused", client_state="paused: disk full"))]
    poll(tracker, clock, records, times=3 * THRESHOLD // POLL)
    assert items(tracker, "stuck") == [] and tracker.analyze(False)["candidates"] == []
    reasons = {item["download_id"]: item["reason"] for item in tracker.check()["downloads"]}
    assert reasons == {"P": "nzbget: paused (PAUSED)", "Q": "nzbget: queued (QUEUED)",
                       "W": "nzbget: paused (paused: disk full)"}


def failed(job_id, title="Dead.Show.S01E01", size=GB):
    return {"id": job_id, "history_id": job_id.lower(), "title": title, "size": size, "category": "tv-sonarr",
            "state": "FAILURE/HEALTH"}


def test_failed_history_entries_no_arr_queues_are_offered_and_their_outcome_recorded(clock, tmp_path):
    from services.tracker.history import DetectionConfig
    from services.tracker.state import Tracker
    from services.tracker.stats import StatsStore
    stats = StatsStore(tmp_path / "stats.sqlite3", clock=clock)
    tracker = Tracker(DetectionConfig(), clock, stats)

    def report(jobs, removed=()):
        client = dict(NZBGET[0], failed=jobs, removed=list(removed))
        tracker.ingest(dict(snapshot("sonarr", [record(1, "QUEUED", protocol="usenet")], clients=[client]),
                            poller={"name": "poller", "endpoint": "tcp://127.0.0.1:5557", "next_within": 1e9}))
        clock.advance(POLL)
    report([failed("GONE1"), failed("QUEUED"), failed("LEFT")])
    offered = tracker.analyze(False)
    assert offered["candidates"] == []  # never among what automatic cleanup reads
    # Sonarr still has QUEUED in its queue (it retries it): only the others are offered.
    assert [item["download_id"] for item in offered["usenet_failed"]] == ["GONE1", "LEFT"]
    item = offered["usenet_failed"][0]
    assert (item["instance"], item["client_history"], item["history_id"]) == ("nzbget", True, "gone1")
    assert "failed in nzbget's history (FAILURE/HEALTH)" in item["reason"]
    assert offered["pollers"]["nzbget"] == offered["pollers"]["sonarr"] == "tcp://127.0.0.1:5557"
    report([failed("QUEUED")], removed=["GONE1"])  # discarr removed GONE1; LEFT was deleted by hand
    rows = {row["key"]: row for row in stats.stats(0, "client")}
    assert (rows["nzbget"]["downloads"], rows["nzbget"]["removed"], rows["nzbget"]["inactive"]) == (2, 1, 2)
    stats.close()


def test_failed_history_entries_survive_a_tracker_restart(tracker, clock, tmp_path):
    from services.tracker import checkpoint
    from services.tracker.state import Tracker
    tracker.ingest(snapshot("sonarr", [], clients=[dict(NZBGET[0], failed=[failed("F1")], removed=[])]))
    checkpoint.save(tracker, tmp_path / "state")
    restarted = Tracker(tracker.config, clock)
    assert checkpoint.load(restarted, tmp_path / "state")
    assert [item["download_id"] for item in restarted.analyze(False)["usenet_failed"]] == ["F1"]
    assert restarted.failed_jobs == tracker.failed_jobs  # first seen when it was, not at the restart


def test_a_job_sonarr_calls_paused_while_nzbget_verifies_it_is_finished(tracker, clock):
    # NZBGet holds the par2 volumes back: its remaining size equals its paused size through
    # post-processing, and Sonarr (Nzbget.cs) shows such a job as paused. NZBGet's own word wins.
    shown_paused = [record(1, "D1", size=GB, downloaded=GB // 2, status="paused", protocol="usenet",
                           client=job(stage="verifying", state="post_processing", client_state="VERIFYING_SOURCES"))]
    poll(tracker, clock, shown_paused, times=3)
    [item] = tracker.check()["downloads"]
    assert item["activity"] == "finished" and item["reason"] == "verifying for 2 min (nzbget)"


def test_the_board_and_the_history_chart_name_the_stage(tracker, clock):
    from services.bot.board import board_rows
    from services.bot.chart import render_history_png
    from services.bot.embeds import download_embed
    repairing = [record(1, "D1", size=GB, downloaded=GB, protocol="usenet", title="Show.S01E01",
                        client=job(stage="repairing", state="post_processing", client_state="REPAIRING"))]
    poll(tracker, clock, repairing, times=21)
    [row] = board_rows(tracker.check())
    assert row.mark == "repairing for 20 min (nzbget)"
    history = tracker.history("sonarr", "D1")
    assert history["reason"] == "repairing for 20 min (nzbget)"
    assert {field.name: field.value for field in download_embed(history).fields}["Now"] == history["reason"]
    assert render_history_png(history).startswith(b"\x89PNG")
