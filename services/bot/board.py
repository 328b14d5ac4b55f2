"""The status board's content, built by plain functions from the tracker's "check" answer.

`board_rows` decides what the board says; the terminal and Discord renderers
only lay it out, so both show the same thing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from common.units import human_duration, human_size

BAR_WIDTH = 12


@dataclass(frozen=True)
class BoardRow:
    instance: str
    title: str
    bar: str
    progress: float
    size: str
    eta: datetime | None
    mark: str          # "" for a healthy mover; "STUCK 2.1 h", "soon stuck (95 min)", ...
    severity: int      # 2 stuck/inactive, 1 soon stuck/attention/outage hold, 0 fine


def progress_bar(percent: float, width: int = BAR_WIDTH) -> str:
    filled = int(round(max(0.0, min(100.0, percent)) / 100 * width))
    return "█" * filled + "░" * (width - filled)


# What the *arrs send: .NET's round-trip format, with 0-7 fraction digits and "Z" or an offset.
# One parser of our own, because datetime.fromisoformat reads it on Python 3.11 but not on 3.10.
_ISO_TIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?"
                       r"(Z|[+-]\d\d:?\d\d)?", re.IGNORECASE)


def parse_eta(value: str | None) -> datetime | None:
    """An aware datetime from an *arr's time string; None for a missing or unreadable one."""
    match = _ISO_TIME.fullmatch(value.strip()) if value else None
    if match is None:
        return None
    *fields, fraction, offset = match.groups()
    microsecond = int((fraction or "0")[:6].ljust(6, "0"))  # 7 digits: the 100 ns tick is dropped
    try:
        return datetime(*map(int, fields), microsecond, tzinfo=_zone(offset))
    except ValueError:  # month 13, hour 25, an offset of a day or more
        return None


def _zone(offset: str | None) -> timezone:
    """No offset is UTC: the *arrs keep every time in UTC."""
    if offset is None or offset.upper() == "Z":
        return timezone.utc
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def _mark(item: dict[str, Any]) -> tuple[str, int]:
    mark, severity = _state_mark(item)
    if item.get("protected_by"):  # still shown and warned about, never removed (SPEC 4.2)
        return f"{mark}; protected ({item['protected_by']})" if mark else f"protected ({item['protected_by']})", \
            min(severity, 1)
    return mark, severity


def _state_mark(item: dict[str, Any]) -> tuple[str, int]:
    stalled = human_duration(item["stalled_minutes"])
    if item.get("withheld") and item["category"] in ("stuck", "inactive"):
        return f"{item['category']}, but {item['withheld']}", 1
    if item["category"] == "stuck":
        again = " (recurring: it came back after a removal)" if item.get("recurring") else ""
        return f"STUCK, no progress for {stalled}{again}", 2
    if item["category"] == "inactive":
        return f"FAILED: {item['reason']}", 2
    if item["category"] == "attention":
        if item.get("attention") == "not_imported":
            return f"needs attention: {item['reason']}", 1
        return "needs attention: import blocked", 1
    if item["category"] == "slow":
        return f"slow: {item['reason']}", 1
    if item["on_hold"]:
        return "client outage: clock held", 1
    if item["soon_stuck"]:
        return f"soon stuck: no progress for {stalled}", 1
    if item["activity"] == "unavailable":
        return "download client unavailable", 1
    if item["activity"] == "finished":
        return item["reason"], 0  # a usenet job's post-processing stage: "unpacking for 3 min (nzbget)"
    return "", 0


def board_rows(check: dict[str, Any]) -> list[BoardRow]:
    """Rows for every active download and every one that needs a look, worst first."""
    rows = []
    for item in check["downloads"]:
        mark, severity = _mark(item)
        if item["activity"] not in ("active", "finished") and severity == 0:
            continue  # paused, queued, completed: not the board's business
        rows.append(BoardRow(
            instance=item["instance"], title=item["title"], bar=progress_bar(item["progress"]),
            progress=item["progress"], size=human_size(item["size"]), eta=parse_eta(item["eta"]),
            mark=mark, severity=severity))
    rows.sort(key=lambda row: (-row.severity, row.instance, row.title))
    return rows


def unhealthy_services(check: dict[str, Any]) -> list[dict[str, Any]]:
    """The *arr instances and download clients that are not healthy now."""
    return [service for service in (*check.get("instances", ()), *check.get("download_clients", ()))
            if not service["healthy"]]


def health_lines(check: dict[str, Any]) -> list[tuple[str, str]]:
    """(level, line) for each instance and download client, then each outage; level is ok, down or outage."""
    lines = []
    for instance in check["instances"]:
        if instance["healthy"]:
            lines.append(("ok", f"{instance['name']}: ok, {instance['records']} queue records"))
        else:
            lines.append(("down", f"{instance['name']}: UNHEALTHY ({instance['state']}): {instance['error']}"))
    for client in check.get("download_clients", ()):
        if client["healthy"]:
            lines.append(("ok", f"{client['name']}: ok (download client)"))
        else:
            lines.append(("down", f"{client['name']}: UNHEALTHY ({client['state']}): {client['error']}; "
                                  "its torrents are not judged or removed until it answers"))
    for outage in check.get("outages", ()):
        lines.append(("outage", f"{outage['instance']}: {outage['download_client']} stopped every download at "
                                "once (outage); stuck clocks held"))
    auto = check.get("auto_cleanup")
    if auto:
        lines.append(("auto", auto_cleanup_line(auto)))
    return lines


