"""A stand-in for Discord, REST API v10 and gateway, for running the real bot process against.

The bot reaches it through DISCORD_API_BASE (`api_base`) and DISCORD_GATEWAY_URL (`gateway_url`).

REST: every request is judged by Discord's own OpenAPI description (`OPENAPI`, from
github.com/discord/discord-api-spec): its path and method must be there, its path and query parameters
and its JSON body (or the `payload_json` part of a multipart body, with its `files[n]` parts) must
validate against the operation's schemas. What does not is listed in `problems` and refused the way
Discord refuses it (404, 405, 400 "Invalid Form Body" with the failing fields). The stand-in's own
answers are checked against the response schemas (`answer_problems`), so the bot parses what Discord
sends. One place where the description is stricter than Discord's server is read as the server reads it
(a snowflake sent as a JSON integer, see `_lenient`); requests that need it are listed in `leniencies`,
not in `problems`. Discord's rules that the schemas do not carry are problems too: three seconds to
answer an interaction and only once, 15 minutes of follow-ups, no empty message, 6,000 characters of
embed text per message, unique custom_ids, attachments listed by `files[n]` parts, an `attachment://`
image needs that file, files up to the interaction's attachment_size_limit.

What depends on the server rather than on the request is answered as Discord answers it and is not a
problem: a wrong bot token (401, or close code 4004 on the gateway), an unknown channel, guild or
message (404), and the bot's permissions in the channel (`bot_permissions`: 403 without View Channel,
Send Messages, Attach Files or Read Message History where needed; embeds dropped without Embed Links).

The gateway (not in that description) follows Discord's developer documentation (Gateway; Gateway
Events; Opcodes and Status Codes) and what discord.py 2.7.1 reads (gateway.py `DiscordWebSocket`,
state.py `parse_ready`, `parse_guild_create`, interactions.py `Interaction._from_data`): HELLO,
IDENTIFY -> READY then GUILD_CREATE, HEARTBEAT -> HEARTBEAT_ACK, RESUME -> the missed events and
RESUMED (or INVALID_SESSION), RECONNECT on request, close codes 4001-4014, and `compress=zlib-stream`
transport compression, which discord.py asks for whenever the zstandard module is missing.

There is one guild, with an admin role (DISCORD_ADMIN_ROLE_ID; it does not carry Manage Server, so it
tests the role itself), a role with Manage Server, the bot's managed role, the board's text channel
(DISCORD_CHANNEL_ID) and a second text channel. Tests act as members through `slash`, `autocomplete`
and `press` (INTERACTION_CREATE dispatches as Discord sends them) and read what the bot did:
`requests`, `messages` (each channel message as edited), and for each `Interaction` its callback,
follow-ups and edits. Every wait has a deadline.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import mimetypes
import os
import re
import secrets
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from aiohttp import WSMsgType, web
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# Discord's own description of its API (MIT, vendored with its licence and source in tests/fixtures/discord-openapi).
OPENAPI = Path(os.environ.get("DISCORD_OPENAPI",
                              Path(__file__).resolve().parent / "fixtures" / "discord-openapi" / "openapi.json"))
API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000

# Permission bits (Discord's documentation, "Permissions").
CREATE_INSTANT_INVITE, KICK_MEMBERS, ADMINISTRATOR, MANAGE_GUILD, ADD_REACTIONS = 1 << 0, 1 << 1, 1 << 3, 1 << 5, 1 << 6
VIEW_CHANNEL, SEND_MESSAGES, MANAGE_MESSAGES, EMBED_LINKS = 1 << 10, 1 << 11, 1 << 13, 1 << 14
ATTACH_FILES, READ_MESSAGE_HISTORY, USE_EXTERNAL_EMOJIS, CONNECT, SPEAK = 1 << 15, 1 << 16, 1 << 18, 1 << 20, 1 << 21
CHANGE_NICKNAME, USE_APPLICATION_COMMANDS, SEND_MESSAGES_IN_THREADS = 1 << 26, 1 << 31, 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1
EVERYONE_PERMISSIONS = (CREATE_INSTANT_INVITE | ADD_REACTIONS | VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS
                        | ATTACH_FILES | READ_MESSAGE_HISTORY | USE_EXTERNAL_EMOJIS | CONNECT | SPEAK
                        | CHANGE_NICKNAME | USE_APPLICATION_COMMANDS | SEND_MESSAGES_IN_THREADS)
# What the README's invite asks for: View Channel, Send Messages, Embed Links, Attach Files, Read Message History.
BOT_PERMISSIONS = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS | ATTACH_FILES | READ_MESSAGE_HISTORY
BOT_CHANNEL_PERMISSIONS = EVERYONE_PERMISSIONS | BOT_PERMISSIONS  # its role and @everyone's, no overwrite

# Gateway intents that an application must be granted in the Developer Portal (GUILD_MEMBERS,
# GUILD_PRESENCES, MESSAGE_CONTENT); this application has none of them.
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)
APPLICATION_FLAGS = 1 << 23  # APPLICATION_COMMAND_BADGE: an application with global commands

EPHEMERAL, LOADING = 1 << 6, 1 << 7  # message flags
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # a guild without boosts
INTERACTION_DEADLINE = 3.0  # seconds Discord waits for the first answer to an interaction
FOLLOW_UP_SECONDS = 15 * 60  # how long an interaction token takes follow-ups
HEARTBEAT_GRACE = 5.0  # seconds past heartbeat_interval before the stand-in gives up on a silent bot
EMBED_TEXT_LIMIT = 6000

# interaction type -> the callback types Discord accepts for it (docs, "Interaction Response Object")
CALLBACKS_FOR = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}
OPTION_TYPES = {3: str, 4: int, 5: bool, 10: (int, float)}  # the option types a test can fill in

NOT_FOUND = {"message": "404: Not Found", "code": 0}
UNAUTHORIZED = {"message": "401: Unauthorized", "code": 0}


def _error(status: int, code: int, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"message": message, "code": code}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


# --- Discord's API description --------------------------------------------------------------------

class OpenAPI:
    """Discord's OpenAPI 3.1 description: which operation a request is, and what its parts must be."""

    URI = "urn:discord-openapi"

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"Discord's OpenAPI description is not at {path}; set DISCORD_OPENAPI to "
                                    "openapi.json from github.com/discord/discord-api-spec")
        self.document = json.loads(path.read_text())
        self.registry = Registry().with_resource(self.URI, Resource(self.document, DRAFT202012))
        self.lenient_registry = Registry().with_resource(self.URI, Resource(_lenient(self.document), DRAFT202012))
        # A literal segment beats a parameter: /users/@me before /users/{user_id}.
        self.routes = sorted(((self._pattern(template), template) for template in self.document["paths"]),
                             key=lambda route: -sum(not part.startswith("{") for part in route[1].split("/")))
        self._validators: dict[tuple[Any, ...], Draft202012Validator] = {}

    @staticmethod
    def _pattern(template: str) -> re.Pattern[str]:
        parts = [f"(?P<{part[1:-1]}>[^/]+)" if part.startswith("{") else re.escape(part)
                 for part in template.split("/")]
        return re.compile("/".join(parts) + r"\Z")

    def match(self, path: str) -> tuple[str, dict[str, str]] | None:
        for pattern, template in self.routes:
            found = pattern.match(path)
            if found:
                return template, found.groupdict()
        return None

    def operation(self, template: str, method: str) -> dict[str, Any] | None:
        return self.document["paths"][template].get(method.lower())

    def has(self, *pointer: str | int) -> bool:
        node: Any = self.document
        for part in pointer:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                return False
        return True

    def errors(self, instance: Any, *pointer: str | int, lenient: bool = False) -> list[tuple[tuple[Any, ...], str]]:
        """(where, why) for each way `instance` fails the schema at `pointer` in the document (or in its
        lenient copy, see `_lenient`)."""
        validator = self._validators.get((lenient, *pointer))
        if validator is None:
            fragment = "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in pointer)
            validator = Draft202012Validator({"$ref": f"{self.URI}#/{fragment}"},
                                             registry=self.lenient_registry if lenient else self.registry)
            self._validators[(lenient, *pointer)] = validator
        found = []
        for error in validator.iter_errors(instance):
            while error.context:  # inside a oneOf/anyOf: the failure deepest in the instance names the field
                error = max(error.context, key=lambda inner: len(inner.absolute_path))
            shown = repr(error.instance)
            message = error.message.replace(shown, shown[:60] + "...") if len(shown) > 80 else error.message
            found.append((tuple(error.absolute_path), message[:300]))
        return found

    def request_errors(self, template: str, method: str, path_params: dict[str, str], query: dict[str, str],
                       content_type: str | None, body: Any, lenient: bool = False) -> list[tuple[tuple[Any, ...], str]]:
        method = method.lower()
        found: list[tuple[tuple[Any, ...], str]] = []
        declared = {}
        for where in (("paths", template), ("paths", template, method)):
            node = self.document
            for part in where:
                node = node[part]
            for index, parameter in enumerate(node.get("parameters", [])):
                declared[(parameter["in"], parameter["name"])] = (*where, "parameters", index, "schema")
        for name, value in path_params.items():
            found += [((name,), why) for _, why in self.errors(value, *declared[("path", name)])]
        for name, value in query.items():
            pointer = declared.get(("query", name))
            if pointer is None:
                found.append(((name,), f"query parameter {name!r} is not one of this operation's"))
            elif all(self.errors(candidate, *pointer) for candidate in _query_values(value)):
                found.append(((name,), f"query parameter {name}={value!r} does not fit its schema"))
        request_body = self.operation(template, method).get("requestBody")
        if content_type is None:
            if request_body and request_body.get("required"):
                found.append(((), "the operation needs a body and none was sent"))
        elif request_body is None:
            found.append(((), f"a {content_type} body was sent to an operation that takes none"))
        elif content_type not in request_body["content"]:
            found.append(((), f"{content_type} is not one of {sorted(request_body['content'])}"))
        else:
            found += self.errors(body, "paths", template, method, "requestBody", "content", content_type, "schema",
                                 lenient=lenient)
        return found


