"""A month unattended without one wrong removal: discarr's whole decision chain in a simulated household.

A hypothesis state machine plays a household (tests/household.py): two to four *arr instances
sharing one to three download clients, downloads that move, stall, crawl, finish, unpack, fail,
show errors or get paused; VPN drops across instances; *arr figures refreshed once a minute;
pollers that miss polls; the tracker, the poller and the bot restarted; /check pressed at any
moment; DELETEs that are slow, get no answer and are carried out later, or never; a host that
sleeps. After every step the invariants hold:

- nothing an admin kept is removed (a keep made after a preview included);
- nothing is removed that the poller could see move by the thresholds within the threshold
  before its removal (unless the *arr marked it failed, or it is slow and slow ones are asked
  for), nor anything it saw finished, paused or queued, nor a download in an outage of its
  client (unless it was already dead when the outage began, or the *arr marked it failed);
- no queue record is named in two DELETEs, and each DELETE has its audit line first;
- no instance loses more than AUTO_CLEANUP_MAX_PER_HOUR in any hour;
- every removal had its confirmations, CHECK_INTERVAL apart, each on a newer snapshot;
- every download that left the queue has exactly one statistics row.

The normal suite runs a bounded number of examples, always the same ones; `make soak` runs
SOAK_EXAMPLES of them from SOAK_SEED (printed, so a failure can be replayed).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.household import GB, MB, Household, SimClient, SimConfig

# A soak runs as long as it takes; the suite's examples keep the suite's timeout.
pytestmark = pytest.mark.timeout(0 if os.environ.get("SOAK_EXAMPLES") else 300)

SOAK_EXAMPLES = int(os.environ.get("SOAK_EXAMPLES", "0"))
SOAK_SEED = os.environ.get("SOAK_SEED")
SUITE_EXAMPLES = 60

TOTALS = {"examples": 0, "seconds": 0.0, "removed": 0, "deletes": 0, "runs": 0}

configs = st.builds(
    SimConfig,
    poll_s=st.sampled_from([10.0, 30.0, 60.0]),
    refresh_s=st.sampled_from([0.0, 60.0]),
    threshold_s=st.sampled_from([600.0, 1800.0, 7200.0]),
    check_interval=st.sampled_from([60.0, 300.0, 900.0]),
    confirmations=st.integers(1, 3),
    max_per_hour=st.sampled_from([1, 3, 10]),
    categories=st.sampled_from([frozenset({"stuck"}), frozenset({"stuck", "inactive"}),
                                frozenset({"stuck", "inactive", "slow"})]),
    removal_timeout=st.sampled_from([20.0, 60.0]),
)
CLIENTS = [("qBittorrent", "torrent"), ("Transmission", "torrent"), ("SABnzbd", "usenet")]


class HouseholdMachine(RuleBasedStateMachine):
    @initialize(config=configs, instances=st.integers(2, 4), clients=st.integers(1, 3),
                read=st.lists(st.booleans(), min_size=3, max_size=3), data=st.data())
    def start(self, config, instances, clients, read, data):
        self.workdir = Path(tempfile.mkdtemp(prefix="household-"))
        names = ["sonarr", "radarr", "sonarr4k", "radarr4k"][:instances]
        self.protocols = {}
        sim_clients = []
        for (name, protocol_name), reads in zip(CLIENTS[:clients], read):
            sim_clients.append(SimClient(name, read=reads and protocol_name == "torrent"))
            self.protocols[name] = protocol_name
        self.house = Household(config, self.workdir, names, sim_clients)
        for _ in range(data.draw(st.integers(3, 10), label="downloads at start")):
            self._add(data, moving=data.draw(st.sampled_from([True, None]), label="moving at start"))

    def _add(self, data, moving: bool | None = None):
        house = self.house
        instance = data.draw(st.sampled_from(house.instances), label="instance")
        client = data.draw(st.sampled_from(house.clients), label="client")
        size = data.draw(st.sampled_from([200 * MB, 4 * GB, 60 * GB]), label="size")
        rate = data.draw(st.sampled_from([0.0, 50 * 1024, 2 * MB, 20 * MB]) if moving is None
                         else st.sampled_from([2 * MB, 20 * MB]), label="rate")
        episodes = data.draw(st.integers(1, 3), label="episodes")
        house.add_download(instance, client, self.protocols[client.name], size, rate,
                           private=data.draw(st.booleans(), label="private"), episodes=episodes)

    def _pick(self, data, **wanted):
        present = [d for d in self.house.present() if all(getattr(d, k) == v for k, v in wanted.items())]
        return data.draw(st.sampled_from(present), label="download") if present else None

    # --- downloads ------------------------------------------------------------------------------------
    @rule(data=st.data())
    def add_download(self, data):
        self._add(data)

    @rule(data=st.data())
    def a_download_dies(self, data):
        """Its swarm is gone (or its articles): it never moves again."""
        download = self._pick(data, state="downloading")
        if download is not None:
            download.rate = 0.0

    @rule(data=st.data(), rate=st.sampled_from([0.0, 10 * 1024, 2 * MB, 20 * MB]))
    def change_speed(self, data, rate):
        """A download stalls (0), crawls or moves again."""
        download = self._pick(data)
        if download is not None:
            download.rate = rate

    @rule(data=st.data(), fraction=st.floats(0.5, 1.5))
    def crawl_near_the_thresholds(self, data, fraction):
        """A rate that moves about MIN_SIZE_CHANGE per threshold: just under or just over it."""
        download = self._pick(data)
        if download is not None:
            download.rate = fraction * self.house.config.min_bytes / self.house.config.threshold_s

    @rule(data=st.data(), state=st.sampled_from(["paused", "queued", "downloading"]))
    def pause_queue_or_resume(self, data, state):
        download = self._pick(data)
        if download is not None and download.state in ("downloading", "paused", "queued"):
            self.house.set_state(download, state)

    @rule(data=st.data())
    def finish(self, data):
        """Its last pieces arrive: it finishes (then unpacks, waits for import, and is imported)."""
        download = self._pick(data, state="downloading")
        if download is not None:
            download.downloaded = float(download.size)
            self.house.set_state(download, "post_processing" if download.protocol == "usenet" else "completed")

    @rule(data=st.data())
    def fail(self, data):
        download = self._pick(data)
        if download is not None:
            self.house.set_state(download, "failed")

    @rule(data=st.data(), error=st.booleans())
    def show_an_error(self, data, error):
        """The *arr shows trackedDownloadStatus error (or stops showing it), whatever the download does."""
        download = self._pick(data)
        if download is not None:
            download.error = error

    @rule(data=st.data())
    def grab_again(self, data):
        """A release discarr removed is grabbed again: the same downloadId, new queue records."""
        removed = [d for d in self.house.downloads if d.departure_observed
                   and not any(o.present and o.download_id == d.download_id for o in self.house.downloads)]
        if removed:
            old = data.draw(st.sampled_from(removed), label="removed download")
            self.house.add_download(old.instance, old.client, old.protocol, old.size,
                                    data.draw(st.sampled_from([0.0, 2 * MB]), label="rate"),
                                    download_id=old.download_id, episodes=len(old.queue_ids))

    # --- the network, the hosts and the processes ------------------------------------------------------
    @rule(data=st.data())
    def vpn_drops(self, data):
        self.house.drop_vpn(data.draw(st.sampled_from(self.house.clients), label="client"))

    @rule(data=st.data())
    def vpn_is_back(self, data):
        self.house.restore_vpn(data.draw(st.sampled_from(self.house.clients), label="client"))

    @rule(data=st.data(), reachable=st.booleans())
    def client_answers_discarr(self, data, reachable):
        data.draw(st.sampled_from(self.house.clients), label="client").reachable = reachable

    @rule(data=st.data(), down=st.booleans())
    def instance_answers(self, data, down):
        instance = data.draw(st.sampled_from(self.house.instances), label="instance")
        (self.house.down.add if down else self.house.down.discard)(instance)

    @rule(polls=st.integers(1, 30))
    def poller_is_down(self, polls):
        self.house.missed_polls = polls

    @rule(data=st.data(), mode=st.sampled_from(["ok", "slow", "late", "lost"]))
    def deletes_become(self, data, mode):
        self.house.delete_mode[data.draw(st.sampled_from(self.house.instances), label="instance")] = mode

    @rule()
    def restart_tracker(self):
        self.house.restart_tracker()

    @rule()
    def restart_bot(self):
        self.house.restart_bot()

    @rule()
    def restart_poller(self):
        self.house.restart_poller()

    @rule()
    def preview_a_cleanup(self):
        """/cleanup or discarr cleanup: a user looks at the preview ..."""
        self.house.preview_cleanup()

    @rule()
    def confirm_the_cleanup(self):
        """... and confirms it, now or after whatever happened meanwhile."""
        self.house.confirm_cleanup()

    @rule(data=st.data(), fraction=st.sampled_from([0.3, 0.6, 0.9]))
    def a_peer_comes_by(self, data, fraction):
        """A dead download gets a few pieces from a peer passing by: less than MIN_SIZE_CHANGE at once."""
        download = self._pick(data, state="downloading")
        if download is not None:
            download.downloaded = min(download.size - 1.0, download.downloaded
                                      + fraction * self.house.config.min_bytes)

    @rule(data=st.data(), for_good=st.booleans())
    def an_admin_keeps_a_download(self, data, for_good):
        download = self._pick(data)
        if download is not None:
            self.house.keep(download, for_good)

    @rule(data=st.data())
    def an_admin_unkeeps_a_download(self, data):
        download = self._pick(data)
        if download is not None:
            self.house.unkeep(download)

    @rule()
    def press_check(self):
        """/check, or a bot restart's first refresh: a board refresh now, whatever the schedule."""
        self.house.bot_run()

    @rule(minutes=st.sampled_from([5, 60, 600]))
    def host_sleeps(self, minutes):
        self.house.sleep(minutes * 60.0)

    @rule(minutes=st.integers(1, 150))
    def time_passes(self, minutes):
        self.house.run(max(1, round(minutes * 60 / self.house.config.poll_s)))

    @invariant()
    @precondition(lambda self: hasattr(self, "house"))
    def nothing_wrong_was_removed(self):
        assert not self.house.violations, "\n".join(self.house.violations)

    def teardown(self):
        if hasattr(self, "house"):
            self.house.check_audit()
            TOTALS["examples"] += 1
            TOTALS["seconds"] += self.house.clock.now() - 1_800_000_000.0
            TOTALS["removed"] += self.house.removed_count
            TOTALS["deletes"] += len(self.house.deletes)
            TOTALS["runs"] += len(self.house.runs)
            self.house.close()
            shutil.rmtree(self.workdir, ignore_errors=True)
            assert not self.house.violations, "\n".join(self.house.violations)


