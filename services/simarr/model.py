"""The simulated *arr instances: their downloads, queue records and request log.

A download follows a script of phases in simulated time (real seconds since it
was added, times the speed). Its state is integrated lazily, whenever someone
looks, so nothing runs in the background and a ManualClock drives it exactly.
The record shapes follow the servers' QueueResource schemas: one record per
episode for Sonarr, null fields omitted. An instance may also mirror a real
torrent client's downloads (services/simarr/torrent_source.py) next to the
scripted ones.
"""
from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from common.clock import Clock, SystemClock

if TYPE_CHECKING:
    from services.simarr.torrent_source import TorrentFeed

KINDS = ("sonarr", "radarr", "lidarr", "readarr")
STATES = ("downloading", "stalled", "paused", "queued", "metadata", "failed",
          "import_blocked", "completed", "client_unavailable", "error_status")
PROTOCOLS = ("torrent", "usenet")
FAULT_MODES = ("none", "down", "slow", "401", "500", "garbage", "html", "missing_fields")
REQUEST_LOG_LIMIT = 10_000

API_VERSION = {"sonarr": "v3", "radarr": "v3", "lidarr": "v1", "readarr": "v1"}
APP_NAME = {"sonarr": "Sonarr", "radarr": "Radarr", "lidarr": "Lidarr", "readarr": "Readarr"}
APP_VERSION = {"sonarr": "4.0.14.2939", "radarr": "5.26.2.10099",
               "lidarr": "2.13.3.4711", "readarr": "0.4.18.2805"}
DEFAULT_CLIENT = {"torrent": "qBittorrent", "usenet": "SABnzbd"}
DEFAULT_INDEXER = {"torrent": "TorrentLeech (Prowlarr)", "usenet": "NZBgeek (Prowlarr)"}

# Lidarr and Readarr name these tracked states differently.
FAILED_STATE = {"sonarr": "failed", "radarr": "failed", "lidarr": "downloadFailed", "readarr": "downloadFailed"}
IMPORT_BLOCKED_STATE = {"sonarr": "importBlocked", "radarr": "importBlocked",
                        "lidarr": "importFailed", "readarr": "importFailed"}

# Record keys in the order each server writes them (its schema's order, `id` last).
_COMMON_HEAD = ("quality", "customFormats", "customFormatScore", "size", "title")
_COMMON_TAIL = ("status", "trackedDownloadStatus", "trackedDownloadState", "statusMessages",
                "errorMessage", "downloadId", "protocol", "downloadClient",
                "downloadClientHasPostImportCategory", "indexer", "outputPath")
RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "sonarr": ("seriesId", "episodeId", "seasonNumber", "languages", *_COMMON_HEAD,
               "estimatedCompletionTime", "added", *_COMMON_TAIL, "episodeHasFile",
               "sizeleft", "timeleft", "id"),
    "radarr": ("movieId", "languages", *_COMMON_HEAD, "estimatedCompletionTime", "added",
               *_COMMON_TAIL, "sizeleft", "timeleft", "id"),
    "lidarr": ("artistId", "albumId", *_COMMON_HEAD, "sizeleft", "timeleft",
               "estimatedCompletionTime", "added", *_COMMON_TAIL, "trackFileCount",
               "trackHasFileCount", "downloadForced", "id"),
    "readarr": ("authorId", "bookId", *_COMMON_HEAD, "sizeleft", "timeleft",
                "estimatedCompletionTime", *_COMMON_TAIL, "downloadForced", "id"),
}

_SPEC_KEYS = {"title", "size", "downloaded", "state", "rate", "script", "episodes", "protocol",
              "download_client", "download_id", "no_download_id", "indexer", "message"}
_UPDATE_KEYS = {"state", "rate", "downloaded"}


def iso_utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def dotnet_timespan(seconds: float) -> str:
    """A duration as .NET writes a TimeSpan: [d.]hh:mm:ss."""
    whole = max(0, math.ceil(seconds))
    days, rest = divmod(whole, 86_400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}.{text}" if days else text


# The fields the *arr leaves out while its download client cannot be asked.
CLIENT_UNAVAILABLE: dict[str, Any] = {"status": "downloadClientUnavailable", "trackedDownloadStatus": None,
                                      "trackedDownloadState": None, "statusMessages": None}


