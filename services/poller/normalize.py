"""Turn one *arr queue record into discarr's normalised record (protocol.RECORD_FIELDS).

The *arrs omit null fields, some send sizes as decimals, Sonarr v5 spells
`sizeLeft`, and a broken server may send anything: this is the one place that
copes, so the tracker can trust every field's type.
"""
from __future__ import annotations

import math
from typing import Any

from common.downloads import UNKNOWN_STATUS

MAX_BYTES = 2 ** 63 - 1  # the largest integer msgpack carries


def _bytes(value: Any) -> int:
    """A size as sent by the *arr (int, decimal or missing) in whole bytes; 0 for what is not a size
    (NaN, infinity, beyond what msgpack carries)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0
    if isinstance(value, float) and not math.isfinite(value):
        return 0
    size = max(0, int(value))
    return size if size <= MAX_BYTES else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# The key of the series, movie, artist or author a record includes (the queue's include options)
PARENT_KEYS = ("series", "movie", "artist", "author")


def _arr_tags(raw: dict[str, Any], tags: dict[int, str]) -> list[str]:
    """The labels of the *arr tags on the record's series, movie, artist or author."""
    parent = next((raw[key] for key in PARENT_KEYS if isinstance(raw.get(key), dict)), {})
    return [tags[tag] for tag in parent.get("tags") or () if isinstance(tag, int) and tag in tags]


def normalize_record(raw: dict[str, Any], tags: dict[int, str] | None = None) -> dict[str, Any] | None:
    """The normalised record, or None when it has no usable queue id. With `tags` (the *arr's tag list,
    read for PROTECT_TAGS), the record carries the labels of its series/movie/... tags."""
    queue_id = raw.get("id")
    if isinstance(queue_id, bool) or not isinstance(queue_id, int):
        return None
    size = _bytes(raw.get("size"))
    sizeleft = _bytes(raw.get("sizeleft", raw.get("sizeLeft")))
    status = _text(raw.get("status"))
    return {
        "id": queue_id,
        "download_id": _text(raw.get("downloadId")),
        "title": _text(raw.get("title")) or f"queue item {queue_id}",
        "status": status or UNKNOWN_STATUS,
        "tracked_status": _text(raw.get("trackedDownloadStatus")),
        "tracked_state": _text(raw.get("trackedDownloadState")),
        "error_message": _text(raw.get("errorMessage")),
        "size": size,
        "sizeleft": min(sizeleft, size),
        "eta": _text(raw.get("estimatedCompletionTime")),
        "added": _text(raw.get("added")),
        "protocol": _text(raw.get("protocol")),
        "download_client": _text(raw.get("downloadClient")),
        "indexer": _text(raw.get("indexer")),
        "client": None,  # filled in by services.poller.download_clients when a client has it
        "removed_before": 0,
        **({"arr_tags": _arr_tags(raw, tags)} if tags is not None else {}),
    }
