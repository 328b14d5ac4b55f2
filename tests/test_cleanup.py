"""Removal end to end: simarr, poller and tracker as processes; what simarr was asked is the proof."""
import json
import time

import pytest

from common.protocol import removal_request
from common.sockets import RequestClient
from tests.conftest import wait_until

MB = 1024 ** 2
GB = 1024 ** 3

SONARR = {
    "Stuck.Show.S01E01": {"size": GB, "downloaded": 100 * MB, "state": "stalled"},
    "Stuck.Pack.S02": {"size": 20 * GB, "downloaded": GB, "state": "stalled", "episodes": 3},
    "Failed.Show.S01E02": {"size": GB, "downloaded": 300 * MB, "state": "failed", "protocol": "usenet"},
    "Healthy.Show.S01E03": {"size": 100 * GB, "state": "downloading", "rate": 20 * MB},
    "Paused.Show.S01E04": {"size": GB, "downloaded": 10 * MB, "state": "paused"},
    "Queued.Show.S01E05": {"size": GB, "state": "queued"},
    "Blocked.Show.S01E06": {"size": GB, "downloaded": GB, "state": "import_blocked"},
}
RADARR = {
    "Stuck.Movie.2024": {"size": 4 * GB, "downloaded": GB, "state": "stalled"},
    "Healthy.Movie.2023": {"size": 50 * GB, "state": "downloading", "rate": 20 * MB},
}
CANDIDATES = ["Failed.Show.S01E02", "Stuck.Movie.2024", "Stuck.Pack.S02", "Stuck.Show.S01E01"]


@pytest.fixture
def queues(deployment):
    """The deployment running, with every candidate already found by the tracker."""
    deployment.simulate("sonarr", "radarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.05", "MIN_SIZE_CHANGE": str(MB)})
    deployment.start("simarr", "--scenario", "empty")
    ids = {}
    for kind, downloads in (("sonarr", SONARR), ("radarr", RADARR)):
        for title, spec in downloads.items():
            ids[title] = deployment.control(kind, "POST", "downloads", dict(spec, title=title))
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: titles(analyze(deployment)) == CANDIDATES, 30, "the tracker to find every candidate",
               interval=0.5)
    deployment.ids = ids
    return deployment


def analyze(deployment, include_import_blocked=False):
    return deployment.cli_json("cleanup", "--dry-run", *(["--include-import-blocked"] if include_import_blocked
                                                        else []))["candidates"]


def titles(items):
    return sorted(item["title"] for item in items)


def deletes(deployment, kind):
    return [r for r in deployment.control(kind, "GET", "requests") if r["method"] == "DELETE"]


def remaining(deployment, kind):
    return sorted(d["title"] for d in deployment.control(kind, "GET", "downloads"))


def audit_lines(deployment):
    """Every decision's audit line (a removal's intent line, written before its DELETE, aside)."""
    path = deployment.workdir / "data" / "removals.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [line for line in lines if line["result"] != "removing"]


def send_removal(deployment, downloads, **overrides):
    request = removal_request(downloads, requested_by="test", dry_run=False, include_import_blocked=False,
                              now=time.time(), valid_for=30)
    request.update(overrides)
    with RequestClient("poller", deployment.env["POLLER_COMMAND_ENDPOINT"], 20) as client:
        return request, client.request("remove", request)


def test_cleanup_removes_exactly_the_stuck_and_inactive_ones(queues):
    done = queues.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is False
    assert titles(report["candidates"]) == CANDIDATES
    assert {r["title"]: r["result"] for r in report["results"]} == dict.fromkeys(CANDIDATES, "removed")

    sonarr_deletes = deletes(queues, "sonarr")
    assert len(sonarr_deletes) == 3  # one bulk call per download, the pack included
    for call in sonarr_deletes + deletes(queues, "radarr"):
        assert call["path"] == "/api/v3/queue/bulk" and call["status"] == 200
        assert call["query"] == {"removeFromClient": "true", "blocklist": "true", "skipRedownload": "false"}
    pack_call = next(c for c in sonarr_deletes if len(c["body"]["ids"]) > 1)
    assert sorted(pack_call["body"]["ids"]) == sorted(queues.ids["Stuck.Pack.S02"]["queue_ids"])
    assert len(pack_call["body"]["ids"]) == 3

    assert remaining(queues, "sonarr") == ["Blocked.Show.S01E06", "Healthy.Show.S01E03",
                                           "Paused.Show.S01E04", "Queued.Show.S01E05"]
    assert remaining(queues, "radarr") == ["Healthy.Movie.2023"]

    lines = [line for line in audit_lines(queues) if not line["dry_run"]]
    assert titles(lines) == CANDIDATES
    for line in lines:
        assert line["result"] == "removed" and line["requested_by"].startswith("cli:")
        assert line["reason"] and line["evidence"] is not None and line["arr_response"].endswith("HTTP 200")
        assert line["queue_ids"] and line["download_id"] and line["time"]


