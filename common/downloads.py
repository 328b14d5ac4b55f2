"""What a download is, and what its queue records say of it (SPEC section 3).

Shared by the tracker, which decides what is stuck, and the poller, which
checks again before it removes anything. Statuses are matched on the *arr's
enum values, never on English message text (servers translate it).
"""
from __future__ import annotations

from typing import Any

# The status of a record whose *arr left out its status or size (see services.poller.normalize).
UNKNOWN_STATUS = "unknown"
# The client state of a torrent whose download client did not answer (see services.poller.download_clients).
CLIENT_UNREACHABLE = "unreachable"
# Client states in which a download is not downloading, whatever the *arr's last refresh said.
CLIENT_NOT_DOWNLOADING = {"paused", "queued", "checking", "completed"}
# A usenet client's job that is verifying, repairing, unpacking, moving or running a script (or queued for
# one of these): finished, not imported, whatever the *arr shows meanwhile.
CLIENT_POST_PROCESSING = "post_processing"
# Statuses (the *arr's, or the client's state) of a download someone put aside on purpose: never removed,
# whatever error the *arr shows meanwhile.
SET_ASIDE = {"paused", "queued", "delay"}
FAILED_STATES = {"failed", "failedPending", "downloadFailed", "downloadFailedPending"}
IMPORT_BLOCKED_STATES = {"importBlocked", "importFailed"}


def download_key(record: dict[str, Any]) -> str:
    """A download is its downloadId; a record without one is its own download."""
    return record["download_id"] or f"queue:{record['id']}"


def is_finished(record: dict[str, Any]) -> bool:
    """Nothing left to download: the client's figures when it has them, else the *arr's."""
    size, sizeleft = record_sizes(record)
    return size > 0 and sizeleft == 0


def classify(record: dict[str, Any]) -> str:
    """One record's activity (SPEC section 3): "failed", "attention" (import blocked), "finished"
    (nothing left, not imported), "active", "unavailable" or "idle"."""
    status, state = record["status"], record["tracked_state"]
    if status == "downloadClientUnavailable":
        return "unavailable"
    if status == "failed" or state in FAILED_STATES:
        return "failed"
    if state in IMPORT_BLOCKED_STATES:
        return "attention"
    if state not in (None, "downloading"):
        return "idle"  # importPending, importing, imported, ignored: the tracked state decides over the status
    client = client_figures(record)
    if client is not None and client["state"] == CLIENT_POST_PROCESSING:
        return "finished"  # whatever the *arr shows: Sonarr calls NZBGet's post-processing jobs paused
    if status in ("paused", "delay"):
        return "idle"
    if is_finished(record):
        return "finished"  # a usenet client verifying, repairing or unpacking: complete, never stuck
    active = (status in ("downloading", "warning")
              # a magnet whose metadata never came, or a client error while queued
              or (status == "queued" and bool(record["error_message"] or record["size"] == 0)))
    if active and client is not None and client["state"] in CLIENT_NOT_DOWNLOADING:
        return "idle"  # the client itself says it is paused, queued, checking or done: never stuck
    return "active" if active else "idle"


def classify_download(records: list[dict[str, Any]]) -> str:
    """A download's activity (see download_activity)."""
    return download_activity({classify(record) for record in records})


def download_activity(activities: set[str]) -> str:
    """A download's activity from its records': their one activity, or "idle" when they disagree
    (never removed)."""
    return next(iter(activities)) if len(activities) == 1 else "idle"


def client_figures(record: dict[str, Any]) -> dict[str, Any] | None:
    """The download client's own figures for this record, when its client answered."""
    client = record["client"]
    return client if client is not None and client["state"] != CLIENT_UNREACHABLE else None


def below_critical_health(record: dict[str, Any]) -> bool:
    """A usenet job its client says is missing more articles than its repair data covers."""
    client = client_figures(record)
    health, critical = (client.get("health"), client.get("critical_health")) if client else (None, None)
    return health is not None and critical is not None and health < critical


def unreachable_client(records: list[dict[str, Any]]) -> str | None:
    """The name of the download client that did not answer for this download, or None."""
    client = records[0]["client"]
    return client["name"] if client is not None and client["state"] == CLIENT_UNREACHABLE else None


def record_sizes(record: dict[str, Any]) -> tuple[int, int]:
    """(size, sizeleft) of one record: the client's own byte counts when it has them, else the *arr's."""
    client = client_figures(record)
    if client is not None:
        return client["size"], client["size"] - client["downloaded"]
    return record["size"], record["sizeleft"]


def measure(records: list[dict[str, Any]]) -> tuple[int, int, int, float]:
    """(size, sizeleft, downloaded bytes, progress %) of a download."""
    return measure_sizes([record_sizes(record) for record in records])


def measure_sizes(sizes: list[tuple[int, int]]) -> tuple[int, int, int, float]:
    """(size, sizeleft, downloaded bytes, progress %) from each record's (size, sizeleft).

    A season pack repeats the pack's full size on every record: take it once.
    """
    if len(sizes) == 1:  # one record, as most downloads are
        size, sizeleft = sizes[0]
        return size, sizeleft, size - sizeleft, 100.0 * (size - sizeleft) / size if size > 0 else 0.0
    size = max(record_size for record_size, _ in sizes)
    sizeleft = max((left for record_size, left in sizes if record_size == size), default=0)
    downloaded = size - sizeleft
    progress = 100.0 * downloaded / size if size > 0 else 0.0
    return size, sizeleft, downloaded, progress
