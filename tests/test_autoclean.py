"""Automatic cleanup's decisions (SPEC section 4.1) with a moved clock: confirmations, holds, the hourly cap,
and what it remembers across a restart; its announcements within Discord's limits."""
import json

import pytest

from services.bot.autoclean import (Announcement, AutoConfig, AutoState, category_of, plan,
                                    record_requested)
from services.bot.embeds import auto_cleanup_embeds
from tests.test_bot_fakes import measure

T0 = 1_700_000_000.0
INTERVAL = 300
STUCK = AutoConfig(frozenset({"stuck"}), confirmations=2, max_per_hour=10, interval=INTERVAL)


def item(number, instance="sonarr", category="stuck", **extra):
    return {"instance": instance, "download_id": f"D{number}", "queue_ids": [number], "title": f"Show.S01E{number:02d}",
            "category": category, "progress": 10.0, "size": 10, "sizeleft": 9, "reason": "no progress for 2 h",
            "client": None, **extra}


def check(active=30, instances=("sonarr",), unhealthy=(), outages=(), clients=()):
    return {"instances": [{"name": name, "healthy": name not in unhealthy,
                           "state": "unreachable" if name in unhealthy else "ok",
                           "error": "cannot connect" if name in unhealthy else None, "poller": "poller"}
                          for name in instances],
            "download_clients": list(clients),
            "outages": [{"instance": name, "download_client": "qBittorrent", "since": T0, "downloads": []}
                        for name in outages],
            "downloads": [{"instance": name, "activity": "active"} for name in instances for _ in range(active)]}


def decide(config, state, candidates, seen, now):
    """plan() after a board refresh at `now` whose snapshots of every candidate are a poll old."""
    return plan(config, state, {"candidates": [dict(c, observed_at=now - 1) for c in candidates]}, seen, now)


def ids(items):
    return [i["download_id"] for i in items]


def removed(items):
    return [dict(i, result="removed", detail="removed") for i in items]


def test_a_candidate_is_removed_only_after_its_confirmations():
    first = decide(STUCK, AutoState(), [item(1)], check(), T0)
    assert first.remove == [] and ids(first.counting) == ["D1"]
    second = decide(STUCK, first.state, [item(1)], check(), T0 + INTERVAL)
    assert ids(second.remove) == ["D1"]


def test_confirmations_must_be_consecutive():
    first = decide(STUCK, AutoState(), [item(1)], check(), T0)
    gone = decide(STUCK, first.state, [], check(), T0 + INTERVAL)  # it moved: no longer a candidate
    again = decide(STUCK, gone.state, [item(1)], check(), T0 + 2 * INTERVAL)
    assert again.remove == [] and again.state.confirmations["sonarr/D1"].count == 1


def test_only_the_configured_categories_and_never_withheld_evidence():
    candidates = [item(1), item(2, category="inactive"), item(3, category="attention"),
                  item(4, withheld="download client qbittorrent cannot be reached")]
    config = AutoConfig(frozenset({"stuck", "import_blocked"}), confirmations=1)
    decided = decide(config, AutoState(), candidates, check(), T0)
    assert ids(decided.remove) == ["D1", "D3"]
    assert category_of(item(3, category="attention")) == "import_blocked"


@pytest.mark.parametrize("why, kwargs", [
    ("it is unreachable: cannot connect", {"unhealthy": ("sonarr",)}),
    ("qBittorrent stopped every download at once (outage)", {"outages": ("sonarr",)}),
    ("3 of its 6 active downloads are candidates at once", {"active": 6}),
])
def test_a_held_instance_loses_nothing_and_is_announced_once(why, kwargs):
    candidates = [item(n) for n in (1, 2, 3)]
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    first = decide(config, AutoState(), candidates, check(**kwargs), T0)
    assert first.remove == [] and first.held["sonarr"].startswith(why) and list(first.newly_held) == ["sonarr"]
    second = decide(config, first.state, candidates, check(**kwargs), T0 + INTERVAL)
    assert second.remove == [] and second.newly_held == {}  # one warning, not one per run
    released = decide(config, second.state, [item(1)], check(), T0 + 2 * INTERVAL)
    assert released.released == ["sonarr"] and ids(released.remove) == ["D1"]


def test_two_candidates_among_three_active_are_not_a_hold_but_three_among_six_are():
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    assert decide(config, AutoState(), [item(1), item(2)], check(active=3), T0).held == {}
    assert decide(config, AutoState(), [item(n) for n in (1, 2, 3)], check(active=7), T0).held == {}


