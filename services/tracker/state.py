"""The tracker's memory: the latest queue and health of each instance, and every download's history.

`Tracker.ingest` takes one instance's snapshot and touches only that
instance's downloads; the query methods build the answers of the protocol's
"check", "progress", "analyze" and "history" requests. Nothing here knows
about sockets, files or the wall clock.
"""
from __future__ import annotations

import sys
from collections import defaultdict
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from common.clock import Clock
from common.downloads import download_activity
from services.tracker.analysis import Finding, examine, failed_job_item, failed_job_outcome, outcome
from services.tracker.stats import StatsStore
from services.tracker.history import DetectionConfig, DownloadHistory
from services.tracker.storage import ReceivedRecord, receive_record

OUTAGE_MIN_DOWNLOADS = 3
STALE_FACTOR = 2  # no snapshot for twice the time its poller announced: the poller is gone
STALE_SLACK_SECONDS = 1.0
# Downloads observed and judged between two yields of Tracker.ingest_in_slices: about a millisecond.
INGEST_SLICE_DOWNLOADS = 50
GROUPED_PER_DOWNLOAD = 20  # grouping records by download costs about a twentieth of observing one


def category_for_stats(category: str) -> str:
    """An ITEM's category as statistics name it: an import-blocked download is "attention" in ITEMs."""
    return "import_blocked" if category == "attention" else category


class InstanceConflict(ValueError):
    """Two pollers send the same instance name."""


@dataclass
class InstanceState:
    name: str
    kind: str
    health: str = "ok"
    error: str | None = None
    last_snapshot_at: float | None = None
    records: int = 0
    poller: str = ""
    poller_endpoint: str = ""
    next_within: float = 60.0
    # every download client it has been seen sending downloads to: while it does not answer, downloads it
    # sent there since cannot be seen, so automatic cleanup does not judge those clients (SPEC 4.1)
    clients: list[str] = field(default_factory=list)

    def stale_for(self, now: float) -> float | None:
        """Seconds since the snapshot that should have come, or None when it is current."""
        if self.last_snapshot_at is None:
            return None
        age = now - self.last_snapshot_at
        return age if age > STALE_FACTOR * self.next_within + STALE_SLACK_SECONDS else None


@dataclass(frozen=True)
class Keep:
    """A download an admin kept (SPEC 4.2): protected until it leaves the queue, or for good."""

    by: str
    for_good: bool
    at: float

    def words(self) -> str:
        return f"kept by {self.by}" + (" for good" if self.for_good else "")


@dataclass(frozen=True)
class FailedJob:
    """A failed entry of a usenet client's history (protocol.FAILED_JOB_FIELDS), since when it is listed."""

    fields: dict[str, Any]
    first_seen: float


@dataclass
class Outage:
    """A download client whose active downloads all stopped moving together: their clocks are held.

    One client whichever *arr sent the download there (a Sonarr and a Radarr on one qBittorrent):
    its downloads are those of every instance of one poller that name it."""

    since: float
    held: set[tuple[str, str]]  # the (instance, download key) pairs whose clocks it holds


