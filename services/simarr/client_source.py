"""simarr's downloads from a real download client, listed as Sonarr/Radarr/Lidarr/Readarr list them.

With `discarr simarr --downloads-from NAME`, every instance also shows the jobs that client holds in
its kind's category (CATEGORY), each mapped as the *arr's own client code maps that client's items
(Sonarr v4 src/NzbDrone.Core/Download/Clients/<Client>/<Client>.cs GetItems, GetQueue, GetHistory):
the downloadId the *arr uses, the DownloadItemStatus it picks, the bytes left, the ETA. Each client is
asked once per queue read; while it cannot be asked, its last known jobs stay in the queue as
downloadClientUnavailable.

Removing such a record with removeFromClient deletes the job and its files in the client; without,
the job stays there and the instance ignores it from then on, as the *arr does.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from common.settings import DownloadClientConfig
from common.torrent_clients import ClientError, DelugeApi, QBittorrentApi
from common.usenet_clients import NZBGetApi, SABnzbdApi, nzbget_id, nzbget_size
from services.simarr.model import CLIENT_UNAVAILABLE, FAILED_STATE, Download, SimInstance, queue_view

log = logging.getLogger("simarr")

# The category each *arr sends its downloads to (Sonarr's default for qBittorrent, taken for every client).
CATEGORY = {"sonarr": "tv-sonarr", "radarr": "radarr", "lidarr": "lidarr", "readarr": "readarr"}
# Well under discarr's request timeout, so a hung client shows as unavailable rather than as simarr itself
# not answering.
CLIENT_TIMEOUT_SECONDS = 2.0
NO_ETA = 8_640_000  # qBittorrent's eta when it has none
MIB = 1024 * 1024


@dataclass(frozen=True)
class ClientJob:
    """One job of a real client as the *arr's client code makes it a queue item (DownloadClientItem)."""

    download_id: str
    title: str
    size: int
    sizeleft: int
    status: str               # DownloadItemStatus, lower case: downloading, queued, paused, completed, failed, warning
    message: str | None = None
    seconds_left: float | None = None
    handle: Any = None        # what the client deletes it by
    in_history: bool = False  # a usenet client's history entry (finished: post-processing, completed, failed)
    protocol: str = "torrent"
    added: float = 0.0


def job_view(job: ClientJob, now: float) -> dict[str, Any]:
    """The record fields an *arr shows for a client's job (TrackedDownload: a failed item is failedPending
    until the *arr acts on it, shown failed here as simarr's own failed downloads are)."""
    view = queue_view(job.status, job.size, job.sizeleft, now, seconds_left=job.seconds_left, message=job.message)
    if job.status == "failed":
        view.update(trackedDownloadStatus="error", trackedDownloadState=FAILED_STATE["sonarr"])
    elif job.status == "warning" and job.in_history:
        view.update(trackedDownloadStatus="warning")
    return view


# --- qBittorrent (Sonarr QBittorrent.cs GetItems) ------------------------------------------------------

