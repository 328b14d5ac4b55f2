"""Slash commands driven through their real callbacks with recorded interactions and real REP endpoints."""
import logging
import time
from contextlib import asynccontextmanager, contextmanager

import pytest

from common.settings import Settings
from services.bot.app import StatusBoard, command_tree_json
from services.bot.chart import PNG_SIGNATURE
from services.bot.commands import DiscarrCog
from services.bot.requests import Services
from services.bot.views import CleanupConfirmView
from tests.test_bot_fakes import (ADMIN_ROLE_ID, CHANNEL_ID, OTHER_CHANNEL_ID, FakeChannel, FakeInteraction,
                                  bot_settings, member, removal_handler, rep_server, run, text_of, tracker_handlers,
                                  tracker_with)

ADMIN = dict(manage_guild=True)


@pytest.fixture(scope="module")
def tracker():
    return tracker_with(unhealthy=("lidarr",))


@contextmanager
def services_up(tracker, poller_handlers=None, received=None):
    poller_handlers = poller_handlers or {"remove": removal_handler(received=received),
                                          "log_level": lambda body: {"level": body["level"]}}
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint, \
            rep_server(poller_handlers, "poller") as poller_endpoint:
        yield tracker_endpoint, poller_endpoint


@asynccontextmanager
async def cog_for(settings, with_board=False, channel=None):
    services = Services(settings)
    board = None
    if with_board:
        channel = channel or FakeChannel()

        async def resolve():
            return channel
        board = StatusBoard(settings, services, resolve)
    try:
        yield DiscarrCog(settings, services, board)
    finally:
        await services.close()


# --- who may do what ---------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["verbose", "progress", "stats", "cleanup"])
def test_without_manage_server_or_the_admin_role_admin_commands_are_refused(tmp_path, command):
    settings = bot_settings(tmp_path)

    async def scenario():
        async with cog_for(settings) as cog:
            interaction = FakeInteraction(member(manage_guild=False, roles=(999,)))
            callback = getattr(cog, f"{command}_command")
            started = time.monotonic()
            await callback.callback(cog, interaction)
            return interaction, time.monotonic() - started

    interaction, elapsed = run(scenario())
    assert [call for call, _ in interaction.calls] == ["send_message"]  # refused at once, nothing asked
    reply = interaction.calls[0][1]
    assert reply["ephemeral"] is True
    assert f"/{command} is for admins" in text_of([reply["embed"]])
    assert f"<@&{ADMIN_ROLE_ID}>" in text_of([reply["embed"]])
    assert elapsed < 0.3


def test_the_admin_role_is_enough(tmp_path, tracker):
    with services_up(tracker) as (tracker_endpoint, poller_endpoint):
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            async with cog_for(settings) as cog:
                interaction = FakeInteraction(member(roles=(ADMIN_ROLE_ID,)))
                await cog.progress_command.callback(cog, interaction)
                return interaction
        interaction = run(scenario())
    assert interaction.calls[0] == ("defer", {"ephemeral": True, "thinking": True})
    reply = interaction.calls.named("followup.send")[0]
    assert reply["ephemeral"] and reply["embeds"][0].title == "Tracker statistics"


def test_administrator_counts_as_manage_server(tmp_path):
    from services.bot.commands import is_admin
    assert is_admin(member(administrator=True), None)
    assert not is_admin(member(), None)
    assert is_admin(member(roles=(5,)), 5)


# --- /check -----------------------------------------------------------------------------------------------

def test_check_outside_the_board_channel_says_where_to_use_it(tmp_path):
    settings = bot_settings(tmp_path)

    async def scenario():
        async with cog_for(settings, with_board=True) as cog:
            interaction = FakeInteraction(channel_id=OTHER_CHANNEL_ID)
            await cog.check_command.callback(cog, interaction)
            return interaction
    interaction = run(scenario())
    assert [call for call, _ in interaction.calls] == ["send_message"]
    reply = interaction.calls[0][1]
    assert reply["ephemeral"] and f"<#{CHANNEL_ID}>" in reply["content"]


