"""Statistics end to end (SPEC 5.1): simarr, poller and tracker as processes; downloads complete, stall and are
removed, or fail, and `discarr stats --by indexer --json` says so, to the download."""
from tests.conftest import wait_until

MB = 1024 ** 2
GB = 1024 ** 3


def test_stats_by_indexer_match_what_happened(deployment):
    deployment.simulate("sonarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.05", "MIN_SIZE_CHANGE": str(MB)})
    deployment.start("simarr", "--scenario", "empty")
    add = lambda **spec: deployment.control("sonarr", "POST", "downloads", spec)  # noqa: E731
    add(title="Done.S01E01.1080p.WEB-DL-GRPA", indexer="IndexerA", size=60 * MB, downloaded=40 * MB, rate=10 * MB,
        import_after=2)
    add(title="Dead.S01E02.1080p.WEB-DL-GRPA", indexer="IndexerA", size=GB, downloaded=10 * MB, state="stalled")
    add(title="Failed.S01E03.1080p.WEB-DL-GRPB", indexer="IndexerB", protocol="usenet", size=GB, state="failed",
        script=[{"at": 4, "state": "imported"}])
    add(title="Moving.S01E04.1080p.WEB-DL-GRPB", indexer="IndexerB", size=500 * GB, rate=20 * MB)
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: deployment.cli_json("progress")["stuck"], 30, "the dead download to be stuck", interval=0.5)
    # The failed one leaves the queue by itself (its *arr cleans it up), before any cleanup could remove it.
    wait_until(lambda: not [d for d in deployment.cli_json("check")["downloads"] if d["title"].startswith("Failed")],
               30, "the failed download to leave the queue", interval=0.5)
    done = deployment.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr

    def rows():
        answer = deployment.cli_json("stats", "--by", "indexer")
        found = {row["key"]: row for row in answer["rows"]}
        return found if sum(row["downloads"] for row in found.values()) == 3 else None
    found = wait_until(rows, 30, "three downloads to have left the queue", interval=0.5)
    a, b = found["IndexerA"], found["IndexerB"]
    assert (a["downloads"], a["completed"], a["removed"], a["stuck"]) == (2, 1, 1, 1)
    assert (b["downloads"], b["completed"], b["removed"], b["inactive"]) == (1, 0, 0, 1)  # the failed one
    assert a["median_hours_to_complete"] is not None and b["median_hours_to_complete"] is None
    groups = {row["key"]: row["downloads"] for row in deployment.cli_json("stats", "--by", "group")["rows"]}
    assert groups == {"GRPA": 2, "GRPB": 1}  # the mover is still in the queue: no outcome yet