def _lenient(document: dict[str, Any]) -> dict[str, Any]:
    """The description, but reading a snowflake in a request the way Discord's server does: as a string
    of digits or as a JSON integer (docs, Reference, "ID Serialization"). discord.py sends
    `attachments[].id` as the integer index of its files[n] part (file.py, `File.to_dict`), which the
    description's string-only SnowflakeType refuses. Such a request is not a problem, but is listed
    in `leniencies`."""
    document = json.loads(json.dumps(document))
    schemas = document["components"]["schemas"]
    schemas["SnowflakeType"] = {"anyOf": [schemas["SnowflakeType"], {"type": "integer", "minimum": 0}]}
    return document


def _query_values(value: str) -> list[Any]:
    """What a query string value may stand for: Discord reads 1/0/true/false as booleans, digits as numbers."""
    candidates: list[Any] = [value]
    if value.lower() in ("true", "1"):
        candidates.append(True)
    if value.lower() in ("false", "0"):
        candidates.append(False)
    if re.fullmatch(r"-?\d+", value):
        candidates.append(int(value))
    return candidates


@cache
def openapi() -> OpenAPI:
    """Loaded once per test process: the description is 1.2 MB."""
    return OpenAPI(OPENAPI)


# --- what the tests read ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str | None
    data: bytes


@dataclass
class Request:
    """One REST request as the bot sent it, and the stand-in's answer."""
    method: str
    path: str
    query: dict[str, str]
    body: Any  # parsed JSON, or the payload_json of a multipart body
    files: dict[str, Upload]  # multipart part name ("files[0]") -> upload
    template: str | None = None  # the OpenAPI path it matched
    params: dict[str, str] = field(default_factory=dict)
    status: int = 0
    answer: Any = None

    @property
    def route(self) -> str:
        return f"{self.method} {self.template or self.path}"


@dataclass
class Message:
    """A message as Discord keeps it: `data` is the message object as it stands after every edit."""
    data: dict[str, Any]
    bodies: list[Any]  # the body that created it, then each one that changed it
    uploads: dict[str, bytes] = field(default_factory=dict)  # attachment id -> file
    viewer: str | None = None  # the only user who sees it, when ephemeral
    deleted: bool = False

    @property
    def id(self) -> int:
        return int(self.data["id"])

    @property
    def channel_id(self) -> int:
        return int(self.data["channel_id"])

    @property
    def content(self) -> str:
        return self.data["content"]

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return self.data["embeds"]

    @property
    def components(self) -> list[dict[str, Any]]:
        return self.data["components"]

    @property
    def attachments(self) -> list[dict[str, Any]]:
        return self.data["attachments"]

    @property
    def ephemeral(self) -> bool:
        return bool(self.data["flags"] & EPHEMERAL)

    @property
    def edits(self) -> int:
        return len(self.bodies) - 1

    def buttons(self) -> list[dict[str, Any]]:
        return [component for component in _walk(self.components) if component.get("type") == 2]

    def button(self, custom_id: str) -> dict[str, Any] | None:
        return next((button for button in self.buttons() if button.get("custom_id") == custom_id), None)


def _walk(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for component in components:
        yield component
        yield from _walk(component.get("components", []))


@dataclass
class Interaction:
    """An interaction the stand-in sent, and how the bot answered it.

    `callback` is {"type", "data"} of the first answer. `original` is the response message: the one a
    type 4 or 5 answer made, or for a button the message it is on. `followups` are the messages
    follow-ups made; after a deferred (type 5) answer the first one fills the original, as on Discord.
    `edits` are the bodies of edits to any of them.
    """
    payload: dict[str, Any]
    standin: DiscordStandIn = field(repr=False)
    created: float = field(default_factory=time.monotonic)
    callback: dict[str, Any] | None = None
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    edits: list[Any] = field(default_factory=list)

    @property
    def id(self) -> int:
        return int(self.payload["id"])

    @property
    def token(self) -> str:
        return self.payload["token"]

    @property
    def type(self) -> int:
        return self.payload["type"]

    @property
    def user_id(self) -> str:
        return self.payload["member"]["user"]["id"]

    def describe(self) -> str:
        data = self.payload["data"]
        return (f"/{data['name']}" if self.type in (2, 4) else f"the {data['custom_id']!r} button") \
            + f" from {self.payload['member']['user']['username']}"

    def answered(self) -> bool:
        """Answered, and when the answer was a deferral, followed by a follow-up or an edit."""
        if self.callback is None:
            return False
        return self.callback["type"] not in (5, 6) or bool(self.followups or self.edits)

    def wait_answer(self, timeout: float = 10.0) -> Interaction:
        self.standin.wait_for(self.answered, timeout, f"the answer to {self.describe()}")
        return self

    def messages(self) -> list[Message]:
        """What the user sees from this interaction, the original first."""
        if self.callback is None:
            return []
        shown = [self.original] if self.original is not None and self.callback["type"] in (4, 5) else []
        return shown + [message for message in self.followups if message is not self.original]


# --- the gateway ------------------------------------------------------------------------------------

class _Connection:
    """One gateway websocket: its compression context and its session once identified."""

    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self.compressor = zlib.compressobj() if compress else None
        self.lock = asyncio.Lock()  # one zlib stream: frames must leave in the order they were compressed
        self.session: _Session | None = None
        self.last_heartbeat = time.monotonic()

    async def send(self, payload: dict[str, Any]) -> None:
        text = json.dumps(payload, separators=(",", ":"))
        async with self.lock:
            if self.ws.closed:
                return
            if self.compressor is None:
                await self.ws.send_str(text)
            else:  # zlib-stream: one shared context, each payload ends with a Z_SYNC_FLUSH (00 00 ff ff)
                data = self.compressor.compress(text.encode()) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)


@dataclass
class _Session:
    id: str
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)  # every dispatch, replayed on RESUME
    connection: _Connection | None = None


# --- the stand-in -----------------------------------------------------------------------------------