def auto_cleanup_line(report: dict[str, Any]) -> str:
    """Automatic cleanup's state in one line: off, dry run or on (which categories), removals this hour, holds."""
    line = f"automatic cleanup: {report['state']}"
    removed = sum(report.get("removed_this_hour", {}).values())
    if removed:
        line += f"; {removed} removed this hour (at most {report['config']['max_per_hour']} per instance)"
    for instance, why in sorted(report.get("held", {}).items()):
        line += f"; holding {instance}: {why}"
    return line


def kept_for_now(analysis: dict[str, Any], include_import_blocked: bool, include_slow: bool
                 ) -> list[tuple[str, list[dict[str, Any]]]]:
    """What a cleanup leaves in place although the analysis found it, each group titled with why."""
    attention = analysis.get("attention") or []
    kept = [("Kept: protected (a rule, or an admin kept it)", analysis.get("protected") or []),
            ("Kept: download client unreachable, no fresh evidence", analysis.get("withheld") or [])]
    if not include_import_blocked:
        kept.append(("Kept: import blocked, needs a human (include import-blocked to remove them)",
                     [item for item in attention if item.get("attention") != "not_imported"]))
    kept.append(("Kept: finished, waiting for import (never removed)",
                 [item for item in attention if item.get("attention") == "not_imported"]))
    if not include_slow:
        kept.append(("Kept: slow (include slow to remove them)", analysis.get("slow") or []))
    return [(title, items) for title, items in kept if items]


def instance_threshold_lines(progress: dict[str, Any]) -> list[str]:
    """Each instance that overrides the thresholds (SPEC 4.2), with the ones it is judged by."""
    config = progress.get("config") or {}
    lines = []
    for instance in progress.get("instances", ()):
        own = instance.get("thresholds") or {}
        if any(own.get(key) != config.get(key) for key in own):
            lines.append(f"{instance['name']}: stuck after {human_duration(float(own['stuck_threshold_minutes']))} "
                         f"of less than {float(own['min_progress_change']):g} points and "
                         f"{human_size(float(own['min_size_change']))}; slow beyond "
                         f"{float(own['slow_max_eta_hours']):g} h")
    return lines


def removal_consequences(candidates: list[dict[str, Any]], *, blocklist: bool, keep_private: bool) -> str:
    """What removing these candidates does, as every preview says it before anyone confirms."""
    words = ("Each is deleted from its download client and its release is blocklisted, so the *arr "
             "searches for another." if blocklist else
             "Each is deleted from its download client; the release is not blocklisted.")
    if keep_private and any(item.get("private") for item in candidates):
        words += " Private torrents are removed from the *arr only and keep seeding."
    if any(item.get("recurring") for item in candidates):
        words += " Recurring ones are always blocklisted, so the same release is never grabbed again."
    return words


def matching_downloads(downloads: list[dict[str, Any]], typed: str) -> list[dict[str, Any]]:
    """The downloads a typed value names: the one with that id (or "instance/id"), else every one whose
    title contains it."""
    needle = typed.strip().casefold()
    exact = [d for d in downloads if needle in (d["download_id"].casefold(),
                                                f"{d['instance']}/{d['download_id']}".casefold())]
    return exact or [d for d in downloads if needle and needle in (d.get("title") or "").casefold()]


def several_downloads(found: list[dict[str, Any]], typed: str) -> str:
    """Words for a typed value that names more than one download: the first five of them."""
    names = "; ".join(f"{d.get('title') or d['download_id']} ({d['instance']}, {d['download_id']})" for d in found[:5])
    return f"{len(found)} downloads match {typed!r}: {names}"


def result_groups(results: list[dict[str, Any]], *, dry_run: bool) -> dict[str, list[dict[str, Any]]]:
    """A poller's RESULTs by outcome: removed, would (be removed: a dry run), skipped, failed."""
    groups: dict[str, list[dict[str, Any]]] = {"removed": [], "would": [], "skipped": [], "failed": []}
    for result in results:
        kind = result.get("result")
        if dry_run and kind == "skipped" and str(result.get("detail", "")).startswith("dry run"):
            kind = "would"  # the poller answers a dry run's "would remove" as a skip saying so
        groups.get(kind, groups["failed"]).append(result)
    return groups


def auto_cleanup_candidates(report: dict[str, Any]) -> list[tuple[str, float | None]]:
    """Each download automatic cleanup is confirming: a line, and when it will be removed (None: the next hour)."""
    return [(f"{item['title']} ({item['instance']}, {item['category']}): {item['confirmations']}/{item['needed']} "
             "confirmations" + ("; over this hour's cap" if item["waiting_for_next_hour"] else ""),
             item["removal_at"]) for item in report.get("candidates", ())]
