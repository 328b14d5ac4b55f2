"""The simulated *arr instances: their downloads, queue records and request log.

A download follows a script of phases in simulated time (real seconds since it
was added, less the time its host slept, times the speed). Its state is
integrated lazily, whenever someone looks, so nothing runs in the background and
a ManualClock drives it exactly. Some states end by themselves: a finished
usenet download post-processes, then waits for import, then (with import_after)
is imported and leaves the queue. The record shapes follow the servers'
QueueResource schemas: one record per episode for Sonarr, null fields omitted.
Like the real servers, an instance may refresh its figures from the client only
every refresh_seconds. An instance may also mirror a real torrent client's
downloads (services/simarr/client_source.py), and serve frozen records
captured from real servers, next to the scripted ones.
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
    from services.simarr.client_source import ClientFeed

KINDS = ("sonarr", "radarr", "lidarr", "readarr")
STATES = ("downloading", "stalled", "paused", "queued", "metadata", "failed",
          "import_blocked", "post_processing", "completed", "client_unavailable", "error_status")
IMPORTED = "imported"  # a state for script phases and updates: the download leaves the queue
PROTOCOLS = ("torrent", "usenet")
FAULT_MODES = ("none", "down", "slow", "slow_delete", "401", "500", "garbage", "html", "missing_fields", "pages_move")
REQUEST_LOG_LIMIT = 10_000

API_VERSION = {"sonarr": "v3", "radarr": "v3", "lidarr": "v1", "readarr": "v1"}
APP_NAME = {"sonarr": "Sonarr", "radarr": "Radarr", "lidarr": "Lidarr", "readarr": "Readarr"}
APP_VERSION = {"sonarr": "4.0.14.2939", "radarr": "5.26.2.10099",
               "lidarr": "2.13.3.4711", "readarr": "0.4.18.2805"}
DEFAULT_CLIENT = {"torrent": "qBittorrent", "usenet": "SABnzbd"}
DEFAULT_INDEXER = {"torrent": "TorrentLeech (Prowlarr)", "usenet": "NZBgeek (Prowlarr)"}

# The fields naming what the *arr matched an item to; an unknown item has none of them,
# and the queue lists it only with the app's own flag.
APP_ID_FIELDS = {"sonarr": ("seriesId", "episodeId", "seasonNumber"), "radarr": ("movieId",),
                 "lidarr": ("artistId", "albumId"), "readarr": ("authorId", "bookId")}
UNKNOWN_LANGUAGE = {"id": 0, "name": "Unknown"}

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
              "download_client", "download_id", "no_download_id", "indexer", "message",
              "post_processing", "import_after", "unknown", "tags"}
# kind -> (the queue's option that includes each record's series/movie/artist/author, the record's key)
INCLUDE_PARENT = {"sonarr": ("includeSeries", "series"), "radarr": ("includeMovie", "movie"),
                  "lidarr": ("includeArtist", "artist"), "readarr": ("includeAuthor", "author")}
_UPDATE_KEYS = {"state", "rate", "downloaded", "tags"}


def iso_utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def dotnet_timespan(seconds: float) -> str:
    """A duration as .NET writes a TimeSpan: [d.]hh:mm:ss."""
    whole = max(0, math.ceil(seconds))
    days, rest = divmod(whole, 86_400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}.{text}" if days else text


def timespan_seconds(text: Any) -> float | None:
    """Seconds in a .NET TimeSpan text ([-][d.]hh:mm:ss[.fffffff]); None if it is not one."""
    match = re.fullmatch(r"(-)?(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)", text) if isinstance(text, str) else None
    if match is None:
        return None
    sign, days, hours, minutes, seconds = match.groups()
    total = int(days or 0) * 86_400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    return -total if sign else total


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


def _optional_number(spec: dict[str, Any], name: str) -> float | None:
    return None if spec.get(name) is None else _number(spec[name], name)


def _state(value: Any, states: tuple[str, ...] = (*STATES, IMPORTED)) -> str:
    _check(value in states, f"unknown state {value!r}")
    return value


def _phase(raw: Any) -> dict[str, Any]:
    _check(isinstance(raw, dict) and "at" in raw and set(raw) <= {"at", "state", "rate"},
           f"a script phase is {{'at', 'state'?, 'rate'?}}, not {raw!r}")
    phase = {"at": _number(raw["at"], "at")}
    if "state" in raw:
        phase["state"] = _state(raw["state"])
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
    post_processing: float | None = None  # simulated seconds a finished download post-processes
    import_after: float | None = None     # simulated seconds from completed to imported
    unknown: bool = False                 # the *arr matched it to no series/movie/artist/author
    tags: tuple[int, ...] = ()            # the *arr tag ids on its series/movie/artist/author
    records: list[dict[str, Any]] = field(default_factory=list)  # static parts, in key order
    sim_time: float = 0.0  # simulated seconds since added, integrated up to here
    since: float = 0.0     # the simulated time it entered its state
    shown: dict[str, Any] | None = None  # view() at the instant shown_at (an instance's latest refresh)
    shown_at: float | None = None

    def advance(self, sim_now: float) -> None:
        """Integrate bytes, apply script phases and the states' own ends up to sim_now."""
        while self.state != IMPORTED:
            while self.script and self.script[0]["at"] <= self.sim_time:
                phase = self.script.pop(0)
                self.enter(phase.get("state", self.state))
                self.rate = phase.get("rate", self.rate)
            due = self._due()
            if due is not None and due[0] <= self.sim_time:
                if self.state == "downloading":
                    self.downloaded = float(self.size)
                self.enter(due[1])
                continue
            if self.sim_time >= sim_now:
                return
            until = min(sim_now, self.script[0]["at"]) if self.script else sim_now
            until = min(until, due[0]) if due is not None else until
            if self.state == "downloading":
                self.downloaded = min(float(self.size), self.downloaded + self.rate * (until - self.sim_time))
            self.sim_time = until

    def enter(self, state: str) -> None:
        if state != self.state:
            self.state, self.since = state, self.sim_time

    def _due(self) -> tuple[float, str] | None:
        """When the current state ends by itself (simulated time), and the state that follows."""
        if self.state == "downloading" and (self.rate > 0 or self.downloaded >= self.size):
            left = max(0.0, self.size - self.downloaded)
            return (self.sim_time + (left / self.rate if left else 0.0),
                    "post_processing" if self.post_processing else "completed")
        if self.state == "post_processing" and self.post_processing is not None:
            return self.since + self.post_processing, "completed"
        if self.state == "completed" and self.import_after is not None:
            return self.since + self.import_after, IMPORTED
        return None

    def view(self, kind: str, now: float, speed: float) -> dict[str, Any]:
        """The record fields that change with the state (None = omitted)."""
        sizeleft = self.size - int(self.downloaded)
        state = self.state
        if state == "downloading" and self.rate > 0 and sizeleft > 0:
            view = queue_view(state, self.size, sizeleft, now, seconds_left=sizeleft / self.rate / speed)
        elif state == "stalled":
            view = queue_view("warning", self.size, sizeleft, now,
                              message=self.message or "The download is stalled with no connections")
        elif state == "post_processing":
            # SABnzbd/NZBGet verify, repair and unpack: all bytes there, the *arr still says downloading.
            view = queue_view("downloading", self.size, 0, now, seconds_left=0)
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


