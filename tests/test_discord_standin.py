"""The Discord stand-in (tests/discord.py): that its judge bites, that its gateway speaks Discord's
protocol, and the real `discarr bot` process against it."""
import asyncio
import json
import subprocess
import zlib

import aiohttp
import pytest
import requests

from tests.discord import discord_standin  # noqa: F401 (the fixture)

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x80\x00\x00\x01\xe0\x08\x06\x00\x00\x00"
       b"\x00\x00\x00\x00IEND\xaeB`\x82")  # the header of a 640x480 image is all the stand-in reads


def _rest(standin, method, path, token=None, **kwargs):
    headers = {"Authorization": f"Bot {token or standin.token}",
               "User-Agent": "DiscordBot (https://github.com/Rapptz/discord.py 2.7.1)"}
    return requests.request(method, standin.api_base + path, headers=headers, timeout=5, **kwargs)


# --- the judge ---------------------------------------------------------------------------------------

def test_a_body_the_schema_refuses_is_a_problem_and_a_good_one_is_not(discord_standin):
    standin = discord_standin
    messages = f"/channels/{standin.channel_id}/messages"
    good = _rest(standin, "POST", messages, json={"content": "hello", "embeds": [{"title": "Board", "color": 5}],
                                                  "allowed_mentions": {"parse": []}})
    assert good.status_code == 200 and standin.problems == []
    stored = standin.messages[int(good.json()["id"])]
    assert stored.content == "hello" and stored.embeds == [{"title": "Board", "color": 5, "type": "rich"}]

    too_long = _rest(standin, "POST", messages, json={"embeds": [{"title": "x" * 257}]})
    assert too_long.status_code == 400
    assert too_long.json()["code"] == 50035 and "title" in too_long.json()["errors"]["embeds"]["0"]
    assert len(standin.problems) == 1 and "embeds/0/title" in standin.problems[0]
    wrong_type = _rest(standin, "PATCH", f"{messages}/{stored.id}", json={"components": "none"})
    assert wrong_type.status_code == 400 and "components" in standin.problems[-1]
    assert standin.messages[stored.id].edits == 0  # a refused edit changes nothing
    assert standin.answer_problems == []


def test_discords_own_rules_beyond_the_schema_are_kept(discord_standin):
    standin = discord_standin
    messages = f"/channels/{standin.channel_id}/messages"
    assert _rest(standin, "GET", "/users/@me", token="wrong").status_code == 401
    assert requests.get(standin.api_base + "/users/@me", timeout=5).status_code == 401
    assert _rest(standin, "GET", "/channels/1/nothing-here").json() == {"message": "404: Not Found", "code": 0}
    assert _rest(standin, "POST", messages, json={"content": ""}).json()["code"] == 50006
    big = [{"title": "t", "description": "d" * 4000}, {"description": "d" * 2000}]  # 6,001 characters
    assert _rest(standin, "POST", messages, json={"embeds": big}).status_code == 400
    chart = {"embeds": [{"image": {"url": "attachment://chart.png"}}]}
    assert _rest(standin, "POST", messages, json=chart).status_code == 400  # no such file
    assert [problem.split(": ", 1)[1] for problem in standin.problems] == [
        "no Authorization header", "no such path in Discord's API", "an empty message",
        "embeds: 6001 characters of text, over Discord's 6000 per message",
        "embeds: image attachment://chart.png names no attached file ([])"]


