"""Automatic cleanup's decisions (SPEC section 4.1) with a moved clock: confirmations, holds, the hourly cap,
and what it remembers across a restart; its announcements within Discord's limits."""
import json

import pytest

from services.bot.autoclean import (HOUR, Announcement, AutoConfig, AutoState, category_of, plan,
                                    record_results)
from services.bot.embeds import auto_cleanup_embeds
from tests.test_bot_fakes import measure

T0 = 1_700_000_000.0
STUCK = AutoConfig(frozenset({"stuck"}), confirmations=2, max_per_hour=10)


def item(number, instance="sonarr", category="stuck", **extra):
    return {"instance": instance, "download_id": f"D{number}", "queue_ids": [number], "title": f"Show.S01E{number:02d}",
            "category": category, "progress": 10.0, "size": 10, "sizeleft": 9, "reason": "no progress for 2 h",
            "client": None, **extra}


def check(active=30, instances=("sonarr",), unhealthy=(), outages=(), clients=()):
    return {"instances": [{"name": name, "healthy": name not in unhealthy,
                           "state": "unreachable" if name in unhealthy else "ok",
                           "error": "cannot connect" if name in unhealthy else None} for name in instances],
            "download_clients": list(clients),
            "outages": [{"instance": name, "download_client": "qBittorrent", "since": T0, "downloads": []}
                        for name in outages],
            "downloads": [{"instance": name, "activity": "active"} for name in instances for _ in range(active)]}


def removed(items):
    return [dict(i, result="removed", detail="removed") for i in items]


def test_a_candidate_is_removed_only_after_its_confirmations():
    state, analysis = AutoState(), {"candidates": [item(1)]}
    first = plan(STUCK, state, analysis, check(), T0)
    assert first.remove == [] and first.counting == [item(1)]
    second = plan(STUCK, first.state, analysis, check(), T0 + 300)
    assert second.remove == [item(1)]


def test_confirmations_must_be_consecutive():
    first = plan(STUCK, AutoState(), {"candidates": [item(1)]}, check(), T0)
    gone = plan(STUCK, first.state, {"candidates": []}, check(), T0 + 300)  # it moved: no longer a candidate
    again = plan(STUCK, gone.state, {"candidates": [item(1)]}, check(), T0 + 600)
    assert again.remove == [] and again.state.confirmations == {"sonarr/D1": 1}


def test_only_the_configured_categories_and_never_withheld_evidence():
    analysis = {"candidates": [item(1), item(2, category="inactive"), item(3, category="attention"),
                               item(4, withheld="download client qbittorrent cannot be reached")]}
    config = AutoConfig(frozenset({"stuck", "import_blocked"}), confirmations=1)
    decided = plan(config, AutoState(), analysis, check(), T0)
    assert [i["download_id"] for i in decided.remove] == ["D1", "D3"]
    assert category_of(item(3, category="attention")) == "import_blocked"


@pytest.mark.parametrize("why, kwargs", [
    ("it is unreachable: cannot connect", {"unhealthy": ("sonarr",)}),
    ("qBittorrent stopped every download at once (outage)", {"outages": ("sonarr",)}),
    ("3 of its 6 active downloads are candidates at once", {"active": 6}),
])
def test_a_held_instance_loses_nothing_and_is_announced_once(why, kwargs):
    analysis = {"candidates": [item(n) for n in (1, 2, 3)]}
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    first = plan(config, AutoState(), analysis, check(**kwargs), T0)
    assert first.remove == [] and first.held["sonarr"].startswith(why) and list(first.newly_held) == ["sonarr"]
    second = plan(config, first.state, analysis, check(**kwargs), T0 + 300)
    assert second.remove == [] and second.newly_held == {}  # one warning, not one per run
    released = plan(config, second.state, {"candidates": [item(1)]}, check(), T0 + 600)
    assert released.released == ["sonarr"] and released.remove == [item(1)]


def test_two_candidates_among_three_active_are_not_a_hold_but_three_among_six_are():
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    assert plan(config, AutoState(), {"candidates": [item(1), item(2)]}, check(active=3), T0).held == {}
    assert plan(config, AutoState(), {"candidates": [item(n) for n in (1, 2, 3)]}, check(active=7), T0).held == {}


def test_a_candidate_of_an_unhealthy_download_client_is_kept():
    down = [{"name": "qbittorrent", "kind": "qbittorrent", "healthy": False, "state": "unreachable", "error": "x"}]
    config = AutoConfig(frozenset({"stuck"}), confirmations=1)
    decided = plan(config, AutoState(), {"candidates": [item(1, client={"name": "qbittorrent"}), item(2)]},
                   check(clients=down), T0)
    assert [i["download_id"] for i in decided.remove] == ["D2"]


def test_eleven_stuck_among_thirty_active_ten_go_in_the_first_hour_the_eleventh_after_it():
    config = AutoConfig(frozenset({"stuck"}), confirmations=1, max_per_hour=10)
    candidates = [item(n) for n in range(1, 12)]
    state, now, removed_at = AutoState(), T0, {}
    while len(removed_at) < 11:
        decided = plan(config, state, {"candidates": [c for c in candidates if c["download_id"] not in removed_at]},
                       check(active=30), now)
        assert decided.held == {}
        record_results(decided.state, removed(decided.remove), now)
        removed_at.update((i["download_id"], now - T0) for i in decided.remove)
        state, now = decided.state, now + 300
    assert sorted(removed_at.values()).count(0) == 10
    assert removed_at["D11"] >= HOUR


def test_the_state_survives_a_restart_through_json():
    first = plan(STUCK, AutoState(), {"candidates": [item(1)]}, check(), T0)
    record_results(first.state, removed([item(9)]), T0)
    restored = AutoState.from_json(json.loads(json.dumps(first.state.as_json())))
    assert restored == first.state
    second = plan(STUCK, restored, {"candidates": [item(1)]}, check(), T0 + 300)
    assert second.remove == [item(1)] and second.state.removed_this_hour("sonarr", T0 + 300) == 1
    assert AutoState.from_json({"confirmations": {"a": "x"}, "removed": [], "held": None}) == AutoState()


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
