"""The HTTP face of simarr: several simulated *arr instances on one port.

Each instance lives under its URL base and answers its `/api/{v3|v1}` endpoints
like the real server (auth, paging, 404s, empty bodies), plus a control API at
`{url_base}/__simarr__/` that tests and the demo use to script downloads,
inject faults, put the host to sleep, set how often figures refresh, load
frozen records and read the request log.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from common.settings import UNKNOWN_ITEMS_FLAG
from common.torrent_clients import ClientError
from services.simarr.model import INCLUDE_PARENT, SimInstance

log = logging.getLogger("simarr")

CONTROL_PREFIX = "/__simarr__/"
JSON_TYPE = "application/json; charset=utf-8"
LOGIN_PAGE = (b"<!DOCTYPE html><html><head><title>Login</title></head><body>"
              b"<form method=\"POST\"><input name=\"username\"><input name=\"password\" type=\"password\">"
              b"<button type=\"submit\">Login</button></form></body></html>")
GARBAGE_JSON = b'{"page":1,"pageSize":10,"records":[{"id":12,"title":"Trunc'


class BadRequest(ValueError):
    """A query parameter the real server's model binding would refuse (400)."""


class Reply:
    """What a handler answers: a status, a body and its type; `drop` closes without answering."""

    def __init__(self, status: int, body: bytes = b"", content_type: str | None = None, drop: bool = False):
        self.status, self.body, self.content_type, self.drop = status, body, content_type, drop

    @classmethod
    def json(cls, status: int, payload: Any) -> Reply:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(), JSON_TYPE)


NOT_FOUND = Reply(404)


class _Query:
    """Query parameters, looked up case-insensitively as ASP.NET binds them."""

    def __init__(self, raw: dict[str, str]):
        self._values = {k.lower(): v for k, v in raw.items()}

    def get(self, name: str) -> str | None:
        return self._values.get(name.lower())

    def integer(self, name: str, default: int) -> int:
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except ValueError:
            raise BadRequest(f"The value '{value}' is not valid for {name}.") from None

    def boolean(self, name: str, default: bool) -> bool:
        value = (self.get(name) or "").lower()
        if value not in ("", "true", "false"):
            raise BadRequest(f"The value '{self.get(name)}' is not valid for {name}.")
        return default if value == "" else value == "true"


