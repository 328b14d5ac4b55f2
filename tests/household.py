"""A simulated household around discarr's real decision chain, for the simulation in test_household.py.

Everything that decides is discarr's own code: the poller's snapshot (`take_snapshot`) and removal
requests (`Remover`, with its re-check and its memory of DELETEs), the tracker (`Tracker`, its
checkpoint and its statistics store), automatic cleanup (`AutoCleaner` and its state file's JSON),
and the protocol's codec between them (every message is packed and unpacked as on the wire).
What is simulated is what they talk to: *arr instances whose figures are refreshed once a
minute, download clients shared by the instances (some read by discarr itself), downloads that
move, stall, pause, finish, unpack, fail or show errors, VPN drops, DELETEs that are slow or get
no answer, and one clock that only the simulation moves.

`Household` also keeps the ground truth the invariants are checked against (`Violations`): what
each download showed the poller at every moment, every DELETE, every removal and when it took
effect, every automatic-cleanup analysis, and what left the queue.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import protocol
from common.clock import ManualClock
from common.settings import DownloadClientConfig, InstanceConfig, Settings
from common.torrent_clients import ClientError
from services.bot.autoclean import HOUR, AutoCleaner, AutoConfig, category_of, item_key
from services.poller.arr_client import ArrError
from services.poller.audit import AuditLog
from services.poller.download_clients import DownloadClients, _figures
from services.poller.normalize import normalize_record
from services.poller.removal import RemovalMemory, RemovalPolicy, Remover
from services.poller.service import encode_snapshot, take_snapshot
from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.service import query_handlers
from services.tracker.state import Tracker
from services.tracker.stats import StatsStore

MB = 1024 ** 2
GB = 1024 ** 3
POLLER = {"name": "poller", "endpoint": "tcp://127.0.0.1:1"}


@dataclass(frozen=True)
class SimConfig:
    """The household's discarr settings (drawn by the simulation)."""

    poll_s: float = 30.0
    refresh_s: float = 60.0
    threshold_s: float = 1200.0
    check_interval: float = 300.0
    confirmations: int = 2
    max_per_hour: int = 10
    categories: frozenset[str] = frozenset({"stuck"})
    removal_timeout: float = 60.0
    request_timeout: float = 5.0
    min_bytes: float = 100 * MB
    min_progress: float = 1.0

    def settings(self, workdir: Path) -> Settings:
        return Settings(poll_interval_seconds=self.poll_s, arr_refresh_seconds=self.refresh_s,
                        stuck_threshold_minutes=self.threshold_s / 60, check_interval=self.check_interval,
                        auto_cleanup=tuple(sorted(self.categories)), auto_cleanup_confirmations=self.confirmations,
                        auto_cleanup_max_per_hour=self.max_per_hour, removal_timeout_seconds=self.removal_timeout,
                        request_timeout_seconds=self.request_timeout, min_size_change=self.min_bytes,
                        min_progress_change=self.min_progress, slow_max_eta_hours=72.0,
                        tracker_state_file=str(workdir / "tracker.msgpack"), audit_log=str(workdir / "audit.jsonl"),
                        stats_db=str(workdir / "stats.sqlite3"), bot_state_file=str(workdir / "bot.json"))


@dataclass
class SimClient:
    """A download client, one for all the instances that send it downloads."""

    name: str
    read: bool               # discarr reads this client itself (QBITTORRENT_URL and the like)
    down: bool = False       # its VPN dropped: none of its downloads moves
    reachable: bool = True   # discarr can ask it


