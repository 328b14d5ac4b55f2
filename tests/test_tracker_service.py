"""The tracker as a process: ingest over PUSH/PULL, answers over REQ/REP, its checkpoint."""
import signal

import msgpack
import pytest
import zmq

from common import protocol
from common.clock import ManualClock
from common.sockets import RequestClient, make_socket
from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.state import Tracker
from tests.conftest import wait_until
from tests.records import GB, record, snapshot


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def push_to(context, endpoint):
    push = make_socket(context, zmq.PUSH)
    push.connect(endpoint)
    return push


def test_ingest_and_queries_over_real_sockets_survive_garbage(deployment, context):
    deployment.env["STUCK_THRESHOLD_MINUTES"] = "0.02"
    deployment.start("tracker")
    push = push_to(context, deployment.env["TRACKER_INGEST_ENDPOINT"])
    push.send(b"\xc1 garbage")
    push.send(msgpack.packb({"v": 7, "type": "snapshot", "body": {}}))
    push.send(protocol.encode("ping"))
    push.send(protocol.encode("snapshot", snapshot("sonarr", [record(1, "A", downloaded=GB)])))
    with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 3, context=context) as client:
        wait_until(lambda: client.request("check")["tracked"] == 1, 10, "the snapshot to arrive")
        raw = make_socket(context, zmq.REQ)
        raw.connect(deployment.env["TRACKER_QUERY_ENDPOINT"])
        raw.send(b"\x93\x01\x02")
        assert raw.poll(3000), "a REP socket must answer garbage"
        assert protocol.decode(raw.recv()).type == "error"
        raw.close()
        def stuck():
            push.send(protocol.encode("snapshot", snapshot("sonarr", [record(1, "A", downloaded=GB)])))
            return client.request("progress")["stuck"]
        stuck = wait_until(stuck, 10, "the download to be stuck", interval=0.3)
        assert [item["download_id"] for item in stuck] == ["A"]
    push.close()
    log = deployment.log_path("tracker").read_text()
    assert "ingest rejected a message: not a msgpack message" in log
    assert "protocol version 7 is not supported" in log
    assert "expected a snapshot, got 'ping'" in log


def test_sigterm_checkpoints_and_a_restart_restores_history(deployment, context):
    deployment.env["STUCK_THRESHOLD_MINUTES"] = "0.02"
    deployment.start("tracker")
    push = push_to(context, deployment.env["TRACKER_INGEST_ENDPOINT"])
    with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 3, context=context) as client:
        def stuck():
            push.send(protocol.encode("snapshot", snapshot("sonarr", [record(1, "A", downloaded=GB)])))
            return client.request("progress")["stuck"]
        wait_until(stuck, 10, "the download to be stuck", interval=0.3)
        assert deployment.stop("tracker", signal.SIGTERM) == 0
        deployment.start("tracker")
        answer = client.request("progress", timeout=10)
        assert [item["download_id"] for item in answer["stuck"]] == ["A"]
    push.close()


def test_after_sigkill_a_restarted_tracker_reports_the_stuck_download_at_once(deployment, context):
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.02", "TRACKER_CHECKPOINT_SECONDS": "0.3"})
    deployment.start("tracker")
    push = push_to(context, deployment.env["TRACKER_INGEST_ENDPOINT"])
    state_file = deployment.workdir / "data" / "tracker.msgpack"
    with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 3, context=context) as client:
        def stuck():
            push.send(protocol.encode("snapshot", snapshot("sonarr", [record(1, "A", downloaded=GB)])))
            return client.request("progress")["stuck"]
        wait_until(stuck, 10, "the download to be stuck", interval=0.3)
        saved = state_file.stat().st_mtime_ns if state_file.exists() else 0
        wait_until(lambda: state_file.exists() and state_file.stat().st_mtime_ns > saved, 10, "a checkpoint")
        deployment.stop("tracker", signal.SIGKILL)
        deployment.start("tracker")
        answer = client.request("progress", timeout=10)  # no snapshot has arrived since the restart
        assert [item["download_id"] for item in answer["stuck"]] == ["A"]
        assert answer["stuck"][0]["stalled_minutes"] >= 0.02
    push.close()


def test_a_corrupt_checkpoint_is_set_aside_not_fatal(tmp_path):
    path = tmp_path / "state.msgpack"
    path.write_bytes(b"this is not a checkpoint")
    tracker = Tracker(DetectionConfig(), ManualClock())
    assert checkpoint.load(tracker, path) is False
    assert not path.exists()
    assert len(list(tmp_path.glob("state.msgpack.corrupt-*"))) == 1


def test_a_checkpoint_round_trips(tmp_path):
    clock = ManualClock()
    tracker = Tracker(DetectionConfig(threshold_s=60), clock)
    for _ in range(5):
        tracker.ingest(snapshot("radarr", [record(1, "M", downloaded=GB)], kind="radarr"))
        clock.advance(30)
    checkpoint.save(tracker, tmp_path / "state.msgpack")
    restored = Tracker(DetectionConfig(threshold_s=60), clock)
    assert checkpoint.load(restored, tmp_path / "state.msgpack") is True
    assert restored.progress({}) == tracker.progress({})
    assert [i["download_id"] for i in restored.progress({})["stuck"]] == ["M"]


def test_a_query_sent_during_a_large_ingest_is_answered_before_that_ingest_completes(deployment, context):
    """The tracker answers between slices of a large snapshot, and never shows it half-ingested."""
    deployment.start("tracker")
    push = push_to(context, deployment.env["TRACKER_INGEST_ENDPOINT"])
    large = 40_000
    with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 10, context=context) as client:
        push.send(protocol.encode("snapshot", snapshot("sonarr", [record(1, "SMALL")])))
        wait_until(lambda: client.request("check")["tracked"] == 1, 10, "the small snapshot")
        push.send(protocol.encode("snapshot", snapshot("radarr", [record(n, f"R{n}") for n in range(large)],
                                                       kind="radarr")))
        answers = []
        while not answers or answers[-1][1] != large + 1:
            ingesting = client.request("ping")["ingesting"]
            answers.append((ingesting, client.request("check", {"limit": 1})["tracked"]))
            assert len(answers) < 100_000, "the large snapshot was never ingested"
    push.close()
    during = [ingesting for ingesting, _ in answers if ingesting is not None]
    assert during, "no query was answered while the large snapshot was being ingested"
    assert all(i["instance"] == "radarr" and i["downloads"] == large for i in during)
    assert any(0 < i["done"] < large for i in during)  # answered in the middle of it
    # Until the snapshot is wholly ingested its downloads are not there; then all are.
    assert {tracked for _, tracked in answers} == {1, large + 1}
