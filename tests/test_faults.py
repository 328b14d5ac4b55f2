"""SPEC section 6 for real: processes killed and restarted alone, *arr faults injected at run time."""
import signal
import time

import msgpack
import pytest

from common.protocol import removal_request
from common.sockets import RequestClient
from tests.conftest import wait_until

MB = 1024 ** 2
GB = 1024 ** 3


@pytest.fixture
def running(deployment):
    """Sonarr and Radarr, each with a stalled download that is stuck, and the tracker checkpointing often."""
    deployment.simulate("sonarr", "radarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.03", "MIN_SIZE_CHANGE": str(MB),
                           "TRACKER_CHECKPOINT_SECONDS": "0.3"})
    deployment.start("simarr", "--scenario", "empty")
    for kind in ("sonarr", "radarr"):
        deployment.control(kind, "POST", "downloads", {"title": f"Stalled.{kind}", "size": GB,
                                                       "downloaded": 100 * MB, "state": "stalled"})
        deployment.control(kind, "POST", "downloads", {"title": f"Moving.{kind}", "size": 100 * GB,
                                                       "state": "downloading", "rate": 10 * MB})
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: len(progress(deployment)["stuck"]) == 2, 30, "both stalled downloads stuck", interval=0.3)
    return deployment


def progress(deployment):
    return deployment.cli_json("progress")


def stuck_titles(answer):
    return sorted(item["title"] for item in answer["stuck"])


def checkpointed_after(deployment, moment):
    """Wait until the tracker has written a checkpoint after `moment` (time.time())."""
    state = deployment.workdir / "data" / "tracker.msgpack"
    wait_until(lambda: state.exists() and state.stat().st_mtime > moment, 10, "a checkpoint", interval=0.1)


def test_tracker_killed_and_restarted(running):
    checkpointed_after(running, time.time())  # a checkpoint that holds the stuck verdicts
    running.stop("tracker", signal.SIGKILL)
    started = time.monotonic()
    down = running.cli("progress", "--json")
    assert down.returncode == 1 and "tracker did not answer" in down.stderr
    assert time.monotonic() - started < 10  # fails fast, not a hang (the limit is the 3 s timeout)
    time.sleep(1.5)  # the poller goes on polling into the void
    assert running.processes["poller"].poll() is None
    running.start("tracker")
    answer = progress(running)
    assert stuck_titles(answer) == ["Stalled.radarr", "Stalled.sonarr"]  # from the checkpoint, at once
    def fresh():
        answer = progress(running)
        ages = [i["last_snapshot_age_s"] for i in answer["instances"]]
        return answer if all(age is not None and age < 1.0 for age in ages) else None
    current = wait_until(fresh, 10, "fresh snapshots from the poller")
    assert current["tracked"] == 4
    log = running.log_path("poller").read_text()
    assert "tracker is not receiving" in log and "tracker is back" in log


def test_poller_killed_and_restarted_keeps_history_and_removes_nothing_twice(running):
    [movie] = [item for item in progress(running)["stuck"] if item["instance"] == "radarr"]
    request = removal_request([movie], requested_by="test", dry_run=False, include_import_blocked=False,
                              now=time.time(), valid_for=60)
    with RequestClient("poller", running.env["POLLER_COMMAND_ENDPOINT"], 20) as client:
        assert [r["result"] for r in client.request("remove", request)["results"]] == ["removed"]
    running.stop("poller", signal.SIGKILL)
    time.sleep(0.5)
    assert stuck_titles(progress(running)) == ["Stalled.radarr", "Stalled.sonarr"]  # history kept
    running.start("poller")
    with RequestClient("poller", running.env["POLLER_COMMAND_ENDPOINT"], 20) as client:
        [again] = client.request("remove", request)["results"]  # the bot retrying its request
    assert (again["result"], again["detail"]) == ("skipped", "no longer in the queue")
    deletes = [r for r in running.control("radarr", "GET", "requests") if r["method"] == "DELETE"]
    assert len(deletes) == 1
    wait_until(lambda: stuck_titles(progress(running)) == ["Stalled.sonarr"], 10, "the removal to show")


@pytest.mark.parametrize("mode, state, reason", [
    ("down", "unreachable", "cannot connect"),
    ("slow", "unreachable", "no answer from"),
    ("401", "unauthorized", "refused the API key (HTTP 401)"),
    ("500", "bad_response", "answered HTTP 500"),
    ("garbage", "bad_response", "not JSON"),
    ("html", "bad_response", "answered text/html, not JSON"),
    ("missing_fields", "bad_response", "lack a status"),
])
def test_an_arr_fault_marks_only_that_instance_and_wipes_no_history(running, mode, state, reason):
    running.env["REQUEST_TIMEOUT_SECONDS"] = "3"
    running.control("radarr", "POST", "fault", {"mode": mode, "delay": 6})
    def radarr_unhealthy():
        answer = progress(running)
        return None if next(i for i in answer["instances"] if i["name"] == "radarr")["healthy"] else answer
    answer = wait_until(radarr_unhealthy, 30, f"radarr {mode}", interval=0.3)
    health = {i["name"]: i for i in answer["instances"]}
    assert health["radarr"]["state"] == state and reason in health["radarr"]["error"]
    assert health["sonarr"]["healthy"] and health["sonarr"]["last_snapshot_age_s"] < 2
    time.sleep(1)
    assert stuck_titles(progress(running)) == ["Stalled.radarr", "Stalled.sonarr"]
    board = running.cli("check").stdout
    assert "radarr: UNHEALTHY" in board
    running.control("radarr", "POST", "fault", {"mode": "none"})
    wait_until(lambda: all(i["healthy"] for i in progress(running)["instances"]), 60, "radarr to recover",
               interval=0.5)
    assert stuck_titles(progress(running)) == ["Stalled.radarr", "Stalled.sonarr"]