class Tracker:
    def __init__(self, config: DetectionConfig, clock: Clock, stats: StatsStore | None = None,
                 configure: Callable[[str], DetectionConfig] | None = None) -> None:
        self.config = config
        # Each instance's own thresholds (<INSTANCE>_STUCK_THRESHOLD_MINUTES and the like, SPEC 4.2).
        self._configure = configure or (lambda instance: config)
        self._configs: dict[str, DetectionConfig] = {}
        self.keeps: dict[tuple[str, str], Keep] = {}  # (instance, download key) -> who kept it
        self.clock = clock
        self.stats = stats  # where the outcome of each download that leaves the queue goes
        self.auto_cleanup: dict[str, Any] | None = None  # the bot's latest automatic-cleanup report
        self.instances: dict[str, InstanceState] = {}
        # instance -> download key -> history; one instance's snapshot replaces only its own dict.
        self.downloads: dict[str, dict[str, DownloadHistory]] = {}
        self.outages: dict[tuple[str, str], Outage] = {}  # (poller, download client) -> its outage
        self.download_clients: dict[str, dict[str, Any]] = {}  # name -> its latest health, as a poller saw it
        self.observed_until = 0.0  # the latest observation: a clock that steps back counts no time
        self.ingesting: dict[str, Any] | None = None  # the snapshot being ingested in slices, and how far
        self.failed_jobs: dict[tuple[str, str], dict[str, FailedJob]] = {}  # (poller, usenet client) -> its failed

    def config_for(self, instance: str) -> DetectionConfig:
        """The thresholds an instance's downloads are judged by."""
        if instance not in self._configs:
            self._configs[instance] = self._configure(instance)
        return self._configs[instance]

    def observation_time(self) -> float:
        """Now, never earlier than the latest observation (verdicts need time to run forwards)."""
        self.observed_until = max(self.observed_until, self.clock.now())
        return self.observed_until

    # --- ingest ------------------------------------------------------------
    def ingest(self, snapshot: dict[str, Any]) -> None:
        """One snapshot body whose records are protocol maps."""
        records = snapshot["records"]
        received = None if records is None else [receive_record(record) for record in records]
        for _ in self.ingest_in_slices(dict(snapshot, records=received)):
            pass

    def ingest_in_slices(self, snapshot: dict[str, Any], every: int = INGEST_SLICE_DOWNLOADS) -> Iterator[None]:
        """ingest() of a snapshot whose records were received as they were decoded (storage.receive_record),
        as a generator that yields after every `every` downloads.

        The tracker's loop answers queries between slices, so none waits for a whole large
        snapshot. Each download is observed and judged within one slice, and the instance's
        set of downloads is replaced only at the end: a query between slices sees every
        download either as it was or as it is now, never half-updated.
        """
        name = sys.intern(snapshot["instance"])
        poller = snapshot["poller"]
        instance = self.instances.setdefault(name, InstanceState(name, snapshot["kind"]))
        if instance.poller and instance.poller != poller["name"] and instance.stale_for(self.clock.now()) is None:
            raise InstanceConflict(f"instance {name!r} comes from poller {poller['name']!r} but belongs to "
                             f"{instance.poller!r}: instance names must be unique across pollers")
        instance.poller, instance.poller_endpoint = poller["name"], poller["endpoint"]
        instance.next_within = poller["next_within"]
        instance.kind = snapshot["kind"]
        instance.health = snapshot["health"]["state"]
        instance.error = snapshot["health"].get("error")
        instance.last_snapshot_at = self.clock.now()
        for client in snapshot["clients"]:
            self.download_clients[client["name"]] = dict(client, reported_at=instance.last_snapshot_at)
            if "failed" in client:
                self._follow_failed_jobs(poller["name"], client)
        if snapshot["records"] is None:
            return  # an unhealthy poll says nothing about the queue: keep every history
        now = self.observation_time()
        grouped: dict[str, list[ReceivedRecord]] = defaultdict(list)
        for index, record in enumerate(snapshot["records"]):
            grouped[record.key].append(record)
            if index % (GROUPED_PER_DOWNLOAD * every) == 0:
                yield
        instance.records = len(snapshot["records"])
        previous = self.downloads.get(name, {})
        for notice in snapshot.get("removals") or ():  # what discarr removed: its outcome is "removed"
            history = previous.get(notice["download_id"])
            if history is not None and history.removed_as is None and notice["at"] >= history.first_seen:
                history.removed_as = [category_for_stats(notice["category"]), notice["requested_by"] == "auto"]
        current: dict[str, DownloadHistory] = {}
        observed: list[DownloadHistory] = []
        self.ingesting = {"instance": name, "downloads": len(grouped), "done": 0}
        try:
            for done, (key, records) in enumerate(grouped.items(), 1):
                history = previous.get(key)
                unreachable = records[0].unreachable
                if any(record.unknown for record in records):
                    pass  # the *arr left its status out: keep what we knew
                elif unreachable is not None:
                    if history is not None:  # no evidence either way: keep what we knew, remove nothing
                        history.withheld = (f"download client {unreachable} cannot be reached: "
                                            "nothing is removed until it answers")
                else:
                    history = self._observe(name, key, history, records, now)
                    observed.append(history)
                    self.judge([history])
                if history is not None:
                    current[key] = history
                if done % every == 0:
                    self.ingesting["done"] = done
                    yield
        finally:
            self.ingesting = None
        sent_to = {history.client_name for history in observed} - {"unknown"}
        if not sent_to <= set(instance.clients):
            instance.clients = sorted(sent_to.union(instance.clients))
        if snapshot.get("complete", True):
            self.downloads[name] = current  # downloads that left the queue leave the tracker
            departed = [history for key, history in previous.items() if key not in current]
            for history in departed:  # a keep lasts until it leaves the queue, unless for good
                if (keep := self.keeps.get((name, history.key))) is not None and not keep.for_good:
                    del self.keeps[(name, history.key)]
            self._record_outcomes(departed)
        else:  # an incomplete read of the queue: what was not read is kept, not dropped
            self.downloads[name] = {**previous, **current}
        # A hold taken or released at `now` changes no verdict judged at `now`; a release on a
        # download not observed now may, so those are judged again.
        self.judge(self._guard_outages(name, observed, now))

    def _observe(self, instance: str, key: str, history: DownloadHistory | None, records: list[ReceivedRecord],
                 now: float) -> DownloadHistory:
        """One download's history, updated with its records at `now`."""
        history = history or DownloadHistory(instance=instance, key=key, first_seen=now)
        history.withheld = None
        history.keep_records([record.stored for record in records])
        _, _, downloaded, progress = history.measured()
        activity = download_activity({record.activity for record in records})
        tracked_error = any(record.tracked_error for record in records)
        history.observe(now, downloaded, progress, activity, tracked_error, self.config_for(instance))
        keep = self.keeps.get((instance, key))
        history.kept = keep.words() if keep is not None else None
        history.observe_stage(now)
        return history

    def judge(self, histories: Iterable[DownloadHistory]) -> None:
        """Settle each verdict now, at ingest: a verdict rests on observations only, and
        queries then filter instead of analysing every download while ingest waits."""
        for history in histories:
            finding = examine(history, self.config_for(history.instance))
            history.verdict = finding.category or ("soon_stuck" if finding.soon_stuck else None)
            history.longest_stall_s = max(history.longest_stall_s, finding.stalled_s)
            history.was_stuck |= finding.category == "stuck"
            history.was_inactive |= finding.category == "inactive"
            history.was_slow |= finding.category == "slow"

    def _follow_failed_jobs(self, poller: str, client: dict[str, Any]) -> None:
        """A usenet client's failed history entries (CLEANUP_USENET_FAILED): those that left it have their
        outcome recorded, "removed" when its poller removed them."""
        now = self.clock.now()
        known = self.failed_jobs.setdefault((poller, client["name"]), {})
        listed = {job["id"]: job for job in client["failed"]}
        removed = set(client.get("removed", ()))
        left = [known.pop(job_id) for job_id in list(known) if job_id not in listed]
        if left and self.stats is not None:
            self.stats.add(failed_job_outcome(client["name"], job.fields, job.first_seen, now,
                                              job.fields["id"] in removed) for job in left)
            self.stats.flush()
        for job_id, job in listed.items():
            known[job_id] = FailedJob(job, known[job_id].first_seen if job_id in known else now)

    def failed_job_items(self) -> list[dict[str, Any]]:
        """The failed entries of each usenet client's history that no *arr of its poller has in its queue."""
        items = []
        for (poller, client), jobs in sorted(self.failed_jobs.items()):
            queued = {key.upper() for name, state in self.instances.items() if state.poller == poller
                      for key in self.downloads.get(name, {})}
            items += [failed_job_item(client, job.fields) for job_id, job in sorted(jobs.items())
                      if job_id not in queued]
        return items

    def _record_outcomes(self, departed: list[DownloadHistory]) -> None:
        """Downloads that left the queue: one outcome row each, written in one transaction."""
        if self.stats is not None and departed:
            self.stats.add(outcome(history) for history in departed)
            self.stats.flush()

    def keep(self, instance: str, key: str, by: str, for_good: bool) -> dict[str, Any]:
        """Keep a download (SPEC 4.2): never removed until it leaves the queue, or for good."""
        history = self.downloads.get(instance, {}).get(key)
        if history is None and not for_good:
            raise LookupError(f"no download {key!r} is tracked on {instance!r}")
        self.keeps[(instance, key)] = Keep(by, for_good, self.clock.now())
        if history is not None:
            history.kept = self.keeps[(instance, key)].words()
        return self.kept_item(instance, key)

    def unkeep(self, instance: str, key: str) -> dict[str, Any]:
        """Keep it no more: removable again, as it was."""
        if self.keeps.pop((instance, key), None) is None:
            raise LookupError(f"{key!r} on {instance!r} is not kept")
        history = self.downloads.get(instance, {}).get(key)
        if history is not None:
            history.kept = None
        return self.kept_item(instance, key)

    def kept_item(self, instance: str, key: str) -> dict[str, Any]:
        """A download as /keep answers: its ITEM when it is in the queue."""
        history = self.downloads.get(instance, {}).get(key)
        keep = self.keeps.get((instance, key))
        state = self.instances.get(instance)
        return {"instance": instance, "download_id": key, "kept": keep.words() if keep else None,
                "poller": state.poller_endpoint if state is not None else None,  # where to tag it in its client
                "item": examine(history, self.config_for(instance)).item() if history is not None else None}

    def protection(self, downloads: list[dict[str, Any]]) -> dict[str, Any]:
        """Why each of these downloads is protected now ("instance/download_id" -> words), for a removal
        request about to be sent: a keep made since its preview wins."""
        protected = {}
        for download in downloads:
            instance, key = download["instance"], download["download_id"]
            keep = self.keeps.get((instance, key))
            history = self.downloads.get(instance, {}).get(key)
            why = keep.words() if keep else history.protected_by if history is not None else None
            if why:
                protected[f"{instance}/{key}"] = why
        return {"protected": protected}

    def keep_auto_report(self, report: dict[str, Any]) -> dict[str, Any]:
        """The bot's automatic-cleanup state, shown by every "progress" answer until the next report."""
        self.auto_cleanup = dict(report, reported_at=self.clock.now())
        return {}

    def stats_answer(self, days: float, by: str) -> dict[str, Any]:
        """The "stats" answer (SPEC 5.1): per key, what became of the downloads that left the queue."""
        if self.stats is None:
            raise LookupError("statistics are not kept by this tracker (no STATS_DB)")
        since = self.clock.now() - days * 86400.0
        return {"since": datetime.fromtimestamp(since, timezone.utc).isoformat(), "by": by, "days": days,
                "rows": self.stats.stats(since, by)}

    def _guard_outages(self, instance: str, observed: list[DownloadHistory],
                       now: float) -> list[DownloadHistory]:
        """Hold the clocks of a download client whose active downloads all stopped moving together.

        A client's downloads are the active ones of every instance of this snapshot's poller that
        name it (`DownloadHistory.client_name`): a Sonarr and a Radarr on one qBittorrent lose
        their downloads together when its VPN drops. "Stopped" is judged over a window
        (`DetectionConfig.stop_window_s`), never a single poll: the *arrs refresh their figures
        only about once a minute. Returns the downloads whose clocks it released (those it holds
        were all observed at or before `now`).
        """
        poller = self.instances[instance].poller
        seen_now = {id(history) for history in observed}
        by_client: dict[str, list[tuple[str, DownloadHistory]]] = defaultdict(list)
        for name, state in self.instances.items():
            if state.poller != poller:
                continue
            for history in self.downloads.get(name, {}).values():
                # Another instance's downloads count as last observed; this one's only if observed now.
                if history.activity == "active" and (name != instance or id(history) in seen_now):
                    by_client[history.client_name].append((name, history))
        released: list[DownloadHistory] = []
        for (owner, client), outage in list(self.outages.items()):
            if owner != poller:
                continue
            group = by_client.get(client, [])
            left = outage.held - {(name, history.key) for name, history in group}
            for name, key in left:  # unavailable, paused, gone, or no longer observed: no longer held
                history = self.downloads.get(name, {}).get(key)
                if history is not None:
                    history.release(now)
                    released.append(history)
            outage.held -= left
            if not outage.held or any(history.moved for _, history in group):
                released += self._end_outage(poller, client, now)
                continue
            for name, history in group:  # a download that joined the client meanwhile is held too
                history.hold(now)
                outage.held.add((name, history.key))
        window = self.config.stop_window_s
        for client, group in by_client.items():
            if (poller, client) in self.outages or any(history.quiet_s <= window for _, history in group):
                continue
            # Stopped together: within a window and a poll of the latest to stop, however long ago that was
            # (a tracker restarted during an outage sees it again at once).
            latest = min(history.quiet_s for _, history in group)
            together = [h for _, h in group if h.rose and h.quiet_s <= latest + window + self.config.poll_s]
            if len(together) >= OUTAGE_MIN_DOWNLOADS:
                for _, history in group:
                    history.hold(now)
                self.outages[(poller, client)] = Outage(now, {(name, history.key) for name, history in group})
        return released

    def _end_outage(self, poller: str, client: str, now: float) -> list[DownloadHistory]:
        """An outage ends, and every clock it held is released; returns those downloads."""
        outage = self.outages.pop((poller, client))
        released = [history for name, key in outage.held
                    if (history := self.downloads.get(name, {}).get(key)) is not None]
        for history in released:
            history.release(now)
        return released

    # --- queries -------------------------------------------------------------
    def histories(self) -> Iterator[DownloadHistory]:
        for histories in self.downloads.values():
            yield from histories.values()

    def findings(self, *verdicts: str) -> list[Finding]:
        """Every download's finding, or only those of the given verdicts."""
        return [examine(history, self.config_for(history.instance)) for history in self.histories()
                if not verdicts or history.verdict in verdicts]

    def instance_report(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        report = []
        for i in sorted(self.instances.values(), key=lambda i: i.name):
            stale = i.stale_for(now)
            state, error = (i.health, i.error) if stale is None else (
                "stale", f"no snapshot for {stale:.0f}s: poller {i.poller!r} is not reporting")
            report.append({"name": i.name, "kind": i.kind, "healthy": state == "ok", "state": state,
                           "error": error, "records": i.records, "poller": i.poller,
                           "thresholds": self.config_for(i.name).shown(),  # its own, SPEC 4.2
                           "clients": i.clients,
                           "last_snapshot_age_s": None if i.last_snapshot_at is None
                           else round(now - i.last_snapshot_at, 3)})
        return report

    def client_report(self) -> list[dict[str, Any]]:
        """Each download client's health, as the latest snapshot that asked it reported."""
        now = self.clock.now()
        return [{"name": c["name"], "kind": c["kind"], "healthy": c["state"] == "ok", "state": c["state"],
                 "error": c["error"], "last_report_age_s": round(now - c["reported_at"], 3)}
                for _, c in sorted(self.download_clients.items())]

    def outage_report(self) -> list[dict[str, Any]]:
        """One entry per instance an outage touches, naming every instance it touches."""
        report = []
        for (poller, client), outage in sorted(self.outages.items()):
            instances = sorted({name for name, _ in outage.held})
            report += [{"instance": instance, "download_client": client, "poller": poller, "since": outage.since,
                        "instances": instances,
                        "downloads": sorted(key for name, key in outage.held if name == instance)}
                       for instance in instances]
        return report

    def check(self, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The queue as the tracker sees it: `limit` downloads from `offset` (every one without a limit),
        in a stable order (instance, title, download id), and `tracked`, how many there are in all."""
        histories = sorted(self.histories(), key=lambda h: (h.instance, h.first.title, h.key))
        page = histories[max(0, offset):] if limit is None else histories[max(0, offset):max(0, offset) + limit]
        return {"instances": self.instance_report(), "download_clients": self.client_report(),
                "outages": self.outage_report(),
                "downloads": [examine(h, self.config_for(h.instance)).item() for h in page],
                "tracked": len(histories), "offset": offset}

    def progress(self, config_report: dict[str, Any]) -> dict[str, Any]:
        findings = self.findings("stuck", "inactive", "slow", "attention", "soon_stuck")
        def items(category: str) -> list[dict]:
            return [f.item() for f in findings if f.category == category]
        return {
            "tracked": sum(len(histories) for histories in self.downloads.values()),
            "stuck": items("stuck"),
            "inactive": items("inactive"),
            "slow": items("slow"),
            "soon_stuck": [f.item() for f in findings if f.soon_stuck],
            "attention": items("attention"),
            "outages": self.outage_report(),
            "instances": self.instance_report(),
            "download_clients": self.client_report(),
            "config": config_report,
            "auto_cleanup": self.auto_cleanup,
        }

    def analyze(self, include_import_blocked: bool, include_slow: bool = False) -> dict[str, Any]:
        """Removal candidates: stuck and inactive downloads, import-blocked and slow ones when asked.

        A finished download waiting for import is never one: removing it would delete a complete download.
        """
        def removable(finding: Finding) -> bool:
            return (finding.category in ("stuck", "inactive")
                    or (finding.category == "slow" and include_slow)
                    or (finding.attention == "import_blocked" and include_import_blocked))
        findings = self.findings("stuck", "inactive", "slow", "attention")
        endpoints = {i.poller: i.poller_endpoint for i in self.instances.values() if i.poller_endpoint}
        protected = [f for f in findings if removable(f) and f.history.protected_by]
        findings = [f for f in findings if not f.history.protected_by]
        return {"candidates": [f.item() for f in findings if removable(f) and not f.history.withheld],
                "withheld": [f.item() for f in findings if removable(f) and f.history.withheld],
                "protected": [f.item() for f in protected],  # never removed, shown in the preview (SPEC 4.2)
                "attention": [f.item() for f in findings if f.category == "attention"],
                "slow": [f.item() for f in findings if f.category == "slow"],
                # offered by /cleanup and discarr cleanup with CLEANUP_USENET_FAILED, never by automatic cleanup
                "usenet_failed": self.failed_job_items(),
                "pollers": {**{client: endpoints[poller] for poller, client in self.failed_jobs if poller in endpoints},
                            **{i.name: i.poller_endpoint for i in self.instances.values() if i.poller_endpoint}},
                "poller_names": {i.poller_endpoint: i.poller for i in self.instances.values() if i.poller_endpoint}}

    def history(self, instance: str, key: str) -> dict[str, Any]:
        history = self.downloads.get(instance, {}).get(key)
        if history is None:
            raise LookupError(f"no download {key!r} is tracked on {instance!r}")
        finding = examine(history, self.config_for(instance))
        return {"instance": instance, "download_id": key, "title": history.first.title,
                "category": finding.category, "reason": finding.reason,  # the stage or health of a usenet job
                "points": [{"t": p.time, "bytes": p.downloaded, "progress": p.progress, "activity": p.activity}
                           for p in history.points]}
