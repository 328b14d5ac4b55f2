"""The bot process: one board message that survives restarts, warnings once, clean start and stop,
`discarr preview`, and a 10,000-download queue through every command."""
import copy
import errno
import io
import json
import logging
import os
import threading
import time
from types import SimpleNamespace

import discord
import pytest

from common.sockets import ServiceUnavailable
from services.bot.app import DiscarrBot, RedactToken, run_discord_bot
from services.bot.requests import ServiceFailure, Services
from services.bot.embeds import page_of
from services.bot.preview import preview_payloads, render_text
from tests.test_bot_fakes import (ADMIN_ROLE_ID, FakeChannel, FakeInteraction, bot_settings, measure, member,
                                  press, removal_handler, rep_server, run, tracker_handlers, tracker_with)

TOKEN = "MTIzNDU2Nzg5.secret-token.value"


@pytest.fixture(scope="module")
def tracker():
    return tracker_with(unhealthy=("lidarr",))


def _bot(settings, services, channel):
    bot = DiscarrBot(settings, services)

    async def resolve():
        return channel
    bot.board.resolve_channel = resolve
    return bot


def _boards(channel):
    return [sent for sent in channel.sent if sent.get("embeds")]


def _warnings(channel):
    return [sent for sent in channel.sent if sent.get("embed")]


def test_a_restarted_bot_edits_the_same_board_message(tmp_path, tracker):
    channel = FakeChannel()
    with rep_server(tracker_handlers(tracker)) as endpoint:
        settings = bot_settings(tmp_path, tracker=endpoint)

        async def scenario():
            services = Services(settings)
            first = await _bot(settings, services, channel).board.refresh()
            second = await _bot(settings, services, channel).board.refresh()  # a new process, same state file
            await services.close()
            return first, second
        first, second = run(scenario())
    assert first.message_id == second.message_id
    assert len(_boards(channel)) == 1
    assert len(channel.messages[first.message_id].edits) == 1
    state = json.loads((tmp_path / "bot-state.json").read_text())
    assert state["message_id"] == first.message_id and state["channel_id"] == channel.id
    assert [path.name for path in tmp_path.iterdir()] == ["bot-state.json"]  # no temporary file left behind


def test_a_deleted_board_message_is_posted_again_and_remembered(tmp_path, tracker):
    channel = FakeChannel()
    with rep_server(tracker_handlers(tracker)) as endpoint:
        settings = bot_settings(tmp_path, tracker=endpoint)

        async def scenario():
            services = Services(settings)
            bot = _bot(settings, services, channel)
            first = await bot.board.refresh()
            channel.delete(first.message_id)
            second = await bot.board.refresh()
            third = await _bot(settings, services, channel).board.refresh()
            await services.close()
            return first, second, third
        first, second, third = run(scenario())
    assert first.message_id != second.message_id == third.message_id
    assert len(_boards(channel)) == 2
    assert json.loads((tmp_path / "bot-state.json").read_text())["message_id"] == second.message_id


def test_a_refresh_keeps_the_page_the_board_shows(tmp_path):
    tracker = tracker_with(moving=150, stuck=20, instances=("radarr",))
    channel = FakeChannel()
    with rep_server(tracker_handlers(tracker)) as endpoint:
        settings = bot_settings(tmp_path, tracker=endpoint)

        async def scenario():
            services = Services(settings)
            bot = _bot(settings, services, channel)
            result = await bot.board.refresh()
            message = channel.messages[result.message_id]
            pager = message.view
            await press(pager, pager.next, FakeInteraction(message=message))
            await bot.board.refresh()
            await services.close()
            return message
        message = run(scenario())
    assert page_of(message.embeds)[0] == 1  # still on page 2 after the periodic edit
    assert message.edits[-1]["view"] is not None


def test_a_tracker_outage_shows_on_the_board_without_a_second_message(tmp_path, tracker):
    channel = FakeChannel()
    with rep_server(tracker_handlers(tracker)) as endpoint:
        up = bot_settings(tmp_path, tracker=endpoint)

        async def post():
            services = Services(up)
            await _bot(up, services, channel).board.refresh()
            await services.close()
        run(post())
    down = bot_settings(tmp_path, timeout=0.3)

    async def refresh_while_down():
        services = Services(down)
        try:
            await _bot(down, services, channel).board.refresh()
        finally:
            await services.close()
    with pytest.raises(ServiceFailure, match="tracker did not answer"):
        run(refresh_while_down())
    (board,) = _boards(channel)
    message = next(iter(channel.messages.values()))
    assert "could not be refreshed" in message.embeds[0].description and message.edits[-1]["view"] is None


