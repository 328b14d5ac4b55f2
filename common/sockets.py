"""The thin socket layer: every socket is made here, with the same hygiene.

Receiving sockets get MAXMSGSIZE, every socket gets LINGER 0 so shutdown never
hangs, and requests never wait forever: `RequestClient` follows the ZeroMQ
guide's Lazy Pirate (poll with a timeout, close the REQ socket, open a fresh
one, retry), then fails with an error naming the service and its endpoint.
`AsyncRequestClient` is the event loop's version: one DEALER socket shared by
every coroutine, each request tagged with its own id (a REP socket returns
the frames before the empty delimiter untouched), so concurrent requests
each get their own answer and a late reply is simply dropped.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import zmq
import zmq.asyncio
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils.monitor import parse_monitor_message

from common import protocol
from common.settings import CurveKeys

log = logging.getLogger(__name__)

# How long a new connection may take to come up before a request counts as undeliverable.
CONNECT_GRACE_SECONDS = 2.0


class ServiceUnavailable(RuntimeError):
    """A service did not answer in time."""


class ServiceError(RuntimeError):
    """A service answered with an error reply."""


def make_socket(context: zmq.Context, kind: int, **options: int) -> zmq.Socket:
    """A socket with LINGER 0 and MAXMSGSIZE, plus any options named like `sndhwm=1`."""
    sock = context.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, protocol.MAX_MESSAGE_BYTES)
    for name, value in options.items():
        sock.setsockopt(getattr(zmq, name.upper()), value)
    return sock


class _AllowClientKey:
    """ZAP credentials provider: only the configured client key may connect."""

    def __init__(self, client_public: str) -> None:
        self.client_public = client_public.encode()

    def callback(self, domain: str, key: bytes) -> bool:
        return key == self.client_public  # pyzmq hands over the key Z85-encoded


def start_authenticator(context: zmq.Context, curve: CurveKeys | None) -> ThreadAuthenticator | None:
    """With CURVE keys, a ZAP handler that rejects every client but ours; stop it before context.term()."""
    if curve is None:
        return None
    authenticator = ThreadAuthenticator(context)
    authenticator.start()
    authenticator.configure_curve_callback("*", credentials_provider=_AllowClientKey(curve.client_public))
    return authenticator


@contextmanager
def service_context(curve: CurveKeys | None) -> Iterator[zmq.Context]:
    """A process's ZeroMQ context, with its CURVE authenticator; every socket closed at exit."""
    context = zmq.Context()
    authenticator = start_authenticator(context, curve)
    try:
        yield context
    finally:
        if authenticator is not None:
            authenticator.stop()
        context.destroy(linger=0)


def bind(context: zmq.Context, kind: int, endpoint: str, name: str, curve: CurveKeys | None = None) -> zmq.Socket:
    sock = make_socket(context, kind)
    if curve is not None:
        sock.curve_server = True
        sock.curve_secretkey = curve.server_secret.encode()
        sock.curve_publickey = curve.server_public.encode()
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        raise ServiceUnavailable(f"{name}: cannot listen on {endpoint}: {exc.strerror}") from None
    return sock


def connect(context: zmq.Context, kind: int, endpoint: str, curve: CurveKeys | None = None,
            before: Callable[[zmq.Socket], None] | None = None, **options: int) -> zmq.Socket:
    """A socket connected to `endpoint`; `before(sock)` runs just before it connects (a monitor, say)."""
    sock = make_socket(context, kind, **options)
    if curve is not None:
        sock.curve_serverkey = curve.server_public.encode()
        sock.curve_publickey = curve.client_public.encode()
        sock.curve_secretkey = curve.client_secret.encode()
    if before is not None:
        before(sock)
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        raise ServiceUnavailable(f"cannot connect to {endpoint}: {exc.strerror}") from None
    return sock


Handler = Callable[[dict[str, Any]], dict[str, Any]]


def one_frame(frames: list[bytes]) -> bytes:
    """The one frame of a message; a message of several frames (or none) is garbage."""
    if len(frames) != 1:
        raise protocol.ProtocolError(f"a message is one frame, this one had {len(frames)}")
    return frames[0]