def queue_view(status: str, size: int, sizeleft: int, now: float,
               seconds_left: float | None = None, message: str | None = None) -> dict[str, Any]:
    """The record fields that follow a download's state (None = omitted), as the *arr fills
    them from its client's item: an ETA only when the client knows one, and a completed
    download (no time left) waiting for import."""
    if status == "completed":
        seconds_left = 0
    return {
        "size": size, "sizeleft": sizeleft,
        "timeleft": None if seconds_left is None else dotnet_timespan(seconds_left),
        "estimatedCompletionTime": None if seconds_left is None else iso_utc(now + seconds_left),
        "status": status, "trackedDownloadStatus": "ok",
        "trackedDownloadState": "importPending" if status == "completed" else "downloading",
        "statusMessages": [], "errorMessage": message,
    }


def _quality(kind: str, title: str) -> dict[str, Any]:
    """A plausible quality for a release, read off its title."""
    lower = title.lower()
    if kind == "lidarr":
        quality = {"id": 6, "name": "FLAC"} if "flac" in lower else {"id": 4, "name": "MP3-320"}
    elif kind == "readarr":
        quality = {"id": 10, "name": "MP3"} if ("m4b" in lower or "mp3" in lower) else {"id": 3, "name": "EPUB"}
    else:
        resolution = 2160 if "2160p" in lower else 720 if "720p" in lower else 1080
        bluray = "bluray" in lower
        ids = {(True, 720): 6, (True, 1080): 7, (True, 2160): 19, (False, 720): 5, (False, 1080): 3, (False, 2160): 18}
        source = "bluray" if bluray else ("webdl" if kind == "radarr" else "web")
        quality = {"id": ids[(bluray, resolution)], "name": f"{'Bluray' if bluray else 'WEBDL'}-{resolution}p",
                   "source": source, "resolution": resolution}
        if kind == "radarr":
            quality["modifier"] = "none"
    return {"quality": quality, "revision": {"version": 1, "real": 0, "isRepack": False}}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _number(value: Any, name: str) -> float:
    _check(isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0,
           f"{name} must be a number >= 0, not {value!r}")
    return float(value)


def _phase(raw: Any) -> dict[str, Any]:
    _check(isinstance(raw, dict) and "at" in raw and set(raw) <= {"at", "state", "rate"},
           f"a script phase is {{'at', 'state'?, 'rate'?}}, not {raw!r}")
    phase = {"at": _number(raw["at"], "at")}
    if "state" in raw:
        _check(raw["state"] in STATES, f"unknown state {raw['state']!r}")
        phase["state"] = raw["state"]
    if "rate" in raw:
        phase["rate"] = _number(raw["rate"], "rate")
    return phase


