"""Protection end to end (SPEC 4.2): simarr (tags and the include options, as the *arrs serve them), a real
qBittorrent, poller, tracker and the bot's automatic cleanup as processes, with thresholds of seconds."""
import json
import time

import pytest

from common.protocol import removal_request
from common.sockets import RequestClient
from tests.conftest import wait_until
from tests.torrent_clients import make_torrent, qbittorrent, random_file  # noqa: F401

MB = 1024 ** 2
GB = 1024 ** 3
THRESHOLD = 3  # seconds


@pytest.fixture
def household(deployment, qbittorrent, tmp_path):  # noqa: F811
    """Sonarr (simarr) on a real qBittorrent, with every kind of protection rule set."""
    qb = qbittorrent()
    deployment.simulate("sonarr")
    deployment.env.update({
        "QBITTORRENT_URL": qb.url, "QBITTORRENT_USERNAME": "admin", "QBITTORRENT_PASSWORD": qb.password,
        "STUCK_THRESHOLD_MINUTES": "0.05", "MIN_SIZE_CHANGE": str(MB), "CHECK_INTERVAL": "1",
        "AUTO_CLEANUP": "stuck", "AUTO_CLEANUP_CONFIRMATIONS": "2", "ARR_REFRESH_SECONDS": "0",
        "BOT_STATE_FILE": str(deployment.workdir / "data" / "bot.json"),
        "PROTECT_TAGS": "dont-kill", "PROTECT_CLIENT_TAGS": "keep-me", "PROTECT_INDEXERS": "RareTracker",
        "PROTECT_TITLES": r"criterion, \bS0[0-9]E99\b"})
    deployment.start("simarr", "--scenario", "empty", "--downloads-from", "qbittorrent")
    return deployment, qb


def add(deployment, title, **spec):
    return deployment.control("sonarr", "POST", "downloads", dict(spec, title=title, size=GB, state="stalled"))


def titles(items):
    return sorted(item["title"] for item in items)


def test_protected_downloads_are_shown_never_offered_and_never_removed_while_the_unprotected_one_goes(
        household, tmp_path):
    deployment, qb = household
    add(deployment, "Tagged.Show.S01E01", tags=["dont-kill"])
    add(deployment, "Rare.Show.S01E02", indexer="RareTracker")
    add(deployment, "The.Criterion.Collection.1955", protocol="usenet")
    add(deployment, "Dead.Show.S01E04")
    metainfo, info_hash = make_torrent(random_file(tmp_path / "sources" / "Seedless.Show.S01E05.mkv", 300_000))
    qb.add_torrent(metainfo, tmp_path / "leech", category="tv-sonarr", tags="keep-me")
    for process in ("tracker", "poller", "bot"):
        deployment.start(process)
    protected = {"Tagged.Show.S01E01": "tag `dont-kill`", "Rare.Show.S01E02": "indexer `RareTracker`",
                 "The.Criterion.Collection.1955": "title rule `criterion`",
                 "Seedless.Show.S01E05.mkv": "client tag `keep-me`"}
    stuck = wait_until(lambda: (lambda s: s if set(protected) <= set(s) else None)(
        {item["title"]: item for item in deployment.cli_json("progress")["stuck"]}), 40, "everything to be stuck")
    assert {title: stuck[title]["protected_by"] for title in protected} == protected  # still tracked and shown
    board = deployment.cli("check").stdout
    assert "protected (tag `dont-kill`)" in " ".join(board.split())
    wait_until(lambda: "Dead.Show.S01E04" not in titles(deployment.control("sonarr", "GET", "downloads")), 40,
               "the unprotected stuck download to be removed")
    time.sleep(3 * THRESHOLD)  # three thresholds more of automatic cleanup
    left = titles(deployment.control("sonarr", "GET", "downloads"))
    assert left == sorted(protected)
    assert qb.torrent(info_hash) is not None
    preview = deployment.cli_json("cleanup", "--dry-run")
    assert preview["candidates"] == [] and deployment.cli_json("cleanup", "--yes")["results"] == []
    removed = [json.loads(line) for line in (deployment.workdir / "data" / "removals.jsonl").read_text().splitlines()]
    assert [line["title"] for line in removed if line["result"] == "removed"] == ["Dead.Show.S01E04"]


def test_a_rule_added_between_the_preview_and_the_confirmation_wins(household):
    deployment, _ = household
    download = add(deployment, "Late.Show.S02E01")
    deployment.start("tracker")
    deployment.start("poller")
    [item] = wait_until(lambda: deployment.cli_json("cleanup", "--dry-run")["candidates"], 30, "the preview")
    # The user tags the series dont-kill in Sonarr before confirming the preview they saw.
    deployment.control("sonarr", "POST", f"downloads/{download['download_id']}", {"tags": ["dont-kill"]})
    request = removal_request([item], requested_by="test", dry_run=False, include_import_blocked=False,
                              now=time.time(), valid_for=30)
    with RequestClient("poller", deployment.env["POLLER_COMMAND_ENDPOINT"], 20) as client:
        [result] = client.request("remove", request)["results"]
    assert result["result"] == "skipped" and result["detail"] == "protected (tag `dont-kill`)"
    audit = [json.loads(line) for line in (deployment.workdir / "data" / "removals.jsonl").read_text().splitlines()]
    assert (audit[-1]["result"], audit[-1]["detail"], audit[-1]["request_id"]) == \
        ("skipped", "protected (tag `dont-kill`)", request["request_id"])
    assert [r for r in deployment.control("sonarr", "GET", "requests") if r["method"] == "DELETE"] == []