def answer(frames: list[bytes], handlers: dict[str, Handler], service: str) -> bytes:
    """The reply to one whole message (every frame of it was read): a REP socket must always
    reply, to garbage and to a handler that fails alike, and a reply must fit in one message."""
    try:
        message = protocol.decode(one_frame(frames))
    except protocol.ProtocolError as exc:
        log.warning("%s rejected a message: %s", service, exc)
        return protocol.error(f"bad request: {exc}")
    handler = handlers.get(message.type)
    if handler is None:
        log.warning("%s does not answer %r requests", service, message.type)
        return protocol.error(f"{service} does not answer {message.type!r} requests")
    try:
        reply = protocol.ok(handler(message.body))
    except (ValueError, LookupError) as exc:
        return protocol.error(str(exc))
    except Exception:
        log.exception("%s failed on a %r request", service, message.type)
        return protocol.error(f"{service} failed on a {message.type!r} request; see its log")
    if len(reply) > protocol.MAX_MESSAGE_BYTES:
        log.warning("%s: the answer to a %r request is %d bytes, over the limit", service, message.type, len(reply))
        return protocol.error(f"the answer is too large for one message ({len(reply)} bytes); ask for it in pages")
    return reply


def serve_one(sock: zmq.Socket, handlers: dict[str, Handler], service: str) -> None:
    """Read one whole request from a REP socket and send its one-frame reply."""
    sock.send(answer(sock.recv_multipart(), handlers, service))