def test_a_multipart_body_is_judged_by_its_payload_json_and_files(discord_standin):
    standin = discord_standin
    messages = f"/channels/{standin.channel_id}/messages"
    payload = {"embeds": [{"image": {"url": "attachment://chart.png"}}],
               "attachments": [{"id": 0, "filename": "chart.png"}]}  # discord.py's File.to_dict: an integer id
    sent = _rest(standin, "POST", messages, files={
        "payload_json": (None, json.dumps(payload), "application/json"),
        "files[0]": ("chart.png", PNG, "application/octet-stream")})
    assert sent.status_code == 200, sent.text
    message = standin.messages[int(sent.json()["id"])]
    attachment = message.attachments[0]
    assert (attachment["filename"], attachment["width"], attachment["height"]) == ("chart.png", 640, 480)
    assert message.embeds[0]["image"]["url"] == attachment["url"]
    assert requests.get(attachment["url"], timeout=5).content == PNG
    assert standin.problems == []
    assert standin.leniencies == ["POST /channels/{channel_id}/messages: attachments/0/id: 0 is not of type 'string'"]

    unlisted = _rest(standin, "POST", messages, files={
        "payload_json": (None, json.dumps({"content": "x", "attachments": []}), "application/json"),
        "files[0]": ("chart.png", PNG, "application/octet-stream")})
    bad = _rest(standin, "POST", messages, files={
        "payload_json": (None, json.dumps({"content": "x" * 4001}), "application/json"),
        "files[0]": ("chart.png", PNG, "application/octet-stream")})
    assert unlisted.status_code == bad.status_code == 400
    unlisted_problem, bad_problem = (problem.split(": ", 1)[1] for problem in standin.problems)
    assert unlisted_problem == "files[0] uploaded but not listed in attachments"
    assert bad_problem.startswith("content: 'xxx") and bad_problem.endswith("... is too long")


# --- the gateway -------------------------------------------------------------------------------------

class _Gateway:
    """A bare gateway client, to see exactly what the stand-in sends (zlib-stream, as discord.py asks)."""

    def __init__(self, ws):
        self.ws = ws
        self.inflate = zlib.decompressobj()

    async def receive(self):
        message = await self.ws.receive(timeout=5)
        if message.type == aiohttp.WSMsgType.BINARY:
            assert message.data.endswith(b"\x00\x00\xff\xff")  # each payload ends in a Z_SYNC_FLUSH
            return json.loads(self.inflate.decompress(message.data))
        return message

    async def send(self, op, data):
        await self.ws.send_str(json.dumps({"op": op, "d": data}))


def test_the_gateway_speaks_discords_protocol(discord_standin):
    standin = discord_standin
    identify = {"token": standin.token, "intents": 1, "properties": {"os": "linux", "browser": "b", "device": "d"}}

    async def scenario():
        url = standin.gateway_url + "?v=10&encoding=json&compress=zlib-stream"
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url) as ws:
                gateway = _Gateway(ws)
                hello = await gateway.receive()
                assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 1000
                await gateway.send(2, {**identify, "token": "wrong"})
                closed = await gateway.receive()
                assert (closed.type, ws.close_code) == (aiohttp.WSMsgType.CLOSE, 4004)
            async with http.ws_connect(url) as ws:
                gateway = _Gateway(ws)
                await gateway.receive()
                await gateway.send(2, {**identify, "intents": 1 << 15})  # MESSAGE_CONTENT: privileged
                await gateway.receive()
                assert ws.close_code == 4014
            async with http.ws_connect(url) as ws:
                gateway = _Gateway(ws)
                await gateway.receive()
                await gateway.send(1, None)
                assert (await gateway.receive())["op"] == 11
                await gateway.send(2, identify)
                ready, guild = await gateway.receive(), await gateway.receive()
                await asyncio.to_thread(standin.request_heartbeat)
                asked = await gateway.receive()
                await asyncio.to_thread(standin.request_reconnect)
                moved = await gateway.receive()
            async with http.ws_connect(url) as ws:  # resume after GUILD_CREATE was missed
                gateway = _Gateway(ws)
                await gateway.receive()
                await gateway.send(6, {"token": standin.token, "session_id": ready["d"]["session_id"], "seq": 1})
                replayed, resumed = await gateway.receive(), await gateway.receive()
            async with http.ws_connect(url) as ws:
                gateway = _Gateway(ws)
                await gateway.receive()
                await gateway.send(6, {"token": standin.token, "session_id": "gone", "seq": 1})
                invalid = await gateway.receive()
        return ready, guild, asked, moved, replayed, resumed, invalid

    ready, guild, asked, moved, replayed, resumed, invalid = asyncio.run(scenario())
    assert (ready["t"], ready["s"], guild["t"], guild["s"]) == ("READY", 1, "GUILD_CREATE", 2)
    assert ready["d"]["user"]["id"] == str(standin.application_id) and ready["d"]["user"]["bot"] is True
    assert ready["d"]["guilds"] == [{"id": str(standin.guild_id), "unavailable": True}]
    assert ready["d"]["resume_gateway_url"] == standin.gateway_url
    assert {channel["id"] for channel in guild["d"]["channels"]} == {str(standin.channel_id),
                                                                     str(standin.other_channel_id)}
    assert str(standin.admin_role_id) in {role["id"] for role in guild["d"]["roles"]}
    assert (asked["op"], asked["d"], moved["op"]) == (1, 2, 7)  # HEARTBEAT with the last sequence, RECONNECT
    assert replayed == guild and (resumed["t"], resumed["s"]) == ("RESUMED", 3)
    assert invalid == {"op": 9, "d": False, "s": None, "t": None}
    assert [payload["token"] for payload in standin.identifies] == ["wrong", standin.token, standin.token]
    assert standin.problems == ["gateway: IDENTIFY asks for privileged intents 0x8000, "
                                "which the application was not granted"]