_METADATA = "qBittorrent is downloading metadata"
# qBittorrent state -> (queue status, the *arr's message), as Sonarr v4 maps them. Sonarr says _METADATA only
# with DHT on (else a warning that it cannot resolve the magnet); simarr does not read qBittorrent's
# preferences and always says it.
QBITTORRENT_STATUS: dict[str, tuple[str, str | None]] = {
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


def qbittorrent_job(torrent: dict[str, Any]) -> ClientJob:
    """A state Sonarr does not know (e.g. `allocating`) is, as in Sonarr, downloading with the message
    "Unknown download state: {state}". Bytes left as Sonarr computes them: size * (1 - progress)."""
    state = str(torrent.get("state"))
    status, message = QBITTORRENT_STATUS.get(state, ("downloading", f"Unknown download state: {state}"))
    size = int(torrent.get("size") or 0)
    eta = torrent.get("eta")
    return ClientJob(torrent["hash"].upper(), str(torrent.get("name") or torrent["hash"].lower()), size,
                     int(size * (1.0 - float(torrent.get("progress") or 0.0))), status, message,
                     eta if isinstance(eta, int) and 0 <= eta < NO_ETA else None, torrent["hash"].lower(),
                     added=float(torrent.get("added_on") or 0))


class QBittorrentSource:
    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.api = QBittorrentApi(config, timeout)

    def jobs(self, category: str) -> list[ClientJob]:
        return [qbittorrent_job(torrent) for torrent in self.api.torrents(category=category)
                if isinstance(torrent, dict) and isinstance(torrent.get("hash"), str)]

    def delete(self, jobs: list[ClientJob]) -> None:
        self.api.delete([job.handle for job in jobs])


# --- Deluge (Sonarr Deluge.cs GetItems) -----------------------------------------------------------------

DELUGE_FIELDS = ["hash", "name", "state", "total_size", "total_done", "eta", "is_finished", "label", "time_added"]


def deluge_job(torrent: dict[str, Any]) -> ClientJob:
    state = str(torrent.get("state"))
    if state == "Error":
        status, message = "warning", "Deluge is reporting an error"
    elif torrent.get("is_finished") and state != "Checking":
        status, message = "completed", None
    else:
        status, message = {"Queued": "queued", "Paused": "paused"}.get(state, "downloading"), None
    size = int(torrent.get("total_size") or 0)
    eta = torrent.get("eta")
    return ClientJob(str(torrent["hash"]).upper(), str(torrent.get("name") or torrent["hash"]), size,
                     max(0, size - int(torrent.get("total_done") or 0)), status, message,
                     eta if isinstance(eta, (int, float)) and eta > 0 else None, str(torrent["hash"]).lower(),
                     added=float(torrent.get("time_added") or 0))


class DelugeSource:
    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.api = DelugeApi(config, timeout)

    def jobs(self, category: str) -> list[ClientJob]:
        listed = self.api.labelled(category, DELUGE_FIELDS)
        return [deluge_job(dict(torrent, hash=info_hash)) for info_hash, torrent in listed.items()]

    def delete(self, jobs: list[ClientJob]) -> None:
        self.api.delete([job.handle for job in jobs])


# --- NZBGet (Sonarr Nzbget.cs GetQueue, GetHistory) -----------------------------------------------------

NZBGET_SUCCESS = ("SUCCESS", "NONE")
NZBGET_DELETE_FAILED = ("HEALTH", "DUPE", "SCAN", "COPY", "BAD")


def nzbget_queue_job(item: dict[str, Any], client_paused: bool, rate: int) -> ClientJob:
    total, paused, remaining = (nzbget_size(item, name) or 0 for name in ("FileSize", "PausedSize", "RemainingSize"))
    if client_paused or (remaining == paused and remaining != 0):
        status, left = "paused", remaining
    else:
        status = "queued" if not item.get("ActiveDownloads") and remaining != 0 else "downloading"
        left = remaining - paused
    return ClientJob(nzbget_id(item), str(item.get("NZBName") or item.get("NZBNicename") or ""), total, left, status,
                     seconds_left=left / rate if rate and status != "paused" else None, handle=item.get("NZBID"),
                     protocol="usenet")


def nzbget_history_job(item: dict[str, Any]) -> ClientJob | None:
    """Sonarr's reading of an entry's statuses; a job deleted by hand is gone unless marked bad (failed)."""
    par, unpack, move, script, delete = (str(item.get(name) or "") for name in
                                         ("ParStatus", "UnpackStatus", "MoveStatus", "ScriptStatus", "DeleteStatus"))
    if delete == "MANUAL":
        if item.get("MarkStatus") != "BAD":
            return None
        status = "failed"
    else:
        status = "completed"
        if par not in NZBGET_SUCCESS:
            status = "failed"
        if unpack == "SPACE":
            status = "warning"
        elif unpack not in NZBGET_SUCCESS:
            status = "failed"
        if move not in NZBGET_SUCCESS:
            status = "warning"
        if script not in NZBGET_SUCCESS:
            status = "failed"
        if delete and delete not in NZBGET_SUCCESS:
            status = "failed" if delete in NZBGET_DELETE_FAILED else "warning"
    return ClientJob(nzbget_id(item), str(item.get("Name") or ""), nzbget_size(item, "FileSize") or 0, 0, status,
                     seconds_left=0, handle=item.get("NZBID"), in_history=True, protocol="usenet")


class NZBGetSource:
    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.api = NZBGetApi(config, timeout)

    def jobs(self, category: str) -> list[ClientJob]:
        status = self.api.status()
        rate = status.get("DownloadRate") if isinstance(status.get("DownloadRate"), int) else 0
        queued = [nzbget_queue_job(item, bool(status.get("DownloadPaused")), rate) for item in self.api.groups()
                  if isinstance(item, dict) and item.get("Category") == category]
        finished = [nzbget_history_job(item) for item in self.api.history()
                    if isinstance(item, dict) and item.get("Category") == category]
        return queued + [job for job in finished if job is not None]

    def delete(self, jobs: list[ClientJob]) -> None:
        for job in jobs:  # as Sonarr's RemoveItem: the queued job with its files, or the history entry
            command = "HistoryDelete" if job.in_history else "GroupFinalDelete"
            if self.api.call("editqueue", command, "", [job.handle]) is not True:
                raise ClientError("bad_response", f"{self.api.where} did not delete {job.title}")


# --- SABnzbd (Sonarr Sabnzbd.cs GetQueue, GetHistory) ----------------------------------------------------

SABNZBD_QUEUED = {"Queued", "Grabbing", "Propagating"}


def _seconds(timeleft: Any) -> float | None:
    """SABnzbd's "H:MM:SS" (hours may exceed 24)."""
    try:
        hours, minutes, seconds = (int(part) for part in str(timeleft).split(":"))
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def sabnzbd_queue_job(slot: dict[str, Any], queue_paused: bool) -> ClientJob:
    status = str(slot.get("status"))
    if (queue_paused and slot.get("priority") != "Force") or status == "Paused":
        state, seconds = "paused", None
    else:
        state, seconds = ("queued" if status in SABNZBD_QUEUED else "downloading"), _seconds(slot.get("timeleft"))
    return ClientJob(str(slot["nzo_id"]), str(slot.get("filename") or ""), int(float(slot.get("mb") or 0) * MIB),
                     int(float(slot.get("mbleft") or 0) * MIB), state, seconds_left=seconds, handle=slot["nzo_id"],
                     protocol="usenet")


def sabnzbd_history_job(slot: dict[str, Any]) -> ClientJob | None:
    """Failed, completed, or still post-processing (verifying, moving...: downloading, nothing left)."""
    status = str(slot.get("status"))
    if status == "Deleted":
        return None
    state = {"Failed": "failed", "Completed": "completed"}.get(status, "downloading")
    return ClientJob(str(slot["nzo_id"]), str(slot.get("name") or ""), int(slot.get("bytes") or 0), 0, state,
                     message=slot.get("fail_message") or None, seconds_left=0, handle=slot["nzo_id"],
                     in_history=True, protocol="usenet")


class SABnzbdSource:
    HISTORY = 100  # entries read: Sonarr reads DownloadClientHistoryLimit (60) of them

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.api = SABnzbdApi(config, timeout)

    def jobs(self, category: str) -> list[ClientJob]:
        queue = self.api.queue()
        queued = [sabnzbd_queue_job(slot, bool(queue.get("paused"))) for slot in queue["slots"]
                  if isinstance(slot, dict) and slot.get("nzo_id") and slot.get("cat") == category
                  and slot.get("status") != "Deleted"]
        finished = [sabnzbd_history_job(slot) for slot in self.api.history(self.HISTORY)["slots"]
                    if isinstance(slot, dict) and slot.get("nzo_id") and slot.get("category") == category]
        return queued + [job for job in finished if job is not None]

    def delete(self, jobs: list[ClientJob]) -> None:
        for job in jobs:
            if job.in_history:
                self.api.delete_history(job.handle)
            else:
                self.api.call("queue", name="delete", value=job.handle, del_files=1)


SOURCES: dict[str, Callable[[DownloadClientConfig, float], Any]] = {
    "qbittorrent": QBittorrentSource, "deluge": DelugeSource, "nzbget": NZBGetSource, "sabnzbd": SABnzbdSource,
}


# --- one client shared by every instance ----------------------------------------------------------------

@dataclass
class MirroredDownload(Download):
    """A download whose figures are a real client's job's, not simulated."""
    scripted: ClassVar[bool] = False
    job: ClientJob | None = None
    reachable: bool = True  # False while the client cannot be asked: the last job stays

    @classmethod
    def of(cls, job: ClientJob, client_name: str) -> MirroredDownload:
        download = cls(download_id=job.download_id, title=job.title, size=job.size, protocol=job.protocol,
                       download_client=client_name, message=None, created_at=job.added, state="",
                       rate=0.0, downloaded=0.0, script=[])
        download.show(job)
        return download

    def show(self, job: ClientJob) -> None:
        """Take the client's latest (a magnet's name changes once its metadata comes)."""
        self.job, self.reachable = job, True
        self.state, self.size, self.title = job.status, job.size, job.title or job.download_id.lower()
        self.downloaded = job.size - job.sizeleft
        for record in self.records:
            record["title"] = self.title

    def advance(self, sim_now: float) -> None:
        """Nothing to integrate: the client keeps the figures."""

    def view(self, kind: str, now: float, speed: float) -> dict[str, Any]:
        view = job_view(self.job, now)
        return view if self.reachable else view | CLIENT_UNAVAILABLE


# How the *arrs name each kind of client by default (their downloadClient field).
CLIENT_NAMES = {"qbittorrent": "qBittorrent", "deluge": "Deluge", "nzbget": "NZBGet", "sabnzbd": "SABnzbd"}


class ClientSource:
    """One client shared by every instance: its session behind a lock, each outage logged once."""

    def __init__(self, config: DownloadClientConfig, timeout: float = CLIENT_TIMEOUT_SECONDS) -> None:
        self.config = config
        self._client = SOURCES[config.kind](config, timeout)
        self._lock = threading.Lock()
        self._failing = False

    def jobs(self, category: str) -> list[ClientJob] | None:
        """The jobs in `category`, or None while the client cannot tell."""
        with self._lock:
            try:
                jobs = self._client.jobs(category)
            except ClientError as error:
                if not self._failing:
                    log.warning("%s; its jobs stay in the queue as downloadClientUnavailable", error.reason)
                self._failing = True
                return None
            if self._failing:
                log.info("%s answers again", self.config.name)
            self._failing = False
        return jobs

    def delete(self, jobs: list[ClientJob]) -> None:
        """Delete jobs and their files; ClientError when the client cannot."""
        with self._lock:
            self._client.delete(jobs)


@dataclass
class ClientFeed:
    """One instance's share of a client: a download per job of its category, less those removed from its
    queue. The instance calls it under its own lock."""

    source: ClientSource
    category: str
    _downloads: dict[str, MirroredDownload] = field(default_factory=dict)  # by downloadId
    _ignored: set[str] = field(default_factory=set)  # removed from the queue but kept in the client

    def refresh(self) -> tuple[list[MirroredDownload], list[MirroredDownload]]:
        """Ask the client: (downloads new to the queue, downloads the client no longer has)."""
        listed = self.source.jobs(self.category)
        if listed is None:
            for download in self._downloads.values():
                download.reachable = False
            return [], []
        current = {job.download_id: job for job in listed if job.download_id not in self._ignored}
        gone = [self._downloads.pop(key) for key in list(self._downloads) if key not in current]
        added = []
        for key, job in current.items():
            if key in self._downloads:
                self._downloads[key].show(job)
            else:
                self._downloads[key] = MirroredDownload.of(job, CLIENT_NAMES[self.source.config.kind])
                added.append(self._downloads[key])
        return added, gone

    def release(self, downloads: list[Download], remove_from_client: bool) -> None:
        """These left the queue: delete them in the client, or ignore them from now on."""
        mirrored = [download for download in downloads if isinstance(download, MirroredDownload)]
        if remove_from_client:
            self.source.delete([download.job for download in mirrored])
        else:
            self._ignored.update(download.download_id for download in mirrored)
        for download in mirrored:
            del self._downloads[download.download_id]


def mirror_client(instances: list[SimInstance], config: DownloadClientConfig) -> None:
    """Have every instance also list the jobs of its kind's category in the client `config`."""
    source = ClientSource(config)
    for instance in instances:
        instance.feed = ClientFeed(source, CATEGORY[instance.kind])
