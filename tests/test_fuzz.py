"""Garbage at every socket: random bytes, wrong shapes, wrong versions, a 64 MB frame. Then normal answers."""
import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common import protocol
from common.sockets import RequestClient, make_socket
from tests.conftest import Deployment, wait_until
from tests.records import record, snapshot

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

values = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 63, 2 ** 64 - 1) | st.floats() | st.text(max_size=20)
                      | st.binary(max_size=20),
                      lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=4),
                      max_leaves=12)
envelopes = st.fixed_dictionaries({}, optional={
    "v": st.one_of(st.just(protocol.PROTOCOL_VERSION), st.integers(-9, 9), st.text(max_size=3)),
    "type": st.one_of(st.sampled_from(sorted(protocol.SCHEMAS)), st.text(max_size=8)),
    "body": values})
garbage = st.one_of(st.binary(max_size=300), values.map(msgpack.packb), envelopes.map(msgpack.packb))


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    deployment = Deployment(tmp_path_factory.mktemp("fuzz"))
    deployment.start("tracker")
    deployment.start("poller")
    context = zmq.Context()
    yield deployment, context
    context.destroy(linger=0)
    deployment.stop_all()


def ask_raw(context, endpoint, data, wait_ms=3000):
    sock = make_socket(context, zmq.REQ)
    sock.connect(endpoint)
    try:
        sock.send(data)
        return protocol.decode(sock.recv()) if sock.poll(wait_ms) else None
    finally:
        sock.close()


def still_answers(deployment, context):
    for endpoint, service in ((deployment.env["TRACKER_QUERY_ENDPOINT"], "tracker"),
                              (deployment.env["POLLER_COMMAND_ENDPOINT"], "poller")):
        with RequestClient(service, endpoint, 5, context=context) as client:
            assert client.request("ping") == {"service": service}
    for name in ("tracker", "poller"):
        assert deployment.processes[name].poll() is None, f"{name} died"


@pytest.mark.parametrize("endpoint_name", ["TRACKER_QUERY_ENDPOINT", "POLLER_COMMAND_ENDPOINT"])
@FUZZ
@given(data=garbage)
def test_every_rep_socket_answers_garbage_with_an_error(services, endpoint_name, data):
    deployment, context = services
    reply = ask_raw(context, deployment.env[endpoint_name], data)
    assert reply is not None, "a REP socket must always reply"
    assert reply.type in ("error", "ok")
    if reply.type == "ok":  # garbage that happens to be a valid request gets a valid answer
        protocol.decode(data)


@FUZZ
@given(data=garbage)
def test_the_ingest_socket_survives_garbage(services, data):
    deployment, context = services
    push = make_socket(context, zmq.PUSH)
    push.connect(deployment.env["TRACKER_INGEST_ENDPOINT"])
    push.send(data)
    push.close()


def test_a_64mb_frame_is_dropped_and_everything_still_answers(services):
    deployment, context = services
    frame = b"\x00" * (64 * 1024 * 1024)
    for name in ("TRACKER_QUERY_ENDPOINT", "POLLER_COMMAND_ENDPOINT"):
        assert ask_raw(context, deployment.env[name], frame, wait_ms=1000) is None  # MAXMSGSIZE: cut off
    push = make_socket(context, zmq.PUSH)
    push.connect(deployment.env["TRACKER_INGEST_ENDPOINT"])
    push.send(frame)
    push.close()
    still_answers(deployment, context)


def test_after_all_the_garbage_ingest_and_queries_work(services):
    deployment, context = services
    push = make_socket(context, zmq.PUSH)
    push.connect(deployment.env["TRACKER_INGEST_ENDPOINT"])
    push.send(protocol.encode("snapshot", snapshot("fuzzarr", [record(1, "LAST")])))
    with RequestClient("tracker", deployment.env["TRACKER_QUERY_ENDPOINT"], 5, context=context) as client:
        wait_until(lambda: [d["download_id"] for d in client.request("check")["downloads"]] == ["LAST"], 10,
                   "the snapshot sent after the garbage")
    push.close()
    still_answers(deployment, context)
