"""Automatic cleanup end to end (SPEC section 4.1): simarr, poller, tracker and the bot process without a
Discord token (the terminal board), thresholds of seconds; what simarr was asked to delete is the proof."""
import json
import signal
import time

import pytest

from tests.conftest import wait_until

MB = 1024 ** 2
GB = 1024 ** 3


@pytest.fixture
def auto(deployment):
    deployment.simulate("sonarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.05", "MIN_SIZE_CHANGE": str(MB), "CHECK_INTERVAL": "1",
                           "AUTO_CLEANUP": "stuck", "AUTO_CLEANUP_CONFIRMATIONS": "2",
                           "BOT_STATE_FILE": str(deployment.workdir / "data" / "bot.json"),
                           "ARR_REFRESH_SECONDS": "0"})
    deployment.start("simarr", "--scenario", "empty")
    return deployment


def add(deployment, title, **spec):
    return deployment.control("sonarr", "POST", "downloads", dict(spec, title=title))


def deletes(deployment):
    return [r for r in deployment.control("sonarr", "GET", "requests") if r["method"] == "DELETE"]


def remaining(deployment):
    return sorted(d["title"] for d in deployment.control("sonarr", "GET", "downloads"))


def audit(deployment):
    path = deployment.workdir / "data" / "removals.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def bot_log(deployment):
    return deployment.log_path("bot").read_text()


def start_all(deployment):
    deployment.start("tracker")
    deployment.start("poller")
    deployment.start("bot")


def test_a_stalled_download_is_removed_once_and_nothing_else_is_touched(auto):
    add(auto, "Dead.S01E01", size=GB, downloaded=10 * MB, state="stalled")
    keep = ["Healthy.S01E02", "Paused.S01E03", "Queued.S01E04", "Unpacking.S01E05", "Blocked.S01E06"]
    add(auto, keep[0], size=500 * GB, rate=20 * MB)
    add(auto, keep[1], size=GB, downloaded=10 * MB, state="paused")
    add(auto, keep[2], size=GB, state="queued")
    add(auto, keep[3], size=GB, downloaded=GB, state="post_processing", protocol="usenet")
    add(auto, keep[4], size=GB, downloaded=GB, state="import_blocked")
    start_all(auto)
    wait_until(lambda: "Dead.S01E01" not in remaining(auto), 40, "the dead download to be removed")
    time.sleep(3)  # more runs of automatic cleanup: nothing else goes, nothing twice
    assert remaining(auto) == sorted(keep)
    [delete] = deletes(auto)
    assert delete["query"] == {"removeFromClient": "true", "blocklist": "true", "skipRedownload": "false"}
    removed = [line for line in audit(auto) if line["result"] == "removed"]
    assert [(line["title"], line["requested_by"]) for line in removed] == [("Dead.S01E01", "auto")]
    assert "automatic cleanup removed 1" in bot_log(auto)
    progress = auto.cli_json("progress")
    assert progress["auto_cleanup"]["state"] == "on: stuck"


def test_a_network_outage_holds_the_instance_and_the_hold_is_released(auto):
    # The outage comes well before the dead download could be stuck (6 s), so it is held first.
    auto.env.update({"ARR_REFRESH_SECONDS": "0.5", "STUCK_THRESHOLD_MINUTES": "0.1"})
    movers = [add(auto, f"Mover.S01E0{n}", size=500 * GB, rate=(n + 1) * MB) for n in range(1, 5)]
    add(auto, "Dead.S01E09", size=GB, state="stalled")
    add(auto, "Other.S01E10", protocol="usenet", size=500 * GB, rate=5 * MB)  # another client, healthy
    start_all(auto)
    time.sleep(2)
    for mover in movers:  # the network to the torrent client dies: all its downloads stop at once
        auto.control("sonarr", "POST", f"downloads/{mover['download_id']}", {"state": "stalled"})
    wait_until(lambda: "automatic cleanup holds sonarr" in bot_log(auto), 30, "the instance to be held")
    time.sleep(4)
    assert deletes(auto) == []
    assert bot_log(auto).count("automatic cleanup holds sonarr") == 1  # one warning
    for mover in movers:  # the network is back
        auto.control("sonarr", "POST", f"downloads/{mover['download_id']}", {"state": "downloading", "rate": 5 * MB})
    wait_until(lambda: "automatic cleanup no longer holds sonarr" in bot_log(auto), 30, "the hold to be released")
    wait_until(lambda: "Dead.S01E09" not in remaining(auto), 40, "the really dead download to be removed")
    assert [line["title"] for line in audit(auto) if line["result"] == "removed"] == ["Dead.S01E09"]