def test_a_download_that_moves_or_pauses_after_the_preview_is_skipped(queues):
    preview = {item["title"]: item for item in analyze(queues)}
    queues.control("sonarr", "POST", f"downloads/{queues.ids['Stuck.Show.S01E01']['download_id']}",
                   {"state": "downloading", "rate": 50 * MB})
    queues.control("radarr", "POST", f"downloads/{queues.ids['Stuck.Movie.2024']['download_id']}",
                   {"state": "paused"})
    time.sleep(0.3)  # 15 MB at 50 MB/s: past MIN_SIZE_CHANGE
    before = len(audit_lines(queues))
    _, answer = send_removal(queues, [preview["Stuck.Show.S01E01"], preview["Stuck.Movie.2024"]])
    assert {r["title"]: (r["result"], r["detail"]) for r in answer["results"]} == {
        "Stuck.Show.S01E01": ("skipped", "progressed since analysis"),
        "Stuck.Movie.2024": ("skipped", "now paused"),
    }
    assert deletes(queues, "sonarr") == deletes(queues, "radarr") == []
    assert [(line["title"], line["result"]) for line in audit_lines(queues)[before:]] == [
        ("Stuck.Show.S01E01", "skipped"), ("Stuck.Movie.2024", "skipped")]


def test_a_dry_run_makes_every_check_and_sends_no_delete(queues):
    queues.control("sonarr", "POST", "requests/clear")
    before = len(audit_lines(queues))
    report = queues.cli_json("cleanup", "--dry-run")
    assert report["dry_run"] is True
    assert {r["title"]: r["result"] for r in report["results"]} == dict.fromkeys(CANDIDATES, "skipped")
    assert all(r["detail"].startswith("dry run: would remove") for r in report["results"])
    assert deletes(queues, "sonarr") == deletes(queues, "radarr") == []
    # The poller read the queues again to check (the tracker's analysis alone is not enough).
    assert any(r["method"] == "GET" for r in queues.control("sonarr", "GET", "requests"))
    lines = audit_lines(queues)[before:]
    assert titles(lines) == CANDIDATES
    assert {line["result"] for line in lines} == {"dry_run"}


def test_a_retried_request_deletes_once(queues):
    [movie] = [item for item in analyze(queues) if item["title"] == "Stuck.Movie.2024"]
    before = len(audit_lines(queues))
    request, first = send_removal(queues, [movie])
    with RequestClient("poller", queues.env["POLLER_COMMAND_ENDPOINT"], 20) as client:
        again = client.request("remove", request)
    assert again == first
    assert [r["result"] for r in first["results"]] == ["removed"]
    assert len(deletes(queues, "radarr")) == 1
    assert len(audit_lines(queues)) == before + 1


def test_a_request_delivered_after_its_expiry_deletes_nothing(queues):
    [movie] = [item for item in analyze(queues) if item["title"] == "Stuck.Movie.2024"]
    before = len(audit_lines(queues))
    _, answer = send_removal(queues, [movie], expires_at=time.time() - 10)
    [result] = answer["results"]
    assert result["result"] == "skipped" and "expired" in result["detail"]
    assert deletes(queues, "radarr") == []
    assert remaining(queues, "radarr") == ["Healthy.Movie.2023", "Stuck.Movie.2024"]
    assert [line["result"] for line in audit_lines(queues)[before:]] == ["skipped"]


def test_an_arr_failing_mid_cleanup_fails_its_items_and_the_others_complete(queues):
    preview = analyze(queues)
    queues.control("radarr", "POST", "fault", {"mode": "500"})
    _, answer = send_removal(queues, preview)
    results = {r["title"]: (r["result"], r["detail"]) for r in answer["results"]}
    assert results.pop("Stuck.Movie.2024") == ("failed", "could not read the queue again: "
                                               f"http://127.0.0.1:{queues.simarr_port}/radarr answered HTTP 500")
    assert {title: result for title, (result, _) in results.items()} == {
        "Failed.Show.S01E02": "removed", "Stuck.Pack.S02": "removed", "Stuck.Show.S01E01": "removed"}
    assert [line["result"] for line in audit_lines(queues) if line["title"] == "Stuck.Movie.2024"][-1] == "failed"


