"""simarr's downloads from a real qBittorrent, listed as Sonarr/Radarr/Lidarr/Readarr list them.

With `discarr simarr --downloads-from NAME`, every instance also shows the torrents
of that qBittorrent in its kind's category, mapped as the *arr's qBittorrent client
maps them (Sonarr v4 QBittorrent.cs GetItems): one record per torrent, its
downloadId the upper-case hash, its queue id kept for as long as it is listed.
qBittorrent is asked once per queue read; while it cannot be asked, the last known
torrents stay in the queue as downloadClientUnavailable.

Removing such a record with removeFromClient deletes the torrent and its files in
qBittorrent; without, the torrent stays there and the instance ignores it from then
on, as the *arr does.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from common.settings import DownloadClientConfig
from common.torrent_clients import ClientError, QBittorrentApi
from services.simarr.model import CLIENT_UNAVAILABLE, Download, SimInstance, queue_view

log = logging.getLogger("simarr")

CLIENT_NAME = "qBittorrent"  # the *arr's default name for the client
CATEGORY = {"sonarr": "tv-sonarr", "radarr": "radarr", "lidarr": "lidarr", "readarr": "readarr"}
NO_ETA = 8_640_000  # qBittorrent's eta when it has none
# Well under discarr's request timeout, so a hung qBittorrent shows as unavailable
# rather than as simarr itself not answering.
CLIENT_TIMEOUT_SECONDS = 2.0

_METADATA = "qBittorrent is downloading metadata"
# qBittorrent state -> (queue status, the *arr's message), as Sonarr v4 maps them. Sonarr
# says _METADATA only with DHT on (else a warning that it cannot resolve the magnet);
# simarr does not read qBittorrent's preferences and always says it.
QUEUE_STATUS: dict[str, tuple[str, str | None]] = {
    "stalledDL": ("warning", "The download is stalled with no connections"),
    "error": ("warning", "qBittorrent is reporting an error"),
    "missingFiles": ("warning", "The download is missing files"),
    "metaDL": ("queued", _METADATA),
    "forcedMetaDL": ("queued", _METADATA),
    "pausedDL": ("paused", None),
    "stoppedDL": ("paused", None),  # qBittorrent 5's name for pausedDL
    "queuedDL": ("queued", None),
    "checkingDL": ("queued", None),
    "checkingUP": ("queued", None),  # a recheck after completion may still fail
    "checkingResumeData": ("queued", None),
    "downloading": ("downloading", None),
    "forcedDL": ("downloading", None),
    "moving": ("downloading", None),
    **dict.fromkeys(("uploading", "stalledUP", "pausedUP", "queuedUP", "forcedUP", "stoppedUP"),
                    ("completed", None)),
}


def _sizeleft(torrent: dict[str, Any]) -> int:
    """Bytes left as Sonarr computes them: size * (1 - progress)."""
    return int(int(torrent.get("size") or 0) * (1.0 - float(torrent.get("progress") or 0.0)))


def torrent_view(torrent: dict[str, Any], now: float) -> dict[str, Any]:
    """The record fields an *arr shows for one entry of qBittorrent's torrents/info.

    A state Sonarr does not know (e.g. `allocating`) is, as in Sonarr, downloading with
    the message "Unknown download state: {state}".
    """
    state = str(torrent.get("state"))
    status, message = QUEUE_STATUS.get(state, ("downloading", f"Unknown download state: {state}"))
    eta = torrent.get("eta")
    seconds_left = eta if isinstance(eta, int) and 0 <= eta < NO_ETA else None
    return queue_view(status, int(torrent.get("size") or 0), _sizeleft(torrent), now,
                      seconds_left=seconds_left, message=message)


@dataclass
class TorrentDownload(Download):
    """A download whose figures are a qBittorrent torrent's, not simulated."""
    scripted: ClassVar[bool] = False
    torrent: dict[str, Any] = field(default_factory=dict)  # its latest entry of torrents/info
    reachable: bool = True  # False while qBittorrent cannot be asked: the last entry stays

    @classmethod
    def of(cls, torrent: dict[str, Any]) -> TorrentDownload:
        download = cls(download_id=torrent["hash"].upper(), title="", size=0, protocol="torrent",
                       download_client=CLIENT_NAME, message=None, created_at=float(torrent.get("added_on") or 0),
                       state="", rate=0.0, downloaded=0.0, script=[])
        download.show(torrent)
        return download

    def show(self, torrent: dict[str, Any]) -> None:
        """Take qBittorrent's latest entry (a magnet's name changes once its metadata comes)."""
        self.torrent, self.reachable = torrent, True
        self.state = str(torrent.get("state"))
        self.size = int(torrent.get("size") or 0)
        self.downloaded = self.size - _sizeleft(torrent)
        self.title = str(torrent.get("name") or self.download_id)
        for record in self.records:
            record["title"] = self.title

    def advance(self, sim_now: float) -> None:
        """Nothing to integrate: qBittorrent keeps the figures."""

    def view(self, kind: str, now: float, speed: float) -> dict[str, Any]:
        view = torrent_view(self.torrent, now)
        return view if self.reachable else view | CLIENT_UNAVAILABLE


