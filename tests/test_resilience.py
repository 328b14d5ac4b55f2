"""Nothing that goes wrong with one message, one snapshot or one poll takes a process down, or
leaves it half-dead (SPEC section 6): the tracker and the poller run here on real sockets, in threads
of the test, with one piece of their code made to raise."""
import logging
import threading
import time

import pytest
import zmq

from common import protocol
from common.clock import SystemClock
from common.runtime import ProcessFailed
from common.settings import load_settings
from common.sockets import RequestClient, bind, make_socket
from services.poller import service as poller_service
from services.simarr.model import SimInstance
from services.simarr.server import SimarrServer
from services.tracker.service import run_tracker
from services.tracker.state import Tracker
from tests.conftest import free_port, wait_until
from tests.records import record, snapshot


def endpoints():
    return {name: f"tcp://127.0.0.1:{free_port()}"
            for name in ("TRACKER_INGEST_ENDPOINT", "TRACKER_QUERY_ENDPOINT", "POLLER_COMMAND_ENDPOINT")}


def running(target, settings):
    stop = threading.Event()
    errors = []

    def body():
        try:
            target(settings, stop)
        except BaseException as exc:  # what the process would exit with
            errors.append(exc)
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return stop, thread, errors


def test_an_exception_in_ingest_drops_that_snapshot_and_the_tracker_goes_on(tmp_path, monkeypatch, caplog):
    ingest_in_slices = Tracker.ingest_in_slices

    def ingest_or_raise(self, body, *args):
        if body["instance"] == "boom":
            yield  # it fails after a first slice, as a fault deep in a large snapshot would
            raise RuntimeError("an odd snapshot")
        yield from ingest_in_slices(self, body, *args)
    monkeypatch.setattr(Tracker, "ingest_in_slices", ingest_or_raise)
    env = endpoints()
    settings = load_settings(dict(env, TRACKER_STATE_FILE=str(tmp_path / "state")), dotenv_path=None)
    stop, thread, errors = running(run_tracker, settings)
    context = zmq.Context()
    push = make_socket(context, zmq.PUSH)
    push.connect(env["TRACKER_INGEST_ENDPOINT"])
    try:
        with caplog.at_level(logging.ERROR), RequestClient("tracker", env["TRACKER_QUERY_ENDPOINT"], 5,
                                                           context=context) as client:
            for _ in range(3):  # every time the odd snapshot comes back
                push.send(protocol.encode("snapshot", snapshot("boom", [record(1, "X")])))
            push.send(protocol.encode("snapshot", snapshot("sonarr", [record(1, "FINE")])))
            wait_until(lambda: [d["download_id"] for d in client.request("check")["downloads"]] == ["FINE"], 10,
                       "the next snapshot")
        assert thread.is_alive() and not errors
        assert sum("ingest failed on a snapshot" in r.message for r in caplog.records) == 3
        assert all(r.exc_info for r in caplog.records if "ingest failed" in r.message)  # with its traceback
    finally:
        push.close()
        stop.set()
        thread.join(10)
        context.destroy(linger=0)


@pytest.fixture
def poller_world(tmp_path):
    sonarr = SimInstance(name="sonarr", kind="sonarr", url_base="", api_key="key", clock=SystemClock())
    sonarr.add_download(title="Show.S01E01", size=10 ** 9, state="stalled")
    server = SimarrServer([sonarr])
    server.start_background()
    env = endpoints()
    settings = load_settings(dict(env, SONARR_URL=f"http://127.0.0.1:{server.port}", SONARR_API_KEY="key",
                                  POLL_INTERVAL_SECONDS="0.2", AUDIT_LOG=str(tmp_path / "audit.jsonl")),
                             dotenv_path=None)
    context = zmq.Context()
    pull = bind(context, zmq.PULL, env["TRACKER_INGEST_ENDPOINT"], "test")
    yield settings, pull
    pull.close()
    context.destroy(linger=0)
    server.shutdown()


def snapshots(pull, count, seconds=10):
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < count and time.monotonic() < deadline:
        if pull.poll(100):
            got.append(protocol.decode(pull.recv()).body)
    return got


def test_a_poll_that_raises_is_logged_and_the_instance_is_polled_again(poller_world, monkeypatch, caplog):
    settings, pull = poller_world
    take = poller_service.take_snapshot
    calls = []

    def raise_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug meeting odd data")
        return take(*args, **kwargs)
    monkeypatch.setattr(poller_service, "take_snapshot", raise_once)
    with caplog.at_level(logging.ERROR):
        stop, thread, errors = running(poller_service.run_poller, settings)
        try:
            first, second = snapshots(pull, 2)
        finally:
            stop.set()
            thread.join(10)
    assert first["records"] is None and "failed inside the poller" in first["health"]["error"]
    assert [r["title"] for r in second["records"]] == ["Show.S01E01"]  # polled again
    assert any("polling sonarr failed" in r.message and r.exc_info for r in caplog.records)
    assert not errors


def test_a_poll_thread_that_dies_anyway_makes_the_poller_exit_non_zero(poller_world, monkeypatch):
    settings, _ = poller_world
    monkeypatch.setattr(poller_service.InstancePoller, "run", lambda self: None)  # the thread ends at once
    stop, thread, errors = running(poller_service.run_poller, settings)
    thread.join(10)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ProcessFailed)
    assert "poll-sonarr" in str(errors[0])
