"""simarr, poller and tracker as real processes; answers through the `discarr` command."""
import json

import pytest

from tests.conftest import wait_until

MB = 1024 ** 2
GB = 1024 ** 3


@pytest.fixture
def running(deployment):
    """Sonarr and Radarr simulated together, with a 3-second stuck threshold."""
    deployment.simulate("sonarr", "radarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.05", "MIN_SIZE_CHANGE": str(MB),
                           "MIN_PROGRESS_CHANGE": "1"})
    deployment.start("simarr", "--scenario", "empty")
    return deployment


def titles(items):
    return sorted(item["title"] for item in items)


def test_a_stalled_download_is_stuck_and_healthy_paused_queued_ones_are_not(running):
    add = running.control
    add("sonarr", "POST", "downloads", {"title": "Stalled.Show.S01E01", "size": GB, "downloaded": 100 * MB,
                                        "state": "stalled"})
    add("sonarr", "POST", "downloads", {"title": "Moving.Show.S01", "size": 100 * GB, "state": "downloading",
                                        "rate": 20 * MB, "episodes": 3})
    add("sonarr", "POST", "downloads", {"title": "Paused.Show.S01E02", "size": GB, "downloaded": 10 * MB,
                                        "state": "paused"})
    add("sonarr", "POST", "downloads", {"title": "Queued.Show.S01E03", "size": GB, "state": "queued"})
    add("radarr", "POST", "downloads", {"title": "Stalled.Movie.2024", "size": 4 * GB, "downloaded": GB,
                                        "state": "stalled"})
    add("radarr", "POST", "downloads", {"title": "Moving.Movie.2023", "size": 50 * GB, "state": "downloading",
                                        "rate": 20 * MB})
    running.start("tracker")
    running.start("poller")

    def two_stuck():
        progress = running.cli_json("progress")
        return progress if len(progress["stuck"]) >= 2 else None
    progress = wait_until(two_stuck, 30, "the two stalled downloads to be stuck", interval=0.5)

    assert titles(progress["stuck"]) == ["Stalled.Movie.2024", "Stalled.Show.S01E01"]
    assert progress["inactive"] == []
    assert progress["tracked"] == 6  # the season pack's three records are one download
    assert [(i["name"], i["healthy"], i["error"]) for i in progress["instances"]] == [
        ("radarr", True, None), ("sonarr", True, None)]
    movie = next(item for item in progress["stuck"] if item["instance"] == "radarr")
    assert movie["category"] == "stuck" and movie["progress"] == 25.0 and movie["stalled_minutes"] >= 0.05
    assert movie["size"] == 4 * GB and movie["sizeleft"] == 3 * GB and movie["queue_ids"]
    assert "no progress" in movie["reason"]

    # The same answer as a dry-run cleanup would act on, and the queue as `check` sees it.
    cleanup = running.cli_json("cleanup", "--dry-run")
    assert cleanup["dry_run"] is True
    assert titles(cleanup["candidates"]) == ["Stalled.Movie.2024", "Stalled.Show.S01E01"]
    assert {r["result"] for r in cleanup["results"]} == {"skipped"}
    board = running.cli("check")
    assert board.returncode == 0
    assert "STUCK" in board.stdout and "Moving.Movie.2023" in board.stdout
    assert "Paused.Show.S01E02" not in board.stdout

    # What the Discord bot would post now, built by the bot's own functions from the live tracker.
    preview = running.cli_json("preview", "board")
    text = json.dumps(preview)
    assert "Stalled.Movie.2024" in text and "Stalled.Show.S01E01" in text
    assert preview["embeds"] and all(len(embed.get("description") or "") <= 4096 for embed in preview["embeds"])


def test_a_queue_of_2500_records_is_fully_tracked(running):
    running.control("sonarr", "POST", "bulk", {"count": 2500, "state": "downloading", "rate": MB, "size": GB})
    running.start("tracker")
    running.start("poller")
    check = wait_until(lambda: (c := running.cli_json("check"))["tracked"] >= 2500 and c, 60,
                       "all 2,500 records to be tracked", interval=0.5)
    assert check["tracked"] == 2500
    assert [i["records"] for i in check["instances"] if i["name"] == "sonarr"] == [2500]
    pages = [r for r in running.control("sonarr", "GET", "requests")
             if r["method"] == "GET" and r["path"].endswith("/queue")]
    assert pages and all(int(r["query"]["pageSize"]) <= 1000 for r in pages)


def test_an_instance_with_a_wrong_key_is_unhealthy_and_the_other_goes_on(running):
    running.env["RADARR_API_KEY"] = "wrong-key-123"
    running.control("sonarr", "POST", "downloads", {"title": "Fine.Show.S01E01", "size": GB,
                                                    "state": "downloading", "rate": MB})
    running.start("tracker")
    running.start("poller")
    progress = wait_until(lambda: (p := running.cli_json("progress"))["tracked"] and len(p["instances"]) == 2 and p,
                          30, "both instances to report", interval=0.5)
    health = {i["name"]: i for i in progress["instances"]}
    assert health["sonarr"]["healthy"] is True
    assert health["radarr"]["healthy"] is False
    assert "refused the API key (HTTP 401)" in health["radarr"]["error"]
    everything = running.cli("progress").stdout + running.logs()
    assert "wrong-key-123" not in everything


def test_a_query_with_no_tracker_fails_fast_naming_it(deployment):
    done = deployment.cli("progress", "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    endpoint = deployment.env["TRACKER_QUERY_ENDPOINT"]
    assert done.stderr.strip() == f"discarr: tracker did not answer at {endpoint} within 3s; is it running?"


def test_the_command_tree_as_synced_to_discord(deployment):
    done = deployment.cli("bot", "--print-commands")
    assert done.returncode == 0, done.stderr
    commands = {command["name"]: command for command in json.loads(done.stdout)}
    assert sorted(commands) == ["check", "cleanup", "keep", "progress", "stats", "unkeep", "verbose"]
    assert commands["check"]["default_member_permissions"] is None
    for admin in ("cleanup", "keep", "progress", "stats", "unkeep", "verbose"):
        assert commands[admin]["default_member_permissions"] == 32  # Manage Server
    assert [option["name"] for option in commands["cleanup"]["options"]] == ["dry_run", "include_import_blocked",
                                                                                   "include_slow"]
    assert commands["progress"]["options"][0]["autocomplete"] is True