def test_warnings_are_posted_once_and_again_only_after_a_recovery(tmp_path, tracker):
    broken = tracker.check()
    healthy = copy.deepcopy(broken)
    for item in healthy["downloads"]:
        item["category"] = None if item["category"] == "stuck" else item["category"]
    for instance in healthy["instances"]:
        instance.update(healthy=True, state="ok", error=None)
    answers = [broken, broken, broken, healthy, broken]
    channel = FakeChannel()
    with rep_server({"check": lambda body: answers.pop(0)}) as endpoint:
        settings = bot_settings(tmp_path, tracker=endpoint)

        async def scenario():
            services = Services(settings)
            bot = _bot(settings, services, channel)
            posted = [(await bot.board.refresh()).warned, (await bot.board.refresh()).warned]
            bot = _bot(settings, services, channel)  # a restart remembers what it warned about
            posted += [(await bot.board.refresh()).warned for _ in range(3)]
            await services.close()
            return posted
        posted = run(scenario())
    assert posted == [True, False, False, False, True]
    first, second = _warnings(channel)
    assert first["embed"].title == "⚠️ 1 instance(s) unhealthy, 4 download(s) stuck"
    assert first["allowed_mentions"].everyone is False
    assert second["embed"].title == "⚠️ 1 instance(s) unhealthy, 4 download(s) stuck"


async def _start(settings):
    """setup_hook as at log in and the command sync it starts beside the board; then the bot is closed."""
    async with DiscarrBot(settings) as bot:
        await bot.setup_hook()
        await bot.sync_task
        running = bot.board_loop.is_running()
    return bot, running


def test_setup_hook_registers_the_persistent_pager_and_syncs_only_changed_commands(tmp_path, monkeypatch):
    synced = []

    async def fake_sync(self, *args, **kwargs):
        synced.append(1)
        return []
    monkeypatch.setattr(discord.app_commands.CommandTree, "sync", fake_sync)
    settings = bot_settings(tmp_path)

    async def scenario():
        starts = []
        for _ in range(2):
            async with DiscarrBot(settings) as bot:  # closing removes the cog: look while it runs
                await bot.setup_hook()
                await bot.sync_task
                starts.append((bot, [type(view).__name__ for view in bot.persistent_views],
                               {command.name for command in bot.tree.get_commands()}))
        return starts[0]
    first, views, commands = run(scenario())
    assert synced == [1]  # the second start found the same commands already synced
    assert views == ["BoardPager"]
    assert commands == {"check", "verbose", "progress", "cleanup", "stats", "keep", "unkeep"}
    assert first.board_loop.seconds == settings.check_interval
    assert first.intents.value == discord.Intents(guilds=True).value  # no privileged intent


def test_the_synced_commands_follow_the_admin_role_setting(tmp_path, monkeypatch):
    synced = []

    async def fake_sync(self, *args, **kwargs):
        synced.append({command.name: command.to_dict(self) for command in self.get_commands()})
        return []
    monkeypatch.setattr(discord.app_commands.CommandTree, "sync", fake_sync)

    async def scenario():
        for role in (ADMIN_ROLE_ID, None):  # the same state file: a changed setting is synced again
            await _start(bot_settings(tmp_path, discord_admin_role_id=role))
    run(scenario())
    with_role, without_role = synced
    for name in ("verbose", "progress", "cleanup", "stats"):
        assert with_role[name]["default_member_permissions"] is None
        assert str(without_role[name]["default_member_permissions"]) == "32"


@pytest.mark.parametrize("status, message, advice", [
    (403, {"code": 50001, "message": "Missing Access"}, "re-invite the bot with the applications.commands scope"),
    (429, "You are being rate limited.", "restart the bot later"),
])
def test_a_refused_command_sync_is_one_clear_line_and_the_board_runs_on(tmp_path, monkeypatch, caplog,
                                                                        status, message, advice):
    async def refuse(self, *args, **kwargs):
        raise discord.HTTPException(SimpleNamespace(status=status, reason="refused"), message)
    monkeypatch.setattr(discord.app_commands.CommandTree, "sync", refuse)
    caplog.set_level(logging.INFO, logger="services.bot.app")
    _, running = run(_start(bot_settings(tmp_path)))
    assert running  # the board loop was started: the old commands stay, the board goes on
    # discord.py's own once-per-process notes (no PyNaCl: no voice) aside
    problems = [record for record in caplog.records
                if record.levelno >= logging.WARNING and record.name.startswith("services")]
    assert len(problems) == 1
    line = problems[0].getMessage()
    assert "\n" not in line and f"could not sync the slash commands (Discord answered {status}" in line
    assert "Discord keeps the commands it had" in line and advice in line
    state_file = tmp_path / "bot-state.json"
    assert not state_file.exists() or "commands" not in json.loads(state_file.read_text())  # tried at next start


