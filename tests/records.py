"""Normalised queue records and snapshots for tracker tests (the poller's output shape)."""
from __future__ import annotations

from typing import Any

GB = 1024 ** 3
MB = 1024 ** 2


def record(queue_id: int, download_id: str | None, *, size: int = 10 * GB, downloaded: int = 0,
           status: str = "downloading", tracked_status: str = "ok", tracked_state: str = "downloading",
           error_message: str | None = None, client: str = "qBittorrent", title: str | None = None,
           **extra: Any) -> dict[str, Any]:
    fields = {
        "id": queue_id, "download_id": download_id, "title": title or f"Download.{download_id or queue_id}",
        "status": status, "tracked_status": tracked_status, "tracked_state": tracked_state,
        "error_message": error_message, "size": size, "sizeleft": max(0, size - downloaded),
        "eta": None, "added": None, "protocol": "torrent", "download_client": client,
    }
    fields.update(extra)
    return fields


def snapshot(instance: str, records: list[dict] | None, *, kind: str = "sonarr", state: str = "ok",
             error: str | None = None, poller: str = "poller", next_within: float = 1e9) -> dict[str, Any]:
    # A huge next_within: unit tests move the clock far without making the instance stale.
    return {"instance": instance, "kind": kind, "taken_at": 0.0,
            "poller": {"name": poller, "endpoint": "", "next_within": next_within},
            "health": {"state": state, "error": error}, "records": records}
