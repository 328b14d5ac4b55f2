"""Normalised queue records and snapshots for tracker tests (the poller's output shape)."""
from __future__ import annotations

from typing import Any

GB = 1024 ** 3
MB = 1024 ** 2


def record(queue_id: int, download_id: str | None, *, size: int = 10 * GB, downloaded: int = 0,
           status: str = "downloading", tracked_status: str = "ok", tracked_state: str = "downloading",
           error_message: str | None = None, download_client: str = "qBittorrent", title: str | None = None,
           **extra: Any) -> dict[str, Any]:
    fields = {
        "id": queue_id, "download_id": download_id, "title": title or f"Download.{download_id or queue_id}",
        "status": status, "tracked_status": tracked_status, "tracked_state": tracked_state,
        "error_message": error_message, "size": size, "sizeleft": max(0, size - downloaded),
        "eta": None, "added": None, "protocol": "torrent", "download_client": download_client, "indexer": None,
        "client": None, "removed_before": 0,
    }
    fields.update(extra)
    return fields


def client_figures(downloaded: int, size: int = 10 * GB, *, state: str = "stalled", name: str = "qbittorrent",
                   private: bool | None = False, **extra: Any) -> dict[str, Any]:
    """A download client's own figures for one torrent (protocol.CLIENT_FIELDS)."""
    figures = {"name": name, "kind": "qbittorrent", "state": state, "client_state": "stalledDL",
               "downloaded": downloaded, "size": size, "download_speed": 0, "last_activity": None,
               "seeds": 0, "peers": 0, "private": private}
    figures.update(extra)
    return figures


def snapshot(instance: str, records: list[dict] | None, *, kind: str = "sonarr", state: str = "ok",
             error: str | None = None, poller: str = "poller", next_within: float = 1e9,
             clients: list[dict] | None = None) -> dict[str, Any]:
    # A huge next_within: unit tests move the clock far without making the instance stale.
    return {"instance": instance, "kind": kind, "taken_at": 0.0,
            "poller": {"name": poller, "endpoint": "", "next_within": next_within},
            "health": {"state": state, "error": error}, "clients": clients or [], "records": records}