def soak_settings():
    if SOAK_EXAMPLES:
        return settings(max_examples=SOAK_EXAMPLES, stateful_step_count=60, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck),
                        phases=[Phase.explicit, Phase.generate, Phase.shrink])
    # The suite: the same bounded examples every run, so it never fails for a reason it cannot show again.
    return settings(max_examples=SUITE_EXAMPLES, stateful_step_count=50, deadline=None, derandomize=True,
                    database=None, suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.generate, Phase.shrink])


HouseholdMachine.TestCase.settings = soak_settings()
if SOAK_SEED is not None:
    HouseholdMachine = __import__("hypothesis").seed(int(SOAK_SEED))(HouseholdMachine)
TestHousehold = HouseholdMachine.TestCase


@pytest.mark.skipif(not SOAK_EXAMPLES, reason="make soak reports what its examples covered")
def test_the_soak_ran_its_examples_and_reports_them():
    """What the soak covered (make soak runs this file alone, in one process, after the machine)."""
    assert TOTALS["examples"] >= SOAK_EXAMPLES
    days = TOTALS["seconds"] / 86400
    print(f"\nhousehold simulation: {TOTALS['examples']} examples, {days:.1f} simulated days, "
          f"{TOTALS['runs']} automatic-cleanup runs, {TOTALS['deletes']} DELETEs, {TOTALS['removed']} removals"
          + (f", seed {SOAK_SEED}" if SOAK_SEED is not None else ""))


