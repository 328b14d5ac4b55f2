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

from common import protocol
from common.settings import CurveKeys

log = logging.getLogger(__name__)


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
            **options: int) -> zmq.Socket:
    sock = make_socket(context, kind, **options)
    if curve is not None:
        sock.curve_serverkey = curve.server_public.encode()
        sock.curve_publickey = curve.client_public.encode()
        sock.curve_secretkey = curve.client_secret.encode()
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        raise ServiceUnavailable(f"cannot connect to {endpoint}: {exc.strerror}") from None
    return sock


Handler = Callable[[dict[str, Any]], dict[str, Any]]


def answer(data: bytes, handlers: dict[str, Handler], service: str) -> bytes:
    """The reply to one request: a REP socket must always reply, even to garbage."""
    try:
        message = protocol.decode(data)
    except protocol.ProtocolError as exc:
        log.warning("%s rejected a message: %s", service, exc)
        return protocol.error(f"bad request: {exc}")
    handler = handlers.get(message.type)
    if handler is None:
        log.warning("%s does not answer %r requests", service, message.type)
        return protocol.error(f"{service} does not answer {message.type!r} requests")
    try:
        return protocol.ok(handler(message.body))
    except (ValueError, LookupError) as exc:
        return protocol.error(str(exc))
    except Exception:
        log.exception("%s failed on a %r request", service, message.type)
        return protocol.error(f"{service} failed on a {message.type!r} request; see its log")


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

    def _fresh_socket(self) -> zmq.Socket:
        self._drop_socket()
        self._socket = connect(self._context, zmq.REQ, self.endpoint, self.curve)
        return self._socket

    def _drop_socket(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None

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
            sock.send(payload)
            wait = max(0.0, (deadline - time.monotonic()) / (attempts - attempt))
            if sock.poll(int(wait * 1000), zmq.POLLIN):
                try:
                    reply = protocol.decode(sock.recv())
                except protocol.ProtocolError as exc:
                    self._drop_socket()
                    raise ServiceError(f"{self.service} sent a bad reply: {exc}") from None
                if reply.type == "error":
                    raise ServiceError(f"{self.service}: {reply.body['error']}")
                return reply.body
            # No answer: a REQ socket cannot send again, so start afresh (Lazy Pirate).
            self._drop_socket()
            log.debug("%s did not answer attempt %d at %s", self.service, attempt + 1, self.endpoint)
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
    """A zmq.asyncio client that many coroutines may use at once; every request has a timeout."""

    def __init__(self, service: str, endpoint: str, timeout: float, context: zmq.asyncio.Context,
                 curve: CurveKeys | None = None) -> None:
        self.service = service
        self.curve = curve
        self.endpoint = endpoint
        self.timeout = timeout
        self._context = context
        self._socket: zmq.asyncio.Socket | None = None
        self._receiver: asyncio.Task | None = None
        self._pending: dict[bytes, asyncio.Future] = {}

    def _ensure_socket(self) -> zmq.asyncio.Socket:
        if self._socket is None:
            self._socket = connect(self._context, zmq.DEALER, self.endpoint, self.curve)
            self._receiver = asyncio.get_running_loop().create_task(self._receive())
        return self._socket

    async def _receive(self) -> None:
        assert self._socket is not None
        while True:
            frames = await self._socket.recv_multipart()
            waiter = self._pending.get(frames[0]) if len(frames) == 3 and frames[1] == b"" else None
            if waiter is not None and not waiter.done():
                waiter.set_result(frames[2])

    async def request(self, message_type: str, body: dict[str, Any] | None = None,
                      timeout: float | None = None) -> dict[str, Any]:
        payload = protocol.encode(message_type, body)
        budget = self.timeout if timeout is None else timeout
        request_id = uuid.uuid4().bytes
        waiter = asyncio.get_running_loop().create_future()
        self._pending[request_id] = waiter
        try:
            sock = self._ensure_socket()
            data = await asyncio.wait_for(self._send_and_wait(sock, request_id, payload, waiter), budget)
        except asyncio.TimeoutError:
            raise ServiceUnavailable(
                f"{self.service} did not answer at {self.endpoint} within {budget:g}s; is it running?") from None
        finally:
            self._pending.pop(request_id, None)
        try:
            reply = protocol.decode(data)
        except protocol.ProtocolError as exc:
            raise ServiceError(f"{self.service} sent a bad reply: {exc}") from None
        if reply.type == "error":
            raise ServiceError(f"{self.service}: {reply.body['error']}")
        return reply.body

    @staticmethod
    async def _send_and_wait(sock: zmq.asyncio.Socket, request_id: bytes, payload: bytes,
                             waiter: asyncio.Future) -> bytes:
        await sock.send_multipart([request_id, b"", payload])
        return await waiter

    async def close(self) -> None:
        if self._receiver is not None:
            self._receiver.cancel()
            try:
                await self._receiver
            except asyncio.CancelledError:
                pass
            self._receiver = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
