"""What the bot's tests share: recorded interactions and channels (Discord is the only thing faked),
real tracker and poller REP endpoints with canned handlers, and real tracker answers.

The tracker answers come from a real `Tracker` fed with snapshots on a
manual clock, so their shapes are exactly the tracker's. The REP servers are
`common.sockets.bind` + `common.sockets.answer` in a thread: linger 0, every
receive polled with a timeout, the context terminated.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator

import discord
import zmq

from common.clock import ManualClock
from common.settings import Settings
from common.sockets import answer, bind, make_socket
from services.bot.limits import limit_violations
from services.tracker.history import DetectionConfig
from services.tracker.service import query_handlers
from services.tracker.state import Tracker
from tests.records import GB, record, snapshot

CHANNEL_ID = 111
OTHER_CHANNEL_ID = 222
ADMIN_ROLE_ID = 333
T0 = 1_700_000_000.0


# --- running coroutines, measuring payloads ---------------------------------------------------------

def run(coroutine: Any, timeout: float = 15.0) -> Any:
    """Run one coroutine on a fresh loop; a hang fails the test instead of blocking the suite."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def measure(embeds: list[discord.Embed | dict]) -> list[str]:
    """Every Discord limit these embeds (one message) break, measured on their dicts independently of limits.py."""
    dicts = [e.to_dict() if isinstance(e, discord.Embed) else e for e in embeds]

    def size(text: Any) -> int:  # UTF-16 code units: never less than what Discord counts
        return len(str(text).encode("utf-16-le")) // 2 if text else 0

    problems = []
    total = 0
    if len(dicts) > 10:
        problems.append(f"{len(dicts)} embeds")
    for index, data in enumerate(dicts):
        parts = {"title": (size(data.get("title")), 256), "description": (size(data.get("description")), 4096),
                 "footer": (size((data.get("footer") or {}).get("text")), 2048),
                 "author": (size((data.get("author") or {}).get("name")), 256)}
        for name, (length, limit) in parts.items():
            total += length
            if length > limit:
                problems.append(f"embed {index} {name} {length} > {limit}")
        fields = data.get("fields") or []
        if len(fields) > 25:
            problems.append(f"embed {index} has {len(fields)} fields")
        for field in fields:
            name, value = size(field.get("name")), size(field.get("value"))
            total += name + value
            if not 0 < name <= 256 or not 0 < value <= 1024:
                problems.append(f"embed {index} field sizes {name}/{value}")
    if total > 6000:
        problems.append(f"{total} characters in the message")
    assert problems == limit_violations(dicts) or problems, "limits.limit_violations disagrees"
    return problems


def text_of(embeds: list[discord.Embed | dict]) -> str:
    dicts = [e.to_dict() if isinstance(e, discord.Embed) else e for e in embeds]
    return json.dumps(dicts, ensure_ascii=False)


# --- Discord, recorded ------------------------------------------------------------------------------------

class Calls(list):
    """(name, kwargs) of every call an interaction received, in order."""

    def named(self, name: str) -> list[dict]:
        return [kwargs for call, kwargs in self if call == name]

    def replies(self) -> list[dict]:
        return [kwargs for call, kwargs in self
                if call in ("send_message", "followup.send", "edit_message", "edit_original_response")]

    def text(self) -> str:
        pieces = []
        for _, kwargs in self:
            pieces.append(str(kwargs.get("content") or ""))
            embeds = list(kwargs.get("embeds") or ()) + ([kwargs["embed"]] if kwargs.get("embed") else [])
            pieces.append(text_of(embeds))
        return "\n".join(pieces)


class FakeMessage:
    _ids = itertools.count(900_000)

    def __init__(self, embeds: list[discord.Embed] | None = None, view: Any = None,
                 message_id: int | None = None) -> None:
        self.id = message_id or next(self._ids)
        self.embeds = list(embeds or [])
        self.view = view
        self.edits: list[dict] = []
        self.deleted = False

    async def edit(self, **kwargs: Any) -> "FakeMessage":
        if self.deleted:
            raise not_found()
        self.edits.append(kwargs)
        if "embeds" in kwargs:
            self.embeds = list(kwargs["embeds"])
        if "view" in kwargs:
            self.view = kwargs["view"]
        return self


def not_found() -> discord.NotFound:
    return discord.NotFound(SimpleNamespace(status=404, reason="Not Found"), "Unknown Message")


class FakeResponse:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls
        self._done = False

    def is_done(self) -> bool:
        return self._done

    def _answer(self, name: str, kwargs: dict) -> None:
        assert not self._done, f"{name}: the interaction was already answered"
        self._done = True
        self.calls.append((name, kwargs))

    async def send_message(self, content: str | None = None, **kwargs: Any) -> None:
        self._answer("send_message", dict(kwargs, content=content))

    async def defer(self, **kwargs: Any) -> None:
        self._answer("defer", kwargs)

    async def edit_message(self, **kwargs: Any) -> None:
        self._answer("edit_message", kwargs)