def household(tmp_path, **config):
    client = SimClient("qBittorrent", read=False)
    house = Household(SimConfig(**config), tmp_path, ["sonarr", "radarr"], [client])
    return house, client


def test_a_preview_confirmed_after_the_download_moved_twice_a_little_removes_nothing(tmp_path):
    # A dead download gets 60 MB from a passing peer just before the user's preview, and 60 MB more before
    # they confirm: each less than MIN_SIZE_CHANGE, 120 MB within the threshold together.
    house, client = household(tmp_path, poll_s=30.0, refresh_s=0.0, threshold_s=1200.0, categories=frozenset())
    dead = house.add_download("sonarr", client, "torrent", 60 * GB, 0.0)
    house.run(60)
    dead.downloaded += 60 * MB
    house.run(2)
    house.preview_cleanup()
    assert [item["download_id"] for item in house.preview["candidates"]] == [dead.download_id]
    dead.downloaded += 60 * MB
    house.run(2)
    house.confirm_cleanup()
    assert house.violations == [] and dead.present


def test_a_vpn_drop_while_an_instance_sharing_the_client_is_down_removes_nothing(tmp_path):
    # Sonarr once had a download on the qBittorrent it shares with Radarr, then went down; what it sent
    # there since cannot be seen. A VPN drop stops Radarr's one download and Sonarr's unseen two: an
    # outage of three the tracker cannot see, so automatic cleanup must not judge that client.
    house, client = household(tmp_path, poll_s=10.0, refresh_s=0.0, threshold_s=600.0, check_interval=60.0,
                              confirmations=1, categories=frozenset({"stuck"}))
    house.add_download("sonarr", client, "torrent", 200 * MB, 20 * MB)
    radarrs = house.add_download("radarr", client, "torrent", 60 * GB, 2 * MB)
    house.run(60)  # sonarr's first download is done and imported
    house.down.add("sonarr")
    for _ in range(2):
        house.add_download("sonarr", client, "torrent", 60 * GB, 2 * MB)
    house.run(6)
    house.drop_vpn(client)
    house.run(180)
    assert house.violations == [] and radarrs.present


