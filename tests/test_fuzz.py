"""Garbage at every socket, sent as an attacker or an unlucky network would: random bytes, wrong
shapes and versions, messages of several frames or empty frames, a 64 MB frame.

Every sending socket stays open, and after each piece of garbage a valid request is answered (or a
valid snapshot becomes visible), so each test proves the garbage arrived and the process lived.
"""
import itertools

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import protocol
from common.sockets import RequestClient, make_socket
from tests.conftest import Deployment, wait_until
from tests.records import record, snapshot

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats() | st.text(max_size=20)
                      | st.binary(max_size=20),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4),
                      max_leaves=12)
envelopes = st.fixed_dictionaries({}, optional={
    "v": st.one_of(st.just(protocol.PROTOCOL_VERSION), st.integers(-9, 9), st.text(max_size=3)),
    "type": st.one_of(st.sampled_from(sorted(protocol.SCHEMAS)), st.text(max_size=8)),
    "body": values})
frame = st.one_of(st.binary(max_size=300), values.map(msgpack.packb), envelopes.map(msgpack.packb),
                  st.just(protocol.encode("ping")), st.just(b""))
# A message is a list of frames: one (often garbage), or several, or empty ones.
messages = st.one_of(frame.map(lambda f: [f]), st.lists(frame, min_size=2, max_size=3))
REP_SOCKETS = ["TRACKER_QUERY_ENDPOINT", "POLLER_COMMAND_ENDPOINT"]
SERVICE = {"TRACKER_QUERY_ENDPOINT": "tracker", "POLLER_COMMAND_ENDPOINT": "poller"}


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    deployment = Deployment(tmp_path_factory.mktemp("fuzz"))
    deployment.start("tracker")
    deployment.start("poller")
    context = zmq.Context()
    yield deployment, context
    context.destroy(linger=0)
    deployment.stop_all()


@pytest.fixture(scope="module")
def requesters(services):
    """One raw REQ socket per REP socket, kept open, so every message sent surely arrives."""
    deployment, context = services
    sockets = {}
    for name in REP_SOCKETS:
        sock = make_socket(context, zmq.REQ)
        sock.connect(deployment.env[name])
        sockets[name] = sock
    yield sockets
    for sock in sockets.values():
        sock.close()


def exchange(sock, frames, wait_ms=5000):
    sock.send_multipart(frames)
    assert sock.poll(wait_ms), "a REP socket must answer every message, garbage included"
    reply = sock.recv_multipart()
    assert len(reply) == 1, "a reply is one frame"
    return protocol.decode(reply[0])


def alive(deployment):
    for name in ("tracker", "poller"):
        assert deployment.processes[name].poll() is None, f"{name} died"


@pytest.mark.parametrize("endpoint_name", REP_SOCKETS)
@FUZZ
@given(frames=messages)
def test_every_rep_socket_answers_each_message_and_then_a_valid_request(services, requesters, endpoint_name,
                                                                        frames):
    deployment, _ = services
    sock = requesters[endpoint_name]
    reply = exchange(sock, frames)
    if len(frames) != 1:
        assert reply.type == "error" and "one frame" in reply.body["error"]
    elif reply.type == "ok":  # garbage that happens to be a valid request gets a valid answer
        protocol.decode(frames[0])
    assert exchange(sock, [protocol.encode("ping")]).body["service"] == SERVICE[endpoint_name]
    alive(deployment)


marker = itertools.count()


@FUZZ
@given(frames=messages)
def test_the_ingest_socket_drops_garbage_and_takes_the_next_snapshot(services, frames):
    deployment, context = services
    push = make_socket(context, zmq.PUSH)
    push.connect(deployment.env["TRACKER_INGEST_ENDPOINT"])
    try:
        push.send_multipart(frames)
        key = f"AFTER-{next(marker)}"
        push.send(protocol.encode("snapshot", snapshot("fuzzarr", [record(1, key)])))
        with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 5, context=context) as client:
            wait_until(lambda: [d["download_id"] for d in client.request("check")["downloads"]] == [key], 10,
                       "the snapshot sent after the garbage")
    finally:
        push.close()
    alive(deployment)


def test_a_64mb_frame_is_dropped_and_everything_still_answers(services):
    deployment, context = services
    big = b"\x00" * (64 * 1024 * 1024)
    for name in REP_SOCKETS:
        sock = make_socket(context, zmq.REQ)
        sock.connect(deployment.env[name])
        sock.send(big)
        assert not sock.poll(1000)  # MAXMSGSIZE: the peer cuts the connection, no answer
        sock.close()
        with RequestClient(SERVICE[name], deployment.env[name], 5, context=context) as client:
            assert client.request("ping")["service"] == SERVICE[name]
    push = make_socket(context, zmq.PUSH)
    push.connect(deployment.env["TRACKER_INGEST_ENDPOINT"])
    push.send(big)
    push.send(protocol.encode("snapshot", snapshot("fuzzarr", [record(1, "AFTER-BIG")])))
    with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 5, context=context) as client:
        wait_until(lambda: [d["download_id"] for d in client.request("check")["downloads"]] == ["AFTER-BIG"], 10,
                   "the snapshot sent after the 64 MB frame")
    push.close()
    alive(deployment)