def test_each_radarr_is_judged_by_its_own_threshold(deployment):
    # A 4K Radarr whose downloads crawl gets more patience: 3 s here, 9 s there (minutes, scaled down).
    deployment.env.update({
        "RADARR_URL": f"http://127.0.0.1:{deployment.simarr_port}/radarr", "RADARR_API_KEY": "key-radarr",
        "EXTRA_INSTANCES": "radarr4k", "RADARR4K_URL": f"http://127.0.0.1:{deployment.simarr_port}/radarr4k",
        "RADARR4K_API_KEY": "key-radarr4k", "RADARR_STUCK_THRESHOLD_MINUTES": "0.05",
        "RADARR4K_STUCK_THRESHOLD_MINUTES": "0.15", "MIN_SIZE_CHANGE": str(MB), "ARR_REFRESH_SECONDS": "0"})
    deployment.start("simarr", "--scenario", "empty")
    for kind in ("radarr", "radarr4k"):
        deployment.control(kind, "POST", "downloads", {"title": "Same.Movie.2024.2160p", "size": GB,
                                                         "downloaded": GB // 4, "state": "stalled"})
    deployment.start("tracker")
    deployment.start("poller")
    started = time.monotonic()
    stuck_after = {}
    while len(stuck_after) < 2 and time.monotonic() - started < 40:
        for item in deployment.cli_json("progress")["stuck"]:
            stuck_after.setdefault(item["instance"], time.monotonic() - started)
        time.sleep(0.3)
    assert stuck_after["radarr"] < 9 <= stuck_after["radarr4k"] + 1, stuck_after  # 1 poll of slack
    assert stuck_after["radarr4k"] - stuck_after["radarr"] >= 4
    shown = {i["name"]: i["thresholds"]["stuck_threshold_minutes"]
             for i in deployment.cli_json("progress")["instances"]}
    assert shown == {"radarr": 0.05, "radarr4k": 0.15}
    assert "radarr4k: stuck after" in " ".join(deployment.cli("progress").stdout.split())


@pytest.mark.parametrize("setting, value", [("PROTECT_TITLES", "[unclosed"),
                                            ("RADARR4K_STUCK_THRESHOLD_MINUTES", "abc")])
def test_a_bad_rule_or_override_stops_every_process_at_start_with_one_line(deployment, setting, value):
    deployment.env[setting] = value
    for process in ("tracker", "poller", "bot"):
        started = deployment.start(process)
        assert started.wait(20) == 2
        lines = deployment.log_path(process).read_text().strip().splitlines()
        assert lines[-1].startswith(f"discarr: setting {setting}={value!r} is invalid") and "Traceback" not in \
            "\n".join(lines), lines


def test_discarr_keep_names_one_download_and_unkeep_makes_it_removable_again(deployment):
    deployment.simulate("sonarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.03", "MIN_SIZE_CHANGE": str(MB)})
    deployment.start("simarr", "--scenario", "empty")
    for title in ("Dead.Show.S01E01", "Dead.Show.S01E02"):
        deployment.control("sonarr", "POST", "downloads", {"title": title, "size": GB, "state": "stalled"})
    deployment.start("tracker")
    deployment.start("poller")
    wait_until(lambda: len(deployment.cli_json("cleanup", "--dry-run")["candidates"]) == 2, 30, "both stuck")

    ambiguous, unknown = deployment.cli("keep", "dead.show"), deployment.cli("keep", "No.Such.Show")
    assert ambiguous.returncode == 2 and "2 downloads match 'dead.show'" in ambiguous.stderr
    assert unknown.returncode == 2 and "no tracked download matches 'No.Such.Show'" in unknown.stderr

    kept = deployment.cli_json("keep", "S01E02")
    assert kept["kept"].startswith("kept by cli:") and kept["item"]["title"] == "Dead.Show.S01E02"
    preview = deployment.cli_json("cleanup", "--dry-run")
    assert titles(preview["candidates"]) == ["Dead.Show.S01E01"]
    assert titles(preview["protected"]) == ["Dead.Show.S01E02"]

    said = deployment.cli("unkeep", kept["download_id"])
    assert said.returncode == 0 and "is no longer kept" in said.stdout, said.stderr
    assert titles(deployment.cli_json("cleanup", "--dry-run")["candidates"]) == ["Dead.Show.S01E01",
                                                                                 "Dead.Show.S01E02"]