def test_a_vpn_drop_beside_an_instance_never_seen_is_judged_on_what_discarr_sees(tmp_path):
    # Sonarr never answered: discarr cannot know it shares Radarr's qBittorrent, and Radarr's one download
    # stopped alone is, as far as anyone can tell, stuck (SPEC 3: an outage is three or more).
    house, client = household(tmp_path, poll_s=10.0, refresh_s=0.0, threshold_s=600.0, check_interval=60.0,
                              confirmations=1, categories=frozenset({"stuck"}))
    house.down.add("sonarr")
    for _ in range(2):
        house.add_download("sonarr", client, "torrent", 60 * GB, 2 * MB)
    radarrs = house.add_download("radarr", client, "torrent", 60 * GB, 2 * MB)
    house.run(6)
    house.drop_vpn(client)
    house.run(90)
    assert house.violations == [] and not radarrs.present


def test_a_download_the_arr_failed_as_its_client_dropped_is_removable_by_hand(tmp_path):
    # Sonarr gives up on one of ten torrents just as the VPN drops. The other nine are in an outage and
    # held; the failed one is inactive by the *arr's own verdict (SPEC 3), which no outage holds, and a
    # user's cleanup removes it.
    house, client = household(tmp_path, poll_s=10.0, refresh_s=0.0, threshold_s=600.0, check_interval=60.0,
                              confirmations=1, categories=frozenset({"stuck"}))
    downloads = [house.add_download("sonarr", client, "torrent", 200 * MB, 2 * MB) for _ in range(10)]
    house.run(6)
    house.set_state(downloads[0], "failed")
    house.drop_vpn(client)
    house.run(6)
    house.preview_cleanup()
    assert [item["download_id"] for item in house.preview["candidates"]] == [downloads[0].download_id]
    house.confirm_cleanup()
    assert house.violations == [] and not downloads[0].present
    assert all(download.present for download in downloads[1:])
