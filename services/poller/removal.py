"""Removal requests (SPEC section 4): check again, then delete, and write down every decision.

The analysis the user confirmed may be minutes old. Before anything is
deleted, the instance's queue (and each torrent's download client) is read
again and a download that is gone, that moved, whose status changed, or whose
client cannot be reached is skipped. A request is answered once per request
id (a retry returns the first answer) and is refused after its expiry, so a
request that waited for a dead poller never runs late.

How a download is removed (SPEC section 4): removeFromClient=true,
blocklist=CLEANUP_BLOCKLIST, skipRedownload=false, except
- a private torrent, with CLEANUP_PRIVATE=keep, is removed from the *arr only
  and tagged in its client, so it keeps seeding and the user's ratio is safe;
  a torrent whose privacy its client cannot tell, even when asked, is public;
- a download this poller removed before and that came back (same hash) is
  "recurring": its release is blocklisted whatever CLEANUP_BLOCKLIST says
  (the *arrs read skipRedownload only with blocklist=true), so the same
  release is never grabbed again and the *arr looks for another.
"""
from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from common.clock import Clock
from common.protection import ProtectionRules
from common.downloads import (SET_ASIDE, below_critical_health, classify_download, client_figures, download_key,
                              measure, unreachable_client)
from common.torrent_clients import ClientError
from services.poller.arr_client import ArrClient, ArrError
from services.poller.audit import AuditLog
from services.poller.download_clients import KEEP_TAG, KEPT_TAG, DownloadClients

log = logging.getLogger(__name__)

REMEMBERED_REQUESTS = 256
NOTICE_SECONDS = 3600.0  # how long snapshots keep telling the tracker about a removal


@dataclass(frozen=True)
class RemovalPolicy:
    min_bytes: float
    min_progress: float
    blocklist: bool
    keep_private: bool = True

    @classmethod
    def from_settings(cls, settings: Any) -> "RemovalPolicy":
        return cls(settings.min_size_change, settings.min_progress_change, settings.cleanup_blocklist,
                   settings.cleanup_private == "keep")


@dataclass(frozen=True)
class RemovalMode:
    """How one download is removed (see the module docstring)."""

    remove_from_client: bool
    blocklist: bool
    skip_redownload: bool
    kept_in: dict[str, Any] | None  # the client figures of a private torrent kept seeding
    removed_before: int

    @classmethod
    def choose(cls, records: list[dict[str, Any]], policy: RemovalPolicy, removed_before: int) -> "RemovalMode":
        client = client_figures(records[0])
        keep = policy.keep_private and client is not None and client["private"] is True
        recurring = removed_before > 0
        return cls(remove_from_client=not keep, blocklist=policy.blocklist or recurring,
                   skip_redownload=False, kept_in=client if keep else None, removed_before=removed_before)

    def describe(self, instance: str) -> str:
        words = [f"from {instance} only; kept seeding in {self.kept_in['name']} (private torrent), "
                 f"tagged {KEPT_TAG}" if self.kept_in else "from the *arr and its download client"]
        if self.removed_before:
            words.append(f"recurring (removed {self.removed_before}x before): this release is blocklisted, "
                         "so it is never grabbed again and the *arr searches for another")
        elif self.blocklist:
            words.append("blocklisted, so the *arr searches for another release")
        return "; ".join(words)


