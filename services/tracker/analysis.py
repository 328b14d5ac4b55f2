"""The verdict on each download: stuck, inactive, needs attention, soon stuck (SPEC section 3).

Pure functions over `DownloadHistory`: no sockets, no clock of their own.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

from common.downloads import SET_ASIDE
from common.units import human_duration, human_size
from services.tracker.history import DetectionConfig, DownloadHistory
from services.tracker.stats import Outcome, release_group

SOON_STUCK_FRACTION = 0.75


class Finding(NamedTuple):
    """One download as the analysis sees it now (a NamedTuple: made for every download at every ingest)."""

    history: DownloadHistory
    category: str | None        # "stuck", "inactive", "slow", "attention" or None
    soon_stuck: bool
    stalled_s: float            # seconds (holds excluded) without meaningful progress; 0 when moving
    stalled_from: float | None  # when that stretch began
    start_bytes: int
    start_progress: float
    reason: str
    completion_at: float | None = None  # estimated from the measured rate, for movers
    attention: str | None = None        # why it needs a human: "import_blocked" or "not_imported"

    def item(self) -> dict[str, Any]:
        """The ITEM of SPEC section 5, plus its evidence."""
        history = self.history
        first = history.first
        size, sizeleft, downloaded, progress = history.measured()
        client = first.client
        return {
            "instance": history.instance,
            "download_id": history.key,
            "queue_ids": sorted(record.id for record in history.records),
            "title": first.title,
            "status": first.status,
            "category": self.category,
            "attention": self.attention,
            "progress": round(progress, 2),
            "size": size,
            "sizeleft": sizeleft,
            "stalled_minutes": round(self.stalled_s / 60.0, 2),
            "reason": self.reason,
            "activity": history.activity,
            "soon_stuck": self.soon_stuck,
            "on_hold": history.on_hold,
            "eta": first.eta,
            "protocol": first.protocol,
            "download_client": first.download_client,
            "estimated_completion": self.completion_at,
            "client": None if client is None else client.as_message(),
            "private": None if client is None else client.private,
            "removed_before": first.removed_before,
            "recurring": first.removed_before > 0,
            "withheld": history.withheld,
            "protected_by": history.protected_by,  # never removed, and why (SPEC 4.2)
            "client_name": history.client_name,  # the download client it is in, as outages group downloads
            "observed_at": history.last_seen,    # its latest snapshot: a confirmation needs a newer one
            "evidence": {
                "source": "queue" if client is None else client.name,
                "since": self.stalled_from,
                "start_bytes": self.start_bytes, "end_bytes": downloaded,
                "start_progress": round(self.start_progress, 2), "end_progress": round(progress, 2),
            },
        }


def _minutes(seconds: float) -> str:
    return human_duration(seconds / 60.0)


def _points(value: float, *, signed: bool = False) -> str:
    """Progress points: "1 point", "2 points", "0.5 points"; signed, a change: "+0.98 points"."""
    number = f"{value:+g}" if signed else f"{value:g}"
    return f"{number} {'point' if abs(value) == 1 else 'points'}"


def _moved_points(change: float) -> str:
    """A change below a threshold, cut (not rounded) to 2 decimals so 0.996 never reads "+1 point"."""
    return _points(math.trunc(round(change * 100, 6)) / 100, signed=True)


def _moved_bytes(moved: float, limit: float) -> str:
    """Bytes moved below a threshold; "just under" when rounding would show the threshold itself."""
    shown = human_size(moved)
    return f"just under {shown}" if moved < limit and shown == human_size(limit) else shown


def _stalled_for(stalled_s: float, moved: float, change: float) -> str:
    """ "no progress for 2 h 5 min" when nothing moved, else "too little progress for 1 min"."""
    quality = "no" if moved <= 0 and change <= 0 else "too little"
    return f"{quality} progress for {_minutes(stalled_s)}"


def _stuck_reason(stalled_s: float, moved: float, change: float, config: DetectionConfig) -> str:
    """ "too little progress for 1 min: +0.98 points and 30.0 MB (needs 1 point or 100.0 MB)",
    or "no progress for 2 h 5 min" when nothing moved at all."""
    reason = _stalled_for(stalled_s, moved, change)
    if moved <= 0 and change <= 0:
        return reason
    return (f"{reason}: {_moved_points(change)} and {_moved_bytes(moved, config.min_bytes)} "
            f"(needs {_points(config.min_progress)} or {human_size(config.min_bytes)})")


def _slow_reason(rate: float, sizeleft: float, config: DetectionConfig) -> str:
    """ "at 20.0 KB/s it needs 24 days (more than 3 days)"; the remark only when it reads differently."""
    needs = "forever" if rate <= 0 else _minutes(sizeleft / rate)
    limit = _minutes(config.slow_eta_s)
    remark = f" (more than {limit})" if needs != limit else ""
    return f"at {human_size(rate)}/s it needs {needs}{remark}"


def client_evidence(history: DownloadHistory) -> str:
    """What the download client itself says, for a reason: "; qbittorrent: stalledDL, 0 seeds, 0 peers"."""
    client = history.first.client
    if client is None:
        return ""
    return f"; {client.name}: {client.client_state}, {client.seeds} seeds, {client.peers} peers"


def _recurring(history: DownloadHistory, reason: str) -> str:
    removed_before = history.first.removed_before
    return f"recurring (removed {removed_before}x before): {reason}" if removed_before else reason


def _gave_up(history: DownloadHistory, now: float, downloaded: int, progress: float,
             config: DetectionConfig) -> bool:
    """Whether the error the *arr shows may make this download inactive: not when it is finished (the
    *arr warns about the import while the client unpacks), import-blocked (that needs a human), paused
    or queued, nor while it still moves by the thresholds (the *arr has not given up on it)."""
    first = history.first
    if history.activity in ("attention", "finished"):
        return False
    if first.status in SET_ASIDE or (first.client is not None and first.client.state in SET_ASIDE):
        return False
    if history.activity == "active":
        stretch = history.stalled_since(now, downloaded, progress, config)
        return stretch is not None and history.counted_seconds(stretch[0], now) >= config.threshold_s
    return True


def examine(history: DownloadHistory, config: DetectionConfig) -> Finding:
    """The verdict on one download, from the evidence up to its last observation.

    Time without observations (a tracker restart, an *arr that does not answer) is
    not evidence that a download stopped moving, so the clock is read at `last_seen`.
    """
    now = history.last_seen
    size, sizeleft, downloaded, progress = history.measured()

    def settled(category: str | None, reason: str, *, attention: str | None = None, stalled_s: float = 0.0,
                stalled_from: float | None = None) -> Finding:
        """A verdict that needs no progress measurement."""
        return Finding(history, category, False, stalled_s, stalled_from, downloaded, progress, reason,
                       attention=attention)

    client = history.first.client
    if history.activity == "failed":
        state = history.first.tracked_state or history.first.status
        return settled("inactive", _recurring(history, f"{history.instance} marked it failed ({state})"))
    if client is not None and client.below_critical_health and history.activity != "finished":
        return settled("inactive", _recurring(history, f"articles missing: health {client.health:.1f} %, needs "
                                                        f"{client.critical_health:.1f} % ({client.name})"))
    if history.error_since is not None and _gave_up(history, now, downloaded, progress, config):
        errored = history.counted_seconds(history.error_since, now)
        if errored >= config.threshold_s:
            return settled("inactive", _recurring(history, f"{history.instance} has reported an error for "
                                                            f"{_minutes(errored)}"),
                           stalled_s=errored, stalled_from=history.error_since)
    if history.activity == "attention":
        return settled("attention", "completed but import is blocked: needs a human", attention="import_blocked")
    if history.activity == "finished":
        finished = history.counted_seconds(history.since, now)
        stage = (f"{history.stage} for {_minutes(history.counted_seconds(history.stage_since, now))} ({client.name})"
                 if client is not None and history.stage and history.stage_since is not None else None)
        if finished >= config.threshold_s:
            waiting = stage or "the *arr is still waiting for its download client (unpacking?)"
            return settled("attention", f"finished {_minutes(finished)} ago, not imported: {waiting}",
                           attention="not_imported")
        return settled(None, stage or "finished: verifying, repairing or unpacking, then imported")
    stretch = history.stalled_since(now, downloaded, progress, config)
    if stretch is None:
        # Not downloading: the client's own word when it has one ("sabnzbd: paused", "nzbget: queued").
        return settled(None, f"{client.name}: {client.state} ({client.client_state})"
                       if client is not None and history.activity == "idle" else history.activity)
    since, start = stretch
    stalled = history.counted_seconds(since, now)
    moved = downloaded - start.downloaded
    if stalled >= config.threshold_s:
        reason = _stuck_reason(stalled, moved, progress - start.progress, config) + client_evidence(history)
        return Finding(history, "stuck", False, stalled, since, start.downloaded, start.progress,
                       _recurring(history, reason))
    rate = history.rate(now, downloaded, config.threshold_s)
    completion = now + sizeleft / rate if rate > 0 and size > 0 else None
    active_for = history.counted_seconds(history.since, now)
    if (config.slow_eta_s > 0 and active_for >= config.threshold_s and sizeleft > 0
            and (rate <= 0 or sizeleft / rate > config.slow_eta_s)):
        return Finding(history, "slow", False, stalled, since, start.downloaded, start.progress,
                       _recurring(history, _slow_reason(rate, sizeleft, config)), completion)
    soon = stalled >= SOON_STUCK_FRACTION * config.threshold_s
    reason = (f"{_stalled_for(stalled, moved, progress - start.progress)}, "
              f"stuck in {_minutes(config.threshold_s - stalled)}"
              if soon else "downloading")
    if history.on_hold:
        reason = "clock held: its download client stopped all downloads at once (outage)"
    return Finding(history, None, soon, stalled, since, start.downloaded, start.progress, reason, completion)


# Tracked states in which the *arr has the download's files and imports them.
IMPORTING_STATES = {"importPending", "importing", "imported"}


def outcome(history: DownloadHistory) -> Outcome:
    """How a download's stay in the queue ended, when it leaves it (SPEC 5.1)."""
    first = history.first
    size, _, _, _ = history.measured()
    if history.removed_as is not None:
        ended, (category, automatic) = "removed", history.removed_as
    else:
        category, automatic = None, False
        if history.activity == "failed":
            ended = "failed"
        elif (history.activity == "finished" or first.tracked_state in IMPORTING_STATES
              or first.status == "completed" and history.activity != "attention"):
            ended = "completed"
        else:
            ended = "gone"
    return Outcome(
        instance=history.instance, download_id=history.key, title=first.title,
        release_group=release_group(first.title), indexer=first.indexer,
        download_client=first.download_client, protocol=first.protocol, size=size,
        first_seen=history.first_seen, last_seen=history.last_seen, outcome=ended,
        category=category, automatic=automatic, was_stuck=history.was_stuck, was_inactive=history.was_inactive,
        was_slow=history.was_slow, longest_stall_s=history.longest_stall_s,
        mean_speed_bps=history.active_bytes / history.active_s if history.active_s > 0 else None,
        recurred=first.removed_before)