class RequestClient:
    """A blocking REQ client that never hangs (Lazy Pirate)."""

    def __init__(self, service: str, endpoint: str, timeout: float, *, retries: int = 1,
                 context: zmq.Context | None = None, curve: CurveKeys | None = None) -> None:
        self.service = service
        self.curve = curve
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self._own_context = context is None
        self._context = context or zmq.Context()
        self._socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._connected = False

    def _fresh_socket(self) -> zmq.Socket:
        self._drop_socket()

        def watch(sock: zmq.Socket) -> None:  # before connecting: no event may be missed
            self._monitor = sock.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED)
        self._socket = connect(self._context, zmq.REQ, self.endpoint, self.curve, before=watch)
        return self._socket

    def _peer_there(self, seconds: float) -> bool:
        """Whether the peer is connected, waiting up to `seconds` for it: a request is never
        queued for a peer that is not there (ZMQ_IMMEDIATE would say the same, but a REQ
        socket with it loses a reply now and then)."""
        assert self._monitor is not None
        deadline = time.monotonic() + seconds
        while True:
            wait = 0.0 if self._connected else max(0.0, deadline - time.monotonic())
            if not self._monitor.poll(int(wait * 1000)):
                return self._connected
            event = parse_monitor_message(self._monitor.recv_multipart())["event"]
            self._connected = event == zmq.EVENT_HANDSHAKE_SUCCEEDED

    def _drop_socket(self) -> None:
        self._connected = False
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close(linger=0)
            self._socket = None
        if self._monitor is not None:
            self._monitor.close(linger=0)
            self._monitor = None

    def request(self, message_type: str, body: dict[str, Any] | None = None,
                timeout: float | None = None) -> dict[str, Any]:
        """Send one request and return the body of the "ok" reply.

        The whole call, retries included, takes at most `timeout` seconds.
        """
        payload = protocol.encode(message_type, body)
        budget = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        attempts = self.retries + 1
        for attempt in range(attempts):
            sock = self._socket or self._fresh_socket()
            if not self._peer_there(min(deadline - time.monotonic(), CONNECT_GRACE_SECONDS)):
                break  # nobody is there to take it: no retry can do better
            sock.send(payload)
            wait = max(0.0, (deadline - time.monotonic()) / (attempts - attempt))
            if sock.poll(int(wait * 1000), zmq.POLLIN):
                try:
                    reply = protocol.decode(one_frame(sock.recv_multipart()))
                except protocol.ProtocolError as exc:
                    self._drop_socket()
                    raise ServiceError(f"{self.service} sent a bad reply: {exc}") from None
                if reply.type == "error":
                    raise ServiceError(f"{self.service}: {reply.body['error']}")
                return reply.body
            # No answer: a REQ socket cannot send again, so start afresh (Lazy Pirate).
            self._drop_socket()
            log.debug("%s did not answer attempt %d at %s", self.service, attempt + 1, self.endpoint)
        self._drop_socket()
        raise ServiceUnavailable(
            f"{self.service} did not answer at {self.endpoint} within {budget:g}s; is it running?")

    def close(self) -> None:
        self._drop_socket()
        if self._own_context:
            self._context.term()

    def __enter__(self) -> "RequestClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncRequestClient:
    """A zmq.asyncio client that many coroutines may use at once; every request has a timeout.

    Nothing is queued for a peer that is not there: a monitor follows the DEALER socket's
    connection, and a request is sent only while the peer is connected (else it fails at
    once, naming the service). After a timeout the socket is replaced, so a request nobody
    answered is never delivered later. (ZMQ_IMMEDIATE would say the same, but pyzmq's
    asyncio sockets lose replies with it.)
    """

    def __init__(self, service: str, endpoint: str, timeout: float, context: zmq.asyncio.Context,
                 curve: CurveKeys | None = None) -> None:
        self.service = service
        self.curve = curve
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context
        self._socket: zmq.asyncio.Socket | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        self._tasks: list[asyncio.Task] = []  # the receiver and the connection monitor of the socket
        self._connected = asyncio.Event()
        self._pending: dict[bytes, asyncio.Future] = {}

    def _ensure_socket(self) -> zmq.asyncio.Socket:
        if any(task.done() for task in self._tasks):
            self._drop_socket()  # a task of the socket died (it logged why): start afresh
        if self._socket is None:
            self._connected.clear()

            def watch(sock: zmq.asyncio.Socket) -> None:  # before connecting: no event may be missed
                self._monitor = sock.get_monitor_socket(
                    zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED)
            self._socket = connect(self._context, zmq.DEALER, self.endpoint, self.curve, before=watch)
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._receive(self._socket)),
                           loop.create_task(self._watch(self._monitor))]
        return self._socket

    def _drop_socket(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self._connected.clear()
        if self._socket is not None:
            self._socket.disable_monitor()
            self._socket.close(linger=0)
            self._socket = None
        if self._monitor is not None:  # closed here: a task cancelled before it ran never closes it
            self._monitor.close(linger=0)
            self._monitor = None

    async def _receive(self, sock: zmq.asyncio.Socket) -> None:
        try:
            while True:
                frames = await sock.recv_multipart()
                waiter = self._pending.get(frames[0]) if len(frames) == 3 and frames[1] == b"" else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(frames[2])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the %s client stopped receiving; the next request opens a new socket", self.service)

    async def _watch(self, monitor: zmq.asyncio.Socket) -> None:
        """Follow the connection: requests are sent only while the peer is there."""
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self._connected.set()
                else:
                    self._connected.clear()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the %s client lost track of its connection; the next request opens a new socket",
                          self.service)

    async def request(self, message_type: str, body: dict[str, Any] | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
        payload = protocol.encode(message_type, body)
        budget = self.timeout if timeout is None else timeout
        request_id = uuid.uuid4().bytes
        waiter = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        unavailable = ServiceUnavailable(
            f"{self.service} did not answer at {self.endpoint} within {budget:g}s; is it running?")
        try:
            sock = self._ensure_socket()
            data = await asyncio.wait_for(self._send_and_wait(sock, request_id, payload, waiter, budget), budget)
        except (asyncio.TimeoutError, _NobodyThere):
            self._drop_socket()  # what it still holds for the silent peer is never delivered
            raise unavailable from None
        finally:
            self._pending.pop(request_id, None)
        try:
            reply = protocol.decode(data)
        except protocol.ProtocolError as exc:
            raise ServiceError(f"{self.service} sent a bad reply: {exc}") from None
        if reply.type == "error":
            raise ServiceError(f"{self.service}: {reply.body['error']}")
        return reply.body

    async def _send_and_wait(self, sock: zmq.asyncio.Socket, request_id: bytes, payload: bytes,
                             waiter: asyncio.Future, budget: float) -> bytes:
        try:
            await asyncio.wait_for(self._connected.wait(), min(budget, CONNECT_GRACE_SECONDS))
        except asyncio.TimeoutError:
            raise _NobodyThere() from None
        await sock.send_multipart([request_id, b"", payload])
        return await waiter

    async def close(self) -> None:
        tasks = self._tasks
        self._drop_socket()
        await asyncio.gather(*tasks, return_exceptions=True)


class _NobodyThere(Exception):
    """No peer took the request (ZMQ_IMMEDIATE): the service is not there."""
