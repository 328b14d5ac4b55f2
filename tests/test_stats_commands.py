"""`discarr stats` as a process and `/stats` through the cog, both against a fake tracker (a real REP socket)."""
import json
import time
from contextlib import asynccontextmanager

import pytest

from common.settings import Settings
from services.bot.app import command_tree_json
from services.bot.chart import PNG_SIGNATURE
from services.bot.commands import DiscarrCog
from services.bot.requests import Services
from services.bot.stats_view import EMPTY
from tests.test_bot_fakes import ADMIN_ROLE_ID, FakeInteraction, bot_settings, member, rep_server, run, text_of

ADMIN = dict(manage_guild=True)
MB = 1024 ** 2
ANSWER = {
    "since": "2024-05-01T12:00:00+00:00", "by": "indexer",
    "rows": [
        {"key": "TorrentLeech", "downloads": 12, "completed": 6, "removed": 4, "stuck": 6, "inactive": 1, "slow": 0,
         "recurring": 2, "median_hours_to_complete": 3.5, "median_speed_bps": 1.5 * MB},
        {"key": "NZBgeek", "downloads": 48, "completed": 45, "removed": 1, "stuck": 6, "inactive": 0, "slow": 1,
         "recurring": 0, "median_hours_to_complete": 0.5, "median_speed_bps": 20.0 * MB},
    ],
}


def stats_handler(received, reply=ANSWER):
    def handle(body):
        received.append(body)
        return dict(reply, by=body["by"])
    return handle


# --- discarr stats ---------------------------------------------------------------------------------------------

def test_discarr_stats_prints_the_table_of_what_the_tracker_answers(deployment):
    received = []
    with rep_server({"stats": stats_handler(received)}) as endpoint:
        deployment.env["TRACKER_QUERY_ENDPOINT"] = endpoint
        done = deployment.cli("stats", "--days", "7", "--by", "client")
    assert done.returncode == 0, done.stderr
    assert received == [{"days": 7.0, "by": "client"}]
    assert "Downloads by download client since 2024-05-01 12:00 UTC" in done.stdout
    assert "TorrentLeech" in done.stdout and "NZBgeek" in done.stdout
    assert "50 %" in done.stdout and "1.5 MB/s" in done.stdout
    assert "download client TorrentLeech: 6 of 12 downloads stuck or removed" in done.stdout


def test_discarr_stats_defaults_to_30_days_by_indexer_and_prints_json(deployment):
    received = []
    with rep_server({"stats": stats_handler(received)}) as endpoint:
        deployment.env["TRACKER_QUERY_ENDPOINT"] = endpoint
        done = deployment.cli("stats", "--json")
    assert done.returncode == 0, done.stderr
    assert received == [{"days": 30.0, "by": "indexer"}]
    assert json.loads(done.stdout) == ANSWER


def test_discarr_stats_of_an_empty_period_says_so(deployment):
    with rep_server({"stats": stats_handler([], {"since": ANSWER["since"], "by": "group", "rows": []})}) as endpoint:
        deployment.env["TRACKER_QUERY_ENDPOINT"] = endpoint
        done = deployment.cli("stats", "--by", "group")
    assert done.returncode == 0, done.stderr
    assert "no download has left the queue" in done.stdout


def test_discarr_stats_with_no_tracker_exits_1_naming_it(deployment):
    done = deployment.cli("stats")
    assert done.returncode == 1 and done.stdout == ""
    endpoint = deployment.env["TRACKER_QUERY_ENDPOINT"]
    assert done.stderr.strip() == f"discarr: tracker did not answer at {endpoint} within 3s; is it running?"


@pytest.mark.parametrize("args", [("--by", "release"), ("--days", "0"), ("--days", "-3"), ("--days", "soon")])
def test_discarr_stats_bad_usage_exits_2_without_asking(deployment, args):
    received = []
    with rep_server({"stats": stats_handler(received)}) as endpoint:
        deployment.env["TRACKER_QUERY_ENDPOINT"] = endpoint
        done = deployment.cli("stats", *args)
    assert done.returncode == 2 and received == []
    assert "Invalid value" in done.stderr


# --- /stats --------------------------------------------------------------------------------------------------

@asynccontextmanager
async def cog_for(settings):
    services = Services(settings)
    try:
        yield DiscarrCog(settings, services)
    finally:
        await services.close()


def drive(settings, user, **options):
    async def scenario():
        async with cog_for(settings) as cog:
            interaction = FakeInteraction(user)
            started = time.monotonic()
            await cog.stats_command.callback(cog, interaction, **options)
            return interaction, time.monotonic() - started
    return run(scenario())


def test_stats_sends_an_admin_the_embed_and_the_chart(tmp_path):
    received = []
    with rep_server({"stats": stats_handler(received)}) as endpoint:
        interaction, _ = drive(bot_settings(tmp_path, tracker=endpoint), member(**ADMIN), days=7.0, by="client")
    assert received == [{"days": 7.0, "by": "client"}]
    assert interaction.calls[0] == ("defer", {"ephemeral": True, "thinking": True})
    (reply,) = interaction.calls.named("followup.send")
    assert reply["ephemeral"] is True
    (embed,) = reply["embeds"]
    assert embed.title == "Download statistics by download client"
    assert embed.image.url == "attachment://stats.png"
    assert "TorrentLeech: 6 of 12 downloads stuck or removed" in embed.description
    assert [field.name.split(" ", 1)[1] for field in embed.fields] == ["TorrentLeech", "NZBgeek"]
    assert reply["file"].filename == "stats.png"
    assert reply["file"].fp.read().startswith(PNG_SIGNATURE)