def test_the_board_is_edited_no_faster_than_discord_allows(tmp_path, monkeypatch, caplog):
    async def fake_sync(self, *args, **kwargs):
        return []
    monkeypatch.setattr(discord.app_commands.CommandTree, "sync", fake_sync)
    caplog.set_level(logging.WARNING, logger="services.bot.app")
    settings = bot_settings(tmp_path, discord_token=TOKEN, check_interval=5.0)
    bot, _ = run(_start(settings))
    assert bot.board_loop.seconds == 30.0 == settings.effective_check_interval
    assert "CHECK_INTERVAL=5" in caplog.text and "30" in caplog.text
    assert bot_settings(tmp_path, check_interval=5.0).effective_check_interval == 5.0  # no Discord: no floor
    assert bot_settings(tmp_path, discord_token=TOKEN, check_interval=600.0).effective_check_interval == 600.0


def test_the_state_file_is_written_off_the_event_loop(tmp_path, tracker, monkeypatch):
    # fsync can block for seconds on a busy disk: on the event loop it would stall the gateway heartbeat.
    writers = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: writers.append(threading.get_ident()) or real_fsync(fd))

    async def fake_sync(self, *args, **kwargs):
        return []
    monkeypatch.setattr(discord.app_commands.CommandTree, "sync", fake_sync)
    channel = FakeChannel()
    with rep_server(tracker_handlers(tracker)) as endpoint:
        settings = bot_settings(tmp_path, tracker=endpoint)

        async def scenario():
            await _start(settings)  # the command sync saves the state
            services = Services(settings)
            await _bot(settings, services, channel).board.refresh()
            await services.close()
            return threading.get_ident()
        loop_thread = run(scenario())
    assert len(writers) >= 2 and loop_thread not in writers
    state = json.loads((tmp_path / "bot-state.json").read_text())
    assert "commands" in state and "message_id" in state


def test_a_full_disk_loses_no_board_and_a_later_refresh_saves_again(tmp_path, tracker, monkeypatch, caplog):
    disk_full = [True]
    real_fsync = os.fsync

    def fsync(fd):
        if disk_full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    channel = FakeChannel()
    with rep_server(tracker_handlers(tracker)) as endpoint:
        settings = bot_settings(tmp_path, tracker=endpoint)

        async def scenario():
            services = Services(settings)
            bot = _bot(settings, services, channel)
            first = await bot.board.refresh()  # posted; the state cannot be written
            disk_full[0] = False
            second = await bot.board.refresh()  # nothing changed, but what was not saved is saved now
            third = await _bot(settings, services, channel).board.refresh()  # a restart
            await services.close()
            return first, second, third
        first, second, third = run(scenario())
    assert first.message_id == second.message_id == third.message_id
    assert len(_boards(channel)) == 1
    assert "No space left on device" in caplog.text
    assert [path.name for path in tmp_path.iterdir()] == ["bot-state.json"]  # no temporary file left behind


def test_the_bot_stops_when_the_event_is_set(tmp_path, monkeypatch):
    async def login(self, token):
        assert token == TOKEN

    async def connect(self, *, reconnect=True):
        await asyncio_sleep_forever()
    monkeypatch.setattr(DiscarrBot, "login", login)
    monkeypatch.setattr(DiscarrBot, "connect", connect)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    run_discord_bot(bot_settings(tmp_path, discord_token=TOKEN), stop)
    assert time.monotonic() - started < 5


async def asyncio_sleep_forever():
    import asyncio
    await asyncio.sleep(3600)


def test_a_refused_token_is_a_clear_error_that_never_shows_the_token(tmp_path, monkeypatch, caplog):
    async def login(self, token):
        raise discord.LoginFailure("Improper token has been passed.")
    monkeypatch.setattr(DiscarrBot, "login", login)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ServiceUnavailable) as raised:
        run_discord_bot(bot_settings(tmp_path, discord_token=TOKEN), threading.Event())
    assert "discord" in str(raised.value) and "DISCORD_TOKEN" in str(raised.value)
    assert TOKEN not in str(raised.value) and TOKEN not in caplog.text
    with pytest.raises(ServiceUnavailable, match="DISCORD_TOKEN is not set"):
        run_discord_bot(bot_settings(tmp_path), threading.Event())