def test_an_interaction_is_answered_once_in_time_and_a_deferral_is_filled(discord_standin, monkeypatch):
    standin = discord_standin
    monkeypatch.setattr("tests.discord.INTERACTION_DEADLINE", 0.5)
    identify = {"token": standin.token, "intents": 1, "properties": {"os": "linux", "browser": "b", "device": "d"}}
    commands = [{"name": "ping", "description": "Ping", "type": 1,
                 "options": [{"name": "times", "description": "How many", "type": 4, "min_value": 1}]}]

    def answer(event, body):
        path = f"/interactions/{event['d']['id']}/{event['d']['token']}/callback"
        return requests.post(standin.api_base + path, json=body, timeout=5).status_code

    async def scenario():
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(standin.gateway_url + "?v=10&encoding=json&compress=zlib-stream") as ws:
                gateway = _Gateway(ws)
                await gateway.receive()
                await gateway.send(2, identify)
                await gateway.receive(), await gateway.receive()
                path = f"/applications/{standin.application_id}/commands"
                assert (await asyncio.to_thread(_rest, standin, "PUT", path, json=commands)).status_code == 200
                with pytest.raises(ValueError):  # Discord's client keeps options within their bounds
                    standin.slash("ping", {"times": 0})
                pinged = await asyncio.to_thread(standin.slash, "ping", {"times": 2})
                event = await gateway.receive()
                assert (event["t"], event["d"]["data"]["options"]) == (
                    "INTERACTION_CREATE", [{"name": "times", "type": 4, "value": 2}])
                statuses = [await asyncio.to_thread(answer, event, {"type": 4, "data": {"content": "pong"}})
                            for _ in range(2)]
                deferred = await asyncio.to_thread(standin.slash, "ping")
                event = await gateway.receive()
                statuses.append(await asyncio.to_thread(answer, event, {"type": 5, "data": {"flags": 64}}))
                follow_up = f"/webhooks/{standin.application_id}/{event['d']['token']}?wait=true"
                filled = await asyncio.to_thread(requests.post, standin.api_base + follow_up,
                                                 json={"content": "done"}, timeout=5)
                late = await asyncio.to_thread(standin.slash, "ping")
                event = await gateway.receive()
                await asyncio.sleep(0.6)
                statuses.append(await asyncio.to_thread(answer, event, {"type": 4, "data": {"content": "late"}}))
        return pinged, statuses, deferred, filled.json(), late

    pinged, statuses, deferred, filled, late = asyncio.run(scenario())
    assert statuses == [204, 400, 204, 404]  # answered; answered twice; deferred; too late
    assert pinged.original.content == "pong" and not pinged.original.ephemeral
    assert standin.channel_messages() == [pinged.original]  # ephemeral answers are not in the channel
    assert deferred.original is deferred.followups[0] and filled["id"] == deferred.original.data["id"]
    assert (deferred.original.content, deferred.original.ephemeral, filled["flags"]) == ("done", True, 64)
    assert late.callback is None
    twice, too_late = (problem.split(": ", 1)[1] for problem in standin.problems)
    assert twice == "/ping from alice answered twice"
    assert too_late.startswith("/ping from alice answered after ") and "Discord waits 0.5 s" in too_late


# --- the bot process ---------------------------------------------------------------------------------

def _start_bot(deployment, standin, **env):
    deployment.start("bot", env={**standin.bot_env(), "CHECK_INTERVAL": "30",
                                 "BOT_STATE_FILE": str(deployment.workdir / "bot-state.json"), **env})