# One record of the queue: its static part and its download's view, or a frozen record and None.
Row = tuple[dict[str, Any], dict[str, Any] | None]


def value_of(row: Row, key: str) -> Any:
    """The value of `key` in the record a row shows; None when the record lacks it."""
    static, view = row
    return view[key] if view is not None and key in view else static.get(key)


@dataclass
class _Snapshot:
    """The queue at one instant: every record (scripted, then frozen), and the lists asked for."""
    key: tuple[int, float]
    kind: str
    rows: list[Row]
    _listed: dict[tuple[str, bool, bool], list[Row]] = field(default_factory=dict)

    def listed(self, sort_key: str, ascending: bool, include_unknown: bool) -> list[Row]:
        key = (sort_key, ascending, include_unknown)
        if key not in self._listed:
            rows = [row for row in self.rows if include_unknown or not is_unknown(self.kind, row)]
            self._listed[key] = sort_rows(rows, sort_key, ascending)
        return self._listed[key]


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
    feed: ClientFeed | None = None  # a real client's downloads, listed too
    refresh_seconds: float = 0.0  # figures shown are those at the latest refresh instant; 0 = live
    fault_mode: str = field(default="none", init=False)
    fault_delay: float = field(default=0.0, init=False)
    fault_count: int | None = field(default=None, init=False)  # queue reads left before the fault clears
    _moves: int = field(default=0, init=False, repr=False)  # positions the "pages_move" fault rotated by
    _sleeps: list[tuple[float, float]] = field(default_factory=list, init=False, repr=False)  # [start, end)
    _frozen: dict[int, dict[str, Any]] = field(default_factory=dict, init=False, repr=False)  # by queue id
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _downloads: list[Download] = field(default_factory=list, init=False, repr=False)
    _by_queue_id: dict[int, Download] = field(default_factory=dict, init=False, repr=False)
    _by_download_id: dict[str, Download] = field(default_factory=dict, init=False, repr=False)
    _requests: deque = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_LIMIT), init=False, repr=False)
    _serial: int = field(default=0, init=False, repr=False)
    _tags: dict[str, int] = field(default_factory=dict, init=False, repr=False)  # the *arr's tags: label -> id
    _version: int = field(default=0, init=False, repr=False)  # bumped on every change of the downloads
    _snapshot: _Snapshot | None = field(default=None, init=False, repr=False)
    started_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        _check(self.kind in KINDS, f"unknown kind {self.kind!r}")
        _check(self.url_base == "" or (self.url_base.startswith("/") and not self.url_base.endswith("/")),
               f"a URL base is '' or '/name', not {self.url_base!r}")
        _check(self.speed > 0, "speed must be > 0")
        _number(self.refresh_seconds, "refresh_seconds")
        self.started_at = self.clock.now()

    @property
    def api_version(self) -> str:
        return API_VERSION[self.kind]

    # -- downloads ---------------------------------------------------------------------

    def add_download(self, **spec: Any) -> dict[str, Any]:
        """Add a download (see _SPEC_KEYS); returns {"download_id", "queue_ids"}."""
        extra = set(spec) - _SPEC_KEYS
        _check(not extra, f"unknown download fields: {sorted(extra)}")
        title = spec.get("title")
        _check(isinstance(title, str) and bool(title), "title must be a non-empty string")
        size = spec.get("size")
        _check(isinstance(size, int) and not isinstance(size, bool) and size >= 0, "size must be an int >= 0")
        downloaded = _number(spec.get("downloaded", 0), "downloaded")
        _check(downloaded <= size, "downloaded must be <= size")
        state = _state(spec.get("state", "downloading"), STATES)
        episodes = spec.get("episodes", 1)
        _check(isinstance(episodes, int) and episodes >= 1, "episodes must be an int >= 1")
        _check(episodes == 1 or self.kind == "sonarr", "only Sonarr shows one record per episode")
        unknown = spec.get("unknown", False)
        _check(isinstance(unknown, bool), "unknown must be true or false")
        _check(episodes == 1 or not unknown, "an unknown item has no episodes")
        protocol = spec.get("protocol", "torrent")
        _check(protocol in PROTOCOLS, f"protocol must be one of {PROTOCOLS}")
        script = spec.get("script") or []
        _check(isinstance(script, list), "script must be a list of phases")
        tags = spec.get("tags") or []
        _check(isinstance(tags, list) and all(isinstance(t, str) and t for t in tags), "tags must be a list of labels")
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
                script=sorted((_phase(p) for p in script), key=lambda p: p["at"]),
                post_processing=_optional_number(spec, "post_processing"),
                import_after=_optional_number(spec, "import_after"), unknown=unknown,
                tags=tuple(self._tag_id(label) for label in tags))
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
            self._current_snapshot(self.clock.now())  # brings every download up to now
            download = self._find(ref)
            _check(download.scripted, f"download {ref} mirrors a torrent client: change it there")
            download.script.clear()
            if "state" in changes:
                download.enter(_state(changes["state"]))
            if "rate" in changes:
                download.rate = _number(changes["rate"], "rate")
            if "tags" in changes:  # the user tags its series/movie in the *arr
                _check(isinstance(changes["tags"], list), "tags must be a list of labels")
                download.tags = tuple(self._tag_id(str(label)) for label in changes["tags"])
            if "downloaded" in changes:
                downloaded = _number(changes["downloaded"], "downloaded")
                _check(downloaded <= download.size, "downloaded must be <= size")
                download.downloaded = downloaded
            self._version += 1
            return download.describe()

    def downloads(self) -> list[dict[str, Any]]:
        with self._lock:
            self._refresh_feed()
            self._current_snapshot(self.clock.now())
            return [download.describe() for download in self._downloads]

    def load_frozen(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """Serve these raw records (captured from a real server) unchanged, instead of any frozen before."""
        _check(isinstance(records, list) and all(isinstance(r, dict) for r in records),
               "records must be a list of queue records")
        ids = [record.get("id") for record in records]
        _check(all(isinstance(i, int) and not isinstance(i, bool) for i in ids), "every record needs an integer id")
        _check(len(set(ids)) == len(ids), "two records share an id")
        with self._lock:
            _check(not set(ids) & set(self._by_queue_id), "a record's id is a scripted download's queue id")
            self._frozen = {record["id"]: dict(record) for record in records}
            self._version += 1
        return {"frozen": len(records)}

    def remove(self, queue_ids: list[int], remove_from_client: bool = True) -> bool:
        """Remove every download owning one of queue_ids; False (and nothing removed) if one is unknown.

        A mirrored job is deleted in its client, or with remove_from_client=False left
        there and ignored from now on; the client's ClientError leaves everything in place.
        """
        with self._lock:
            self._current_snapshot(self.clock.now())  # an imported download is gone
            if not all(isinstance(q, int) and (q in self._by_queue_id or q in self._frozen) for q in queue_ids):
                return False
            owners = [self._by_queue_id[queue_id] for queue_id in queue_ids if queue_id in self._by_queue_id]
            doomed = list({id(download): download for download in owners}.values())  # each once
            mirrored = [download for download in doomed if not download.scripted]
            if mirrored and self.feed is not None:
                self.feed.release(mirrored, remove_from_client)
            self._discard(doomed)
            # A frozen record goes with every frozen record of its download.
            picked = {queue_id for queue_id in queue_ids if queue_id in self._frozen}
            download_ids = {self._frozen[i].get("downloadId") for i in picked} - {None}
            self._frozen = {i: record for i, record in self._frozen.items()
                            if i not in picked and record.get("downloadId") not in download_ids}
            self._version += 1
            return True

    # -- what the API shows ------------------------------------------------------------

    def tags(self) -> list[dict[str, Any]]:
        """GET /api/v3/tag: every tag, as the *arrs list them."""
        with self._lock:
            return [{"label": label, "id": tag_id} for label, tag_id in self._tags.items()]

    def _tag_id(self, label: str) -> int:
        """A tag's id, created on first use (tags are lower-case in the *arrs)."""
        return self._tags.setdefault(label.lower(), len(self._tags) + 1)

    def queue_page(self, page: int, page_size: int, sort_key: str, ascending: bool,
                   include_unknown: bool = False, include_parent: bool = False) -> dict[str, Any]:
        """The paging envelope (records are copies); a page past the end is the last page. With the kind's
        include option (`include_parent`), each matched record carries its series/movie/artist/author."""
        now = self.clock.now()
        with self._lock:
            self._refresh_feed()
            listed = self._current_snapshot(now).listed(sort_key, ascending, include_unknown)
            total, shift = len(listed), self._page_move()
            last_page = max(1, math.ceil(total / page_size))
            page = min(max(page, 1), last_page)
            start = (page - 1) * page_size
            rows = [listed[(i - shift) % total] for i in range(start, min(start + page_size, total))]
            records = [self._record(*row) for row in rows]
            if include_parent:
                for record, (static, view) in zip(records, rows):
                    self._with_parent(record, static)
        return {"page": page, "pageSize": page_size, "sortKey": sort_key,
                "sortDirection": "ascending" if ascending else "descending",
                "totalRecords": total, "records": records}

    def queue_status(self) -> dict[str, Any]:
        """Counts as the servers give them: `count` and the problems of matched items, unknown ones apart."""
        now = self.clock.now()
        with self._lock:
            self._refresh_feed()
            rows = self._current_snapshot(now).rows
        known = [row for row in rows if not is_unknown(self.kind, row)]
        unknown = [row for row in rows if is_unknown(self.kind, row)]

        def has(some: list[Row], status: str) -> bool:
            return any(value_of(row, "trackedDownloadStatus") == status for row in some)
        return {"totalCount": len(rows), "count": len(known), "unknownCount": len(unknown),
                "errors": has(known, "error"), "warnings": has(known, "warning"),
                "unknownErrors": has(unknown, "error"), "unknownWarnings": has(unknown, "warning")}

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

    def set_fault(self, mode: str, delay: float = 0.0, count: int | None = None) -> dict[str, Any]:
        """A fault of the server; "pages_move" may last `count` queue reads only."""
        _check(mode in FAULT_MODES, f"fault mode must be one of {FAULT_MODES}")
        _check(count is None or (mode == "pages_move" and isinstance(count, int) and count >= 1),
               "count is an int >= 1, for the pages_move fault only")
        with self._lock:
            self.fault_mode, self.fault_delay, self.fault_count = mode, _number(delay, "delay"), count
            self._moves = 0
        return {"mode": mode, "delay": self.fault_delay, "count": count}

    def set_refresh(self, seconds: float) -> dict[str, Any]:
        """Show figures as of the latest refresh instant (started_at + k * seconds); 0 = live.
        Switched on, it shows each download as last looked at until the next refresh instant."""
        with self._lock:
            self.refresh_seconds = _number(seconds, "seconds")
        return {"seconds": self.refresh_seconds}

    def sleep(self, seconds: float) -> dict[str, Any]:
        """From now, for `seconds` of the clock, /api answers nothing and no download moves."""
        seconds = _number(seconds, "seconds")
        with self._lock:
            now = self.clock.now()
            if self.asleep():  # already asleep: sleep on until the later end
                start, end = self._sleeps.pop()
                self._sleeps.append((start, max(end, now + seconds)))
            else:
                self._sleeps.append((now, now + seconds))
            return {"seconds": self._sleeps[-1][1] - now}

    def asleep(self) -> bool:
        now = self.clock.now()
        return bool(self._sleeps) and self._sleeps[-1][0] <= now < self._sleeps[-1][1]

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

    def _refresh_feed(self) -> None:
        """Ask the real client once, under the lock so a read never races a removal."""
        if self.feed is None:
            return
        added, gone = self.feed.refresh()
        self._discard(gone)
        for download in added:
            self._serial += 1  # each job is its own series/movie/album/book
            self._insert(download, DEFAULT_INDEXER[download.protocol])
        self._version += 1  # the client's figures may have moved

    def _awake(self, instant: float) -> float:
        """Clock seconds up to `instant`, less those the host slept."""
        if not self._sleeps:
            return instant
        return instant - sum(min(end, instant) - start for start, end in self._sleeps if start < instant)

    def _sim_time(self, download: Download, instant: float) -> float:
        return (self._awake(instant) - self._awake(download.created_at)) * self.speed

    def _advance(self, download: Download, now: float) -> dict[str, Any]:
        """Bring a download up to `now`; the view it shows (the one at the latest refresh when refreshing)."""
        if self.refresh_seconds <= 0:
            download.advance(self._sim_time(download, now))
            return download.view(self.kind, now, self.speed)
        refreshes = math.floor((now - self.started_at) / self.refresh_seconds)
        instant = max(self.started_at + refreshes * self.refresh_seconds, download.created_at)
        if download.shown_at != instant:
            download.advance(self._sim_time(download, instant))
            download.shown, download.shown_at = download.view(self.kind, instant, self.speed), instant
        download.advance(self._sim_time(download, now))
        return download.shown

    def _current_snapshot(self, now: float) -> _Snapshot:
        """The queue at `now`, reused while neither time nor the downloads change (paging).
        Every download is brought up to now, and the imported ones leave."""
        if self._snapshot is None or self._snapshot.key != (self._version, now):
            views = {id(download): self._advance(download, now) for download in self._downloads}
            imported = [download for download in self._downloads if download.state == IMPORTED]
            if imported:
                self._discard(imported)
                self._version += 1
            rows = [(record, views[id(d)]) for d in self._downloads for record in d.records]
            rows += [(record, None) for record in self._frozen.values()]
            self._snapshot = _Snapshot((self._version, now), self.kind, rows)
        return self._snapshot

    def _page_move(self) -> int:
        """How far this queue read sees the records rotated: one more each read under "pages_move"."""
        if self.fault_mode != "pages_move":
            return 0
        self._moves += 1
        if self.fault_count is not None:
            self.fault_count -= 1
            if self.fault_count == 0:
                self.fault_mode, self.fault_count = "none", None
        return self._moves

    def _record(self, static: dict[str, Any], view: dict[str, Any] | None) -> dict[str, Any]:
        """The record a row shows (a new dict): a frozen one as it is."""
        if view is None:
            return dict(static)
        merged = static | view  # keeps the static (schema) key order
        if self.decimal_sizes:
            merged["size"], merged["sizeleft"] = float(merged["size"]), float(merged["sizeleft"])
        return {k: v for k, v in merged.items() if v is not None}

    def _with_parent(self, record: dict[str, Any], static: dict[str, Any]) -> None:
        """Add the series/movie/artist/author of a matched record, with its tags (a few of its fields)."""
        id_field = APP_ID_FIELDS[self.kind][0]
        download = self._by_queue_id.get(record.get("id"))
        if download is None or record.get(id_field) is None:
            return  # a frozen record, or an unknown item: matched to nothing
        record[INCLUDE_PARENT[self.kind][1]] = {"id": record[id_field], "title": download.title.split(".S")[0],
                                                "tags": list(download.tags), "monitored": True}

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
            if queue_id > 0 and queue_id not in self._by_queue_id and queue_id not in self._frozen:
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
        if download.unknown:
            values.update(dict.fromkeys(APP_ID_FIELDS[self.kind]), languages=[UNKNOWN_LANGUAGE])
        return {key: values.get(key) for key in RECORD_KEYS[self.kind]}


def is_unknown(kind: str, row: Row) -> bool:
    """An item the *arr matched to nothing: its record lacks the kind's id field (seriesId, movieId, ...)."""
    return value_of(row, APP_ID_FIELDS[kind][0]) is None


def _progress(row: Row) -> float | None:
    size, sizeleft = value_of(row, "size"), value_of(row, "sizeleft")
    if size is None or sizeleft is None:
        return None
    return 100 * (size - sizeleft) / size if size else 0.0


def _title(row: Row) -> str | None:
    title = value_of(row, "title")
    return title.casefold() if isinstance(title, str) else None


# What each of the servers' sort keys sorts on, in the record a row shows; None = lacking.
SORT_VALUES: dict[str, Callable[[Row], Any]] = {
    **{key: (lambda row, key=key: value_of(row, key))
       for key in ("estimatedCompletionTime", "added", "size", "sizeleft", "status", "protocol", "indexer",
                   "downloadClient")},
    "timeleft": lambda row: timespan_seconds(value_of(row, "timeleft")),
    "title": _title,
    "progress": _progress,
}


def sort_rows(rows: list[Row], sort_key: str, ascending: bool) -> list[Row]:
    """Rows in the order of a sort key, those lacking its field last; an unknown key sorts by id."""
    value = SORT_VALUES.get(sort_key, lambda row: value_of(row, "id"))
    keyed = [(value(row), row) for row in rows]
    present = sorted((pair for pair in keyed if pair[0] is not None), key=lambda pair: pair[0],
                     reverse=not ascending)
    return [row for _, row in present] + [row for key, row in keyed if key is None]
