"""End to end with real processes and simarr: what real servers and real clocks do.

Usenet downloads unpack for a while with nothing left, the host sleeps, and the *arrs refresh
their figures only every so often. Thresholds are seconds; the tracker is asked several times a
second, so a verdict that is wrong for a single poll is seen.
"""
import time

import pytest

from common.sockets import RequestClient
from tests.conftest import wait_until

MB = 1024 ** 2
GB = 1024 ** 3
THRESHOLD = 3.0  # STUCK_THRESHOLD_MINUTES=0.05
POLL = 0.5


@pytest.fixture
def sonarr(deployment):
    deployment.simulate("sonarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": str(THRESHOLD / 60), "MIN_SIZE_CHANGE": str(MB),
                           "POLL_INTERVAL_SECONDS": str(POLL)})
    return deployment


def watch(deployment, seconds: float, look) -> None:
    """Ask the tracker for progress and removal candidates every 0.1 s for `seconds`; `look` checks each."""
    with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 3) as tracker:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            progress = tracker.request("progress")
            candidates = tracker.request("analyze", {"include_import_blocked": True, "include_slow": True})
            look(progress, {item["title"] for item in candidates["candidates"]})
            time.sleep(0.1)


def titles(items) -> set[str]:
    return {item["title"] for item in items}


def test_a_usenet_download_unpacking_for_three_thresholds_is_never_stuck_and_needs_attention(sonarr):
    sonarr.start("simarr", "--scenario", "empty")
    sonarr.control("sonarr", "POST", "downloads", {
        "title": "Unpacking.Show.S01E01.1080p-GRP", "protocol": "usenet", "size": 200 * MB, "downloaded": 199 * MB,
        "rate": 10 * MB, "post_processing": 3 * THRESHOLD + 2, "import_after": 60})
    sonarr.control("sonarr", "POST", "downloads", {"title": "Dead.Show.S01E02", "size": GB, "downloaded": 10 * MB,
                                                  "state": "stalled"})
    # A record whose status still says downloading while its tracked state says import pending.
    sonarr.control("sonarr", "POST", "frozen", {"records": [{
        "seriesId": 9, "episodeId": 90, "size": 3 * GB, "title": "Importing.Show.S01E03", "sizeleft": GB,
        "status": "downloading", "trackedDownloadStatus": "ok", "trackedDownloadState": "importPending",
        "downloadId": "AB" * 20, "protocol": "torrent", "downloadClient": "qBittorrent", "id": 424242}]})
    sonarr.start("tracker")
    sonarr.start("poller")
    wait_until(lambda: "Dead.Show.S01E02" in titles(sonarr.cli_json("progress")["stuck"]), 30, "the dead one stuck")
    seen_attention = []

    def look(progress, candidates):
        assert titles(progress["stuck"]) == {"Dead.Show.S01E02"}
        assert candidates == {"Dead.Show.S01E02"}, "a finished or importing download was offered for removal"
        seen_attention.extend(item for item in progress["attention"] if item["title"].startswith("Unpacking"))
    watch(sonarr, 3 * THRESHOLD, look)
    assert seen_attention and seen_attention[-1]["attention"] == "not_imported"
    assert "not imported" in seen_attention[-1]["reason"]


def test_after_the_host_sleeps_moving_downloads_are_never_stuck(sonarr):
    sonarr.start("simarr", "--scenario", "empty")
    for title in ("Mover.One.S01E01", "Mover.Two.S01E02"):
        sonarr.control("sonarr", "POST", "downloads", {"title": title, "size": 500 * GB, "rate": 5 * MB})
    sonarr.control("sonarr", "POST", "downloads", {"title": "Dead.Show.S01E03", "size": GB, "state": "stalled"})
    sonarr.start("tracker")
    sonarr.start("poller")
    wait_until(lambda: titles(sonarr.cli_json("progress")["stuck"]) == {"Dead.Show.S01E03"}, 30, "the dead one stuck")
    sonarr.control("sonarr", "POST", "sleep", {"seconds": 2 * THRESHOLD})

    def look(progress, candidates):
        assert titles(progress["stuck"]) == {"Dead.Show.S01E03"}, "judged on the time nobody saw"
        assert candidates == {"Dead.Show.S01E03"}
    watch(sonarr, 2 * THRESHOLD + 3 * THRESHOLD, look)
    assert sonarr.cli_json("progress")["instances"][0]["healthy"]  # it woke up and was read again


def test_figures_refreshed_every_two_and_a_half_polls_are_no_outage(sonarr):
    refresh = 2.5 * POLL
    sonarr.env["ARR_REFRESH_SECONDS"] = str(refresh)
    sonarr.start("simarr", "--scenario", "empty", "--refresh-seconds", str(refresh))
    for number, rate in enumerate((4, 5, 6, 8), start=1):
        sonarr.control("sonarr", "POST", "downloads", {"title": f"Mover.S01E0{number}", "size": 500 * GB,
                                                      "rate": rate * MB})
    sonarr.control("sonarr", "POST", "downloads", {"title": "Dead.S01E09", "size": GB, "state": "stalled"})
    sonarr.start("tracker")
    sonarr.start("poller")
    seen, stuck = [], []

    def look(progress, candidates):
        assert progress["outages"] == [], "the *arr's refresh was taken for an outage"
        assert titles(progress["stuck"]) <= {"Dead.S01E09"}
        if progress["tracked"] and not seen:
            seen.append(time.monotonic())
        if progress["stuck"] and not stuck:
            stuck.append(time.monotonic())
    watch(sonarr, 4 * THRESHOLD, look)
    assert stuck, "the dead download was never stuck"
    # From the first snapshot: within the threshold plus two refresh intervals (and two polls to see it).
    assert stuck[0] - seen[0] <= THRESHOLD + 2 * refresh + 2 * POLL