class FakeFollowup:
    def __init__(self, interaction: "FakeInteraction") -> None:
        self.interaction = interaction

    async def send(self, content: str | None = None, **kwargs: Any) -> FakeMessage:
        assert self.interaction.response.is_done(), "a followup before the interaction was answered"
        self.interaction.calls.append(("followup.send", dict(kwargs, content=content)))
        embeds = list(kwargs.get("embeds") or ()) + ([kwargs["embed"]] if kwargs.get("embed") else [])
        return FakeMessage(embeds, kwargs.get("view"))


def member(user_id: int = 1, *, manage_guild: bool = False, administrator: bool = False,
           roles: tuple[int, ...] = (), name: str = "alice") -> SimpleNamespace:
    return SimpleNamespace(id=user_id, name=name, mention=f"<@{user_id}>",
                           guild_permissions=discord.Permissions(manage_guild=manage_guild,
                                                                 administrator=administrator),
                           roles=[SimpleNamespace(id=role) for role in roles])


class FakeInteraction:
    """Just what the bot touches of a discord.Interaction; records every answer."""

    def __init__(self, user: Any = None, *, channel_id: int = CHANNEL_ID, message: FakeMessage | None = None,
                 custom_id: str | None = None) -> None:
        self.user = user or member()
        self.channel_id = channel_id
        self.guild_id = 42
        self.message = message
        self.data = {"custom_id": custom_id, "component_type": 2} if custom_id else {}
        self.calls = Calls()
        self.response = FakeResponse(self.calls)
        self.followup = FakeFollowup(self)
        self.command = None

    async def edit_original_response(self, **kwargs: Any) -> FakeMessage:
        assert self.response.is_done(), "edit_original_response before the interaction was answered"
        self.calls.append(("edit_original_response", kwargs))
        if self.message is not None:
            await self.message.edit(**kwargs)
        return self.message or FakeMessage(kwargs.get("embeds"))

    def ephemeral_replies(self) -> list[dict]:
        return [kwargs for kwargs in self.calls.replies() if kwargs.get("ephemeral")]


class FakeChannel:
    """A text channel that keeps the messages the bot posted."""

    def __init__(self, channel_id: int = CHANNEL_ID) -> None:
        self.id = channel_id
        self.messages: dict[int, FakeMessage] = {}
        self.sent: list[dict] = []

    async def send(self, content: str | None = None, **kwargs: Any) -> FakeMessage:
        self.sent.append(dict(kwargs, content=content))
        embeds = list(kwargs.get("embeds") or ()) + ([kwargs["embed"]] if kwargs.get("embed") else [])
        message = FakeMessage(embeds, kwargs.get("view"))
        self.messages[message.id] = message
        return message

    async def fetch_message(self, message_id: int) -> FakeMessage:
        message = self.messages.get(message_id)
        if message is None or message.deleted:
            raise not_found()
        return message

    def get_partial_message(self, message_id: int) -> FakeMessage:
        return self.messages.get(message_id) or FakeMessage(message_id=message_id, embeds=[])

    def delete(self, message_id: int) -> None:
        self.messages[message_id].deleted = True


async def press(view: discord.ui.View, item: discord.ui.Item, interaction: FakeInteraction) -> None:
    """Dispatch a button press as discord.py does (checks, then the callback); errors fail the test."""
    async def raise_error(interaction: Any, error: Exception, item: Any) -> None:
        raise error
    view.on_error = raise_error  # type: ignore[method-assign]
    interaction.data = {"custom_id": getattr(item, "custom_id", None), "component_type": 2}
    await view._scheduled_task(item, interaction)


# --- services ------------------------------------------------------------------------------------------------