def test_check_refreshes_the_board_for_anyone_in_the_channel(tmp_path, tracker):
    channel = FakeChannel()
    with services_up(tracker) as (tracker_endpoint, poller_endpoint):
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            async with cog_for(settings, with_board=True, channel=channel) as cog:
                interaction = FakeInteraction(member(manage_guild=False))
                await cog.check_command.callback(cog, interaction)
                return interaction
        interaction = run(scenario())
    assert interaction.calls[0][0] == "defer"
    assert "Status board refreshed" in interaction.calls.text()
    board = channel.sent[0]
    assert board["embeds"][0].title == "discarr status board"


def test_a_tracker_that_is_down_gives_an_ephemeral_error_naming_it_within_the_timeout(tmp_path):
    settings = bot_settings(tmp_path, timeout=0.5)  # nobody listens at either endpoint

    async def scenario():
        results = {}
        async with cog_for(settings, with_board=True) as cog:
            for name, call in (("check", lambda i: cog.check_command.callback(cog, i)),
                               ("progress", lambda i: cog.progress_command.callback(cog, i)),
                               ("cleanup", lambda i: cog.cleanup_command.callback(cog, i))):
                interaction = FakeInteraction(member(**ADMIN))
                started = time.monotonic()
                await call(interaction)
                results[name] = (interaction, time.monotonic() - started)
        return results

    for name, (interaction, elapsed) in run(scenario()).items():
        assert interaction.calls[0][0] == "defer", name  # answered at once: never "did not respond"
        error = interaction.calls.named("followup.send")[-1]
        assert error["ephemeral"], name
        assert error["embed"].title == "The tracker is not answering", name
        assert "tracker did not answer" in error["embed"].description
        assert elapsed < 2.0, (name, elapsed)


# --- /progress ----------------------------------------------------------------------------------------------

def test_progress_autocomplete_offers_tracked_downloads_worst_first(tmp_path, tracker):
    with services_up(tracker) as (tracker_endpoint, _):
        settings = bot_settings(tmp_path, tracker=tracker_endpoint)

        async def scenario():
            async with cog_for(settings) as cog:
                interaction = FakeInteraction(member(**ADMIN))
                everything = await cog.progress_download_autocomplete(interaction, "")
                moving = await cog.progress_download_autocomplete(interaction, "moving.1")
                return everything, moving
        everything, moving = run(scenario())
    assert 0 < len(everything) <= 25
    assert everything[0].value.startswith(("radarr/stuck-", "radarr/failed-"))
    assert all(len(choice.name) <= 100 and len(choice.value) <= 100 for choice in everything)
    assert [choice.value for choice in moving] == ["radarr/moving-radarr-1", "sonarr/moving-sonarr-1"]


def test_progress_autocomplete_with_the_tracker_down_offers_nothing_quickly(tmp_path):
    settings = bot_settings(tmp_path, timeout=0.5)

    async def scenario():
        async with cog_for(settings) as cog:
            return await cog.progress_download_autocomplete(FakeInteraction(member(**ADMIN)), "x")
    started = time.monotonic()
    assert run(scenario()) == []
    assert time.monotonic() - started < 2


def test_progress_with_a_download_sends_its_chart(tmp_path, tracker):
    with services_up(tracker) as (tracker_endpoint, _):
        settings = bot_settings(tmp_path, tracker=tracker_endpoint)

        async def scenario():
            async with cog_for(settings) as cog:
                chosen = FakeInteraction(member(**ADMIN))
                await cog.progress_command.callback(cog, chosen, download="sonarr/stuck-sonarr-0")
                typed = FakeInteraction(member(**ADMIN))
                await cog.progress_command.callback(cog, typed, download="Show.moving.2")
                unknown = FakeInteraction(member(**ADMIN))
                await cog.progress_command.callback(cog, unknown, download="nothing like it")
                return chosen, typed, unknown
        chosen, typed, unknown = run(scenario())
    reply = chosen.calls.named("followup.send")[0]
    assert reply["ephemeral"] and reply["file"].filename == "history.png"
    assert reply["file"].fp.read().startswith(PNG_SIGNATURE)
    assert reply["embed"].image.url == "attachment://history.png"
    assert reply["embed"].title.startswith("Show.stuck.0")
    assert typed.calls.named("followup.send")[0]["embed"].title.startswith("Show.moving.2")
    assert unknown.calls.named("followup.send")[0]["embed"].title == "No such download"