def test_the_token_is_redacted_from_any_log_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactToken(TOKEN))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("connecting with %s", TOKEN)
        try:
            raise RuntimeError(f"bad {TOKEN}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert TOKEN not in stream.getvalue() and "<DISCORD_TOKEN>" in stream.getvalue()


def test_settings_never_show_the_token(tmp_path):
    assert TOKEN not in repr(bot_settings(tmp_path, discord_token=TOKEN))


# --- discarr preview ----------------------------------------------------------------------------------------

def test_preview_payloads_are_what_the_bot_would_send(tmp_path, tracker):
    with rep_server(tracker_handlers(tracker)) as endpoint:
        settings = bot_settings(tmp_path, tracker=endpoint)
        payloads = {kind: run(preview_payloads(kind, settings)) for kind in ("board", "progress", "cleanup")}
    for kind, payload in payloads.items():
        json.dumps(payload)
        assert measure(payload["embeds"]) == [], kind
    assert payloads["board"]["embeds"][0]["title"] == "discarr status board"
    assert payloads["board"]["components"] == []  # one page: no buttons
    assert payloads["progress"]["embeds"][0]["title"] == "Tracker statistics"
    buttons = [component["label"] for row in payloads["cleanup"]["components"] for component in row["components"]]
    assert buttons[:2] == ["Confirm", "Cancel"]
    assert buttons[2:] and all(label.startswith("Keep ") for label in buttons[2:])  # one beside each candidate
    assert "buttons: Confirm | Cancel | Keep " in render_text(payloads["cleanup"])


def test_preview_with_the_tracker_down_raises_service_unavailable(tmp_path):
    with pytest.raises(ServiceUnavailable, match="tracker did not answer"):
        run(preview_payloads("progress", bot_settings(tmp_path, timeout=0.3)))


# --- 10,000 downloads through every command ------------------------------------------------------------------

def test_every_payload_for_a_10000_download_queue_fits(tmp_path):
    tracker = tracker_with(moving=2000, stuck=1500, soon=500, failed=500, blocked=250, paused=250)
    channel = FakeChannel()

    def outcome(item):
        return ("failed", "sonarr answered 500: " + "x" * 300) if item["category"] == "inactive" else \
            ("removed", "removed and blocklisted")
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint, \
            rep_server({"remove": removal_handler(outcome)}, "poller") as poller_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint, timeout=5.0)

        async def scenario():
            services = Services(settings)
            bot = _bot(settings, services, channel)
            cog = bot.cog
            admin = member(7, manage_guild=True)
            progress, cleanup, check = FakeInteraction(admin), FakeInteraction(admin), FakeInteraction(admin)
            await cog.progress_command.callback(cog, progress)
            await cog.cleanup_command.callback(cog, cleanup, include_import_blocked=True)
            view = cleanup.calls.named("followup.send")[0]["view"]
            confirm = FakeInteraction(admin, message=view.message)
            await press(view, view.confirm, confirm)
            await cog.check_command.callback(cog, check)
            board = channel.messages[bot.board.state["message_id"]]
            pages = await bot.board.load_pages()
            await services.close()
            return [progress, cleanup, confirm, check], pages, board
        interactions, pages, board = run(scenario(), timeout=60)
    payloads = [kwargs.get("embeds") or [kwargs["embed"]] for interaction in interactions
                for kwargs in interaction.calls.replies()]
    payloads += [sent.get("embeds") or [sent["embed"]] for sent in channel.sent]
    payloads += pages
    assert len(payloads) > 100
    for embeds in payloads:
        assert measure(embeds) == []
    report = interactions[2].calls.named("edit_original_response")[-1]["embeds"]
    assert report[0].title == "Cleanup report: 3500 removed, 0 skipped, 1000 failed"
    assert page_of(board.embeds) == (0, len(pages)) and board.view is not None


def test_with_a_token_but_no_channel_automatic_cleanup_runs_on_its_own_timer(tmp_path, caplog):
    # No DISCORD_CHANNEL_ID: no board to refresh, so automatic cleanup keeps its own CHECK_INTERVAL timer.
    tracker = tracker_with(stuck=1, instances=("sonarr",))
    received = []
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint, \
            rep_server({"remove": removal_handler(received=received)}, "poller") as poller_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint, discord_channel_id=None,
                                discord_token=TOKEN, auto_cleanup=("stuck",), auto_cleanup_confirmations=1,
                                check_interval=30.0)

        async def scenario():
            services = Services(settings)
            bot = DiscarrBot(settings, services)
            assert bot.board is None and bot.auto_loop.seconds == 30.0
            with caplog.at_level(logging.INFO):
                await bot.run_auto_cleanup()
            await services.close()
        run(scenario())
    [request] = received
    assert request["requested_by"] == "auto" and len(request["downloads"]) == 1
    assert "automatic cleanup removed 1" in caplog.text
