"""Removal requests (SPEC section 4): check again, then delete, and write down every decision.

The analysis the user confirmed may be minutes old. Before anything is
deleted, the instance's queue is read again and a download that is gone,
that moved, or whose status changed is skipped. A request is answered once
per request id (a retry returns the first answer) and is refused after its
expiry, so a request that waited for a dead poller never runs late.
"""
from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from common.clock import Clock
from common.downloads import classify_download, download_key, measure
from services.poller.arr_client import ArrClient, ArrError
from services.poller.audit import AuditLog

log = logging.getLogger(__name__)

REMEMBERED_REQUESTS = 256


@dataclass(frozen=True)
class RemovalPolicy:
    min_bytes: float
    min_progress: float
    blocklist: bool

    @classmethod
    def from_settings(cls, settings: Any) -> "RemovalPolicy":
        return cls(settings.min_size_change, settings.min_progress_change, settings.cleanup_blocklist)


def recheck(item: dict[str, Any], records: list[dict[str, Any]], policy: RemovalPolicy,
            include_import_blocked: bool) -> str | None:
    """Why this download must be kept now, or None when it may be removed."""
    if not records:
        return "no longer in the queue"
    _, _, downloaded, progress = measure(records)
    analysed_bytes = item["size"] - item["sizeleft"]
    if downloaded - analysed_bytes >= policy.min_bytes or progress - item["progress"] >= policy.min_progress:
        return "progressed since analysis"
    activity = classify_download(records)
    status = records[0]["status"]
    category = item["category"]
    if category == "stuck":
        if activity == "active":
            return None
        return "now paused" if status == "paused" else f"no longer downloading (status {status})"
    if category == "inactive":
        failed = activity == "failed" or any(r["tracked_status"] == "error" for r in records)
        return None if failed else "no longer failed"
    if category == "attention":
        if not include_import_blocked:
            return "import-blocked downloads are kept unless include_import_blocked is set"
        return None if activity == "attention" else "import no longer blocked"
    return f"category {category!r} is never removed"


class Remover:
    """Executes "remove" requests against the poller's instances."""

    def __init__(self, clients: dict[str, ArrClient], policy: RemovalPolicy, audit: AuditLog,
                 clock: Clock) -> None:
        self.clients = clients
        self.policy = policy
        self.audit = audit
        self.clock = clock
        self._answers: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        request_id = request["request_id"]
        if request_id in self._answers:
            log.info("removal request %s was already answered; returning the same answer", request_id)
            return self._answers[request_id]
        late = self.clock.now() - request["expires_at"]
        by_instance: dict[str, list[dict]] = defaultdict(list)
        for item in request["downloads"]:
            by_instance[item["instance"]].append(item)
        decisions: list[tuple[dict, str, str, str | None]] = []  # item, result, detail, arr answer
        for instance, items in by_instance.items():
            if late > 0:
                detail = f"request expired {late:.0f}s before it reached the poller; nothing was done"
                decisions.extend((item, "skipped", detail, None) for item in items)
            else:
                decisions.extend(self._remove_from(instance, items, request))
        self._write_audit(request, decisions)
        # In the reply a dry run's "would remove" is a skip: nothing was removed (its detail says why).
        answer = {"request_id": request_id,
                  "results": [dict(item, result="skipped" if result == "dry_run" else result, detail=detail)
                              for item, result, detail, _ in decisions]}
        self._answers[request_id] = answer
        while len(self._answers) > REMEMBERED_REQUESTS:
            self._answers.popitem(last=False)
        return answer

    def _remove_from(self, instance: str, items: list[dict], request: dict) -> list[tuple]:
        client = self.clients.get(instance)
        if client is None:
            return [(item, "failed", f"instance {instance!r} is not configured on this poller", None)
                    for item in items]
        try:
            queue = client.fetch_queue()
        except ArrError as exc:
            return [(item, "failed", f"could not read the queue again: {exc.reason}", None) for item in items]
        current: dict[str, list[dict]] = defaultdict(list)
        for record in queue:
            current[download_key(record)].append(record)
        decisions = []
        for item in items:
            records = current.get(item["download_id"], [])
            why_not = recheck(item, records, self.policy, request["include_import_blocked"])
            if why_not is not None:
                decisions.append((item, "skipped", why_not, None))
                continue
            queue_ids = sorted(record["id"] for record in records)
            if request["dry_run"]:
                decisions.append((item, "dry_run", f"dry run: would remove {len(queue_ids)} queue record(s)", None))
                continue
            try:
                removed, answer = client.remove(queue_ids, self.policy.blocklist)
            except ArrError as exc:
                decisions.append((item, "failed", exc.reason, None))
                continue
            if removed:
                detail = "removed" + (" and blocklisted" if self.policy.blocklist else "")
                decisions.append((item, "removed", detail, answer))
            else:
                decisions.append((item, "skipped", "no longer in the queue", answer))
        return decisions

    def _write_audit(self, request: dict, decisions: list[tuple]) -> None:
        when = datetime.fromtimestamp(self.clock.now(), timezone.utc).isoformat()
        self.audit.append([{
            "time": when, "request_id": request["request_id"], "requested_by": request["requested_by"],
            "dry_run": request["dry_run"], "instance": item["instance"], "title": item["title"],
            "download_id": item["download_id"], "queue_ids": item["queue_ids"], "category": item["category"],
            "reason": item["reason"], "evidence": item.get("evidence"), "result": result, "detail": detail,
            "arr_response": answer,
        } for item, result, detail, answer in decisions])