# --- /verbose ---------------------------------------------------------------------------------------------

@pytest.fixture
def root_level():
    root, discord_logger = logging.getLogger(), logging.getLogger("discord")
    saved = root.level, discord_logger.level
    root.setLevel(logging.INFO)
    yield root
    root.setLevel(saved[0])
    discord_logger.setLevel(saved[1])


def test_verbose_toggles_debug_on_every_process(tmp_path, tracker, root_level):
    levels = []
    poller = {"log_level": lambda body: levels.append(("poller", body["level"])) or {"level": body["level"]}}
    handlers = dict(tracker_handlers(tracker), log_level=lambda body: levels.append(("tracker", body["level"]))
                    or {"level": body["level"]})
    with rep_server(handlers) as tracker_endpoint, rep_server(poller, "poller") as poller_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            async with cog_for(settings) as cog:
                first, second = FakeInteraction(member(**ADMIN)), FakeInteraction(member(**ADMIN))
                await cog.verbose_command.callback(cog, first)
                debug = root_level.level
                await cog.verbose_command.callback(cog, second)
                return first, second, debug
        first, second, debug = run(scenario())
    assert debug == logging.DEBUG and root_level.level == logging.INFO
    assert logging.getLogger("discord").level == logging.INFO  # discord.py's gateway chatter stays off
    assert sorted(levels) == [("poller", "DEBUG"), ("poller", "INFO"), ("tracker", "DEBUG"), ("tracker", "INFO")]
    assert "Debug logging on" in first.calls.text() and "Debug logging off" in second.calls.text()


def test_verbose_names_the_service_that_did_not_answer(tmp_path, tracker, root_level):
    with rep_server(tracker_handlers(tracker)) as tracker_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint)  # the poller is down

        async def scenario():
            async with cog_for(settings) as cog:
                interaction = FakeInteraction(member(**ADMIN))
                await cog.verbose_command.callback(cog, interaction)
                return interaction
        interaction = run(scenario())
    reply = interaction.calls.named("followup.send")[0]
    assert reply["ephemeral"] and "not set on the poller" in reply["embed"].title
    assert "poller did not answer" in reply["embed"].description


# --- /cleanup -----------------------------------------------------------------------------------------------

def test_cleanup_previews_with_buttons_for_the_caller(tmp_path, tracker):
    received = []
    with services_up(tracker, received=received) as (tracker_endpoint, poller_endpoint):
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            async with cog_for(settings) as cog:
                interaction = FakeInteraction(member(7, **ADMIN))
                await cog.cleanup_command.callback(cog, interaction)
                view = interaction.calls.named("followup.send")[0]["view"]
                view.stop()
                return interaction, view
        interaction, view = run(scenario())
    assert interaction.calls[0] == ("defer", {"ephemeral": True, "thinking": True})
    reply = interaction.calls.named("followup.send")[0]
    assert reply["ephemeral"] and reply["wait"] is True
    assert isinstance(view, CleanupConfirmView) and view.owner_id == 7 and view.message is not None
    labels = [item.label for item in view.children]
    assert labels[:2] == ["Confirm", "Cancel"] and len(labels) == 2 + 6  # and Keep beside each candidate
    assert all(label.startswith("Keep Show.") and len(label) <= 80 for label in labels[2:])
    assert "6 download(s) would be removed" in text_of(reply["embeds"])
    assert received == []  # nothing is sent to the poller before Confirm


def test_cleanup_dry_run_asks_the_poller_for_a_dry_run_and_shows_no_buttons(tmp_path, tracker):
    received = []
    with services_up(tracker, received=received) as (tracker_endpoint, poller_endpoint):
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            async with cog_for(settings) as cog:
                interaction = FakeInteraction(member(**ADMIN))
                await cog.cleanup_command.callback(cog, interaction, dry_run=True, include_import_blocked=True)
                return interaction
        interaction = run(scenario())
    preview, report = interaction.calls.named("followup.send")
    assert "view" not in preview and "(dry run)" in preview["embeds"][0].title
    assert report["embeds"][0].title.startswith("Cleanup dry run: 8 would be removed")
    assert received[0]["dry_run"] is True and received[0]["include_import_blocked"] is True
    assert received[0]["requested_by"].startswith("discord:alice")