@dataclass
class SimDownload:
    """One appearance of a download in an instance's queue, its truth and what the *arr shows of it."""

    serial: int
    instance: str
    client: SimClient
    download_id: str
    protocol: str
    size: int
    downloaded: float
    rate: float                 # bytes per second while downloading and its client is up
    state: str = "downloading"  # downloading, paused, queued, post_processing, completed, failed, gone
    error: bool = False         # the *arr shows trackedDownloadStatus "error"
    private: bool = False
    queue_ids: list[int] = field(default_factory=list)
    since: float = 0.0          # when it entered its state
    shown: dict[str, Any] | None = None  # the *arr's record fields at its latest refresh
    seen: list[tuple[float, float, float]] = field(default_factory=list)  # (time, bytes, progress) the poller could see
    states_seen: list[tuple[float, str]] = field(default_factory=list)   # (time, state the poller could see)
    departed_at: float | None = None
    tracked: bool = False       # the tracker has known it
    departure_observed: bool = False

    @property
    def present(self) -> bool:
        return self.state != "gone"

    def moving(self) -> bool:
        return self.state == "downloading" and self.rate > 0 and not self.client.down and self.downloaded < self.size

    def arr_fields(self) -> dict[str, Any]:
        """The record fields the *arr fills from its client now (null fields omitted, as the *arrs do)."""
        sizeleft = max(0, self.size - int(self.downloaded))
        status, tracked_state, tracked_status = "downloading", "downloading", "ok"
        if self.state == "downloading":
            status = "downloading" if self.moving() or self.protocol == "usenet" else "warning"
        elif self.state in ("paused", "queued"):
            status = self.state
        elif self.state == "post_processing":
            sizeleft = 0
        elif self.state == "completed":
            status, tracked_state, sizeleft = "completed", "importPending", 0
        elif self.state == "failed":
            status, tracked_state, tracked_status = "failed", "failed", "error"
        if self.error and self.state not in ("completed", "failed"):
            tracked_status = "error"
        return {"status": status, "trackedDownloadState": tracked_state, "trackedDownloadStatus": tracked_status,
                "size": self.size, "sizeleft": sizeleft}

    def client_state(self) -> str:
        if self.state == "downloading":
            return "downloading" if self.moving() else "stalled"
        return {"paused": "paused", "queued": "queued", "failed": "error"}.get(self.state, "completed")

    def visible(self) -> tuple[float, float, str]:
        """(bytes, progress %, state) as the poller can see them now: the client's own when discarr reads it,
        else the *arr's as of its latest refresh."""
        if self.client.read and self.protocol == "torrent":
            done, state = self.downloaded, self.client_state()
        else:
            shown = self.shown or self.arr_fields()
            done = shown["size"] - shown["sizeleft"]
            state = {"warning": "downloading"}.get(shown["status"], shown["status"])
            if shown["status"] == "downloading" and shown["sizeleft"] == 0:
                state = "completed"
        return done, 100.0 * done / self.size if self.size else 0.0, state

    def raw_records(self, kind: str) -> list[dict[str, Any]]:
        fields = self.shown or self.arr_fields()
        return [{"id": queue_id, "downloadId": self.download_id, "title": f"Download.{self.serial}",
                 "protocol": self.protocol, "downloadClient": self.client.name, "indexer": "Indexer",
                 **fields} for queue_id in self.queue_ids]


class Violations(list):
    """Invariant violations found while the simulation ran: each a line saying what and when."""