def test_a_candidate_of_an_unhealthy_download_client_is_kept():
    down = [{"name": "qbittorrent", "kind": "qbittorrent", "healthy": False, "state": "unreachable", "error": "x"}]
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    decided = decide(config, AutoState(), [item(1, client={"name": "qbittorrent"}), item(2)], check(clients=down), T0)
    assert ids(decided.remove) == ["D2"]


def test_eleven_stuck_among_thirty_active_ten_go_in_the_first_hour_the_eleventh_after_it():
    config = AutoConfig(frozenset({"stuck"}), confirmations=1, max_per_hour=10, removal_grace=120)
    candidates = [item(n) for n in range(1, 12)]
    state, now, removed_at = AutoState(), T0, {}
    while len(removed_at) < 11:
        decided = decide(config, state, [c for c in candidates if c["download_id"] not in removed_at],
                         check(active=30), now)
        assert decided.held == {}
        record_requested(decided.state, decided.remove, now)
        removed_at.update((i["download_id"], now - T0) for i in decided.remove)
        state, now = decided.state, now + INTERVAL
    assert sorted(removed_at.values()).count(0) == 10
    # An hour from the last moment the first ten could have taken effect (a DELETE without an answer).
    assert removed_at["D11"] >= 3600 + 120


def test_the_state_survives_a_restart_through_json():
    first = decide(STUCK, AutoState(), [item(1)], check(), T0)
    record_requested(first.state, [item(9)], T0)
    restored = AutoState.from_json(json.loads(json.dumps(first.state.as_json())))
    assert restored == first.state
    second = decide(STUCK, restored, [item(1)], check(), T0 + INTERVAL)
    assert ids(second.remove) == ["D1"] and second.state.removed_this_hour("sonarr", T0 + INTERVAL, STUCK) == 1
    assert AutoState.from_json({"confirmations": {"a": "x"}, "removed": [], "held": None}) == AutoState()
    # An older bot's bare counts are confirmed anew, never taken for confirmations of unknown spacing.
    assert AutoState.from_json({"confirmations": {"sonarr/D1": 1}}) == AutoState()


def test_announcements_of_a_thousand_removals_fit_in_discord():
    results = removed([item(n) for n in range(1000)])
    for announcement in (Announcement("removed", tuple(results)),
                         Announcement("removed", tuple(dict(r, result="skipped", detail="dry run: would remove")
                                                        for r in results), dry_run=True),
                         Announcement("held", instance="sonarr", why="x" * 5000),
                         Announcement("released", instance="sonarr")):
        embeds = auto_cleanup_embeds(announcement)
        assert embeds and measure(embeds) == []  # no Discord limit broken
        assert announcement.text()
    assert auto_cleanup_embeds(Announcement("removed", tuple(results)))[0].title.startswith(
        "Automatic cleanup report: 1000 removed")


def test_a_shared_client_whose_downloads_are_candidates_at_once_holds_every_instance_on_it():
    # Sonarr and Radarr on one qBittorrent, two candidates each: per instance 2 is no hold, on the client 4 is.
    def on_client(number, instance):
        return item(number, instance, client_name="qBittorrent")
    analysis = {"candidates": [on_client(1, "sonarr"), on_client(2, "sonarr"),
                               on_client(3, "radarr"), on_client(4, "radarr")]}
    seen = check(active=0, instances=("sonarr", "radarr"))
    seen["downloads"] = [{"instance": i, "activity": "active", "client_name": "qBittorrent"}
                         for i in ("sonarr", "radarr") for _ in range(2)]
    seen["downloads"] += [{"instance": "sonarr", "activity": "active", "client_name": "SABnzbd"}] * 20
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    decided = decide(config, AutoState(), analysis["candidates"], seen, T0)
    assert decided.remove == []
    assert sorted(decided.held) == ["radarr", "sonarr"]
    assert decided.held["sonarr"].startswith("4 of the 4 active downloads on qBittorrent are candidates at once")


def seen_at(candidate, observed_at):
    return dict(candidate, observed_at=observed_at)