def _while_running(deployment, predicate):
    """The predicate, but a bot that exited fails the wait at once instead of at its deadline."""
    def check():
        code = deployment.processes["bot"].poll()
        if code is not None:
            raise AssertionError(f"the bot exited with {code}")
        return predicate()
    return check


def test_the_bot_against_discord(discord_standin, deployment):  # the bot stops before Discord goes
    standin = discord_standin
    deployment.simulate("sonarr")
    deployment.start("simarr", "--scenario", "demo")
    # A download the *arr gave up on: a cleanup candidate from the first poll on, whatever the scenario does.
    deployment.control("sonarr", "POST", "downloads", {"title": "Gave.Up.S01E01", "size": 1 << 30,
                                                       "downloaded": 1 << 28, "state": "failed"})
    deployment.start("tracker")
    deployment.start("poller")
    _start_bot(deployment, standin)

    standin.wait_for(_while_running(deployment, lambda: standin.identifies), 15, "the bot to IDENTIFY")
    identify = standin.identifies[0]
    assert identify["token"] == standin.token and identify["intents"] & (1 << 0)  # GUILDS, nothing privileged
    sync = standin.wait_for(
        _while_running(deployment, lambda: standin.requests_to("PUT", "/applications/{application_id}/commands")),
        15, "the slash commands to be synced")[0]
    assert sync.status == 200
    assert {"check", "verbose", "progress", "cleanup", "stats"} <= {command["name"] for command in sync.body}
    board = standin.wait_for(_while_running(deployment, standin.channel_messages), 15, "the status board")[0]
    assert board.embeds and board.data["author"]["id"] == str(standin.application_id)

    check = standin.slash("check", user="carol").wait_answer(10)
    assert check.callback["type"] in (4, 5)
    assert check.messages()[-1].ephemeral and "refreshed" in check.messages()[-1].embeds[0]["title"]
    standin.wait_for(lambda: standin.messages[board.id].edits >= 1, 10, "the board to be refreshed in place")

    progress = standin.slash("progress", user="dana", admin=True).wait_answer(10)
    assert progress.callback["type"] == 5 and progress.followups and progress.followups[0].embeds
    refused = standin.slash("progress", user="erin").wait_answer(10)
    assert refused.callback["type"] == 4 and refused.original.ephemeral
    assert "admins" in refused.original.embeds[0]["title"]
    choices = standin.autocomplete("progress", "download", "gave", admin=True).wait_answer(5)
    assert choices.callback["type"] == 8 and "Gave.Up.S01E01" in choices.callback["data"]["choices"][0]["name"]

    cleanup = standin.slash("cleanup", user="dana", admin=True).wait_answer(10)
    preview = cleanup.messages()[-1]
    cancel = next(button for button in preview.buttons() if button.get("label") == "Cancel")
    with pytest.raises(PermissionError):  # ephemeral: nobody else sees it, so nobody else can press
        standin.press(preview.id, cancel["custom_id"], user="erin", admin=True)
    cancelled = standin.press(preview.id, cancel["custom_id"], user="dana", admin=True).wait_answer(5)
    assert cancelled.callback["type"] == 7 and cancelled.original is preview
    assert preview.embeds[0]["title"] == "Cleanup cancelled" and preview.buttons() == []

    standin.request_reconnect()  # Discord moves the session: the bot resumes it
    standin.wait_for(lambda: standin.resumes and standin.connected, 15, "the bot to RESUME")
    assert len(standin.identifies) == 1

    assert standin.problems == []
    assert standin.answer_problems == []
    routes = sorted({request.route for request in standin.requests})
    assert all(request.status < 400 for request in standin.requests), routes


def test_a_refused_token_stops_the_bot_with_one_line(discord_standin, deployment):
    _start_bot(deployment, discord_standin, DISCORD_TOKEN="MTIz.wrong.token-value")
    process = deployment.processes["bot"]
    try:
        assert process.wait(20) != 0
    except subprocess.TimeoutExpired:
        pytest.fail("the bot kept running with a refused token")
    lines = deployment.log_path("bot").read_text().strip().splitlines()
    assert not any("MTIz.wrong.token-value" in line for line in lines)
    assert [line for line in lines if line.startswith("discarr bot:")] == [lines[-1]]
    assert lines[-1].startswith("discarr bot: discord: ")
    assert [request.status for request in discord_standin.requests] == [401]
    assert discord_standin.problems == []