class DiscordStandIn:
    """Discord for one bot: REST on `api_base`, the gateway on `gateway_url`, on a free loopback port."""

    def __init__(self, token: str | None = None, *, admin_role_id: int | None = None, channel_id: int | None = None,
                 guild_id: int | None = None, application_id: int | None = None,
                 bot_permissions: int = BOT_CHANNEL_PERMISSIONS, heartbeat_interval: float = 1.0) -> None:
        self.heartbeat_interval = heartbeat_interval
        self._ids = itertools.count()
        self._last_id = 0
        # A bot user has its application's id, and its token starts with that id in base64.
        self.application_id = application_id or self.snowflake()
        encoded_id = base64.urlsafe_b64encode(str(self.application_id).encode()).decode().rstrip("=")
        self.token = token or f"{encoded_id}.{secrets.token_urlsafe(5)[:6]}.{secrets.token_urlsafe(30)[:38]}"
        self.guild_id = guild_id or self.snowflake()
        self.channel_id = channel_id or self.snowflake()
        self.other_channel_id = self.snowflake()
        self.admin_role_id = admin_role_id or self.snowflake()
        self.manager_role_id = self.snowflake()
        self.bot_role_id = self.snowflake()
        self.bot_permissions = bot_permissions
        self.bot_user = self._user("discarr", self.application_id, bot=True)
        self.owner = self._user("owner", self.snowflake())
        self._users: dict[str, dict[str, Any]] = {}

        self.requests: list[Request] = []
        self.problems: list[str] = []  # requests (and gateway payloads) Discord would refuse or mis-handle
        self.answer_problems: list[str] = []  # the stand-in's own answers that do not fit Discord's schemas
        self.leniencies: list[str] = []  # requests Discord's server reads but its description refuses
        self.received: list[dict[str, Any]] = []  # every gateway payload the bot sent
        self.identifies: list[dict[str, Any]] = []  # the `d` of each IDENTIFY
        self.resumes: list[dict[str, Any]] = []  # the `d` of each RESUME
        self.commands: dict[str, dict[str, Any]] = {}  # global slash commands by name, as Discord returns them
        self.guild_commands: dict[str, dict[str, Any]] = {}
        self.interactions: dict[int, Interaction] = {}
        self._messages: dict[int, Message] = {}  # every message, ephemeral ones included
        self._sessions: dict[str, _Session] = {}
        self._session: _Session | None = None  # the latest identified session
        self._connections: set[_Connection] = set()
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.openapi = openapi()
        self._handlers: dict[tuple[str, str], Callable[[Request], tuple[int, Any]]] = {
            ("GET", "/users/@me"): lambda _: (200, self._me()),
            ("GET", "/applications/@me"): lambda _: (200, self._application()),
            ("GET", "/oauth2/applications/@me"): lambda _: (200, self._application()),  # discord.py's application_info
            ("GET", "/gateway"): lambda _: (200, {"url": self.gateway_url}),
            ("GET", "/gateway/bot"): lambda _: (200, self._gateway_bot()),
            ("GET", "/applications/{application_id}/commands"): self._get_commands,
            ("PUT", "/applications/{application_id}/commands"): self._put_commands,
            ("GET", "/applications/{application_id}/guilds/{guild_id}/commands"): self._get_commands,
            ("PUT", "/applications/{application_id}/guilds/{guild_id}/commands"): self._put_commands,
            ("GET", "/channels/{channel_id}"): self._get_channel,
            ("POST", "/channels/{channel_id}/messages"): self._create_message,
            ("GET", "/channels/{channel_id}/messages/{message_id}"): self._get_message,
            ("PATCH", "/channels/{channel_id}/messages/{message_id}"): self._edit_message,
            ("DELETE", "/channels/{channel_id}/messages/{message_id}"): self._delete_message,
            ("POST", "/interactions/{interaction_id}/{interaction_token}/callback"): self._callback,
            ("POST", "/webhooks/{webhook_id}/{webhook_token}"): self._follow_up,
        }
        for template in ("/webhooks/{webhook_id}/{webhook_token}/messages/@original",
                         "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"):
            self._handlers[("GET", template)] = self._get_response
            self._handlers[("PATCH", template)] = self._edit_response
            self._handlers[("DELETE", template)] = self._delete_response

    # --- running -----------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def bot_env(self) -> dict[str, str]:
        """The bot's Discord settings for this stand-in."""
        return {"DISCORD_TOKEN": self.token, "DISCORD_CHANNEL_ID": str(self.channel_id),
                "DISCORD_ADMIN_ROLE_ID": str(self.admin_role_id), "DISCORD_API_BASE": self.api_base,
                "DISCORD_GATEWAY_URL": self.gateway_url}

    def start(self) -> DiscordStandIn:
        self._loop = asyncio.new_event_loop()
        started = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        self._thread = threading.Thread(target=self._loop.run_forever, name="discord-standin", daemon=True)
        self._thread.start()
        started.result(timeout=10)
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=2 * ATTACHMENT_SIZE_LIMIT)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._attachment)
        app.router.add_route("*", "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def close(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = None

    async def _shutdown(self) -> None:
        for connection in list(self._connections):
            await connection.ws.close(code=1001, message=b"stand-in closing")
        await self._runner.cleanup()

    def __enter__(self) -> DiscordStandIn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- waiting and reading -----------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "a condition") -> Any:
        """predicate()'s first truthy value, checked on every change (and every 0.2 s); fails after timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}\n{self.summary()}")
                self._cond.wait(min(remaining, 0.2))

    def summary(self) -> str:
        with self._cond:
            lines = [f"problems: {self.problems or 'none'}", "last requests:"]
            lines += [f"  {request.method} {request.path} -> {request.status}" for request in self.requests[-15:]]
            return "\n".join(lines)

    @property
    def messages(self) -> dict[int, Message]:
        """The messages in the channels now (not ephemeral ones, not deleted ones), by id."""
        with self._cond:
            return {id_: message for id_, message in self._messages.items()
                    if not message.ephemeral and not message.deleted}

    def channel_messages(self, channel_id: int | None = None) -> list[Message]:
        channel_id = channel_id or self.channel_id
        return sorted((message for message in self.messages.values() if message.channel_id == channel_id),
                      key=lambda message: message.id)

    def requests_to(self, method: str, template: str) -> list[Request]:
        with self._cond:
            return [request for request in self.requests if request.method == method and request.template == template]

    @property
    def connected(self) -> bool:
        """An identified (or resumed) session has a live connection."""
        session = self._session
        return session is not None and session.connection is not None and not session.connection.ws.closed

    # --- ids, users, the guild ---------------------------------------------------------------------

    def snowflake(self) -> int:
        """A new id as Discord makes them: milliseconds since 2015 << 22, worker 1, process 1, increment."""
        now = int(time.time() * 1000) - DISCORD_EPOCH_MS
        candidate = (now << 22) | (1 << 17) | (1 << 12) | (next(self._ids) & 0xFFF)
        self._last_id = max(candidate, self._last_id + 1)
        return self._last_id

    @staticmethod
    def _user(name: str, id_: int, bot: bool = False) -> dict[str, Any]:
        user = {"id": str(id_), "username": name, "global_name": None if bot else name.title(), "avatar": None,
                "discriminator": "4821" if bot else "0", "public_flags": 0, "flags": 0, "banner": None,
                "accent_color": None, "avatar_decoration_data": None, "collectibles": None, "primary_guild": None}
        if bot:
            user["bot"] = True
        return user

    def user(self, name: str) -> dict[str, Any]:
        """A member of the guild, the same id for the same name."""
        with self._cond:
            if name not in self._users:
                self._users[name] = self._user(name, self.snowflake())
            return self._users[name]

    def _roles(self) -> list[dict[str, Any]]:
        def role(id_: int, name: str, permissions: int, position: int, **extra: Any) -> dict[str, Any]:
            return {"id": str(id_), "name": name, "color": 0,
                    "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
                    "hoist": False, "icon": None, "unicode_emoji": None, "position": position,
                    "permissions": str(permissions), "managed": False, "mentionable": False, "flags": 0, **extra}
        return [role(self.guild_id, "@everyone", EVERYONE_PERMISSIONS, 0),
                role(self.admin_role_id, "discarr admins", KICK_MEMBERS | MANAGE_MESSAGES, 1),
                role(self.manager_role_id, "server managers", MANAGE_GUILD, 2),
                role(self.bot_role_id, "discarr", BOT_PERMISSIONS, 3, managed=True,
                     tags={"bot_id": str(self.application_id)})]

    def _role_permissions(self, role_ids: list[str]) -> int:
        permissions = 0
        for role in self._roles():
            if role["id"] == str(self.guild_id) or role["id"] in role_ids:
                permissions |= int(role["permissions"])
        return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions

    def _channel(self, channel_id: int) -> dict[str, Any] | None:
        names = {self.channel_id: ("discarr", 0), self.other_channel_id: ("general", 1)}
        if channel_id not in names:
            return None
        name, position = names[channel_id]
        overwrites = []
        if self.bot_permissions != BOT_CHANNEL_PERMISSIONS:  # a server admin set what the bot may do here
            overwrites.append({"id": str(self.application_id), "type": 1, "allow": str(self.bot_permissions),
                               "deny": str(ALL_PERMISSIONS & ~self.bot_permissions)})
        last = max((message.id for message in self._messages.values() if message.channel_id == channel_id
                    and not message.ephemeral), default=None)
        return {"id": str(channel_id), "type": 0, "guild_id": str(self.guild_id), "name": name, "position": position,
                "flags": 0, "parent_id": None, "topic": None, "nsfw": False, "rate_limit_per_user": 0,
                "last_message_id": str(last) if last else None, "last_pin_timestamp": None,
                "permission_overwrites": overwrites}

    def _bot_permissions_in(self, channel_id: int) -> int:
        return self.bot_permissions if self._channel(channel_id) is not None else 0

    @staticmethod
    def _member(user: dict[str, Any], roles: list[str], joined: str) -> dict[str, Any]:
        return {"user": user, "roles": roles, "joined_at": joined, "premium_since": None, "deaf": False,
                "mute": False, "flags": 0, "pending": False, "nick": None, "avatar": None, "banner": None,
                "communication_disabled_until": None}

    def _guild_create(self) -> dict[str, Any]:
        """GUILD_CREATE after READY: the guild, its channels and roles, and of its members only the bot
        (without the GUILD_MEMBERS intent Discord sends no others)."""
        return {
            "id": str(self.guild_id), "name": "discarr test server", "icon": None, "splash": None,
            "discovery_splash": None, "banner": None, "description": None, "owner_id": self.owner["id"],
            "afk_channel_id": None, "afk_timeout": 300, "widget_enabled": False, "verification_level": 1,
            "default_message_notifications": 1, "explicit_content_filter": 2, "roles": self._roles(), "emojis": [],
            "stickers": [], "features": [], "mfa_level": 0, "application_id": None, "system_channel_id": None,
            "system_channel_flags": 0, "rules_channel_id": None, "public_updates_channel_id": None,
            "safety_alerts_channel_id": None, "max_members": 500000, "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50, "vanity_url_code": None, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US", "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "incidents_data": None,
            "joined_at": "2025-01-01T00:00:00+00:00", "large": False, "unavailable": False, "member_count": 4,
            "voice_states": [], "presences": [], "threads": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [],
            "members": [self._member(self.bot_user, [str(self.bot_role_id)], "2025-01-01T00:00:00+00:00")],
            "channels": [{key: value for key, value in self._channel(id_).items() if key != "guild_id"}
                         for id_ in (self.channel_id, self.other_channel_id)],
        }

    def _ready(self, session: _Session) -> dict[str, Any]:
        return {"v": 10, "user": {**self.bot_user, "verified": True, "mfa_enabled": False, "email": None},
                "guilds": [{"id": str(self.guild_id), "unavailable": True}], "session_id": session.id,
                "session_type": "normal", "resume_gateway_url": self.gateway_url,
                "application": {"id": str(self.application_id), "flags": APPLICATION_FLAGS},
                "private_channels": [], "presences": [], "relationships": [], "guild_join_requests": [],
                "geo_ordered_rtc_regions": ["rotterdam", "frankfurt"], "user_settings": {},
                "_trace": ['["gateway-prd-standin-0",{"micros":1000}]']}

    # --- gateway -----------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        query = request.query
        compress = query.get("compress")
        connection = _Connection(ws, compress == "zlib-stream")
        if query.get("v") != "10":
            return await self._close(connection, 4012, "Invalid API version.",
                                     f"gateway opened with v={query.get('v')}")
        if query.get("encoding", "json") != "json":  # etf is not modelled: the bot would need erlpack
            return await self._close(connection, 4002, "Error while decoding payload.",
                                     f"gateway encoding={query.get('encoding')} is not modelled by the stand-in")
        if compress not in (None, "zlib-stream"):  # Discord's other choice, zstd-stream, needs zstandard
            return await self._close(connection, 4000, "Unknown error.",
                                     f"gateway compress={compress} is not modelled by the stand-in")
        self._connections.add(connection)
        try:
            await connection.send({"op": 10, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000),
                                                   "_trace": ['["gateway-prd-standin-0",{"micros":0}]']},
                                   "s": None, "t": None})
            while not ws.closed:
                wait = connection.last_heartbeat + self.heartbeat_interval + HEARTBEAT_GRACE - time.monotonic()
                try:
                    message = await ws.receive(timeout=max(wait, 0.01))
                except asyncio.TimeoutError:
                    await self._close(connection, 4009, "Session timed out.",
                                      f"no heartbeat for {self.heartbeat_interval + HEARTBEAT_GRACE:g} s "
                                      f"(interval {self.heartbeat_interval:g} s): was the bot's event loop blocked?")
                    break
                if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                try:
                    payload = json.loads(message.data) if message.type == WSMsgType.TEXT else None
                except ValueError:
                    payload = None
                if not isinstance(payload, dict):
                    await self._close(connection, 4002, "Error while decoding payload.",
                                      f"gateway: not a JSON object: {str(message.data)[:100]!r}")
                    break
                with self._cond:
                    self.received.append(payload)
                    self._cond.notify_all()
                await self._gateway_payload(connection, payload)
        finally:
            self._connections.discard(connection)
            if connection.session is not None and connection.session.connection is connection:
                connection.session.connection = None
            with self._cond:
                self._cond.notify_all()
        return ws

    async def _close(self, connection: _Connection, code: int, reason: str,
                     problem: str | None = None) -> web.WebSocketResponse:
        if problem:
            self._problem(problem)
        await connection.ws.close(code=code, message=reason.encode())
        return connection.ws

    async def _gateway_payload(self, connection: _Connection, payload: dict[str, Any]) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            if data is not None and not isinstance(data, int):
                self._problem(f"gateway: HEARTBEAT with d={data!r}, not the last sequence number or null")
            connection.last_heartbeat = time.monotonic()
            await connection.send({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            await self._identify(connection, data if isinstance(data, dict) else {})
        elif op == 6:
            await self._resume(connection, data if isinstance(data, dict) else {})
        elif op in (3, 4, 8):  # presence, voice state, guild members: accepted, nothing to model
            if connection.session is None:
                await self._close(connection, 4003, "Not authenticated.", f"gateway: op {op} before IDENTIFY")
        else:
            await self._close(connection, 4001, "Unknown opcode.", f"gateway: unknown opcode {op!r}")

    async def _identify(self, connection: _Connection, data: dict[str, Any]) -> None:
        with self._cond:
            self.identifies.append(data)
            self._cond.notify_all()
        if connection.session is not None:
            await self._close(connection, 4005, "Already authenticated.", "gateway: a second IDENTIFY")
            return
        properties = data.get("properties")
        if not isinstance(data.get("token"), str) or not isinstance(properties, dict) \
                or not all(isinstance(properties.get(key), str) for key in ("os", "browser", "device")):
            await self._close(connection, 4002, "Error while decoding payload.",
                              f"gateway: IDENTIFY without token or properties os/browser/device: {sorted(data)}")
            return
        if data["token"] != self.token:
            await self._close(connection, 4004, "Authentication failed.")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or isinstance(intents, bool) or intents < 0:
            await self._close(connection, 4013, "Invalid intent(s).", f"gateway: IDENTIFY intents={intents!r}")
            return
        if intents & PRIVILEGED_INTENTS:
            await self._close(connection, 4014, "Disallowed intent(s).",
                              f"gateway: IDENTIFY asks for privileged intents {intents & PRIVILEGED_INTENTS:#x}, "
                              "which the application was not granted")
            return
        session = _Session(secrets.token_hex(16), connection=connection)
        connection.session = session
        self._sessions[session.id] = self._session = session
        await self._dispatch_event(session, "READY", self._ready(session))
        await self._dispatch_event(session, "GUILD_CREATE", self._guild_create())

    async def _resume(self, connection: _Connection, data: dict[str, Any]) -> None:
        with self._cond:
            self.resumes.append(data)
            self._cond.notify_all()
        if data.get("token") != self.token:
            await self._close(connection, 4004, "Authentication failed.")
            return
        session = self._sessions.get(data.get("session_id"))
        if session is None:  # d false: not resumable, identify anew
            await connection.send({"op": 9, "d": False, "s": None, "t": None})
            return
        if session.connection is not None and session.connection is not connection:
            await session.connection.ws.close(code=4000, message=b"Session resumed elsewhere.")
        session.connection, connection.session = connection, session
        seq = data.get("seq") if isinstance(data.get("seq"), int) else 0
        for event in [event for event in session.events if event["s"] > seq]:
            await connection.send(event)
        await self._dispatch_event(session, "RESUMED", {"_trace": ['["gateway-prd-standin-0",{"micros":0}]']})

    async def _dispatch_event(self, session: _Session, event: str, data: dict[str, Any]) -> None:
        session.seq += 1
        payload = {"op": 0, "t": event, "s": session.seq, "d": data}
        session.events.append(payload)
        if session.connection is not None:  # otherwise it waits for a RESUME
            await session.connection.send(payload)

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Send a gateway dispatch to the bot's session (queued for its RESUME while it is away)."""
        async def send() -> None:
            if self._session is None:
                raise AssertionError(f"cannot send {event}: the bot has no gateway session\n{self.summary()}")
            await self._dispatch_event(self._session, event, data)
        self._run(send())

    def _live_session(self) -> _Session:
        if not self.connected:
            raise AssertionError(f"the bot is not connected to the gateway\n{self.summary()}")
        return self._session

    def request_heartbeat(self) -> None:
        """Op 1 from Discord: the bot must heartbeat at once."""
        session = self._live_session()
        self._run(session.connection.send({"op": 1, "d": session.seq, "s": None, "t": None}))

    def request_reconnect(self, resumable: bool = True) -> None:
        """Op 7 RECONNECT; unless resumable, the session is forgotten, so its RESUME gets INVALID_SESSION."""
        session = self._live_session()
        if not resumable:
            self._sessions.pop(session.id, None)
        self._run(session.connection.send({"op": 7, "d": None, "s": None, "t": None}))

    # --- interactions from members -----------------------------------------------------------------

    def _command(self, name: str) -> dict[str, Any]:
        with self._cond:
            command = self.commands.get(name) or self.guild_commands.get(name)
        if command is None:
            raise LookupError(f"Discord does not know /{name}: the bot has not synced it (synced: "
                              f"{sorted(self.commands) + sorted(self.guild_commands)})")
        return command

    def _role_ids(self, admin: bool, roles: tuple[int, ...]) -> list[str]:
        return [str(self.admin_role_id)] * admin + [str(role) for role in roles]

    def _options(self, command: dict[str, Any], given: dict[str, Any],
                 focused: str | None = None) -> list[dict[str, Any]]:
        """The options as Discord's client fills them in: known names, the right types, within bounds."""
        definitions = {option["name"]: option for option in command.get("options") or []}
        unknown = set(given) - set(definitions)
        if unknown:
            raise ValueError(f"/{command['name']} has no option {sorted(unknown)}")
        options = []
        for name, definition in definitions.items():
            if name == focused:  # what is typed so far, unchecked
                options.append({"name": name, "type": definition["type"], "value": given[name], "focused": True})
                continue
            if name not in given:
                if definition.get("required"):
                    raise ValueError(f"/{command['name']} needs its {name!r} option")
                continue
            value, kind = given[name], OPTION_TYPES.get(definition["type"])
            if kind is None:
                raise NotImplementedError(f"option type {definition['type']} is not modelled by the stand-in")
            if not isinstance(value, kind) or (isinstance(value, bool) and definition["type"] != 5):
                raise ValueError(f"/{command['name']} {name}: {value!r} is not of option type {definition['type']}")
            if "min_value" in definition and value < definition["min_value"] \
                    or "max_value" in definition and value > definition["max_value"]:
                raise ValueError(f"/{command['name']} {name}: {value!r} is out of bounds")
            choices = [choice["value"] for choice in definition.get("choices") or []]
            if choices and value not in choices:
                raise ValueError(f"/{command['name']} {name}: {value!r} is not one of the choices {choices}")
            options.append({"name": name, "type": definition["type"], "value": value})
        return options

    def _check_listed(self, command: dict[str, Any], roles: list[str]) -> None:
        """Discord lists a command only for members with its default_member_permissions ("0": admins only)."""
        needed = command.get("default_member_permissions")
        permissions = self._role_permissions(roles)
        if needed is not None and not permissions & ADMINISTRATOR \
                and (int(needed) == 0 or permissions & int(needed) != int(needed)):
            raise PermissionError(f"Discord does not offer /{command['name']} to this member "
                                  f"(default_member_permissions {needed})")

    def slash(self, name: str, options: dict[str, Any] | None = None, *, user: str = "alice", admin: bool = False,
              roles: tuple[int, ...] = (), channel_id: int | None = None) -> Interaction:
        """A member runs /name in the board's channel (or `channel_id`); admin gives the admin role."""
        command = self._command(name)
        role_ids = self._role_ids(admin, roles)
        self._check_listed(command, role_ids)
        data = {"id": command["id"], "name": name, "type": 1, "options": self._options(command, options or {})}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        return self._interact(2, data, user, role_ids, channel_id or self.channel_id)

    def autocomplete(self, name: str, option: str, value: str, options: dict[str, Any] | None = None, *,
                     user: str = "alice", admin: bool = False, roles: tuple[int, ...] = (),
                     channel_id: int | None = None) -> Interaction:
        """A member types `value` into an autocomplete option; the answer's data has the choices."""
        command = self._command(name)
        definition = next((item for item in command.get("options") or [] if item["name"] == option), None)
        if definition is None or not definition.get("autocomplete"):
            raise ValueError(f"/{name} has no autocomplete option {option!r}")
        role_ids = self._role_ids(admin, roles)
        self._check_listed(command, role_ids)
        data = {"id": command["id"], "name": name, "type": 1,
                "options": self._options(command, {**(options or {}), option: value}, focused=option)}
        return self._interact(4, data, user, role_ids, channel_id or self.channel_id)

    def press(self, message_id: int | str, custom_id: str, *, user: str = "alice", admin: bool = False,
              roles: tuple[int, ...] = ()) -> Interaction:
        """A member presses a button of a message they can see."""
        with self._cond:
            message = self._messages.get(int(message_id))
            if message is None or message.deleted:
                raise LookupError(f"no message {message_id}")
            button = message.button(custom_id)
            if button is None:
                raise LookupError(f"message {message_id} has no button {custom_id!r} "
                                  f"(it has {[item.get('custom_id') for item in message.buttons()]})")
            if button.get("disabled"):
                raise ValueError(f"the button {custom_id!r} is disabled")
            if message.viewer is not None and message.viewer != self.user(user)["id"]:
                raise PermissionError(f"{user} cannot see the ephemeral message {message_id}")
        data = {"custom_id": custom_id, "component_type": 2, "id": button["id"]}
        return self._interact(3, data, user, self._role_ids(admin, roles), message.channel_id, message)

    def _interact(self, kind: int, data: dict[str, Any], user_name: str, roles: list[str], channel_id: int,
                  message: Message | None = None) -> Interaction:
        with self._cond:
            channel = self._channel(channel_id)
            if channel is None:
                raise LookupError(f"no channel {channel_id}")
            user = self.user(user_name)
            member = {**self._member(user, roles, "2025-02-01T00:00:00+00:00"),
                      "permissions": str(self._role_permissions(roles))}
            payload = {
                "id": str(self.snowflake()), "application_id": str(self.application_id), "type": kind, "data": data,
                "guild": {"id": str(self.guild_id), "locale": "en-US", "features": []}, "guild_id": str(self.guild_id),
                "guild_locale": "en-US", "channel": {**channel, "permissions": member["permissions"]},
                "channel_id": str(channel_id), "member": member,
                "token": "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96), "version": 1,
                "app_permissions": str(self._bot_permissions_in(channel_id)), "locale": "en-US", "entitlements": [],
                "authorizing_integration_owners": {"0": str(self.guild_id)}, "context": 0,
                "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            }
            if message is not None:
                payload["message"] = message.data
            interaction = Interaction(payload, self)
            self.interactions[interaction.id] = interaction
        self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    # --- REST ----------------------------------------------------------------------------------------

    def _problem(self, text: str) -> None:
        with self._cond:
            self.problems.append(text)
            self._cond.notify_all()

    async def _attachment(self, request: web.Request) -> web.Response:
        with self._cond:
            for message in self._messages.values():
                if request.match_info["attachment_id"] in message.uploads:
                    return web.Response(body=message.uploads[request.match_info["attachment_id"]])
        raise web.HTTPNotFound()

    async def _rest(self, request: web.Request) -> web.Response:
        body, files, content_type, unreadable = await self._read_body(request)
        record = Request(request.method, request.path, dict(request.query), body, files)
        with self._cond:
            status, answer = self._serve_request(record, request.headers, content_type, unreadable)
            record.status, record.answer = status, answer
            self.requests.append(record)
            self._cond.notify_all()
        headers = {"Via": "1.1 google"}
        if record.template:  # Discord's rate limit headers; never exhausted here
            bucket = hashlib.md5(f"{record.method} {record.template}".encode()).hexdigest()
            headers.update({"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                            "X-RateLimit-Reset": f"{time.time() + 1:.3f}", "X-RateLimit-Reset-After": "1.000",
                            "X-RateLimit-Bucket": bucket})
        if status == 204:
            return web.Response(status=204, headers=headers)
        # Exactly "application/json", as Discord sends it: discord.py's json_or_text parses nothing else.
        headers["Content-Type"] = "application/json"
        return web.Response(body=json.dumps(answer).encode(), status=status, headers=headers)

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, dict[str, Upload], str | None, str | None]:
        """(body, files, content type, why it could not be read); multipart: payload_json and files[n]."""
        if request.content_type == "multipart/form-data":
            body, files, fields = None, {}, {}
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                data = bytes(await part.read(decode=False))
                if part.filename is not None:
                    files[part.name] = Upload(part.filename, part.headers.get("Content-Type"), data)
                elif part.name == "payload_json":
                    try:
                        body = json.loads(data)
                    except ValueError:
                        return None, files, "multipart/form-data", "payload_json is not JSON"
                else:
                    fields[part.name] = data.decode()
            return (fields if body is None else body), files, "multipart/form-data", None
        raw = await request.read()
        if not raw:
            return None, {}, None, None
        if request.content_type != "application/json":
            return raw.decode(errors="replace"), {}, request.content_type, None
        try:
            return json.loads(raw), {}, "application/json", None
        except ValueError:
            return None, {}, "application/json", "the body is not JSON"

    def _serve_request(self, record: Request, headers: Any, content_type: str | None,
                       unreadable: str | None) -> tuple[int, Any]:
        route = f"{record.method} {record.path}"
        if not record.path.startswith(API_PREFIX + "/"):
            self.problems.append(f"{route}: not under {API_PREFIX}")
            return 404, NOT_FOUND
        matched = self.openapi.match(record.path[len(API_PREFIX):])
        if matched is None:
            self.problems.append(f"{route}: no such path in Discord's API")
            return 404, NOT_FOUND
        template, params = matched
        operation = self.openapi.operation(template, record.method)
        if operation is None:
            self.problems.append(f"{route}: Discord's API has no {record.method} {template}")
            return 405, {"message": "405: Method Not Allowed", "code": 0}
        record.template, record.params = template, params
        refused = self._authenticate(record, headers, operation)
        if refused:
            return refused
        if unreadable:
            self.problems.append(f"{record.route}: {unreadable}")
            return _error(400, 50109, "The request body contains invalid JSON.")
        instance = record.body
        if record.files:  # the multipart schema names the files[n] parts beside payload_json's fields
            instance = {**(record.body or {}), **{name: f"<{len(upload.data)} bytes>"
                                                  for name, upload in record.files.items()}}
        errors = self.openapi.request_errors(template, record.method, params, record.query, content_type, instance)
        if errors and not self.openapi.request_errors(template, record.method, params, record.query, content_type,
                                                       instance, lenient=True):
            self.leniencies += [f"{record.route}: {'/'.join(map(str, where)) or 'body'}: {why}"
                                for where, why in errors]
            errors = []
        if errors:
            for where, why in errors:
                self.problems.append(f"{record.route}: {'/'.join(map(str, where)) or 'body'}: {why}")
            return 400, _invalid_form_body(errors)
        handler = self._handlers.get((record.method, template))
        if handler is None:
            self.problems.append(f"{record.route}: in Discord's API but not modelled by the stand-in")
            return 404, NOT_FOUND
        status, answer = handler(record)
        self._check_answer(record, status, answer)
        return status, answer

    def _authenticate(self, record: Request, headers: Any, operation: dict[str, Any]) -> tuple[int, Any] | None:
        """Bot token routes need `Authorization: Bot <token>`; interaction and webhook-token routes need none."""
        authorization = headers.get("Authorization")
        if authorization is None:
            if {} in operation.get("security", [{}]):
                return None
            self.problems.append(f"{record.route}: no Authorization header")
            return 401, UNAUTHORIZED
        if authorization != f"Bot {self.token}":
            return 401, UNAUTHORIZED
        if not headers.get("User-Agent", "").startswith("DiscordBot ("):
            self.problems.append(f"{record.route}: User-Agent {headers.get('User-Agent')!r}; Discord requires "
                                 "'DiscordBot ($url, $versionNumber)'")
        return None

    def _check_answer(self, record: Request, status: int, answer: Any) -> None:
        pointer = ("paths", record.template, record.method.lower(), "responses", str(status), "content",
                   "application/json", "schema")
        if answer is None or not 200 <= status < 300 or not self.openapi.has(*pointer):
            return
        for where, why in self.openapi.errors(answer, *pointer):
            self.answer_problems.append(f"{record.route} -> {status}: {'/'.join(map(str, where)) or 'body'}: {why}")

    def _refuse(self, record: Request, status: int, code: int, message: str, why: str) -> tuple[int, Any]:
        """Discord's refusal of a request that fits the schema but breaks one of Discord's rules."""
        self.problems.append(f"{record.route}: {why}")
        return _error(status, code, message)

    # --- REST: the application ---------------------------------------------------------------------

    def _me(self) -> dict[str, Any]:
        return {**self.bot_user, "mfa_enabled": False, "locale": "en-US", "premium_type": 0, "email": None,
                "verified": True}

    def _application(self) -> dict[str, Any]:
        return {"id": str(self.application_id), "name": "discarr", "icon": None, "description": "", "type": None,
                "bot": self.bot_user, "summary": "", "bot_public": False, "bot_require_code_grant": False,
                "verify_key": hashlib.sha256(str(self.application_id).encode()).hexdigest(),
                "flags": APPLICATION_FLAGS, "flags_new": str(APPLICATION_FLAGS), "redirect_uris": [],
                "interactions_endpoint_url": None, "role_connections_verification_url": None, "owner": self.owner,
                "approximate_guild_count": 1, "approximate_user_install_count": 0,
                "approximate_user_authorization_count": 0, "explicit_content_filter": 0, "team": None,
                "eligible_oauth2_scopes": ["applications.commands", "bot"], "rpc_origins": [], "tags": [],
                "install_params": {"scopes": ["applications.commands", "bot"], "permissions": str(BOT_PERMISSIONS)},
                "integration_types_config": {"0": {"oauth2_install_params": {
                    "scopes": ["applications.commands", "bot"], "permissions": str(BOT_PERMISSIONS)}}}}

    def _gateway_bot(self) -> dict[str, Any]:
        return {"url": self.gateway_url, "shards": 1,
                "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 86400000, "max_concurrency": 1}}

    def _commands_of(self, record: Request) -> dict[str, dict[str, Any]] | tuple[int, Any]:
        if record.params["application_id"] != str(self.application_id):
            return self._refuse(record, 403, 50001, "Missing Access", "another application's commands")
        if "guild_id" not in record.params:
            return self.commands
        if record.params["guild_id"] != str(self.guild_id):
            return _error(404, 10004, "Unknown Guild")
        return self.guild_commands

    def _get_commands(self, record: Request) -> tuple[int, Any]:
        store = self._commands_of(record)
        return store if isinstance(store, tuple) else (200, list(store.values()))

    def _put_commands(self, record: Request) -> tuple[int, Any]:
        """Bulk overwrite: the commands named keep their ids, the others are deleted."""
        store = self._commands_of(record)
        if isinstance(store, tuple):
            return store
        names = [command["name"] for command in record.body or []]
        if len(set(names)) != len(names):
            return self._refuse(record, 400, 50035, "Invalid Form Body", f"duplicate command names {names}")
        for command in record.body or []:
            if command.get("type", 1) == 1 and not re.fullmatch(r"[-_'\w]{1,32}", command["name"]) \
                    or command["name"] != command["name"].lower():
                return self._refuse(record, 400, 50035, "Invalid Form Body",
                                    f"{command['name']!r}: slash command names are lowercase words")
        synced = {}
        for command in record.body or []:
            permissions = command.get("default_member_permissions")
            synced[command["name"]] = {
                "id": store[command["name"]]["id"] if command["name"] in store else str(self.snowflake()),
                "application_id": str(self.application_id), "version": str(self.snowflake()),
                "type": command.get("type", 1), "name": command["name"], "name_localizations": None,
                "description": command.get("description") or "", "description_localizations": None,
                "default_member_permissions": None if permissions is None else str(permissions),
                "dm_permission": command.get("dm_permission", True), "nsfw": bool(command.get("nsfw")),
                "contexts": command.get("contexts"), "integration_types": command.get("integration_types") or [0],
                "options": [{key: value for key, value in option.items() if value is not None}
                            for option in command.get("options") or []],
            }
            if "guild_id" in record.params:
                synced[command["name"]]["guild_id"] = record.params["guild_id"]
        store.clear()
        store.update(synced)
        return 200, list(synced.values())

    # --- REST: channel messages --------------------------------------------------------------------

    def _get_channel(self, record: Request) -> tuple[int, Any]:
        channel = self._channel(int(record.params["channel_id"]))
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        return 200, {**channel, "permissions": str(self._bot_permissions_in(int(record.params["channel_id"])))}

    def _missing_permissions(self, record: Request, channel_id: int, needed: int) -> tuple[int, Any] | None:
        permissions = self._bot_permissions_in(channel_id)
        if not permissions & VIEW_CHANNEL:
            return _error(403, 50001, "Missing Access")
        if permissions & needed != needed:
            return _error(403, 50013, "Missing Permissions")
        return None

    def _channel_message(self, record: Request) -> Message | tuple[int, Any]:
        channel_id = int(record.params["channel_id"])
        if self._channel(channel_id) is None:
            return _error(404, 10003, "Unknown Channel")
        message = self._messages.get(int(record.params["message_id"]))
        if message is None or message.deleted or message.ephemeral or message.channel_id != channel_id:
            return _error(404, 10008, "Unknown Message")  # the bot may look for a message someone deleted
        return message

    def _create_message(self, record: Request) -> tuple[int, Any]:
        channel_id = int(record.params["channel_id"])
        if self._channel(channel_id) is None:
            return _error(404, 10003, "Unknown Channel")
        needed = SEND_MESSAGES | (ATTACH_FILES if record.files else 0)
        refused = self._missing_permissions(record, channel_id, needed)
        if refused:
            return refused
        message = self._new_message(record, channel_id, record.body or {})
        return message if isinstance(message, tuple) else (200, message.data)

    def _get_message(self, record: Request) -> tuple[int, Any]:
        refused = self._missing_permissions(record, int(record.params["channel_id"]), READ_MESSAGE_HISTORY)
        message = refused or self._channel_message(record)
        return message if isinstance(message, tuple) else (200, message.data)

    def _edit_message(self, record: Request) -> tuple[int, Any]:
        message = self._channel_message(record)
        if isinstance(message, tuple):
            return message
        if message.data["author"]["id"] != str(self.application_id):
            return self._refuse(record, 403, 50005, "Cannot edit a message authored by another user",
                                "an edit of someone else's message")
        refused = self._missing_permissions(record, message.channel_id, ATTACH_FILES if record.files else 0)
        edited = refused or self._apply_edit(record, message, record.body or {})
        return edited if isinstance(edited, tuple) else (200, message.data)

    def _delete_message(self, record: Request) -> tuple[int, Any]:
        message = self._channel_message(record)
        if isinstance(message, tuple):
            return message
        message.deleted = True
        return 204, None

    # --- REST: message bodies ------------------------------------------------------------------------

    def _new_message(self, record: Request, channel_id: int, body: dict[str, Any], *,
                     interaction: Interaction | None = None, message_type: int = 0,
                     extra_flags: int = 0) -> Message | tuple[int, Any]:
        message_id = self.snowflake()
        data = {"id": str(message_id), "type": message_type, "channel_id": str(channel_id),
                "author": self.bot_user, "content": "", "embeds": [], "attachments": [], "components": [],
                "mentions": [], "mention_roles": [], "mention_everyone": False, "pinned": False, "tts": False,
                "timestamp": _now(), "edited_timestamp": None, "flags": 0}
        if interaction is not None:
            data.update(self._interaction_fields(interaction))
        message = Message(data, [])
        edited = self._apply_edit(record, message, body, created=True, extra_flags=extra_flags,
                                  allow_empty=bool(extra_flags & LOADING))
        if isinstance(edited, tuple):
            return edited
        if message.ephemeral and interaction is not None:
            message.viewer = interaction.user_id
        self._messages[message.id] = message
        return message

    def _interaction_fields(self, interaction: Interaction) -> dict[str, Any]:
        user = interaction.payload["member"]["user"]
        metadata = {"id": str(interaction.id), "type": interaction.type, "user": user,
                    "authorizing_integration_owners": {"0": str(self.guild_id)}}
        if interaction.type == 2:
            metadata.update(name=interaction.payload["data"]["name"], command_type=1)
        if interaction.type == 3:
            metadata["interacted_message_id"] = interaction.payload["message"]["id"]
        fields: dict[str, Any] = {"webhook_id": str(self.application_id), "application_id": str(self.application_id),
                                  "interaction_metadata": metadata}
        if interaction.type == 2:  # the deprecated `interaction` field, still sent for commands
            fields["interaction"] = {"id": str(interaction.id), "type": 2, "name": interaction.payload["data"]["name"],
                                     "user": user}
        return fields

    def _apply_edit(self, record: Request, message: Message, body: dict[str, Any], *, created: bool = False,
                    extra_flags: int = 0, allow_empty: bool = False) -> tuple[int, Any] | None:
        """Apply a create or edit body (and its files) to `message`; Discord's refusal, or None."""
        data = dict(message.data)
        uploads = {name[6:-1]: upload for name, upload in record.files.items() if re.fullmatch(r"files\[\d+\]", name)}
        if len(uploads) != len(record.files):
            return self._refuse(record, 400, 50035, "Invalid Form Body",
                                f"file parts not named files[n]: {sorted(record.files)}")
        too_big = [upload.filename for upload in uploads.values() if len(upload.data) > ATTACHMENT_SIZE_LIMIT]
        if too_big:
            return self._refuse(record, 413, 40005, "Request entity too large", f"files over the limit: {too_big}")
        if created:  # a new message may ask for SUPPRESS_EMBEDS, EPHEMERAL, SUPPRESS_NOTIFICATIONS, IS_COMPONENTS_V2
            data["flags"] = ((body.get("flags") or 0) & (4 | EPHEMERAL | 4096 | 32768)) | extra_flags
        elif "flags" in body:  # an edit may only turn SUPPRESS_EMBEDS on or off
            data["flags"] = (data["flags"] & ~4) | ((body["flags"] or 0) & 4)
        for key, empty in (("content", ""), ("tts", False)):
            if key in body:
                data[key] = empty if body[key] is None else body[key]
        attachments, files, problem = self._attachments(data, body, uploads, created)
        if problem:
            return self._refuse(record, 400, 50035, "Invalid Form Body", problem)
        data["attachments"] = attachments
        if "embeds" in body:
            embeds, problem = self._embeds(body["embeds"] or [], attachments)
            if problem:
                return self._refuse(record, 400, 50035, "Invalid Form Body", problem)
            if not data.get("webhook_id") and not self._bot_permissions_in(message.channel_id) & EMBED_LINKS:
                embeds = []  # without Embed Links Discord drops the embeds and posts the rest
            data["embeds"] = embeds
        if "components" in body:
            components, problem = _numbered_components(body["components"] or [])
            if problem:
                return self._refuse(record, 400, 50035, "Invalid Form Body", problem)
            data["components"] = components
        if not allow_empty and not (data["content"] or data["embeds"] or data["attachments"] or data["components"]
                                    or body.get("sticker_ids") or body.get("poll")):
            return self._refuse(record, 400, 50006, "Cannot send an empty message", "an empty message")
        if not created:
            if not data["flags"] & LOADING:  # filling a "thinking" message is not an edit to the user
                data["edited_timestamp"] = _now()
            data["flags"] &= ~LOADING
        message.data = data
        message.bodies.append(body)
        message.uploads.update(files)
        return None

    def _attachments(self, data: dict[str, Any], body: dict[str, Any], uploads: dict[str, Upload], created: bool
                     ) -> tuple[list[dict[str, Any]], dict[str, bytes], str | None]:
        """The message's attachments after this request, the new files by attachment id, or why not.

        With `attachments` in the body, exactly those (existing ones by id, new ones by their files[n]
        index; API v10 wants every upload listed); without it, the existing ones and every upload."""
        existing = {} if created else {attachment["id"]: attachment for attachment in data["attachments"]}
        listed = body.get("attachments")
        if listed is None:
            listed = [{"id": attachment_id} for attachment_id in existing] + [{"id": index} for index in uploads]
        entries, files = [], {}
        for item in listed:
            key = str(item.get("id"))
            if key in existing:
                entries.append(existing[key])
            elif key in uploads:
                attachment = self._attachment_object(data, uploads[key], item)
                entries.append(attachment)
                files[attachment["id"]] = uploads[key].data
            else:
                return [], {}, f"attachments: id {item.get('id')!r} is neither a files[n] part nor an attachment"
        unlisted = set(uploads) - {str(item.get("id")) for item in listed}
        if unlisted:
            return [], {}, f"{', '.join(f'files[{index}]' for index in sorted(unlisted))} uploaded but not listed " \
                "in attachments"
        return entries, files, None

    def _attachment_object(self, data: dict[str, Any], upload: Upload, item: dict[str, Any]) -> dict[str, Any]:
        attachment_id = str(self.snowflake())
        filename = item.get("filename") or upload.filename
        url = f"{self.base_url}/attachments/{data['channel_id']}/{attachment_id}/{filename}"
        attachment = {"id": attachment_id, "filename": filename, "size": len(upload.data), "url": url,
                      "proxy_url": url, "content_type": _content_type(upload.data, filename)}
        size = _png_size(upload.data)
        if size:
            attachment["width"], attachment["height"] = size
        if item.get("description"):
            attachment["description"] = item["description"]
        if data["flags"] & EPHEMERAL:
            attachment["ephemeral"] = True
        return attachment

    @staticmethod
    def _embeds(embeds: list[dict[str, Any]], attachments: list[dict[str, Any]]
                ) -> tuple[list[dict[str, Any]], str | None]:
        """The embeds as Discord stores them (type rich, fields inline or not, attachment:// resolved)."""
        text = sum(len(embed.get("title") or "") + len(embed.get("description") or "")
                   + len((embed.get("footer") or {}).get("text") or "")
                   + len((embed.get("author") or {}).get("name") or "")
                   + sum(len(item.get("name") or "") + len(item.get("value") or "")
                         for item in embed.get("fields") or [])
                   for embed in embeds)
        if text > EMBED_TEXT_LIMIT:
            return [], f"embeds: {text} characters of text, over Discord's {EMBED_TEXT_LIMIT} per message"
        files = {attachment["filename"]: attachment for attachment in attachments}
        stored = []
        for embed in embeds:
            embed = {key: value for key, value in embed.items() if value is not None}
            embed["type"] = embed.get("type") or "rich"
            if "fields" in embed:
                embed["fields"] = [{"name": item["name"], "value": item["value"], "inline": bool(item.get("inline"))}
                                   for item in embed["fields"]]
            if "timestamp" in embed:
                embed["timestamp"] = datetime.fromisoformat(embed["timestamp"]).astimezone(timezone.utc).isoformat()
            for key in ("image", "thumbnail"):
                url = (embed.get(key) or {}).get("url", "")
                if url.startswith("attachment://"):
                    attachment = files.get(url[len("attachment://"):])
                    if attachment is None:
                        return [], f"embeds: {key} {url} names no attached file ({sorted(files)})"
                    embed[key] = {key_: attachment[key_] for key_ in ("url", "proxy_url", "width", "height",
                                                                     "content_type") if key_ in attachment}
            stored.append(embed)
        return stored, None

    # --- REST: interactions --------------------------------------------------------------------------

    def _interaction(self, record: Request, interaction_id: str | None, token: str) -> Interaction | tuple[int, Any]:
        interaction = next((item for item in self.interactions.values() if item.token == token), None)
        if interaction is None or (interaction_id is not None and str(interaction.id) != interaction_id):
            return self._refuse(record, 404, 10062, "Unknown interaction", "an unknown interaction or token")
        return interaction

    def _callback(self, record: Request) -> tuple[int, Any]:
        interaction = self._interaction(record, record.params["interaction_id"], record.params["interaction_token"])
        if isinstance(interaction, tuple):
            return interaction
        late = time.monotonic() - interaction.created
        if late > INTERACTION_DEADLINE:
            return self._refuse(record, 404, 10062, "Unknown interaction",
                                f"{interaction.describe()} answered after {late:.1f} s; Discord waits "
                                f"{INTERACTION_DEADLINE:g} s (the user saw 'The application did not respond')")
        if interaction.callback is not None:
            return self._refuse(record, 400, 40060, "Interaction has already been acknowledged.",
                                f"{interaction.describe()} answered twice")
        kind, data = record.body["type"], record.body.get("data") or {}
        if kind not in CALLBACKS_FOR.get(interaction.type, set()):
            return self._refuse(record, 400, 50035, "Invalid Form Body",
                                f"callback type {kind} is not an answer to interaction type {interaction.type}")
        message = None
        if kind in (4, 5):
            message = self._new_message(record, int(interaction.payload["channel_id"]),
                                        data if kind == 4 else {"flags": data.get("flags")}, interaction=interaction,
                                        message_type=20 if interaction.type == 2 else 0,
                                        extra_flags=LOADING if kind == 5 else 0)
        elif kind in (6, 7):
            message = self._messages[int(interaction.payload["message"]["id"])]
            if kind == 7:
                message = self._apply_edit(record, message, data) or message
        if isinstance(message, tuple):
            return message
        interaction.callback = {"type": kind, "data": data}
        interaction.original = message
        if record.query.get("with_response", "false").lower() not in ("true", "1"):
            return 204, None
        answer: dict[str, Any] = {"interaction": {"id": str(interaction.id), "type": interaction.type,
                                                  "channel_id": interaction.payload["channel_id"],
                                                  "guild_id": str(self.guild_id)}}
        if message is not None and kind in (4, 5, 7):
            answer["interaction"].update(response_message_id=message.data["id"],
                                         response_message_loading=kind == 5,
                                         response_message_ephemeral=message.ephemeral)
        if message is not None and kind in (4, 7):
            answer["resource"] = {"type": kind, "message": message.data}
        return 200, answer

    def _webhook_interaction(self, record: Request) -> Interaction | tuple[int, Any]:
        if record.params["webhook_id"] != str(self.application_id):
            return self._refuse(record, 404, 10015, "Unknown Webhook", "a webhook id that is not the application's")
        interaction = self._interaction(record, None, record.params["webhook_token"])
        if isinstance(interaction, tuple):
            return interaction
        if time.monotonic() - interaction.created > FOLLOW_UP_SECONDS:
            return self._refuse(record, 401, 50027, "Invalid Webhook Token", "the interaction token expired")
        if interaction.callback is None:
            return self._refuse(record, 404, 10015, "Unknown Webhook",
                                f"a follow-up to {interaction.describe()} before it was answered")
        return interaction

    def _follow_up(self, record: Request) -> tuple[int, Any]:
        interaction = self._webhook_interaction(record)
        if isinstance(interaction, tuple):
            return interaction
        original = interaction.original
        body = record.body or {}
        if interaction.callback["type"] == 5 and original is not None and original.data["flags"] & LOADING:
            # The first follow-up after a deferral fills the "thinking" message; its ephemerality stays.
            message = self._apply_edit(record, original, {key: value for key, value in body.items() if key != "flags"})
            message = message or original
        else:
            message = self._new_message(record, int(interaction.payload["channel_id"]), body,
                                        interaction=interaction, message_type=0)
        if isinstance(message, tuple):
            return message
        interaction.followups.append(message)
        if record.query.get("wait", "false").lower() not in ("true", "1"):
            return 204, None
        return 200, message.data

    def _response_message(self, record: Request) -> tuple[Interaction, Message] | tuple[int, Any]:
        interaction = self._webhook_interaction(record)
        if isinstance(interaction, tuple):
            return interaction
        wanted = record.params.get("message_id")
        candidates = [interaction.original] if wanted is None else \
            [message for message in [interaction.original, *interaction.followups]
             if message is not None and message.data["id"] == wanted]
        if not candidates or candidates[0] is None or candidates[0].deleted:
            return self._refuse(record, 404, 10008, "Unknown Message",
                                f"no such response message of {interaction.describe()}")
        return interaction, candidates[0]

    def _get_response(self, record: Request) -> tuple[int, Any]:
        found = self._response_message(record)
        return found if isinstance(found[0], int) else (200, found[1].data)

    def _edit_response(self, record: Request) -> tuple[int, Any]:
        found = self._response_message(record)
        if isinstance(found[0], int):
            return found
        interaction, message = found
        refused = self._apply_edit(record, message, record.body or {})
        if refused:
            return refused
        interaction.edits.append(record.body)
        return 200, message.data

    def _delete_response(self, record: Request) -> tuple[int, Any]:
        found = self._response_message(record)
        if isinstance(found[0], int):
            return found
        found[1].deleted = True
        return 204, None


def _invalid_form_body(errors: list[tuple[tuple[Any, ...], str]]) -> dict[str, Any]:
    """Discord's 50035 answer: the failing fields as a tree, each with its _errors."""
    tree: dict[str, Any] = {}
    for where, why in errors:
        node = tree
        for part in where:
            node = node.setdefault(str(part), {})
        node.setdefault("_errors", []).append({"code": "BASE_TYPE_INVALID", "message": why})
    return {"message": "Invalid Form Body", "code": 50035, "errors": tree}


def _numbered_components(components: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """Components as Discord stores them: nulls dropped, each with a numeric id; custom_ids unique."""
    counter = itertools.count(1)
    seen: set[str] = set()

    def number(component: dict[str, Any]) -> dict[str, Any]:
        stored = {key: value for key, value in component.items() if value is not None}
        stored.setdefault("id", next(counter))
        if "emoji" in stored:
            stored["emoji"] = {key: value for key, value in stored["emoji"].items() if value is not None}
        if "components" in stored:
            stored["components"] = [number(child) for child in stored["components"]]
        if "custom_id" in stored:
            if stored["custom_id"] in seen:
                raise ValueError(stored["custom_id"])
            seen.add(stored["custom_id"])
        return stored
    try:
        return [number(component) for component in components], None
    except ValueError as exc:
        return [], f"components: custom_id {exc} is used twice (Discord wants them unique per message)"


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _content_type(data: bytes, filename: str) -> str:
    if _png_size(data):
        return "image/png"
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


@pytest.fixture
def discord_standin() -> Iterator[DiscordStandIn]:
    with DiscordStandIn() as standin:
        yield standin