class RemovalMemory:
    """Which downloads this poller removed, and which queue records it named in a DELETE, read back
    from the audit log at start.

    Each snapshot tells the tracker what was removed of its instance in the last
    NOTICE_SECONDS (`notices`), so the tracker records the outcome "removed" even when a
    snapshot is lost while it is away.

    A queue record named in a DELETE that succeeded or got no answer is never named in another
    (SPEC section 4): the *arr may still be removing it. It is forgotten once a complete read of
    the queue no longer lists it; a download that comes back later is new records.

    Poll threads read while the main thread adds: the counter's single operations are atomic
    under the GIL; the notices and the named records take a lock.
    """

    def __init__(self, audit: AuditLog, clock: Clock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._removed: Counter[tuple[str, str]] = Counter()
        self._notices: list[tuple[str, dict[str, Any]]] = []
        self._named: dict[tuple[str, int], float] = {}  # (instance, queue id) -> when a DELETE named it
        horizon = clock.now() - NOTICE_SECONDS
        # A DELETE's intent line until its outcome. One the *arr answered 200 is named for an hour (a
        # record listed again long after is a new one: Sonarr's ids repeat when a release comes back);
        # one without an answer, until the queue no longer lists it, however long ago it was sent.
        deleting: dict[tuple[Any, Any], dict[str, Any]] = {}
        unanswered: list[dict[str, Any]] = []
        for entry in audit.entries():
            if not isinstance(entry.get("instance"), str) or not isinstance(entry.get("download_id"), str):
                continue
            at = _timestamp(entry.get("time"))
            result, request = entry.get("result"), (entry.get("request_id"), entry["download_id"])
            if result == "removing":
                deleting[request] = entry
            elif result == "unknown" and request in deleting:
                deleting[request]["unknown"] = True
            else:
                intent = deleting.pop(request, None)
                if intent is not None and intent.get("unknown") and result != "removed":
                    unanswered.append(intent)
                elif intent is not None and result == "removed" and at is not None and at >= horizon:
                    self._name(intent)
            if result == "removed":
                self._removed[(entry["instance"], entry["download_id"].upper())] += 1
                if at is not None and at >= horizon:
                    self._notices.append((entry["instance"], _notice(entry, at)))
        for intent in [*unanswered, *deleting.values()]:  # no answer, or the poller stopped during the DELETE
            self._name(intent)

    def _name(self, intent: dict[str, Any]) -> None:
        ids = intent.get("delete_ids")
        at = _timestamp(intent.get("time")) or 0.0
        for queue_id in ids if isinstance(ids, list) else ():
            if isinstance(queue_id, int):
                self._named[(intent["instance"], queue_id)] = at

    def count(self, instance: str, download_id: str | None) -> int:
        return self._removed.get((instance, download_id.upper()), 0) if download_id else 0

    def add(self, item: dict[str, Any], requested_by: str) -> None:
        self._removed[(item["instance"], item["download_id"].upper())] += 1
        with self._lock:
            self._notices.append((item["instance"], _notice(dict(item, requested_by=requested_by), self.clock.now())))

    def notices(self, instance: str) -> list[dict[str, Any]]:
        """What was removed of this instance lately (protocol.REMOVAL_NOTICE_FIELDS)."""
        horizon = self.clock.now() - NOTICE_SECONDS
        with self._lock:
            self._notices = [(name, notice) for name, notice in self._notices if notice["at"] >= horizon]
            return [notice for name, notice in self._notices if name == instance]

    def stamp(self, instance: str, records: list[dict[str, Any]]) -> None:
        """Mark each record with how often its download was removed before."""
        for record in records:
            record["removed_before"] = self.count(instance, record["download_id"])

    # --- queue records named in a DELETE ---------------------------------------------------------
    def naming(self, instance: str, queue_ids: list[int]) -> None:
        """These records are about to be named in a DELETE."""
        now = self.clock.now()
        with self._lock:
            self._named.update({(instance, queue_id): now for queue_id in queue_ids})

    def unnamed(self, instance: str, queue_ids: list[int]) -> None:
        """The *arr refused that DELETE: it removed none of these records."""
        with self._lock:
            for queue_id in queue_ids:
                self._named.pop((instance, queue_id), None)

    def named_at(self, instance: str, queue_ids: list[int]) -> float | None:
        """When a DELETE named one of these records, or None when none was."""
        with self._lock:
            times = [self._named[(instance, q)] for q in queue_ids if (instance, q) in self._named]
        return min(times) if times else None

    def read_whole_queue(self, instance: str, records: list[dict[str, Any]]) -> None:
        """A complete read of the instance's queue: the named records it no longer lists are gone."""
        listed = {record["id"] for record in records}
        with self._lock:
            self._named = {(name, queue_id): at for (name, queue_id), at in self._named.items()
                           if name != instance or queue_id in listed}


def _notice(entry: dict[str, Any], at: float) -> dict[str, Any]:
    return {"download_id": entry["download_id"], "category": str(entry.get("category")),
            "requested_by": str(entry.get("requested_by")), "at": at}


def _timestamp(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else None
    except ValueError:
        return None


def recheck(item: dict[str, Any], records: list[dict[str, Any]], policy: RemovalPolicy,
            include_import_blocked: bool, include_slow: bool = False) -> str | None:
    """Why this download must be kept now, or None when it may be removed."""
    if not records:
        return "no longer in the queue"
    unreachable = unreachable_client(records)
    if unreachable is not None:
        return f"download client {unreachable} cannot be reached: nothing is removed without its evidence"
    activity = classify_download(records)
    if activity == "finished":
        return "finished since analysis: complete and waiting for import, so it is kept"
    if item["category"] == "inactive" and any(below_critical_health(r) for r in records):
        return None  # it can never complete, moving or paused (NZBGet's HealthCheck=pause) alike
    _, _, downloaded, progress = measure(records)
    start_bytes, start_progress = _measured_from(item)
    if downloaded - start_bytes >= policy.min_bytes or progress - start_progress >= policy.min_progress:
        return "progressed since analysis"
    status = records[0]["status"]
    category = item["category"]
    if category in ("stuck", "slow"):
        if category == "slow" and not include_slow:
            return "slow downloads are kept unless include_slow is set"
        if activity == "active":
            return None
        return "now paused" if status == "paused" else f"no longer downloading (status {status})"
    if category == "inactive":
        client = client_figures(records[0])
        if status in SET_ASIDE or (client is not None and client["state"] in SET_ASIDE):
            return f"now {client['state'] if status not in SET_ASIDE and client else status}"
        failed = activity == "failed" or any(r["tracked_status"] == "error" for r in records)
        return None if failed else "no longer failed"
    if category == "attention":
        if item.get("attention") == "not_imported":
            return "finished downloads waiting for import are never removed"
        if not include_import_blocked:
            return "import-blocked downloads are kept unless include_import_blocked is set"
        return None if activity == "attention" else "import no longer blocked"
    return f"category {category!r} is never removed"


def _measured_from(item: dict[str, Any]) -> tuple[float, float]:
    """(bytes, progress) a download's progress since analysis is measured from. For a stuck one, the start
    of the stretch its verdict rests on (its evidence): two moves each under the thresholds, one before the
    preview and one before the confirmation, are progress together. (A slow one moves all the time: from
    the analysis.)"""
    analysed = (item["size"] - item["sizeleft"], item["progress"])
    evidence = item.get("evidence")
    if item["category"] != "stuck" or not isinstance(evidence, dict):
        return analysed
    start = evidence.get("start_bytes"), evidence.get("start_progress")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in start):
        return analysed
    return min(start[0], analysed[0]), min(start[1], analysed[1])


class Remover:
    """Executes "remove" requests against the poller's instances.

    A request has REMOVAL_TIMEOUT_SECONDS from its arrival (SPEC section 4): each DELETE may wait
    for its answer up to what is left of them, and none starts once they are spent, so the sender,
    which waits that long and a little more, always gets the answer.
    """

    def __init__(self, clients: dict[str, ArrClient], policies: dict[str, RemovalPolicy], audit: AuditLog,
                 clock: Clock, download_clients: DownloadClients, memory: RemovalMemory,
                 removal_timeout: float = 60.0, rules: ProtectionRules = ProtectionRules()) -> None:
        self.clients = clients
        self.policies = policies  # each instance's: its own thresholds (SPEC 4.2)
        self.rules = rules
        self.audit = audit
        self.clock = clock
        self.download_clients = download_clients
        self.memory = memory
        self.removal_timeout = removal_timeout
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request["request_id"]
        if request_id in self._answers:
            log.info("removal request %s was already answered; returning the same answer", request_id)
            return self._answers[request_id]
        now = self.clock.now()
        late = now - request["expires_at"]
        deadline = now + self.removal_timeout
        by_instance: dict[str, list[dict]] = defaultdict(list)
        for item in request["downloads"]:
            by_instance[item["instance"]].append(item)
        results = []
        for instance, items in by_instance.items():
            if late > 0:
                detail = f"request expired {late:.0f}s before it reached the poller; nothing was done"
                results.extend(self._decided(request, item, "skipped", detail) for item in items)
            else:
                results.extend(self._remove_from(instance, items, request, deadline))
        answer = {"request_id": request_id, "results": results}
        self._answers[request_id] = answer
        while len(self._answers) > REMEMBERED_REQUESTS:
            self._answers.popitem(last=False)
        return answer

    def _read_queue(self, client: ArrClient) -> dict[str, list[dict]]:
        """The instance's queue now, by download; ArrError when it cannot be read."""
        queue, complete = client.fetch_queue()
        if complete:
            self.memory.read_whole_queue(client.instance.name, queue)
        current: dict[str, list[dict]] = defaultdict(list)
        for record in queue:
            current[download_key(record)].append(record)
        return current

    def _remove_from(self, instance: str, items: list[dict], request: dict, deadline: float) -> list[dict]:
        client = self.clients.get(instance)
        reader = self.download_clients.readers.get(instance)
        if client is None and reader is not None and all(item.get("client_history") for item in items):
            return self._remove_failed_jobs(reader, items, request)
        if client is None:
            return [self._decided(request, item, "failed", f"instance {instance!r} is not configured on this poller")
                    for item in items]
        try:
            current = self._read_queue(client)
        except ArrError as exc:
            return [self._decided(request, item, "failed", f"could not read the queue again: {exc.reason}")
                    for item in items]
        # Fresh client evidence for what may be removed, every private flag asked for.
        wanted = [record for item in items for record in current.get(item["download_id"], ())]
        self.download_clients.annotate(wanted, private_lookups=None)
        results = []
        policy = self.policies[instance]
        for item in items:
            records = current.get(item["download_id"], [])
            queue_ids = sorted(record["id"] for record in records)
            why_not = (self._protected(item, records, request)
                       or recheck(item, records, policy, request["include_import_blocked"],
                                  request.get("include_slow", False))
                       or self._named_before(instance, queue_ids))
            if why_not is not None:
                results.append(self._decided(request, item, "skipped", why_not))
                continue
            mode = RemovalMode.choose(records, policy, self.memory.count(instance, item["download_id"]))
            if request["dry_run"]:
                # In the reply a dry run's "would remove" is a skip: nothing was removed (its detail says why).
                results.append(self._decided(request, item, "dry_run", f"dry run: would remove {len(queue_ids)} "
                                                                        f"queue record(s) {mode.describe(instance)}"))
                continue
            results.append(self._remove_one(client, request, item, queue_ids, mode, deadline))
        return results

    def keep(self, request: dict[str, Any], kept: bool) -> dict[str, Any]:
        """An admin kept a download (or kept it no more, SPEC 4.2): tagged in its client where discarr reads
        it, and audited with who did it. (The tracker keeps the keep; removal requests carry it here.)"""
        instance, download_id = request["instance"], request["download_id"]
        client = self.clients.get(instance)
        if client is None:
            raise LookupError(f"instance {instance!r} is not configured on this poller")
        try:
            records = self._read_queue(client).get(download_id, [])
        except ArrError as exc:
            raise LookupError(f"could not read {instance}'s queue: {exc.reason}") from None
        self.download_clients.annotate(records, private_lookups=0)
        figures = client_figures(records[0]) if records else None
        tagged, failure = None, None
        if figures is not None:
            try:
                tagged = self.download_clients.mark_kept(figures, download_id, kept)
            except ClientError as exc:
                failure = exc.reason
        title = records[0]["title"] if records else download_id
        words = f"{'kept' if kept else 'no longer kept'} by {request['by']}" + (
            " for good" if kept and request.get("for_good") else "")
        item = {"instance": instance, "download_id": download_id, "queue_ids": [r["id"] for r in records],
                "title": title, "category": "kept", "reason": words}
        self._decided({"request_id": "", "requested_by": request["by"], "dry_run": False}, item,
                      "kept" if kept else "unkept", words + (f"; tagged {KEEP_TAG} in {tagged}" if tagged else ""))
        return {"tagged_in": tagged, "tag_failure": failure}

    def _remove_failed_jobs(self, reader: Any, items: list[dict], request: dict) -> list[dict]:
        """Failed entries of a usenet client's history (CLEANUP_USENET_FAILED), removed with their files
        when they are still failed and no *arr of this poller has them in its queue."""
        name = reader.config.name
        try:
            failed = {job["id"]: job for job in reader.failed_jobs()}
            queued = {record["download_id"].upper() for arr in self.clients.values()
                      for record in arr.fetch_queue()[0] if record["download_id"]}
        except (ClientError, ArrError) as exc:
            return [self._decided(request, item, "failed", f"could not look again ({exc.reason}); nothing was removed")
                    for item in items]
        results = []
        for item in items:
            job = failed.get(item["download_id"])
            if job is None:
                results.append(self._decided(request, item, "skipped", f"no longer a failed entry of {name}'s history"))
            elif item["download_id"] in queued:
                results.append(self._decided(request, item, "skipped", "an *arr has it in its queue again"))
            elif request["dry_run"]:
                results.append(self._decided(request, item, "dry_run", f"dry run: would remove it from {name}'s "
                                                                        "history with its files"))
            else:
                results.append(self._remove_failed_job(reader, job, item, request))
        return results

    def _remove_failed_job(self, reader: Any, job: dict, item: dict, request: dict) -> dict:
        """Audit the intent, then remove the entry and its files."""
        name = reader.config.name
        try:
            self.audit.append(self._audit_line(request, item, "removing", f"removing it from {name}'s history "
                                                                          "with its files"))
        except OSError as exc:
            return self._result(item, "failed", f"the audit log cannot be written ({exc.strerror or exc}); "
                                                "nothing was removed")
        try:
            reader.delete_job(job["history_id"])
        except ClientError as exc:
            return self._decided(request, item, "failed", exc.reason)
        self.memory.add(item, request["requested_by"])
        return self._decided(request, item, "removed", f"removed from {name}'s history with its files")

    def _protected(self, item: dict, records: list[dict], request: dict) -> str | None:
        """Why this download is protected now (SPEC 4.2), or None: a rule on what the queue and the client
        say now, or a keep the tracker knew of when the request was sent."""
        why = self.rules.judge_download(records) or (request.get("protected") or {}).get(
            f"{item['instance']}/{item['download_id']}")
        return f"protected ({why})" if why else None

    def _named_before(self, instance: str, queue_ids: list[int]) -> str | None:
        """Why these records may not be named in a DELETE again, or None."""
        named_at = self.memory.named_at(instance, queue_ids)
        if named_at is None:
            return None
        if self.clock.now() - named_at < 2 * self.removal_timeout:
            return "a removal of it is still in progress"
        when = datetime.fromtimestamp(named_at, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (f"discarr asked {instance} to remove it at {when} and {instance} still lists it: "
                f"remove it in {instance} by hand")

    def _remove_one(self, client: ArrClient, request: dict, item: dict, queue_ids: list[int],
                    mode: RemovalMode, deadline: float) -> dict:
        """Audit the intent, then remove; a removal whose intent cannot be audited is not executed."""
        instance = item["instance"]
        left = deadline - self.clock.now()
        if left <= 0:
            return self._decided(request, item, "failed", f"the request's {self.removal_timeout:g}s were spent on "
                                                          "the removals before it; nothing was done")
        intent = f"removing {len(queue_ids)} queue record(s) {mode.describe(instance)}"
        try:
            self.audit.append(self._audit_line(request, item, "removing", intent, delete_ids=queue_ids))
        except OSError as exc:
            log.error("audit log %s cannot be written (%s): nothing is removed", self.audit.path, exc.strerror or exc)
            return self._result(item, "failed", f"the audit log cannot be written ({exc.strerror or exc}); "
                                                "nothing was removed")
        tag_failure = ""
        if mode.kept_in is not None:  # tag first: a torrent kept in the client must be findable there
            try:
                self.download_clients.tag(mode.kept_in, item["download_id"], KEPT_TAG)
            except ClientError as exc:
                tag_failure = f" (tagging it failed: {exc.reason})"
        self.memory.naming(instance, queue_ids)
        try:
            removed, answer = client.remove(queue_ids, remove_from_client=mode.remove_from_client,
                                            blocklist=mode.blocklist, skip_redownload=mode.skip_redownload,
                                            timeout=min(self.removal_timeout, left))
        except ArrError as exc:
            if exc.unanswered:
                return self._unanswered(client, request, item, mode, exc)
            self.memory.unnamed(instance, queue_ids)
            return self._decided(request, item, "failed", exc.reason)
        if not removed:
            self.memory.unnamed(instance, queue_ids)
            return self._decided(request, item, "skipped", "no longer in the queue as it was: nothing was removed",
                                 answer)
        self.memory.add(item, request["requested_by"])
        return self._decided(request, item, "removed", f"removed {mode.describe(instance)}{tag_failure}", answer)

    def _unanswered(self, client: ArrClient, request: dict, item: dict, mode: RemovalMode, exc: ArrError) -> dict:
        """A DELETE without an answer: its outcome is unknown until the queue is read again."""
        instance = item["instance"]
        self._decided(request, item, "unknown", f"{exc.reason}; the *arr may still remove it")
        try:
            gone = item["download_id"] not in self._read_queue(client)
        except ArrError:
            gone = False
        if gone:
            self.memory.add(item, request["requested_by"])
            return self._decided(request, item, "removed", f"removed {mode.describe(instance)} (the *arr answered "
                                                           "late; it is gone from the queue)")
        return self._decided(request, item, "failed", f"{instance} did not answer the removal ({exc.reason}); "
                                                      "it may still remove it: no other removal of it is sent")

    def _decided(self, request: dict, item: dict, result: str, detail: str, answer: str | None = None) -> dict:
        """One decision: its audit line written (and fsynced) now, before anything else is done."""
        try:
            self.audit.append(self._audit_line(request, item, result, detail, answer))
        except OSError as exc:
            log.error("audit log %s cannot be written (%s); lost the line: %s %s of %s", self.audit.path,
                      exc.strerror or exc, result, detail, item["title"])
        return self._result(item, result, detail)

    @staticmethod
    def _result(item: dict, result: str, detail: str) -> dict:
        return dict(item, result="skipped" if result == "dry_run" else result, detail=detail)

    def _audit_line(self, request: dict, item: dict, result: str, detail: str,
                    answer: str | None = None, delete_ids: list[int] | None = None) -> dict[str, Any]:
        line = {
            "time": datetime.fromtimestamp(self.clock.now(), timezone.utc).isoformat(),
            "request_id": request["request_id"], "requested_by": request["requested_by"],
            "dry_run": request["dry_run"], "instance": item["instance"], "title": item["title"],
            "download_id": item["download_id"], "queue_ids": item["queue_ids"], "category": item["category"],
            "reason": item["reason"], "evidence": item.get("evidence"), "result": result, "detail": detail,
            "arr_response": answer,
        }
        if delete_ids is not None:  # the records the DELETE names: never named in another (RemovalMemory)
            line["delete_ids"] = delete_ids
        return line