def test_the_cli_exits_1_when_an_arr_call_failed(queues):
    queues.control("radarr", "POST", "fault", {"mode": "500"})
    done = queues.cli("cleanup", "--yes", "--json")
    assert done.returncode == 1
    failed = [r for r in json.loads(done.stdout)["results"] if r["result"] == "failed"]
    assert [r["title"] for r in failed] == ["Stuck.Movie.2024"]


def test_import_blocked_downloads_go_only_when_asked(queues):
    assert "Blocked.Show.S01E06" not in titles(analyze(queues))
    report = queues.cli_json("cleanup", "--yes", "--include-import-blocked")
    assert {r["title"]: r["result"] for r in report["results"]}["Blocked.Show.S01E06"] == "removed"
    assert "Blocked.Show.S01E06" not in remaining(queues, "sonarr")


def test_without_yes_it_asks_on_the_terminal_and_no_keeps_everything(queues):
    import os
    import subprocess
    import sys
    main, secondary = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "services", "cleanup"], env=dict(queues.env, COLUMNS="200"),
                               cwd=queues.workdir,
                               stdin=secondary, stdout=secondary, stderr=secondary)
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 30
    while b"Remove these 4 downloads?" not in seen and time.monotonic() < deadline:
        seen += os.read(main, 65536)
    assert b"Stuck.Movie.2024" in seen  # the preview came first
    os.write(main, b"n\n")
    assert process.wait(30) == 0
    os.close(main)
    assert deletes(queues, "sonarr") == deletes(queues, "radarr") == []


def test_without_yes_and_without_a_terminal_it_refuses(queues):
    done = queues.cli("cleanup")
    assert done.returncode == 2
    assert done.stderr.strip() == "discarr cleanup: no terminal to confirm on; pass --yes (or --dry-run)"


def delete_ids(deployment, kind):
    """Every queue id named in a DELETE, as often as it was named."""
    named = []
    for request in deletes(deployment, kind):
        path = request["path"].rsplit("/", 1)[-1]
        named += request["body"]["ids"] if path == "bulk" else [int(path)]
    return named


def test_a_slow_delete_is_waited_for_and_never_sent_twice(queues):
    # The *arr answers a DELETE after 4 s, longer than REQUEST_TIMEOUT_SECONDS (3 here): the poller waits
    # for it (REMOVAL_TIMEOUT_SECONDS), and cleanup run again finds nothing more to delete.
    queues.control("radarr", "POST", "fault", {"mode": "slow_delete", "delay": 4})
    runs = [queues.cli("cleanup", "--yes", "--json", timeout=60) for _ in range(3)]
    assert all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    first = {r["title"]: r["result"] for r in json.loads(runs[0].stdout)["results"]}
    assert first["Stuck.Movie.2024"] == "removed"
    named = delete_ids(queues, "radarr")
    assert named and len(named) == len(set(named))
    assert "Stuck.Movie.2024" not in remaining(queues, "radarr")


def test_a_delete_without_an_answer_is_reported_as_unknown_and_never_sent_again(queues):
    # The *arr takes longer than the poller waits: the outcome is unknown, the poller looks again, and
    # while the *arr is still removing it, no later cleanup sends a second DELETE for its records.
    queues.stop("poller")
    queues.env["REMOVAL_TIMEOUT_SECONDS"] = "2"
    queues.start("poller")
    queues.control("radarr", "POST", "fault", {"mode": "slow_delete", "delay": 6})
    [movie] = [item for item in analyze(queues) if item["title"] == "Stuck.Movie.2024"]
    before = len(audit_lines(queues))
    _, answer = send_removal(queues, [movie])
    [result] = answer["results"]
    assert result["result"] == "failed" and "did not answer" in result["detail"] and "may still" in result["detail"]
    _, again = send_removal(queues, [movie])
    [result] = again["results"]
    assert result["result"] == "skipped" and "still in progress" in result["detail"]
    wait_until(lambda: "Stuck.Movie.2024" not in remaining(queues, "radarr"), 20, "the slow DELETE to be done")
    named = delete_ids(queues, "radarr")
    assert len(named) == len(set(named)) == len(movie["queue_ids"])
    outcomes = [line["result"] for line in audit_lines(queues)[before:]]
    assert outcomes == ["unknown", "failed", "skipped"]