def test_refreshes_seconds_apart_add_no_confirmation():
    # /check, a restart or any early refresh: the board is refreshed again at once, on the same snapshot.
    config = AutoConfig(frozenset({"stuck"}), confirmations=2, interval=300)
    first = plan(config, AutoState(), {"candidates": [seen_at(item(1), T0)]}, check(), T0)
    again = plan(config, first.state, {"candidates": [seen_at(item(1), T0 + 5)]}, check(), T0 + 0.01)
    assert again.remove == [] and again.counting == [seen_at(item(1), T0 + 5)]
    later = plan(config, again.state, {"candidates": [seen_at(item(1), T0 + 300)]}, check(), T0 + 300)
    assert later.remove == [seen_at(item(1), T0 + 300)]


def test_a_confirmation_needs_a_newer_snapshot_of_the_download():
    # The poller stopped reporting (or the tracker restarted from an old checkpoint): the same evidence
    # looked at twice is one confirmation, however far apart the looks are.
    config = AutoConfig(frozenset({"stuck"}), confirmations=2, interval=300)
    first = plan(config, AutoState(), {"candidates": [seen_at(item(1), T0)]}, check(), T0)
    same = plan(config, first.state, {"candidates": [seen_at(item(1), T0)]}, check(), T0 + 600)
    assert same.remove == []
    newer = plan(config, same.state, {"candidates": [seen_at(item(1), T0 + 630)]}, check(), T0 + 900)
    assert newer.remove == [seen_at(item(1), T0 + 630)]


def test_every_download_named_in_a_removal_request_counts_against_the_hour_whatever_came_back():
    # A request that timed out comes back "failed" while the poller may go on and delete: it counts,
    # and the two need confirming anew.
    config = AutoConfig(frozenset({"stuck"}), confirmations=1, max_per_hour=2)
    decided = decide(config, AutoState(), [item(1), item(2), item(3)], check(), T0)
    assert ids(decided.remove) == ["D1", "D2"]
    record_requested(decided.state, decided.remove, T0)
    assert list(decided.state.confirmations) == ["sonarr/D3"]
    later = decide(config, decided.state, [item(1), item(2), item(3)], check(), T0 + 600)
    assert later.remove == [] and ids(later.waiting) == ["D1", "D2", "D3"]


def test_a_shared_client_whose_other_instance_does_not_answer_holds_its_candidates():
    # Found by the household simulation: the VPN drops while Sonarr is not answering. Radarr's one download
    # on the shared qBittorrent looks like a dead torrent; whether Sonarr's stopped too cannot be seen, nor
    # what Sonarr sent there since it stopped answering (it had nothing there when it did).
    seen = check(active=0, instances=("sonarr", "radarr"), unhealthy=("sonarr",))
    seen["instances"][0]["clients"] = ["qBittorrent"]  # the tracker has seen Sonarr send downloads there
    seen["instances"][1]["clients"] = ["SABnzbd", "qBittorrent"]
    seen["downloads"] = [{"instance": "radarr", "activity": "active", "client_name": "qBittorrent"},
                         {"instance": "radarr", "activity": "active", "client_name": "SABnzbd"}]
    candidates = [item(1, "radarr", client_name="qBittorrent"), item(2, "radarr", client_name="SABnzbd")]
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    decided = decide(config, AutoState(), candidates, seen, T0)
    assert ids(decided.remove) == ["D2"]
    assert decided.held["sonarr"].startswith("it is unreachable")
    assert "radarr" not in decided.held  # only what shares the client waits
    assert "radarr/D1" not in decided.state.confirmations  # confirmed anew once Sonarr answers


def test_each_instance_may_have_its_own_categories_and_cap():
    from common.settings import load_settings
    settings = load_settings({"AUTO_CLEANUP": "stuck", "AUTO_CLEANUP_MAX_PER_HOUR": "10",
                              "RADARR4K_AUTO_CLEANUP": "inactive", "RADARR4K_AUTO_CLEANUP_MAX_PER_HOUR": "1"}, None)
    config = AutoConfig.from_settings(settings)
    candidates = [item(1, "radarr4k"), item(2, "radarr4k", category="inactive"),
                  item(3, "radarr4k", category="inactive"), item(4, "sonarr"), item(5, "sonarr", category="inactive")]
    decided = decide(AutoConfig(config.categories, confirmations=1, max_per_hour=10, instances=config.instances),
                     AutoState(), candidates, check(active=30, instances=("sonarr", "radarr4k")), T0)
    assert ids(decided.remove) == ["D2", "D4"] and ids(decided.waiting) == ["D3"]
    assert config.describe() == "on: stuck; radarr4k: inactive (at most 1 an hour)"