@dataclass
class Download:
    """One entry of a download client, and the queue records the *arr shows for it."""
    scripted: ClassVar[bool] = True  # False for a download mirrored from a real client
    download_id: str | None
    title: str
    size: int
    protocol: str
    download_client: str
    message: str | None
    created_at: float
    state: str
    rate: float            # bytes per simulated second while "downloading"
    downloaded: float
    script: list[dict[str, Any]]
    records: list[dict[str, Any]] = field(default_factory=list)  # static parts, in key order
    sim_time: float = 0.0  # simulated seconds since added, integrated up to here

    def advance(self, sim_now: float) -> None:
        """Integrate bytes and apply script phases up to sim_now."""
        while True:
            while self.script and self.script[0]["at"] <= self.sim_time:
                phase = self.script.pop(0)
                self.state = phase.get("state", self.state)
                self.rate = phase.get("rate", self.rate)
            if self.sim_time >= sim_now:
                return
            until = min(sim_now, self.script[0]["at"]) if self.script else sim_now
            if self.state == "downloading":
                self.downloaded = min(float(self.size), self.downloaded + self.rate * (until - self.sim_time))
                if self.downloaded >= self.size:
                    self.state = "completed"
            self.sim_time = until

    def view(self, kind: str, now: float, speed: float) -> dict[str, Any]:
        """The record fields that change with the state (None = omitted)."""
        sizeleft = self.size - int(self.downloaded)
        state = self.state
        if state == "downloading" and self.rate > 0 and sizeleft > 0:
            view = queue_view(state, self.size, sizeleft, now, seconds_left=sizeleft / self.rate / speed)
        elif state == "stalled":
            view = queue_view("warning", self.size, sizeleft, now,
                              message=self.message or "The download is stalled with no connections")
        elif state == "metadata":
            view = queue_view("queued", 0, 0, now,
                              message=self.message or f"{self.download_client} is downloading metadata")
        elif state == "failed":
            # Failed items come from the client's history: nothing left, no time left.
            view = queue_view(state, self.size, 0, now, seconds_left=0,
                              message=self.message or "Aborted, cannot be completed")
            view.update(trackedDownloadStatus="error", trackedDownloadState=FAILED_STATE[kind])
        elif state in ("completed", "import_blocked"):
            view = queue_view("completed", self.size, 0, now)
            if state == "import_blocked":
                message = self.message or f"No files found are eligible for import in {self.output_path}"
                view.update(trackedDownloadStatus="warning", trackedDownloadState=IMPORT_BLOCKED_STATE[kind],
                            statusMessages=[{"title": self.title, "messages": [message]}])
        elif state == "client_unavailable":
            view = queue_view(state, self.size, sizeleft, now) | CLIENT_UNAVAILABLE
        elif state == "error_status":
            message = self.message or f"{self.download_client} is reporting an error"
            view = queue_view("warning", self.size, sizeleft, now, message=message)
            view.update(trackedDownloadStatus="error", statusMessages=[{"title": self.title, "messages": [message]}])
        else:
            view = queue_view(state, self.size, sizeleft, now)
        return view

    @property
    def output_path(self) -> str:
        root = "/data/torrents" if self.protocol == "torrent" else "/data/usenet/complete"
        return f"{root}/{self.title}"

    def describe(self) -> dict[str, Any]:
        return {"download_id": self.download_id, "title": self.title, "state": self.state,
                "size": self.size, "downloaded": int(self.downloaded), "rate": self.rate,
                "protocol": self.protocol, "download_client": self.download_client,
                "queue_ids": [record["id"] for record in self.records], "script": list(self.script)}


Row = tuple[Download, dict[str, Any]]  # a download and the static part of one of its records


@dataclass
class _Snapshot:
    """The queue at one instant: each download's dynamic fields, and the rows in each order asked for."""
    key: tuple[int, float]
    views: dict[int, dict[str, Any]]  # id(download) -> Download.view()
    rows: list[Row]
    _sorted: dict[tuple[str, bool], list[Row]] = field(default_factory=dict)

    def sorted_rows(self, sort_key: str, ascending: bool) -> list[Row]:
        if (sort_key, ascending) not in self._sorted:
            key = _sort_key(sort_key, self.views)
            self._sorted[(sort_key, ascending)] = sorted(self.rows, key=key, reverse=not ascending)
        return self._sorted[(sort_key, ascending)]