@contextmanager
def rep_server(handlers: dict[str, Callable[[dict], dict]], service: str = "tracker") -> Iterator[str]:
    """A real REP endpoint on a random loopback port, answering with `handlers` until the block ends."""
    context = zmq.Context()
    sock = bind(context, zmq.REP, "tcp://127.0.0.1:*", service)
    endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
    stop = threading.Event()
    requests: list[str] = []

    def loop() -> None:
        while not stop.is_set():
            if sock.poll(20, zmq.POLLIN):
                frames = sock.recv_multipart()
                requests.append(frames[0][:64].decode("latin-1"))
                sock.send(answer(frames, handlers, service))

    thread = threading.Thread(target=loop, name=f"fake-{service}", daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        stop.set()
        thread.join(5)
        sock.close(linger=0)
        context.term()


def dead_endpoint() -> str:
    """A loopback endpoint nobody serves: a tracker or poller that is down."""
    context = zmq.Context()
    sock = make_socket(context, zmq.REP)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close(linger=0)
    context.term()
    return f"tcp://127.0.0.1:{port}"


def bot_settings(tmp_path: Path, *, tracker: str | None = None, poller: str | None = None,
                 timeout: float = 0.5, **overrides: Any) -> Settings:
    values = dict(tracker_query_endpoint=tracker or dead_endpoint(), poller_command_endpoint=poller or dead_endpoint(),
                  request_timeout_seconds=timeout, removal_timeout_seconds=2.0, discord_channel_id=CHANNEL_ID,
                  discord_admin_role_id=ADMIN_ROLE_ID, bot_state_file=str(tmp_path / "bot-state.json"),
                  check_interval=300.0, poll_interval_seconds=30.0)
    values.update(overrides)
    return Settings(**values)


# --- real tracker answers --------------------------------------------------------------------------------

MINUTES = (0, 30, 60, 121)  # the polls; stuck after 120 min, soon stuck after 90


def odd_title(index: int, kind: str) -> str:
    """Release titles as they come: dots, markdown characters, now and then a very long one."""
    title = f"Show.{kind}.{index}.S01E{index % 100:02d}.1080p.WEB_DL*x264*-GRP`{index}`"
    return title + ".EXTENDED" * 40 if index % 7 == 0 else title


def tracker_with(*, moving: int = 3, stuck: int = 2, soon: int = 1, failed: int = 1, blocked: int = 1,
                 paused: int = 1, instances: tuple[str, ...] = ("radarr", "sonarr"),
                 unhealthy: tuple[str, ...] = ()) -> Tracker:
    """A real Tracker after four polls on a manual clock, holding every kind of download."""
    clock = ManualClock(T0)
    tracker = Tracker(DetectionConfig(poll_s=30 * 60), clock)  # polled every half hour: no gap is time unseen
    eta = (datetime.fromtimestamp(T0, timezone.utc) + timedelta(hours=3)).isoformat().replace("+00:00", "Z")
    for step, minute in enumerate(MINUTES):
        clock._now = T0 + minute * 60
        for number, instance in enumerate(instances):
            records = []
            ids = itertools.count(number * 1_000_000 + 1)

            def add(count: int, kind: str, **fields: Any) -> None:
                for index in range(count):
                    records.append(record(next(ids), f"{kind}-{instance}-{index}",
                                          title=odd_title(index, kind), **fields))

            for index in range(moving):
                records.append(record(next(ids), f"moving-{instance}-{index}", title=odd_title(index, "moving"),
                                      size=20 * GB, downloaded=(index % 5 + step * 2) * GB, eta=eta))
            add(stuck, "stuck", downloaded=GB)
            if step >= 1:
                add(soon, "soon", downloaded=2 * GB)
            add(failed, "failed", status="failed", tracked_status="error", tracked_state="failed", downloaded=GB)
            add(blocked, "blocked", status="completed", tracked_status="warning", tracked_state="importBlocked",
                downloaded=10 * GB)
            add(paused, "paused", status="paused", downloaded=3 * GB)
            tracker.ingest(snapshot(instance, records, kind="radarr" if instance.startswith("radarr") else "sonarr"))
    for name in unhealthy:
        tracker.ingest(snapshot(name, None, state="unreachable", error="connection refused"))
    return tracker


def tracker_handlers(tracker: Tracker, settings: Settings | None = None) -> dict:
    return query_handlers(tracker, settings or Settings())


def removal_handler(outcome: Callable[[dict], tuple[str, str]] | None = None,
                    received: list | None = None) -> Callable[[dict], dict]:
    """A poller's "remove": every download removed (or `outcome(item)` -> (result, detail))."""
    def handle(body: dict) -> dict:
        if received is not None:
            received.append(body)
        results = []
        for item in body["downloads"]:
            if body["dry_run"]:
                result, detail = "skipped", "dry run: would remove 1 queue record(s)"
            else:
                result, detail = outcome(item) if outcome else ("removed", "removed and blocklisted")
            results.append(dict(item, result=result, detail=detail))
        return {"request_id": body["request_id"], "results": results}
    return handle


# --- the helpers check themselves --------------------------------------------------------------------------

def test_the_fake_tracker_holds_every_kind_of_download():
    tracker = tracker_with()
    progress = tracker.progress({})
    assert progress["tracked"] == 2 * (3 + 2 + 1 + 1 + 1 + 1)
    assert len(progress["stuck"]) == 4 and len(progress["inactive"]) == 2
    assert len(progress["soon_stuck"]) == 2 and len(progress["attention"]) == 2


def test_a_rep_server_answers_and_a_dead_endpoint_does_not():
    from common.sockets import RequestClient, ServiceUnavailable
    import pytest
    with rep_server({"ping": lambda body: {"pong": 1}}) as endpoint:
        with RequestClient("tracker", endpoint, 2.0) as client:
            assert client.request("ping") == {"pong": 1}
    started = time.monotonic()
    with RequestClient("tracker", dead_endpoint(), 0.3) as client, pytest.raises(ServiceUnavailable):
        client.request("ping")
    assert time.monotonic() - started < 2