def failed_job_item(client: str, job: dict[str, Any]) -> dict[str, Any]:
    """A usenet client's failed history entry that no *arr still queues, as a cleanup candidate (an ITEM;
    CLEANUP_USENET_FAILED): removed from the client's history with its files."""
    return {"instance": client, "download_id": job["id"], "queue_ids": [], "title": job["title"], "status": "failed",
            "category": "inactive", "attention": None, "progress": 0.0, "size": job["size"], "sizeleft": 0,
            "stalled_minutes": 0.0, "activity": "failed", "soon_stuck": False, "on_hold": False, "eta": None,
            "reason": f"failed in {client}'s history ({job['state']}); no *arr has it in its queue: its files "
                      "are left behind",
            "protocol": "usenet", "download_client": client, "client": None, "private": None, "removed_before": 0,
            "recurring": False, "withheld": None, "client_name": client, "observed_at": None,
            "client_history": True, "history_id": job["history_id"], "evidence": {"source": client}}


def failed_job_outcome(client: str, job: dict[str, Any], first_seen: float, last_seen: float,
                       removed: bool) -> Outcome:
    """How a failed history entry's stay in its client ended: removed by discarr, or gone otherwise."""
    return Outcome(
        instance=client, download_id=job["id"], title=job["title"], release_group=release_group(job["title"]),
        indexer=None, download_client=client, protocol="usenet", size=job["size"], first_seen=first_seen,
        last_seen=last_seen, outcome="removed" if removed else "gone", category="inactive" if removed else None,
        automatic=False, was_stuck=False, was_inactive=True, was_slow=False, longest_stall_s=0.0,
        mean_speed_bps=None, recurred=0)
