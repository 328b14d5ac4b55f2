"""Keep from Discord, on the wire (SPEC 4.2): the real `discarr bot` process talks to the Discord stand-in
(tests/discord.py, every request judged by Discord's own API description), with simarr's Sonarr on a real
qBittorrent, the tracker and the poller as processes."""
import json
import time

import pytest

from tests.conftest import wait_until
from tests.discord import discord_standin  # noqa: F401 (the fixture)
from tests.torrent_clients import make_torrent, qbittorrent, random_file  # noqa: F401


@pytest.fixture
def wire(discord_standin, deployment, qbittorrent, tmp_path):  # noqa: F811 (Discord outlives the bot)
    qb = qbittorrent()
    deployment.simulate("sonarr")
    deployment.env.update({"QBITTORRENT_URL": qb.url, "QBITTORRENT_USERNAME": "admin",
                           # A poll a second: a busy machine's late poll is not taken for time nobody saw
                           "QBITTORRENT_PASSWORD": qb.password, "STUCK_THRESHOLD_MINUTES": "0.05",
                           "POLL_INTERVAL_SECONDS": "1",
                           "MIN_SIZE_CHANGE": str(64 * 1024), "ARR_REFRESH_SECONDS": "0", "CHECK_INTERVAL": "30",
                           "BOT_STATE_FILE": str(deployment.workdir / "data" / "bot.json"),
                           **discord_standin.bot_env()})
    deployment.start("simarr", "--scenario", "empty", "--downloads-from", "qbittorrent")
    hashes = {}
    for name in ("Keep.Me.S01E01.mkv", "Let.Go.S01E02.mkv"):
        metainfo, hashes[name] = make_torrent(random_file(tmp_path / "sources" / name, 300_000))
        qb.add_torrent(metainfo, tmp_path / "leech", category="tv-sonarr")  # nobody seeds them: stalled
    return discord_standin, deployment, qb, hashes


def start(deployment, *processes, **env):
    for process in processes:
        deployment.start(process, env=env or None)


def stuck(deployment):
    return {item["title"]: item for item in deployment.cli_json("progress")["stuck"]}


def left_in_sonarr(deployment):
    return sorted(download["title"] for download in deployment.control("sonarr", "GET", "downloads"))


def test_keep_on_a_warning_protects_a_download_across_every_restart_and_unkeep_undoes_it(wire):
    standin, deployment, qb, hashes = wire
    keep_me = hashes["Keep.Me.S01E01.mkv"]
    start(deployment, "tracker", "poller")
    wait_until(lambda: {"Keep.Me.S01E01.mkv", "Let.Go.S01E02.mkv"} <= set(stuck(deployment)), 45,
               "both torrents to be stuck")
    start(deployment, "bot")
    warning = standin.wait_for(lambda: next((m for m in standin.channel_messages() if m.buttons()), None), 20,
                               "the stuck-download warning with its Keep buttons")
    button = next(b for b in warning.buttons() if b["label"] == "Keep Keep.Me.S01E01.mkv")

    refused = standin.press(warning.id, button["custom_id"], user="erin").wait_answer(10)  # not an admin
    assert refused.callback["type"] == 4 and refused.original.ephemeral
    assert "Only admins" in refused.original.content
    assert stuck(deployment)["Keep.Me.S01E01.mkv"]["protected_by"] is None
    # A typed value that names two downloads keeps neither: it names them, so the admin can pick one.
    typed = standin.slash("keep", {"download": "S01E0"}, user="dana", admin=True).wait_answer(15)
    said = typed.messages()[-1].embeds[0]["description"]
    assert "2 downloads match 'S01E0'" in said and "Keep.Me.S01E01.mkv" in said and "Let.Go.S01E02.mkv" in said
    assert [item["protected_by"] for item in stuck(deployment).values()] == [None, None]

    kept = standin.press(warning.id, button["custom_id"], user="dana", admin=True).wait_answer(15)
    [answer] = kept.messages()
    assert answer.ephemeral and "Kept **Keep.Me.S01E01.mkv** (sonarr)" in answer.embeds[0]["description"]
    assert "tagged `discarr-keep` in qbittorrent" in answer.embeds[0]["description"]
    assert "discarr-keep" in qb.torrent(keep_me)["tags"]
    who = stuck(deployment)["Keep.Me.S01E01.mkv"]["protected_by"]
    assert who.startswith("kept by discord:dana")
    audit = [json.loads(line) for line in (deployment.workdir / "data" / "removals.jsonl").read_text().splitlines()]
    assert [(line["result"], line["requested_by"].split(" ")[0]) for line in audit] == [("kept", "discord:dana")]

    # Every process restarts; automatic cleanup comes on: the other stuck torrent goes, the kept one never.
    for process in ("bot", "poller", "tracker"):
        deployment.stop(process)
    start(deployment, "tracker", "poller", "bot", AUTO_CLEANUP="stuck", AUTO_CLEANUP_CONFIRMATIONS="1")
    wait_until(lambda: "Let.Go.S01E02.mkv" not in left_in_sonarr(deployment), 40, "the unkept one to be removed")
    wait_until(lambda: [i["title"] for i in deployment.cli_json("check")["downloads"]] == ["Keep.Me.S01E01.mkv"], 10,
               "the tracker to see it gone")
    assert stuck(deployment)["Keep.Me.S01E01.mkv"]["protected_by"] == who  # the tracker kept the keep
    cleanup = deployment.cli_json("cleanup", "--yes")
    assert cleanup["candidates"] == [] and [i["title"] for i in cleanup["protected"]] == ["Keep.Me.S01E01.mkv"]
    assert "Keep.Me.S01E01.mkv" in left_in_sonarr(deployment) and qb.torrent(keep_me) is not None

    unkept = standin.slash("unkeep", {"download": f"sonarr/{keep_me.upper()}"}, user="dana",
                           admin=True).wait_answer(15)
    assert "is no longer kept" in unkept.messages()[-1].embeds[0]["description"]
    assert "discarr-keep" not in qb.torrent(keep_me)["tags"]
    removed = wait_until(lambda: [r for r in deployment.cli_json("cleanup", "--yes")["results"]
                                  if r["result"] == "removed"], 20, "the unkept torrent to be removable again")
    assert [r["title"] for r in removed] == ["Keep.Me.S01E01.mkv"]
    assert standin.problems == [] and standin.answer_problems == []


