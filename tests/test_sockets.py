"""The request client never hangs, and names the service and endpoint when it gives up."""
import threading
import time

import pytest
import zmq

from common import protocol
from common.sockets import RequestClient, ServiceError, ServiceUnavailable, bind, make_socket, serve_one
from tests.conftest import free_port


@pytest.fixture
def context():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def serve(context, handlers, count, endpoint="tcp://127.0.0.1:*"):
    sock = bind(context, zmq.REP, endpoint, "test")
    address = sock.getsockopt(zmq.LAST_ENDPOINT).decode()

    def loop():
        for _ in range(count):
            if sock.poll(5000):
                serve_one(sock, handlers, "test")
        sock.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return address, thread


def test_a_request_gets_its_answer(context):
    address, thread = serve(context, {"ping": lambda body: {"pong": True}}, 1)
    with RequestClient("tracker", address, 2.0, context=context) as client:
        assert client.request("ping") == {"pong": True}
    thread.join(5)


def test_an_error_reply_is_raised_with_the_service_name(context):
    address, thread = serve(context, {}, 1)
    with RequestClient("tracker", address, 2.0, context=context) as client:
        with pytest.raises(ServiceError, match="tracker: test does not answer 'ping' requests"):
            client.request("ping")
    thread.join(5)


def test_nobody_listening_fails_within_the_timeout_naming_service_and_endpoint(context):
    sock = make_socket(context, zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close()  # a port that nobody serves
    endpoint = f"tcp://127.0.0.1:{port}"
    client = RequestClient("tracker", endpoint, 0.5, retries=2, context=context)
    started = time.monotonic()
    with pytest.raises(ServiceUnavailable) as raised:
        client.request("ping")
    elapsed = time.monotonic() - started
    client.close()
    assert f"tracker did not answer at {endpoint} within 0.5s" in str(raised.value)
    assert elapsed < 2.0  # the budget is the whole call, retries included (loose bound: shared machines)


def test_after_a_timeout_the_client_recovers_with_a_fresh_socket(context):
    sock = make_socket(context, zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    client = RequestClient("tracker", endpoint, 0.3, retries=0, context=context)
    with pytest.raises(ServiceUnavailable):
        client.request("ping")  # the server does not answer this one
    sock.recv()  # swallow it; a REP must reply before receiving again, so answer and then serve
    sock.send(protocol.ok({"late": True}))
    thread = threading.Thread(target=lambda: (sock.recv(), sock.send(protocol.ok({"pong": 1}))), daemon=True)
    thread.start()
    assert client.request("ping", timeout=3) == {"pong": 1}  # the late reply was not mistaken for this one
    thread.join(5)
    client.close()
    sock.close()


def test_garbage_to_a_rep_socket_gets_an_error_reply(context):
    address, thread = serve(context, {"ping": lambda body: {}}, 2)
    raw = make_socket(context, zmq.REQ)
    raw.connect(address)
    raw.send(b"not msgpack at all \xc1")
    assert raw.poll(3000)
    reply = protocol.decode(raw.recv())
    assert reply.type == "error" and "bad request" in reply.body["error"]
    raw.send(protocol.encode("ping"))
    assert raw.poll(3000) and protocol.decode(raw.recv()).type == "ok"
    raw.close()
    thread.join(5)


def test_async_clients_sharing_one_socket_each_get_their_own_answer(context):
    import asyncio

    import zmq.asyncio

    from common.sockets import AsyncRequestClient

    address, thread = serve(context, {"history": lambda body: {"echo": body["download_id"]}}, 20)

    async def main():
        actx = zmq.asyncio.Context()
        client = AsyncRequestClient("tracker", address, 5, actx)
        try:
            answers = await asyncio.gather(*(
                client.request("history", {"instance": "sonarr", "download_id": str(n)}) for n in range(20)))
        finally:
            await client.close()
            actx.term()
        return answers

    answers = asyncio.run(main())
    assert [a["echo"] for a in answers] == [str(n) for n in range(20)]
    thread.join(5)


def test_an_async_request_to_nobody_fails_in_time_naming_the_service(context):
    import asyncio

    import zmq.asyncio

    from common.sockets import AsyncRequestClient

    sock = make_socket(context, zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close()

    async def main():
        actx = zmq.asyncio.Context()
        client = AsyncRequestClient("poller", f"tcp://127.0.0.1:{port}", 0.5, actx)
        started = time.monotonic()
        try:
            with pytest.raises(ServiceUnavailable, match=f"poller did not answer at tcp://127.0.0.1:{port}"):
                await client.request("ping")
        finally:
            await client.close()
            actx.term()
        return time.monotonic() - started

    assert asyncio.run(main()) < 2.0


def test_a_request_to_a_peer_that_is_down_is_never_delivered_when_it_comes_back(context):
    import asyncio

    import zmq.asyncio

    from common.sockets import AsyncRequestClient
    port = free_port()
    endpoint = f"tcp://127.0.0.1:{port}"

    async def ask_nobody():
        actx = zmq.asyncio.Context()
        client = AsyncRequestClient("poller", endpoint, 10, actx)
        started = time.monotonic()
        try:
            with pytest.raises(ServiceUnavailable, match="poller did not answer"):
                await client.request("ping")
            return time.monotonic() - started
        finally:
            await client.close()
            actx.term()

    assert asyncio.run(ask_nobody()) < 5  # at once, not after the whole 10 s
    with RequestClient("poller", endpoint, 10, context=context) as client, pytest.raises(ServiceUnavailable):
        client.request("ping")
    late = bind(context, zmq.REP, endpoint, "poller")  # the poller comes back: nothing was queued for it
    try:
        assert not late.poll(1000)
    finally:
        late.close()


def test_an_answer_too_large_for_one_message_is_an_error_that_says_so(context):
    from common.sockets import answer
    huge = {"check": lambda body: {"downloads": ["x" * 1024] * (protocol.MAX_MESSAGE_BYTES // 1024 + 1)}}
    reply = protocol.decode(answer([protocol.encode("check")], huge, "tracker"))
    assert reply.type == "error" and "too large for one message" in reply.body["error"]


def test_a_message_of_several_frames_is_garbage(context):
    from common.sockets import answer
    reply = protocol.decode(answer([protocol.encode("ping"), b"second"], {"ping": lambda body: {}}, "tracker"))
    assert reply.type == "error" and "one frame, this one had 2" in reply.body["error"]