def test_stats_defaults_to_30_days_by_indexer_and_the_admin_role_is_enough(tmp_path):
    received = []
    with rep_server({"stats": stats_handler(received)}) as endpoint:
        interaction, _ = drive(bot_settings(tmp_path, tracker=endpoint), member(roles=(ADMIN_ROLE_ID,)))
    assert received == [{"days": 30.0, "by": "indexer"}]
    assert interaction.calls.named("followup.send")[0]["embeds"][0].title == "Download statistics by indexer"


def test_stats_of_an_empty_period_says_so_without_a_chart(tmp_path):
    empty = {"since": ANSWER["since"], "by": "indexer", "rows": []}
    with rep_server({"stats": stats_handler([], empty)}) as endpoint:
        interaction, _ = drive(bot_settings(tmp_path, tracker=endpoint), member(**ADMIN))
    (reply,) = interaction.calls.named("followup.send")
    assert EMPTY in text_of(reply["embeds"]) and "file" not in reply


def test_stats_refuses_a_non_admin_at_once_asking_nothing(tmp_path):
    received = []
    with rep_server({"stats": stats_handler(received)}) as endpoint:
        interaction, elapsed = drive(bot_settings(tmp_path, tracker=endpoint), member(roles=(999,)))
    assert [call for call, _ in interaction.calls] == ["send_message"]
    reply = interaction.calls[0][1]
    assert reply["ephemeral"] is True and "/stats is for admins" in text_of([reply["embed"]])
    assert received == [] and elapsed < 0.3


def test_stats_with_the_tracker_down_is_an_ephemeral_error_naming_it_within_the_timeout(tmp_path):
    interaction, elapsed = drive(bot_settings(tmp_path, timeout=0.5), member(**ADMIN))
    assert interaction.calls[0][0] == "defer"  # answered at once: never "did not respond"
    error = interaction.calls.named("followup.send")[-1]
    assert error["ephemeral"] and error["embed"].title == "The tracker is not answering"
    assert "tracker did not answer" in error["embed"].description
    assert elapsed < 2.0


def test_stats_from_a_tracker_without_stats_is_an_error_naming_it(tmp_path):
    with rep_server({}) as endpoint:  # an older tracker: it does not answer "stats"
        interaction, _ = drive(bot_settings(tmp_path, tracker=endpoint), member(**ADMIN))
    error = interaction.calls.named("followup.send")[-1]
    assert error["ephemeral"] and error["embed"].title == "The tracker reported an error"
    assert "'stats'" in error["embed"].description


def test_stats_by_a_typed_unknown_grouping_says_which_exist_asking_nothing(tmp_path):
    received = []
    with rep_server({"stats": stats_handler(received)}) as endpoint:
        interaction, _ = drive(bot_settings(tmp_path, tracker=endpoint), member(**ADMIN), by="tracker site")
        typed, _ = drive(bot_settings(tmp_path, tracker=endpoint), member(**ADMIN), by=" Group ")
    (reply,) = interaction.calls.replies()
    assert reply["ephemeral"] and reply["embed"].title == "No such grouping"
    assert "indexer, client, instance, group" in reply["embed"].description
    assert received == [{"days": 30.0, "by": "group"}]  # only the second: a typed grouping is read leniently
    assert typed.calls.named("followup.send")[0]["embeds"][0].title == "Download statistics by release group"


@pytest.mark.parametrize("typed, values", [
    ("", ["indexer", "client", "instance", "group"]),
    ("in", ["indexer", "instance"]),
    ("cli", ["client"]),
    ("release", ["group"]),
    ("xyz", []),
])
def test_stats_by_autocomplete_offers_the_groupings_matching_what_is_typed(tmp_path, typed, values):
    settings = bot_settings(tmp_path)

    async def scenario():
        async with cog_for(settings) as cog:
            return await cog.stats_by_autocomplete(FakeInteraction(member(**ADMIN)), typed)
    choices = run(scenario())
    assert [choice.value for choice in choices] == values
    assert all(choice.name and len(choice.name) <= 100 for choice in choices)


def test_stats_is_synced_as_an_admin_command_with_days_and_by():
    commands = {command["name"]: command for command in command_tree_json(Settings())}
    stats = commands["stats"]
    assert str(stats["default_member_permissions"]) == "32"  # Manage Server, as /progress
    assert stats["dm_permission"] is False and len(stats["description"]) <= 100
    days, by = stats["options"]
    assert days["name"] == "days" and days["type"] == 10 and not days["required"]  # a number
    assert 0 < days["min_value"] <= 1 and days["max_value"] >= 365
    assert by["name"] == "by" and by["type"] == 3 and by["autocomplete"] is True and not by["required"]