def test_keep_beside_a_preview_candidate_and_keep_for_good_from_a_command(wire):
    standin, deployment, qb, hashes = wire
    start(deployment, "tracker", "poller", "bot")
    wait_until(lambda: len(stuck(deployment)) == 2, 45, "both torrents to be stuck")
    standin.wait_for(lambda: standin.channel_messages(), 20, "the bot's board")
    preview = standin.slash("cleanup", user="dana", admin=True).wait_answer(15).messages()[-1]
    assert [b["label"] for b in preview.buttons()][:2] == ["Confirm", "Cancel"]
    beside = next(b for b in preview.buttons() if b["label"] == "Keep Keep.Me.S01E01.mkv")
    kept = standin.press(preview.id, beside["custom_id"], user="dana", admin=True).wait_answer(15)
    assert kept.callback["type"] == 7  # the preview is edited at once: that Keep is done
    assert next(b for b in preview.buttons() if b["label"] == "Keep Keep.Me.S01E01.mkv").get("disabled")
    confirm = next(b for b in preview.buttons() if b["label"] == "Confirm")
    report = standin.press(preview.id, confirm["custom_id"], user="dana", admin=True)
    standin.wait_for(lambda: report.edits, 30, "the cleanup report")
    wait_until(lambda: left_in_sonarr(deployment) == ["Keep.Me.S01E01.mkv"], 20, "only the other one removed")

    # /keep for good, chosen by autocomplete: it outlives its stay in the queue.
    choices = standin.autocomplete("keep", "download", "keep.me", admin=True).wait_answer(5)
    [choice] = choices.callback["data"]["choices"]
    started = time.monotonic()
    answer = standin.slash("keep", {"download": choice["value"], "for_good": True}, user="dana",
                           admin=True).wait_answer(15)
    assert "for good" in answer.messages()[-1].embeds[0]["description"]
    assert time.monotonic() - started < 15
    assert standin.problems == [] and standin.answer_problems == []


def test_autocomplete_answers_from_what_the_bot_holds_even_with_the_tracker_stopped(wire):
    import signal
    standin, deployment, _, _ = wire
    start(deployment, "tracker", "poller", "bot")
    wait_until(lambda: len(stuck(deployment)) == 2, 45, "both torrents to be stuck")
    standin.wait_for(lambda: standin.channel_messages(), 20, "the bot's board")  # what the bot holds
    deployment.processes["tracker"].send_signal(signal.SIGSTOP)  # a tracker that does not answer at all
    try:
        for command in ("progress", "keep"):
            asked = time.monotonic()
            answer = standin.autocomplete(command, "download", "let.go", admin=True).wait_answer(5)
            assert time.monotonic() - asked < 3.0, command  # Discord drops a later answer
            assert [c["name"].split(" (")[0] for c in answer.callback["data"]["choices"]] == ["Let.Go.S01E02.mkv"]
    finally:
        deployment.processes["tracker"].send_signal(signal.SIGCONT)
    assert standin.problems == []