def test_a_failing_instance_is_asked_less_and_less_often(running):
    running.control("radarr", "POST", "fault", {"mode": "500"})
    time.sleep(0.5)
    running.control("radarr", "POST", "requests/clear")
    running.control("sonarr", "POST", "requests/clear")
    time.sleep(4)
    radarr = len(running.control("radarr", "GET", "requests"))
    sonarr = len(running.control("sonarr", "GET", "requests"))
    assert sonarr >= 4  # polled every 0.5 s
    assert radarr <= sonarr / 2  # backed off: 1 s, 2 s, 4 s


@pytest.mark.parametrize("name", ["simarr", "tracker", "poller", "bot"])
def test_sigterm_stops_each_process_cleanly_within_5_seconds(running, name):
    if name == "bot":
        running.env["CHECK_INTERVAL"] = "60"
        running.start("bot")
        wait_until(lambda: "downloads tracked" in running.log_path("bot").read_text(), 20, "the board")
    process = running.processes.pop(name)
    process.send_signal(signal.SIGTERM)
    assert process.wait(5) == 0


def test_bot_killed_and_restarted_while_the_others_run(running):
    running.env["CHECK_INTERVAL"] = "0.5"
    running.start("bot")
    wait_until(lambda: "STUCK" in running.log_path("bot").read_text(), 20, "the board to show the stuck ones")
    running.stop("bot", signal.SIGKILL)
    assert running.processes["tracker"].poll() is None and running.processes["poller"].poll() is None
    size = running.log_path("bot").stat().st_size
    running.start("bot")
    wait_until(lambda: "STUCK" in running.log_path("bot").read_text()[size:], 20, "the restarted board")
    assert stuck_titles(progress(running)) == ["Stalled.radarr", "Stalled.sonarr"]


def test_a_snapshot_with_fields_of_the_wrong_types_is_dropped_and_the_tracker_goes_on(running):
    import zmq

    from common import protocol
    from common.sockets import make_socket
    from tests.records import record, snapshot
    body = snapshot("sonarr", [record(1, "ODD")])
    body["records"][0].update(size="big", client={"name": 3})
    forged = msgpack.packb({"v": protocol.PROTOCOL_VERSION, "type": "snapshot", "body": body})
    context = zmq.Context()
    push = make_socket(context, zmq.PUSH)
    push.connect(running.env["TRACKER_INGEST_ENDPOINT"])
    try:
        push.send(forged)
        wait_until(lambda: "ingest rejected a message" in running.log_path("tracker").read_text(), 10,
                   "the forged snapshot to be dropped")
    finally:
        push.close()
        context.destroy(linger=0)
    assert running.processes["tracker"].poll() is None
    answer = progress(running)
    assert stuck_titles(answer) == ["Stalled.radarr", "Stalled.sonarr"]
    assert "ODD" not in {item["download_id"] for item in running.cli_json("check")["downloads"]}


def test_a_checkpoint_directory_that_cannot_be_written_loses_no_history(running):
    # Root ignores permission bits: a regular file where the directory should be fails every write.
    data = running.workdir / "data"
    state = data / "tracker.msgpack"
    checkpointed_after(running, time.time())
    aside = running.workdir / "data-aside"
    data.rename(aside)
    data.write_text("not a directory")
    blocked_at = time.time()
    wait_until(lambda: "cannot write the checkpoint" in running.log_path("tracker").read_text(), 10,
               "a failed checkpoint to be logged")
    running.control("radarr", "POST", "downloads", {"title": "Arrived.While.Blocked", "size": GB,
                                                    "downloaded": MB, "state": "stalled"})
    wait_until(lambda: "Arrived.While.Blocked" in {i["title"] for i in running.cli_json("check")["downloads"]},
               10, "the new download to be tracked")
    assert running.processes["tracker"].poll() is None  # still running, history in memory
    data.unlink()
    aside.rename(data)
    checkpointed_after(running, max(blocked_at, time.time()))
    running.stop("tracker", signal.SIGKILL)
    running.start("tracker")
    titles = {item["title"] for item in running.cli_json("check")["downloads"]}
    assert {"Arrived.While.Blocked", "Stalled.radarr", "Stalled.sonarr"} <= titles


def test_a_removal_whose_audit_line_cannot_be_written_deletes_nothing(running):
    [movie] = [item for item in progress(running)["stuck"] if item["instance"] == "radarr"]
    blocked = running.workdir / "blocked"
    blocked.write_text("a file where the audit log's directory should be")
    running.stop("poller")
    running.start("poller", env={"AUDIT_LOG": str(blocked / "removals.jsonl")})
    request = removal_request([movie], requested_by="test", dry_run=False, include_import_blocked=False,
                              now=time.time(), valid_for=10)
    with RequestClient("poller", running.env["POLLER_COMMAND_ENDPOINT"], 20) as client:
        [result] = client.request("remove", request)["results"]
    assert result["result"] == "failed"
    assert result["detail"].startswith("the audit log cannot be written") and "nothing was removed" in result["detail"]
    assert [r for r in running.control("radarr", "GET", "requests") if r["method"] == "DELETE"] == []
    assert "Stalled.radarr" in {d["title"] for d in running.control("radarr", "GET", "downloads")}