def test_nothing_is_removed_from_an_instance_that_stops_answering(auto):
    add(auto, "Dead.S01E01", size=GB, state="stalled")
    add(auto, "Mover.S01E02", size=500 * GB, rate=20 * MB)
    auto.env["AUTO_CLEANUP_CONFIRMATIONS"] = "4"
    start_all(auto)
    wait_until(lambda: auto.cli_json("progress")["stuck"], 30, "the dead download to be stuck")
    auto.control("sonarr", "POST", "fault", {"mode": "500"})
    wait_until(lambda: "automatic cleanup holds sonarr" in bot_log(auto), 30, "the unhealthy instance to be held")
    time.sleep(4)  # four more runs: the confirmations would have been reached
    assert deletes(auto) == [] and [line for line in audit(auto) if line["result"] == "removing"] == []
    auto.control("sonarr", "POST", "fault", {"mode": "none"})
    wait_until(lambda: "automatic cleanup no longer holds sonarr" in bot_log(auto), 30, "the hold to be released")


def test_a_dry_run_announces_and_deletes_nothing(auto):
    auto.env["AUTO_CLEANUP_DRY_RUN"] = "true"
    add(auto, "Dead.S01E01", size=GB, state="stalled")
    add(auto, "Mover.S01E02", size=500 * GB, rate=20 * MB)
    add(auto, "Mover.S01E03", size=500 * GB, rate=20 * MB)
    start_all(auto)
    wait_until(lambda: "automatic cleanup would remove 1" in bot_log(auto), 40, "the dry run's announcement")
    assert "Dead.S01E01" in bot_log(auto)
    assert deletes(auto) == [] and "Dead.S01E01" in remaining(auto)
    assert {line["result"] for line in audit(auto)} == {"dry_run"}
    assert auto.cli_json("progress")["auto_cleanup"]["state"] == "dry run: stuck"


def test_a_bot_restarted_between_two_confirmations_carries_the_count_and_removes_once(auto):
    auto.env.update({"AUTO_CLEANUP_CONFIRMATIONS": "3", "CHECK_INTERVAL": "2"})
    add(auto, "Dead.S01E01", size=GB, state="stalled")
    add(auto, "Mover.S01E02", size=500 * GB, rate=20 * MB)
    add(auto, "Mover.S01E03", size=500 * GB, rate=20 * MB)
    start_all(auto)
    state = auto.workdir / "data" / "bot.json"

    def confirmations():
        data = json.loads(state.read_text()) if state.exists() else {}
        return sum(found["count"] for found in (data.get("auto_cleanup") or {}).get("confirmations", {}).values())
    wait_until(lambda: confirmations() == 1, 40, "a first confirmation")
    auto.stop("bot", signal.SIGKILL)
    auto.start("bot")
    wait_until(lambda: "Dead.S01E01" not in remaining(auto), 40, "the removal")
    time.sleep(3)
    assert len(deletes(auto)) == 1
    counted = [line for line in audit(auto) if line["result"] == "removed"]
    assert len(counted) == 1


def test_a_vpn_drop_on_a_client_shared_by_sonarr_and_radarr_removes_nothing(deployment):
    # The usual home setup: a Sonarr and a Radarr on one qBittorrent, two downloads each. The VPN drops and
    # all four stop at once: one outage of four (not two of two), held, and released when they move again.
    deployment.simulate("sonarr", "radarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.05", "MIN_SIZE_CHANGE": str(MB), "CHECK_INTERVAL": "1",
                           "AUTO_CLEANUP": "stuck", "AUTO_CLEANUP_CONFIRMATIONS": "2", "ARR_REFRESH_SECONDS": "0.5",
                           "BOT_STATE_FILE": str(deployment.workdir / "data" / "bot.json")})
    deployment.start("simarr", "--scenario", "empty")
    movers = {kind: [deployment.control(kind, "POST", "downloads",
                                        {"title": f"Mover.{kind}.{n}", "size": 500 * GB, "rate": (n + 2) * MB})
                     for n in (1, 2)] for kind in ("sonarr", "radarr")}
    start_all(deployment)
    time.sleep(2)
    for kind, downloads in movers.items():
        for mover in downloads:
            deployment.control(kind, "POST", f"downloads/{mover['download_id']}", {"state": "stalled"})
    wait_until(lambda: "automatic cleanup holds" in bot_log(deployment), 30, "the shared client's outage to hold")
    time.sleep(3 * 3)  # three thresholds: every one of them would be stuck twice over
    assert deletes(deployment) == [] and [d for d in deployment.control("radarr", "GET", "requests")
                                          if d["method"] == "DELETE"] == []
    assert bot_log(deployment).count("automatic cleanup holds") == 1  # one warning, naming both instances
    outages = deployment.cli_json("progress")["outages"]
    assert sorted(o["instance"] for o in outages) == ["radarr", "sonarr"]
    for kind, downloads in movers.items():  # the VPN is back
        for mover in downloads:
            deployment.control(kind, "POST", f"downloads/{mover['download_id']}",
                               {"state": "downloading", "rate": 5 * MB})
    wait_until(lambda: "automatic cleanup no longer holds" in bot_log(deployment), 30, "the hold to be released")
    assert [line for line in audit(deployment) if line["result"] == "removed"] == []