def test_cleanup_with_nothing_to_remove_has_no_buttons(tmp_path):
    with rep_server({"analyze": lambda body: {"candidates": [], "attention": []}}) as tracker_endpoint:
        settings = bot_settings(tmp_path, tracker=tracker_endpoint)

        async def scenario():
            async with cog_for(settings) as cog:
                interaction = FakeInteraction(member(**ADMIN))
                await cog.cleanup_command.callback(cog, interaction)
                return interaction
        interaction = run(scenario())
    reply = interaction.calls.named("followup.send")[0]
    assert reply["embeds"][0].title == "Nothing to clean up" and "view" not in reply


# --- what is synced to Discord ------------------------------------------------------------------------------

def test_the_command_tree_json_carries_names_options_and_admin_permissions():
    commands = {command["name"]: command for command in command_tree_json(Settings())}  # no admin role
    assert set(commands) == {"check", "verbose", "progress", "stats", "cleanup", "keep", "unkeep"}
    assert commands["check"]["default_member_permissions"] is None  # anyone
    for name in ("verbose", "progress", "stats", "cleanup", "keep", "unkeep"):
        assert str(commands[name]["default_member_permissions"]) == "32"  # Manage Server (0x20)
    assert all(command["dm_permission"] is False for command in commands.values())
    options = {option["name"]: option for option in commands["cleanup"]["options"]}
    assert set(options) == {"dry_run", "include_import_blocked", "include_slow"}
    assert all(option["type"] == 5 and not option["required"] for option in options.values())  # booleans
    (download,) = commands["progress"]["options"]
    assert download["name"] == "download" and download["autocomplete"] is True and download["type"] == 3
    assert all(len(command["description"]) <= 100 for command in commands.values())


def test_with_an_admin_role_discord_shows_the_admin_commands_and_the_bot_checks_who_runs_them(tmp_path):
    # default_member_permissions cannot name a role: Manage Server there would hide the commands from the
    # role's members, so with a role the commands carry none and is_admin refuses everyone else at run time.
    with_role = bot_settings(tmp_path)
    without_role = bot_settings(tmp_path, discord_admin_role_id=None)
    payloads = [{command["name"]: command for command in command_tree_json(settings)}
                for settings in (with_role, without_role, with_role)]
    for name in ("verbose", "progress", "stats", "cleanup"):
        assert payloads[0][name]["default_member_permissions"] is None, name
        assert str(payloads[1][name]["default_member_permissions"]) == "32", name  # Manage Server
        assert payloads[2][name]["default_member_permissions"] is None, name  # one cog never changes another
    assert all(payload["check"]["default_member_permissions"] is None for payload in payloads)


# --- /check cooldown ------------------------------------------------------------------------------------------

def test_check_again_within_the_cooldown_is_an_ephemeral_wait_not_a_refresh(tmp_path, tracker):
    channel = FakeChannel()
    with services_up(tracker) as (tracker_endpoint, poller_endpoint):
        settings = bot_settings(tmp_path, tracker=tracker_endpoint, poller=poller_endpoint)

        async def scenario():
            async with cog_for(settings, with_board=True, channel=channel) as cog:
                now = [1000.0]
                cog.clock = lambda: now[0]
                first, again, later = (FakeInteraction(member(user)) for user in (1, 2, 3))
                await cog.check_command.callback(cog, first)
                now[0] += 12.3
                await cog.check_command.callback(cog, again)  # another member, same channel
                now[0] += 18.2
                await cog.check_command.callback(cog, later)
                return first, again, later, channel.messages[cog.board.state["message_id"]]
        first, again, later, board = run(scenario())
    assert "Status board refreshed" in first.calls.text()
    assert [call for call, _ in again.calls] == ["send_message"]  # answered at once, nothing asked
    reply = again.calls[0][1]
    assert reply["ephemeral"] is True
    assert "refreshed 12 s ago" in reply["content"] and "try again in 18 s" in reply["content"]
    assert "Status board refreshed" in later.calls.text()
    assert len(board.edits) == 1  # posted by the first /check, edited by the last one only