@dataclass
class SimInstance:
    """One simulated Sonarr/Radarr/Lidarr/Readarr at its own URL base."""
    name: str
    kind: str
    url_base: str
    api_key: str
    clock: Clock = field(default_factory=SystemClock)
    speed: float = 1.0
    decimal_sizes: bool = False  # some servers send sizes as 4467066880.0
    torrents: TorrentFeed | None = None  # a real client's downloads, listed too
    fault_mode: str = field(default="none", init=False)
    fault_delay: float = field(default=0.0, init=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _downloads: list[Download] = field(default_factory=list, init=False, repr=False)
    _by_queue_id: dict[int, Download] = field(default_factory=dict, init=False, repr=False)
    _by_download_id: dict[str, Download] = field(default_factory=dict, init=False, repr=False)
    _requests: deque = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_LIMIT), init=False, repr=False)
    _serial: int = field(default=0, init=False, repr=False)
    _version: int = field(default=0, init=False, repr=False)  # bumped on every change of the downloads
    _snapshot: _Snapshot | None = field(default=None, init=False, repr=False)
    started_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        _check(self.kind in KINDS, f"unknown kind {self.kind!r}")
        _check(self.url_base == "" or (self.url_base.startswith("/") and not self.url_base.endswith("/")),
               f"a URL base is '' or '/name', not {self.url_base!r}")
        _check(self.speed > 0, "speed must be > 0")
        self.started_at = self.clock.now()

    @property
    def api_version(self) -> str:
        return API_VERSION[self.kind]

    # -- downloads ---------------------------------------------------------------------

    def add_download(self, **spec: Any) -> dict[str, Any]:
        """Add a download (see _SPEC_KEYS); returns {"download_id", "queue_ids"}."""
        unknown = set(spec) - _SPEC_KEYS
        _check(not unknown, f"unknown download fields: {sorted(unknown)}")
        title = spec.get("title")
        _check(isinstance(title, str) and bool(title), "title must be a non-empty string")
        size = spec.get("size")
        _check(isinstance(size, int) and not isinstance(size, bool) and size >= 0, "size must be an int >= 0")
        downloaded = _number(spec.get("downloaded", 0), "downloaded")
        _check(downloaded <= size, "downloaded must be <= size")
        state = spec.get("state", "downloading")
        _check(state in STATES, f"unknown state {state!r}")
        episodes = spec.get("episodes", 1)
        _check(isinstance(episodes, int) and episodes >= 1, "episodes must be an int >= 1")
        _check(episodes == 1 or self.kind == "sonarr", "only Sonarr shows one record per episode")
        protocol = spec.get("protocol", "torrent")
        _check(protocol in PROTOCOLS, f"protocol must be one of {PROTOCOLS}")
        script = spec.get("script") or []
        _check(isinstance(script, list), "script must be a list of phases")
        with self._lock:
            self._serial += 1
            download_id = None if spec.get("no_download_id") else spec.get("download_id") or self._new_download_id(protocol)
            _check(download_id is None or isinstance(download_id, str), "download_id must be a string")
            _check(download_id not in self._by_download_id, f"download_id {download_id!r} already exists")
            download = Download(
                download_id=download_id, title=title, size=size, protocol=protocol,
                download_client=spec.get("download_client") or DEFAULT_CLIENT[protocol],
                message=spec.get("message"), created_at=self.clock.now(), state=state,
                rate=_number(spec.get("rate", 0), "rate"), downloaded=downloaded,
                script=sorted((_phase(p) for p in script), key=lambda p: p["at"]))
            self._insert(download, spec.get("indexer") or DEFAULT_INDEXER[protocol], episodes)
            self._version += 1
            return {"download_id": download_id, "queue_ids": [r["id"] for r in download.records]}

    def add_bulk(self, count: int, **spec: Any) -> dict[str, Any]:
        """Add `count` single-record downloads titled after their number."""
        _check(isinstance(count, int) and 0 <= count <= 100_000, "count must be an int in 0..100000")
        spec.setdefault("size", 1_073_741_824)
        with self._lock:
            for number in range(1, count + 1):
                self.add_download(title=f"Bulk.Show.S01E{number:05d}.1080p.WEB.H264-SIMARR", **spec)
        return {"added": count}

    def update_download(self, ref: str, **changes: Any) -> dict[str, Any]:
        """Set state/rate/downloaded now; the rest of the download's script is dropped."""
        unknown = set(changes) - _UPDATE_KEYS
        _check(not unknown, f"unknown update fields: {sorted(unknown)}")
        with self._lock:
            download = self._find(ref)
            _check(download.scripted, f"download {ref} mirrors a torrent client: change it there")
            download.advance(self._sim_now(download))
            download.script.clear()
            if "state" in changes:
                _check(changes["state"] in STATES, f"unknown state {changes['state']!r}")
                download.state = changes["state"]
            if "rate" in changes:
                download.rate = _number(changes["rate"], "rate")
            if "downloaded" in changes:
                downloaded = _number(changes["downloaded"], "downloaded")
                _check(downloaded <= download.size, "downloaded must be <= size")
                download.downloaded = downloaded
            self._version += 1
            return download.describe()

    def downloads(self) -> list[dict[str, Any]]:
        with self._lock:
            self._refresh_torrents()
            for download in self._downloads:
                download.advance(self._sim_now(download))
            return [download.describe() for download in self._downloads]

    def remove(self, queue_ids: list[int], remove_from_client: bool = True) -> bool:
        """Remove every download owning one of queue_ids; False (and nothing removed) if one is unknown.

        A mirrored torrent is deleted in its client, or with remove_from_client=False left
        there and ignored from now on; the client's ClientError leaves everything in place.
        """
        with self._lock:
            if not all(isinstance(q, int) and q in self._by_queue_id for q in queue_ids):
                return False
            owners = [self._by_queue_id[queue_id] for queue_id in queue_ids]
            doomed = list({id(download): download for download in owners}.values())  # each once
            mirrored = [download for download in doomed if not download.scripted]
            if mirrored and self.torrents is not None:
                self.torrents.release(mirrored, remove_from_client)
            self._discard(doomed)
            self._version += 1
            return True

    # -- what the API shows ------------------------------------------------------------

    def queue_page(self, page: int, page_size: int, sort_key: str, ascending: bool) -> dict[str, Any]:
        """The paging envelope; a page past the end is the last page."""
        now = self.clock.now()
        with self._lock:
            self._refresh_torrents()
            snapshot = self._current_snapshot(now)
            rows = snapshot.sorted_rows(sort_key, ascending)
            last_page = max(1, math.ceil(len(rows) / page_size))
            page = min(max(page, 1), last_page)
            chunk = rows[(page - 1) * page_size: page * page_size]
            records = [self._record(record, snapshot.views[id(d)]) for d, record in chunk]
        return {"page": page, "pageSize": page_size, "sortKey": sort_key,
                "sortDirection": "ascending" if ascending else "descending",
                "totalRecords": len(rows), "records": records}

    def queue_status(self) -> dict[str, Any]:
        now = self.clock.now()
        with self._lock:
            self._refresh_torrents()
            views = self._current_snapshot(now).views
            shown = [views[id(d)] for d in self._downloads for _ in d.records]
        total = len(shown)
        return {"totalCount": total, "count": total, "unknownCount": 0,
                "errors": any(v["trackedDownloadStatus"] == "error" for v in shown),
                "warnings": any(v["trackedDownloadStatus"] == "warning" for v in shown),
                "unknownErrors": False, "unknownWarnings": False}

    def system_status(self) -> dict[str, Any]:
        app = APP_NAME[self.kind]
        lower = app.lower()
        return {
            "appName": app, "instanceName": app, "version": APP_VERSION[self.kind],
            "buildTime": "2025-05-18T10:31:07Z", "isDebug": False, "isProduction": True, "isAdmin": False,
            "isUserInteractive": False, "startupPath": f"/app/{lower}/bin", "appData": "/config",
            "osName": "ubuntu", "osVersion": "24.04", "isNetCore": True, "isLinux": True, "isOsx": False,
            "isWindows": False, "isDocker": True, "mode": "console", "branch": "main" if lower == "sonarr" else "master",
            "databaseType": "sqLite", "databaseVersion": "3.46.1", "authentication": "forms",
            "migrationVersion": 215, "urlBase": self.url_base, "runtimeVersion": "6.0.36", "runtimeName": ".NET",
            "startTime": iso_utc(self.started_at), "packageVersion": APP_VERSION[self.kind],
            "packageAuthor": "[linuxserver.io](https://linuxserver.io)", "packageUpdateMechanism": "docker",
        }

    # -- faults and the request log ----------------------------------------------------

    def set_fault(self, mode: str, delay: float = 0.0) -> dict[str, Any]:
        _check(mode in FAULT_MODES, f"fault mode must be one of {FAULT_MODES}")
        with self._lock:
            self.fault_mode, self.fault_delay = mode, _number(delay, "delay")
        return {"mode": mode, "delay": self.fault_delay}

    def log_request(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._requests.append(entry)

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- internals ---------------------------------------------------------------------

    def _insert(self, download: Download, indexer: str, episodes: int = 1) -> None:
        download.records = [self._static_record(download, indexer, episode) for episode in range(episodes)]
        self._downloads.append(download)
        if download.download_id is not None:
            self._by_download_id[download.download_id] = download
        for record in download.records:
            self._by_queue_id[record["id"]] = download

    def _discard(self, downloads: list[Download]) -> None:
        for download in downloads:
            for record in download.records:
                del self._by_queue_id[record["id"]]
            self._by_download_id.pop(download.download_id, None)
        doomed = {id(download) for download in downloads}
        self._downloads = [d for d in self._downloads if id(d) not in doomed]

    def _refresh_torrents(self) -> None:
        """Ask the torrent client once, under the lock so a read never races a removal."""
        if self.torrents is None:
            return
        added, gone = self.torrents.refresh()
        self._discard(gone)
        for download in added:
            self._serial += 1  # each torrent is its own series/movie/album/book
            self._insert(download, DEFAULT_INDEXER["torrent"])
        self._version += 1  # the client's figures may have moved

    def _sim_now(self, download: Download) -> float:
        return (self.clock.now() - download.created_at) * self.speed

    def _current_snapshot(self, now: float) -> _Snapshot:
        """The queue at `now`, reused while neither time nor the downloads change (paging)."""
        key = (self._version, now)
        if self._snapshot is None or self._snapshot.key != key:
            views = {}
            for download in self._downloads:
                download.advance((now - download.created_at) * self.speed)
                views[id(download)] = download.view(self.kind, now, self.speed)
            rows = [(d, record) for d in self._downloads for record in d.records]
            self._snapshot = _Snapshot(key, views, rows)
        return self._snapshot

    def _record(self, static: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
        merged = static | view  # keeps the static (schema) key order
        if self.decimal_sizes:
            merged["size"], merged["sizeleft"] = float(merged["size"]), float(merged["sizeleft"])
        return {k: v for k, v in merged.items() if v is not None}

    def _find(self, ref: str) -> Download:
        if ref in self._by_download_id:
            return self._by_download_id[ref]
        if ref.isdigit() and int(ref) in self._by_queue_id:
            return self._by_queue_id[int(ref)]
        raise KeyError(ref)

    def _hash(self, text: str) -> bytes:
        return hashlib.sha1(f"{self.name}:{text}".encode()).digest()

    def _new_download_id(self, protocol: str) -> str:
        digest = self._hash(f"download-{self._serial}")
        if protocol == "torrent":
            return digest.hex().upper()
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        return "SABnzbd_nzo_" + "".join(alphabet[b % len(alphabet)] for b in digest[:8])

    def _new_queue_id(self, episode: int) -> int:
        """A large positive 31-bit id like the servers' hashed ones, unique here."""
        salt = 0
        while True:
            digest = self._hash(f"queue-{self._serial}-{episode}-{salt}")
            queue_id = int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF
            if queue_id > 0 and queue_id not in self._by_queue_id:
                return queue_id
            salt += 1

    def _static_record(self, download: Download, indexer: str, episode: int) -> dict[str, Any]:
        serial = self._serial
        values: dict[str, Any] = {
            "languages": [{"id": 1, "name": "English"}], "customFormats": [], "customFormatScore": 0,
            "quality": _quality(self.kind, download.title), "title": download.title,
            "added": iso_utc(download.created_at), "downloadId": download.download_id,
            "protocol": download.protocol, "downloadClient": download.download_client,
            "downloadClientHasPostImportCategory": False, "indexer": indexer,
            "outputPath": download.output_path, "id": self._new_queue_id(episode),
        }
        if self.kind == "sonarr":
            season = re.search(r"\bS(\d{1,2})", download.title)
            values.update(seriesId=serial, episodeId=serial * 100 + episode + 1,
                          seasonNumber=int(season.group(1)) if season else 1, episodeHasFile=False)
        elif self.kind == "radarr":
            values["movieId"] = serial
        elif self.kind == "lidarr":
            values.update(artistId=serial, albumId=serial * 10, trackFileCount=12,
                          trackHasFileCount=0, downloadForced=False)
        else:
            values.update(authorId=serial, bookId=serial * 10, downloadForced=False)
        return {key: values.get(key) for key in RECORD_KEYS[self.kind]}


def _sort_key(sort_key: str, views: dict[int, dict[str, Any]]) -> Callable[[Row], Any]:
    """A key function over rows for the servers' sort keys; unknown keys sort by id."""
    def view(row: Row) -> dict[str, Any]:
        return views[id(row[0])]

    def timeleft(row: Row) -> tuple[bool, str]:
        value = view(row)["estimatedCompletionTime"]
        return (value is None, value or "")  # unknown ETAs last, as the servers do

    def progress(row: Row) -> float:
        shown = view(row)
        return 100 * (shown["size"] - shown["sizeleft"]) / shown["size"] if shown["size"] else 0.0

    keys = {
        "timeleft": timeleft, "estimatedCompletionTime": timeleft, "progress": progress,
        "title": lambda row: row[1]["title"].casefold(),
        "added": lambda row: row[1].get("added") or "",  # Readarr records have no added
        "size": lambda row: view(row)["size"],
        "sizeleft": lambda row: view(row)["sizeleft"],
        "status": lambda row: view(row)["status"],
        "protocol": lambda row: row[1]["protocol"],
        "indexer": lambda row: row[1]["indexer"],
        "downloadClient": lambda row: row[1]["downloadClient"],
    }
    return keys.get(sort_key, lambda row: row[1]["id"])