class QBittorrentSource:
    """One qBittorrent shared by every instance: its session behind a lock, each outage logged once."""

    def __init__(self, config: DownloadClientConfig, timeout: float = CLIENT_TIMEOUT_SECONDS) -> None:
        self._api = QBittorrentApi(config, timeout)
        self._lock = threading.Lock()
        self._failing = False

    def torrents(self, category: str) -> list[dict[str, Any]] | None:
        """The torrents in `category`, or None while qBittorrent cannot tell."""
        with self._lock:
            try:
                listed = self._api.torrents(category=category)
            except ClientError as error:
                if not self._failing:
                    log.warning("%s; its torrents stay in the queue as downloadClientUnavailable", error.reason)
                self._failing = True
                return None
            if self._failing:
                log.info("%s answers again", self._api.config.name)
            self._failing = False
        return [torrent for torrent in listed if isinstance(torrent, dict) and isinstance(torrent.get("hash"), str)]

    def delete(self, hashes: list[str]) -> None:
        """Delete torrents and their files; ClientError when qBittorrent cannot."""
        with self._lock:
            self._api.delete(hashes)


class TorrentFeed:
    """One instance's share of qBittorrent: a download per torrent of its category, less those
    removed from its queue. The instance calls it under its own lock."""

    def __init__(self, source: QBittorrentSource, category: str) -> None:
        self.source = source
        self.category = category
        self._downloads: dict[str, TorrentDownload] = {}  # by lower-case hash
        self._ignored: set[str] = set()  # removed from the queue but kept in qBittorrent

    def refresh(self) -> tuple[list[TorrentDownload], list[TorrentDownload]]:
        """Ask qBittorrent: (downloads new to the queue, downloads qBittorrent no longer has)."""
        listed = self.source.torrents(self.category)
        if listed is None:
            for download in self._downloads.values():
                download.reachable = False
            return [], []
        current = {torrent["hash"].lower(): torrent for torrent in listed
                   if torrent["hash"].lower() not in self._ignored}
        gone = [self._downloads.pop(info_hash) for info_hash in list(self._downloads) if info_hash not in current]
        added = []
        for info_hash, torrent in current.items():
            if info_hash in self._downloads:
                self._downloads[info_hash].show(torrent)
            else:
                self._downloads[info_hash] = TorrentDownload.of(torrent)
                added.append(self._downloads[info_hash])
        return added, gone

    def release(self, downloads: list[Download], remove_from_client: bool) -> None:
        """These left the queue: delete them in qBittorrent, or ignore them from now on."""
        hashes = [str(download.download_id).lower() for download in downloads]
        if remove_from_client:
            self.source.delete(hashes)
        else:
            self._ignored.update(hashes)
        for info_hash in hashes:
            del self._downloads[info_hash]


def mirror_torrents(instances: list[SimInstance], config: DownloadClientConfig) -> None:
    """Have every instance also list the torrents of its kind's category in qBittorrent `config`."""
    source = QBittorrentSource(config)
    for instance in instances:
        instance.torrents = TorrentFeed(source, CATEGORY[instance.kind])