class SimarrServer:
    """A threaded HTTP server for the given instances (distinct URL bases)."""

    def __init__(self, instances: list[SimInstance], host: str = "127.0.0.1", port: int = 0):
        bases = [instance.url_base for instance in instances]
        if len(set(bases)) != len(bases):
            raise ValueError(f"two instances share a URL base: {bases}")
        # Longest base first, so /sonarr4k is not taken for /sonarr.
        self.instances = sorted(instances, key=lambda i: len(i.url_base), reverse=True)
        self._httpd = ThreadingHTTPServer((host, port), _handler_class(self))
        self._httpd.daemon_threads = True
        self.port: int = self._httpd.server_address[1]
        self._serving = threading.Event()
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        self._serving.set()
        try:
            self._httpd.serve_forever(poll_interval=0.05)
        finally:
            self._serving.clear()

    def start_background(self) -> None:
        self._serving.set()  # so a shutdown() racing the thread's start still stops it
        self._thread = threading.Thread(target=self.serve_forever, name="simarr", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        if self._serving.is_set():
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def route(self, path: str) -> tuple[SimInstance, str] | None:
        """The instance serving `path`, and the path below its URL base."""
        for instance in self.instances:
            base = instance.url_base
            if path == base or path.startswith(base + "/"):
                return instance, path[len(base):] or "/"
        return None


def _handler_class(server: SimarrServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        simarr = server
    return Handler


class _Handler(BaseHTTPRequestHandler):
    simarr: SimarrServer
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of Kestrel
    timeout = 30  # an idle keep-alive connection is dropped after this
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms delayed-ACK stall

    def version_string(self) -> str:
        return "Kestrel"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        routed = self.simarr.route(url.path)
        try:
            if routed is None:
                reply = NOT_FOUND
            elif routed[1].startswith(CONTROL_PREFIX):
                reply = _control(routed[0], self.command, routed[1][len(CONTROL_PREFIX):], raw_body)
            elif routed[1] == "/api" or routed[1].startswith("/api/"):
                reply = self._api(routed[0], routed[1], query, raw_body)
            else:
                reply = NOT_FOUND
        except Exception:
            log.exception("simarr failed on %s %s", self.command, self.path)
            reply = Reply.json(500, {"message": "simarr internal error"})
        self._send(reply)

    def _api(self, instance: SimInstance, path: str, query: dict[str, str], raw_body: bytes) -> Reply:
        body = _parse_json(raw_body)
        reply = _api_reply(instance, self.command, path, query, body, self.headers.get("X-Api-Key"))
        instance.log_request({"method": self.command, "path": path, "query": query, "body": body,
                              "status": 0 if reply.drop else reply.status})
        return reply

    def _send(self, reply: Reply) -> None:
        if reply.drop:
            self.close_connection = True
            return
        self.send_response(reply.status)
        if reply.content_type:
            self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        try:
            self.wfile.write(reply.body)
        except ConnectionError:  # the client gave up first (a timeout against the "slow" fault)
            self.close_connection = True


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _api_reply(instance: SimInstance, method: str, path: str, query: dict[str, str],
               body: Any, header_key: str | None) -> Reply:
    """The answer to one /api request, faults first (they stand for the server itself)."""
    mode = instance.fault_mode
    if mode == "down" or instance.asleep():
        return Reply(0, drop=True)
    if mode == "slow" or (mode == "slow_delete" and method == "DELETE"):
        # slow_delete: the *arr removes the download from its client before it answers, and lists it meanwhile.
        time.sleep(instance.fault_delay)
    elif mode == "401":
        return Reply(401)
    elif mode == "500":
        return Reply.json(500, {"message": "database is locked", "description": "SQLiteException"})
    elif mode == "garbage":
        return Reply(200, GARBAGE_JSON, JSON_TYPE)
    elif mode == "html":
        return Reply(200, LOGIN_PAGE, "text/html; charset=utf-8")

    params = _Query(query)
    api_key = params.get("apikey")
    if (api_key if api_key is not None else header_key) != instance.api_key:
        return Reply(401)
    parts = path.strip("/").split("/")  # ["api", version, ...]
    if len(parts) < 3 or parts[1] != instance.api_version:
        return NOT_FOUND
    try:
        return _endpoint(instance, method, parts[2:], params, body)
    except BadRequest as error:
        return Reply.json(400, {"message": str(error)})


def _endpoint(instance: SimInstance, method: str, route: list[str], params: _Query, body: Any) -> Reply:
    if method == "GET" and route == ["queue"]:
        page = instance.queue_page(
            page=params.integer("page", 1),
            page_size=max(1, params.integer("pageSize", 10)),
            sort_key=params.get("sortKey") or "timeleft",
            ascending=(params.get("sortDirection") or "ascending").lower() != "descending",
            include_unknown=params.boolean(UNKNOWN_ITEMS_FLAG[instance.kind], False),
            include_parent=params.boolean(INCLUDE_PARENT[instance.kind][0], False))
        if instance.fault_mode == "missing_fields":
            for record in page["records"][::2]:
                for key in ("size", "sizeleft", "status"):
                    record.pop(key, None)
        return Reply.json(200, page)
    if method == "GET" and route == ["queue", "status"]:
        return Reply.json(200, instance.queue_status())
    if method == "GET" and route == ["tag"]:
        return Reply.json(200, instance.tags())
    if method == "GET" and route == ["system", "status"]:
        return Reply.json(200, instance.system_status())
    if method == "DELETE" and route == ["queue", "bulk"]:
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return Reply.json(400, {"message": "The ids field is required."})
        return _remove(instance, ids, params, Reply.json(200, {}))
    if method == "DELETE" and len(route) == 2 and route[0] == "queue" and route[1].isdigit():
        return _remove(instance, [int(route[1])], params, Reply(200))
    return NOT_FOUND


def _remove(instance: SimInstance, queue_ids: list[Any], params: _Query, done: Reply) -> Reply:
    """Remove the downloads of queue_ids; removeFromClient (true unless said) reaches a real client."""
    try:
        removed = instance.remove(queue_ids, remove_from_client=params.boolean("removeFromClient", True))
    except ClientError as error:  # the *arr answers 500 when its client fails the removal
        return Reply.json(500, {"message": error.reason})
    return done if removed else NOT_FOUND


def _control(instance: SimInstance, method: str, path: str, raw_body: bytes) -> Reply:
    """The control API: JSON in, JSON out, errors as 400/404 {"error": ...}."""
    body = _parse_json(raw_body) if raw_body else {}
    if not isinstance(body, dict):
        return Reply.json(400, {"error": "the body must be a JSON object"})
    try:
        if method == "GET" and path == "downloads":
            return Reply.json(200, instance.downloads())
        if method == "POST" and path == "downloads":
            return Reply.json(200, instance.add_download(**body))
        if method == "POST" and path.startswith("downloads/"):
            return Reply.json(200, instance.update_download(path[len("downloads/"):], **body))
        if method == "POST" and path == "bulk":
            return Reply.json(200, instance.add_bulk(**body))
        if method == "POST" and path == "fault":
            return Reply.json(200, instance.set_fault(**body))
        if method == "POST" and path == "sleep":
            return Reply.json(200, instance.sleep(**body))
        if method == "POST" and path == "refresh":
            return Reply.json(200, instance.set_refresh(**body))
        if method == "POST" and path == "frozen":
            return Reply.json(200, instance.load_frozen(**body))
        if method == "GET" and path == "requests":
            return Reply.json(200, instance.requests())
        if method == "POST" and path == "requests/clear":
            instance.clear_requests()
            return Reply.json(200, {})
    except KeyError as error:
        return Reply.json(404, {"error": f"no download {error.args[0]!r}"})
    except (TypeError, ValueError) as error:
        return Reply.json(400, {"error": str(error)})
    return Reply.json(404, {"error": f"no control endpoint {method} {path}"})