class Household:
    """The instances, clients and downloads, with discarr's poller, tracker and bot deciding among them."""

    def __init__(self, config: SimConfig, workdir: Path, instances: list[str], clients: list[SimClient]) -> None:
        self.config = config
        self.workdir = workdir
        self.clock = ManualClock(1_800_000_000.0)
        self.settings = config.settings(workdir)
        self.instances = instances
        self.clients = clients
        self.downloads: list[SimDownload] = []
        self.down: set[str] = set()          # instances that do not answer
        self.missed_polls = 0                # polls the poller misses from now (it was down)
        self.delete_mode: dict[str, str] = {name: "ok" for name in instances}
        self.late: list[tuple[float, str, list[int]]] = []  # DELETEs the *arr carries out after the poller gave up
        self.next_serial = 0
        self.next_queue_id = 1000
        self.next_refresh = self.clock.now() + config.refresh_s
        self.violations = Violations()
        self.deletes: list[tuple[float, str, list[int]]] = []
        self.named: set[tuple[str, int]] = set()
        self.auto_requests: dict[str, tuple[float, dict[str, Any]]] = {}  # instance/download_id -> last request
        self.executed: dict[str, list[float]] = defaultdict(list)  # instance -> when automatic removals took effect
        self.runs: list[tuple[float, dict[str, float]]] = []  # each analysis: (time, candidate -> observed_at)
        self.outages: dict[str, tuple[float, set[int]]] = {}  # client -> (since, serials moving at its start)
        self.known_clients: set[tuple[str, str]] = set()  # (instance, client) the tracker has seen a download of
        self.removed_count = 0
        self.preview: dict[str, Any] | None = None  # a user's cleanup preview, until they confirm it
        self.next_run = self.clock.now() + config.check_interval
        self._start_poller()
        self._start_tracker(restore=False)
        self.bot_state: dict[str, Any] = {}
        self._start_bot()

    # --- discarr's processes ----------------------------------------------------------------------------
    def _start_poller(self) -> None:
        audit = AuditLog(self.settings.audit_log)
        self.memory = RemovalMemory(audit, self.clock)
        self.arrs = {name: SimArr(self, name) for name in self.instances}
        self.download_clients = DownloadClients([], 1.0)
        self.download_clients.readers = {c.name: SimReader(self, c) for c in self.clients if c.read}
        policies = {name: RemovalPolicy.from_settings(self.settings) for name in self.arrs}
        self.remover = Remover(dict(self.arrs), policies, audit, self.clock, self.download_clients, self.memory,
                               self.config.removal_timeout)

    def _start_tracker(self, restore: bool) -> None:
        self.stats = StatsStore(self.settings.stats_db, 365, self.clock)
        self.tracker = Tracker(DetectionConfig.from_settings(self.settings), self.clock, self.stats)
        if restore:
            checkpoint.load(self.tracker, self.settings.tracker_state_file)
        self.handlers = query_handlers(self.tracker, self.settings)

    def _start_bot(self) -> None:
        self.bot_state = json.loads(json.dumps(self.bot_state))  # what the state file holds
        self.auto = AutoCleaner(AutoConfig.from_settings(self.settings), self.bot_state, self._save_bot,
                                self._ask_tracker, self._remove, self._announce, self.clock.now,
                                self.settings.effective_check_interval)

    async def _save_bot(self) -> None:
        pass  # the state dict is the file; a restart reads it back through JSON

    async def _announce(self, announcement: Any) -> None:
        announcement.text()  # built as the bot would: it must not fail

    async def _ask_tracker(self, message_type: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self._ask(message_type, body)
        if message_type == "analyze":
            wanted = {item_key(item): item["observed_at"] for item in answer["candidates"]
                      if category_of(item) in self.config.categories and not item.get("withheld")}
            self.runs.append((self.clock.now(), wanted))
        return answer

    def _ask(self, message_type: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = protocol.decode(protocol.encode(message_type, body or {}))
        answer = self.handlers[request.type](request.body)
        return protocol.decode(protocol.encode("ok", answer)).body

    async def _remove(self, analysis: dict[str, Any], candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = self.clock.now()
        for item in candidates:
            self.auto_requests[item_key(item)] = (now, item)
            self._check_confirmations(item, now)
        requests = protocol.removal_requests(
            dict(analysis, candidates=candidates), POLLER["endpoint"], requested_by="auto", dry_run=False,
            include_import_blocked=False, include_slow="slow" in self.config.categories, now=now,
            valid_for=self.config.request_timeout, protected=self._protected(candidates))
        results = []
        for body in requests.values():
            request = protocol.decode(protocol.encode("remove", body))
            answer = self.remover.handle(request.body)
            results += protocol.decode(protocol.encode("ok", answer)).body["results"]
        return results

    def preview_cleanup(self) -> None:
        """A user's cleanup preview: the tracker's analysis, as the user sees it."""
        self.preview = self._ask("analyze", {"include_import_blocked": False})

    def confirm_cleanup(self) -> None:
        """The user confirms the preview they saw (by hand: no confirmations, no hourly cap)."""
        preview, self.preview = self.preview, None
        if not preview or not preview["candidates"]:
            return
        for item in preview["candidates"]:
            self.auto_requests.pop(item_key(item), None)
        requests = protocol.removal_requests(preview, POLLER["endpoint"], requested_by="cli:user", dry_run=False,
                                             include_import_blocked=False, now=self.clock.now(),
                                             valid_for=self.config.request_timeout,
                                             protected=self._protected(preview["candidates"]))
        for body in requests.values():
            self.remover.handle(protocol.decode(protocol.encode("remove", body)).body)

    def _protected(self, candidates: list[dict[str, Any]]) -> dict[str, str]:
        """The tracker's keeps, asked just before a removal request goes, as the bot and the CLI ask."""
        return self._ask("protection", protocol.protection_query(candidates))["protected"]

    def keep(self, download: SimDownload, for_good: bool) -> None:
        """An admin keeps a download the tracker knows (/keep, a Keep button, discarr keep)."""
        if download.download_id in self.tracker.downloads.get(download.instance, {}):
            self._ask("keep", {"instance": download.instance, "download_id": download.download_id, "by": "admin",
                               "for_good": for_good})

    def unkeep(self, download: SimDownload) -> None:
        if (download.instance, download.download_id) in self.tracker.keeps:
            self._ask("unkeep", {"instance": download.instance, "download_id": download.download_id, "by": "admin"})

    def bot_run(self) -> None:
        """A board refresh and the automatic cleanup after it, as the bot does them."""
        check, offset = None, 0
        while offset is not None:
            check, offset = protocol.merge_check(check, self._ask("check", protocol.check_page(offset)))
        asyncio.run(self.auto.run(check))

    def restart_tracker(self) -> None:
        checkpoint.save(self.tracker, self.settings.tracker_state_file)  # on SIGTERM
        self.stats.close()
        self._start_tracker(restore=True)

    def restart_bot(self) -> None:
        self._start_bot()

    def restart_poller(self) -> None:
        self._start_poller()

    # --- the household ----------------------------------------------------------------------------------
    def add_download(self, instance: str, client: SimClient, protocol_name: str, size: int, rate: float,
                     downloaded: float = 0.0, private: bool = False, episodes: int = 1,
                     download_id: str | None = None) -> SimDownload:
        self.next_serial += 1
        ids = list(range(self.next_queue_id, self.next_queue_id + episodes))
        self.next_queue_id += episodes
        if download_id is None:
            download_id = (f"{self.next_serial:040X}" if protocol_name == "torrent"
                           else f"SABnzbd_nzo_{self.next_serial:08d}")
        download = SimDownload(self.next_serial, instance, client, download_id, protocol_name, size, downloaded,
                               rate, private=private, queue_ids=ids, since=self.clock.now())
        download.shown = download.arr_fields()  # the *arr lists a new download at once
        self.downloads.append(download)
        self._observe(download)
        return download

    def present(self) -> list[SimDownload]:
        return [d for d in self.downloads if d.present]

    def set_state(self, download: SimDownload, state: str) -> None:
        if download.present and state != download.state:
            download.state, download.since = state, self.clock.now()

    def drop_vpn(self, client: SimClient) -> None:
        if client.down:
            return
        now = self.clock.now()
        window = max(3 * self.config.poll_s, self.config.refresh_s + self.config.poll_s)
        # A download of an instance that does not answer is in the outage only when discarr could know that
        # instance sends downloads to this client (SPEC 3: it groups the downloads it knows).
        moving = {d.serial for d in self.present() if d.client is client and d.moving()
                  and self._growth(d, now - window, now)[0] > 0
                  and (d.instance not in self.down or (d.instance, client.name) in self.known_clients)}
        client.down = True
        self.outages[client.name] = (now, moving)

    def restore_vpn(self, client: SimClient) -> None:
        client.down = False
        self.outages.pop(client.name, None)

    def advance(self, seconds: float) -> None:
        """Time passes for the downloads: they move, finish, unpack and get imported; the *arrs refresh their
        figures at their refresh instants (or show them live without a refresh interval)."""
        end = self.clock.now() + seconds
        while True:
            now = self.clock.now()
            until = min([end, *(late[0] for late in self.late if late[0] > now)]
                        + ([self.next_refresh] if self.config.refresh_s > 0 else []))
            self._integrate(until - now)
            self.clock.advance(until - now)
            if self.config.refresh_s <= 0 or until >= self.next_refresh:
                for download in self.present():
                    download.shown = download.arr_fields()
                if self.config.refresh_s > 0:
                    self.next_refresh += self.config.refresh_s
            self._carry_out_late()
            for download in self.present():
                self._observe(download)
            if until >= end:
                return

    def _integrate(self, step: float) -> None:
        now = self.clock.now()
        for download in self.present():
            if download.moving():
                download.downloaded = min(float(download.size), download.downloaded + download.rate * step)
                if download.downloaded >= download.size:
                    self.set_state(download, "post_processing" if download.protocol == "usenet" else "completed")
            elif download.state == "post_processing" and now + step - download.since >= 600:
                self.set_state(download, "completed")
            elif download.state == "completed" and now + step - download.since >= 300:
                self._depart(download)  # imported

    def _observe(self, download: SimDownload) -> None:
        done, progress, state = download.visible()
        now = self.clock.now()
        if not download.seen or download.seen[-1][1:] != (done, progress):
            download.seen.append((now, done, progress))
        if not download.states_seen or download.states_seen[-1][1] != state:
            download.states_seen.append((now, state))

    def _depart(self, download: SimDownload) -> None:
        download.state, download.departed_at = "gone", self.clock.now()

    # --- the poller's polls ----------------------------------------------------------------------------
    def poll(self) -> None:
        """One poll of every instance, or none when the poller is down."""
        if self.missed_polls > 0:
            self.missed_polls -= 1
            return
        for name in self.instances:
            snapshot = take_snapshot(self.arrs[name], self.clock, POLLER, self.download_clients, self.memory)
            snapshot["poller"] = dict(POLLER, next_within=2 * self.config.poll_s + self.config.request_timeout)
            body = protocol.decode(encode_snapshot(snapshot)).body
            self.tracker.ingest(body)
            if body["records"] is not None:
                self._after_ingest(name)

    def _after_ingest(self, instance: str) -> None:
        known = self.tracker.downloads.get(instance, {})
        for download in self.downloads:
            if download.instance != instance:
                continue
            if download.present and download.download_id in known:
                download.tracked = True
                self.known_clients.add((instance, download.client.name))
            elif not download.present and download.tracked and not download.departure_observed:
                download.departure_observed = True
        self._check_statistics(instance)

    def run(self, polls: int) -> None:
        """Time passes, a poll at a time; the bot's board refreshes every CHECK_INTERVAL."""
        for _ in range(polls):
            self.advance(self.config.poll_s)
            self.poll()
            if self.clock.now() >= self.next_run:
                self.bot_run()
                self.next_run += self.config.check_interval
                if self.next_run <= self.clock.now():  # a run took longer than the interval (timeouts)
                    self.next_run = self.clock.now() + self.config.check_interval

    def sleep(self, seconds: float) -> None:
        """The whole host sleeps: nothing moves, nothing runs, the clock jumps."""
        self.clock.advance(seconds)
        self.next_refresh += seconds  # the *arrs' refresh instants move with them
        self.next_run = max(self.next_run, self.clock.now())

    # --- the *arr's DELETE, and the invariants checked when one is sent ----------------------------------
    def delete(self, instance: str, queue_ids: list[int], timeout: float) -> bool:
        now = self.clock.now()
        self._check_delete(instance, queue_ids, now)
        mode = self.delete_mode[instance]
        if mode == "slow":
            self.advance(min(timeout / 2, 20.0))
        elif mode in ("late", "lost"):
            self.advance(timeout)
            if mode == "late":
                self.late.append((self.clock.now() + self.config.removal_timeout / 2, instance, queue_ids))
            raise ArrError("unreachable", f"no answer within {timeout:g}s", unanswered=True)
        return self._carry_out(instance, queue_ids)

    def _carry_out(self, instance: str, queue_ids: list[int]) -> bool:
        owners = [d for d in self.present() if d.instance == instance and set(queue_ids) & set(d.queue_ids)]
        listed = {q for d in self.present() if d.instance == instance for q in d.queue_ids}
        if not owners or not set(queue_ids) <= listed:
            return False  # one unknown id: the bulk DELETE is refused before anything is removed
        for download in owners:
            self._depart(download)
            self.removed_count += 1
            if f"{instance}/{download.download_id}" in self.auto_requests:
                self._check_cap(instance)
        return True

    def _carry_out_late(self) -> None:
        now = self.clock.now()
        due = [late for late in self.late if late[0] <= now]
        self.late = [late for late in self.late if late[0] > now]
        for _, instance, queue_ids in due:
            self._carry_out(instance, queue_ids)

    def _check_delete(self, instance: str, queue_ids: list[int], now: float) -> None:
        at = self._when(now)
        again = [q for q in queue_ids if (instance, q) in self.named]
        if again:
            self.violations.append(f"{at}: queue records {again} of {instance} named in a second DELETE")
        self.named.update((instance, q) for q in queue_ids)
        self.deletes.append((now, instance, queue_ids))
        lines = list(AuditLog(self.settings.audit_log).entries())
        if not lines or lines[-1].get("result") != "removing" or lines[-1].get("delete_ids") != queue_ids:
            self.violations.append(f"{at}: a DELETE of {instance} {queue_ids} without its audit line first")
        owner = next((d for d in self.present() if d.instance == instance and set(queue_ids) & set(d.queue_ids)), None)
        if owner is None:
            return
        if (instance, owner.download_id) in self.tracker.keeps:
            self.violations.append(f"{at}: {owner.download_id} removed though an admin kept it")
        _, item = self.auto_requests.get(f"{instance}/{owner.download_id}", (None, None))
        category = item["category"] if item else "stuck"
        done, progress, state = owner.visible()
        # What the *arr itself gave up on is inactive at once (SPEC 3), however it moved before; a slow
        # download moves, and is removed only when asked for.
        if category != "slow" and state not in ("failed", "error"):
            grew, rose = self._growth(owner, now - self.config.threshold_s, now)
            if grew >= self.config.min_bytes or rose >= self.config.min_progress:
                self.violations.append(f"{at}: {owner.download_id} ({category}) removed though it moved "
                                       f"{grew / MB:.0f} MB / {rose:.2f} points within the threshold before")
        if state in ("completed", "paused", "queued"):
            self.violations.append(f"{at}: {owner.download_id} removed while it was {state}")
        outage = self.outages.get(owner.client.name)
        # An outage the SPEC says must be recognised: three or more of the client's active downloads stopped
        # together, and (as seen now) three of those moving at its start are still active. An outage holds
        # clocks; what the *arr marked failed is inactive by its own verdict, with no clock to hold.
        active = [d for d in self.present() if d.serial in (outage or (0, set()))[1] and d.state == "downloading"]
        if outage is not None and len(active) >= 3 and state != "failed":
            since, _ = outage
            grew, rose = self._growth(owner, since - self.config.threshold_s, since)
            if grew >= self.config.min_bytes or rose >= self.config.min_progress:
                self.violations.append(f"{at}: {owner.download_id} removed during an outage of "
                                       f"{owner.client.name} (since {self._when(since)})")

    @staticmethod
    def _growth(download: SimDownload, start: float, end: float) -> tuple[float, float]:
        """(bytes, progress points) the poller could see it gain from `start` to `end` (from its appearance
        when that is later)."""
        def at(moment: float) -> tuple[float, float]:
            values = download.seen[0][1:]
            for when, done, progress in download.seen:
                if when > moment:
                    break
                values = (done, progress)
            return values
        (first_bytes, first_progress), (last_bytes, last_progress) = at(start), at(end)
        return last_bytes - first_bytes, last_progress - first_progress

    def _check_cap(self, instance: str) -> None:
        now = self.clock.now()
        self.executed[instance].append(now)
        within = [t for t in self.executed[instance] if now - t < HOUR]
        if len(within) > self.config.max_per_hour:
            self.violations.append(f"{self._when(now)}: {instance} lost {len(within)} downloads within an hour "
                                   f"(AUTO_CLEANUP_MAX_PER_HOUR={self.config.max_per_hour})")

    def _check_confirmations(self, item: dict[str, Any], now: float) -> None:
        """The runs that found it a candidate without a break, up to this one, hold enough confirmations
        CHECK_INTERVAL apart, each on a newer snapshot."""
        key = item_key(item)
        streak = []
        for when, wanted in reversed(self.runs):
            if key not in wanted:
                break
            streak.append((when, wanted[key]))
        streak.reverse()
        spacing = AutoConfig.from_settings(self.settings).spacing
        count, last = 0, None
        for when, observed in streak:
            if last is None or (when - last[0] >= spacing and observed > last[1]):
                count, last = count + 1, (when, observed)
        if count < self.config.confirmations:
            self.violations.append(f"{self._when(now)}: {key} removed after {count} confirmation(s) "
                                   f"(AUTO_CLEANUP_CONFIRMATIONS={self.config.confirmations})")

    def _check_statistics(self, instance: str) -> None:
        expected: dict[str, int] = defaultdict(int)
        for download in self.downloads:
            if download.instance == instance and download.departure_observed:
                expected[download.download_id] += 1
        if not expected:
            return
        with sqlite3.connect(self.settings.stats_db) as db:
            rows = dict(db.execute("SELECT download_id, COUNT(*) FROM outcomes WHERE instance = ? "
                                   "GROUP BY download_id", (instance,)).fetchall())
        for download_id, count in expected.items():
            if rows.get(download_id, 0) != count:
                self.violations.append(f"{self._when(self.clock.now())}: {instance}/{download_id} left the queue "
                                       f"{count} time(s) and has {rows.get(download_id, 0)} statistics row(s)")

    def check_audit(self) -> None:
        """Every download discarr removed has its audit line."""
        lines = list(AuditLog(self.settings.audit_log).entries())
        audited = {(line["instance"], q) for line in lines if line.get("result") == "removing"
                   for q in line.get("delete_ids") or ()}
        for _, instance, queue_ids in self.deletes:
            missing = [q for q in queue_ids if (instance, q) not in audited]
            if missing:
                self.violations.append(f"DELETE of {instance} {missing} has no audit line")

    def _when(self, moment: float) -> str:
        return f"t+{(moment - 1_800_000_000.0) / 60:.1f} min"

    def close(self) -> None:
        self.stats.close()


class SimArr:
    """One *arr instance as the poller's ArrClient sees it: its queue, and DELETE."""

    def __init__(self, household: Household, name: str) -> None:
        self.household = household
        self.instance = InstanceConfig(name, "sonarr", f"http://{name}.local", "key")

    def fetch_queue(self) -> tuple[list[dict[str, Any]], bool]:
        if self.instance.name in self.household.down:
            raise ArrError("unreachable", f"cannot connect to {self.instance.url}")
        raw = [record for d in self.household.present() if d.instance == self.instance.name
               for record in d.raw_records(self.instance.kind)]
        return [normalize_record(record) for record in raw], True

    def remove(self, queue_ids: list[int], *, remove_from_client: bool, blocklist: bool, skip_redownload: bool,
               timeout: float) -> tuple[bool, str]:
        if self.instance.name in self.household.down:
            raise ArrError("unreachable", f"cannot connect to {self.instance.url}")
        removed = self.household.delete(self.instance.name, queue_ids, timeout)
        return removed, "HTTP 200" if removed else "HTTP 404"

    def close(self) -> None:
        pass


class SimReader:
    """A download client discarr reads, as services.poller.download_clients' readers are."""

    def __init__(self, household: Household, client: SimClient) -> None:
        self.household = household
        self.client = client
        self.config = DownloadClientConfig(client.name, "qbittorrent", f"http://{client.name}.local")
        self.api = self  # where a reader's failures name it
        self.where = f"{client.name} at {self.config.url}"

    def figures(self, hashes: set[str], private_lookups: int | None) -> dict[str, dict[str, Any]]:
        if not self.client.reachable:
            raise ClientError("unreachable", f"cannot connect to {self.where}")
        found = {}
        for download in self.household.present():
            if download.client is self.client and download.download_id.upper() in hashes:
                state = download.client_state()
                found[download.download_id.upper()] = _figures(
                    self.config, state, state, int(download.downloaded), download.size,
                    int(download.rate) if download.moving() else 0, None, 1, 1, download.private)
        return found

    def tag(self, info_hash: str, tag: str) -> None:
        pass

    def close(self) -> None:
        pass
