"""The download clients' own figures for each torrent in a queue, and the tag on kept torrents.

The *arr's view of a download is second-hand: a status word refreshed now and
then. qBittorrent and Transmission know the bytes, the peers, the last
activity and whether a torrent is private. Each queue record whose downloadId
is a torrent hash gets its client's figures (`protocol.CLIENT_FIELDS`), or
None when no configured client has it. When a client cannot be reached, the
torrents it may hold are marked with the state "unreachable": the tracker
then changes nothing for them, and the poller removes none of them.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

from common.downloads import CLIENT_UNREACHABLE
from common.settings import DownloadClientConfig
from common.torrent_clients import ClientError, DelugeApi, QBittorrentApi, TransmissionApi
from common.usenet_clients import NZBGetApi, SABnzbdApi, nzbget_id, nzbget_size
from services.poller.normalize import MAX_BYTES

log = logging.getLogger(__name__)

KEPT_TAG = "discarr-kept"  # set on a torrent removed from the *arr only, so the user can find it
KEEP_TAG = "discarr-keep"  # set on a download an admin kept (SPEC 4.2), where the client's tags add up
FAILED_JOBS_PER_CLIENT = 500  # failed history entries a snapshot carries per usenet client, the newest first
# qBittorrent 4 tells a torrent's private flag one torrent per request: a poll asks for at most
# this many new ones (a first poll of thousands of torrents stays short); a removal asks for all.
PRIVATE_LOOKUPS_PER_POLL = 100

# qBittorrent's torrent states -> discarr's client states.
QBITTORRENT_STATES = {
    "downloading": "downloading", "forcedDL": "downloading",
    "stalledDL": "stalled",
    "metaDL": "metadata", "forcedMetaDL": "metadata",
    "pausedDL": "paused", "stoppedDL": "paused",
    "queuedDL": "queued",
    "checkingDL": "checking", "checkingUP": "checking", "checkingResumeData": "checking",
    "allocating": "checking", "moving": "checking",
    "uploading": "completed", "stalledUP": "completed", "pausedUP": "completed", "queuedUP": "completed",
    "forcedUP": "completed", "stoppedUP": "completed",
    "error": "error", "missingFiles": "error",
}
# Transmission's status numbers, as its RPC spec names them.
TRANSMISSION_STATUS = ("stopped", "check pending", "checking", "download pending", "downloading",
                       "seed pending", "seeding")
TRANSMISSION_FIELDS = ["hashString", "status", "error", "errorString", "haveValid", "sizeWhenDone", "leftUntilDone",
                       "rateDownload", "activityDate", "peersConnected", "peersSendingToUs",
                       "metadataPercentComplete", "isPrivate", "labels"]


def _number(value: Any) -> int | None:
    """A count a client sent, or None when it is not one: not a number, negative, not finite, or beyond what
    msgpack and SQLite carry (SPEC section 6)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_BYTES:
        return None  # NaN fails the comparison too
    return int(value)


def _count(value: Any) -> int:
    """A count where an unreadable one means none (speeds, peers)."""
    return _number(value) or 0


def _metadata_fraction(torrent: dict[str, Any]) -> float:
    value = torrent.get("metadataPercentComplete")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 1.0


def _figures(config: DownloadClientConfig, state: str, client_state: str, downloaded: Any, size: Any,
             speed: Any, last_activity: Any, seeds: Any, peers: Any, private: Any,
             labels: list[str] | None = None, **extra: Any) -> dict[str, Any] | None:
    """The client's figures for one download; None when its bytes cannot be read: then the *arr's figures
    stand for it, rather than bytes the client never said (a torrent at 0 would look stalled). `labels`
    are its tags, labels and category (PROTECT_CLIENT_TAGS); `extra` the usenet stage and health."""
    size, done = _number(size), _number(downloaded)
    if size is None or done is None:
        return None
    figures = {"name": config.name, "kind": config.kind, "state": state, "client_state": client_state,
               "downloaded": min(done, size), "size": size, "download_speed": _count(speed),
               "last_activity": float(last_activity) if _count(last_activity) else None,
               "seeds": _count(seeds), "peers": _count(peers),
               "private": private if isinstance(private, bool) else None, **extra}
    if labels is not None:
        figures["labels"] = labels
    return figures


def _label(value: Any) -> list[str]:
    """A client's one label or category as a list of labels."""
    return [str(value)] if value else []


def unreachable_figures(names: list[str]) -> dict[str, Any]:
    """The mark on a torrent that may belong to a client that did not answer."""
    config = DownloadClientConfig(", ".join(names), "unknown", "")
    return _figures(config, CLIENT_UNREACHABLE, CLIENT_UNREACHABLE, 0, 0, 0, None, 0, 0, None)


class QBittorrentReader:
    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.api = QBittorrentApi(config, timeout)
        self._private: dict[str, bool | None] = {}  # hash -> private flag: it never changes, so ask once
        self._lookups_left: int | None = None

    def figures(self, hashes: set[str], private_lookups: int | None) -> dict[str, dict[str, Any]]:
        self._lookups_left = private_lookups
        if not hashes:
            self.api.version()  # still ask, so its health is known
            return {}
        # Only the queue's torrents: a client seeding thousands answers a hundred times faster.
        torrents = self.api.torrents(torrent_hashes=sorted(h.lower() for h in hashes))
        found = {}
        for torrent in torrents:
            info_hash = str(torrent.get("hash", "")).upper() if isinstance(torrent, dict) else ""
            if info_hash in hashes and (figures := self._figures(info_hash, torrent)) is not None:
                found[info_hash] = figures
        self._private = {h: flag for h, flag in self._private.items() if h in found}
        return found

    def _figures(self, info_hash: str, torrent: dict[str, Any]) -> dict[str, Any] | None:
        raw_state = str(torrent.get("state", ""))
        tags = [tag.strip() for tag in str(torrent.get("tags") or "").split(",") if tag.strip()]  # "a, b"
        return _figures(self.config, QBITTORRENT_STATES.get(raw_state, "unknown"), raw_state,
                        torrent.get("completed"), torrent.get("size"), torrent.get("dlspeed"),
                        torrent.get("last_activity"), torrent.get("num_seeds"), torrent.get("num_leechs"),
                        self._is_private(info_hash, torrent), tags + _label(torrent.get("category")))

    def _is_private(self, info_hash: str, torrent: dict[str, Any]) -> bool | None:
        if isinstance(torrent.get("private"), bool):  # qBittorrent 5 lists it in torrents/info
            return torrent["private"]
        if info_hash not in self._private:
            if self._lookups_left is not None:
                if self._lookups_left <= 0:
                    return None  # not known yet: a later poll asks
                self._lookups_left -= 1
            properties = self.api.properties(info_hash)
            if properties is None:  # removed since torrents/info listed it: unknown, asked again if listed again
                return None
            flag = properties.get("is_private") if isinstance(properties, dict) else None
            self._private[info_hash] = flag if isinstance(flag, bool) else None
        return self._private[info_hash]

    def tag(self, info_hash: str, tag: str) -> None:
        self.api.add_tags(info_hash, tag)

    def untag(self, info_hash: str, tag: str) -> None:
        self.api.remove_tags(info_hash, tag)

    def close(self) -> None:
        self.api.close()


class TransmissionReader:
    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.api = TransmissionApi(config, timeout)

    def figures(self, hashes: set[str], private_lookups: int | None) -> dict[str, dict[str, Any]]:
        if not hashes:
            self.api.rpc("session-get")  # still ask, so its health is known
            return {}
        answer = self.api.rpc("torrent-get", ids=sorted(h.lower() for h in hashes), fields=TRANSMISSION_FIELDS)
        torrents = answer.get("torrents")
        if not isinstance(torrents, list):
            raise ClientError("bad_response", f"{self.api.where} answered torrent-get without torrents")
        found = {str(t.get("hashString", "")).upper(): self._figures(t) for t in torrents if isinstance(t, dict)}
        return {info_hash: figures for info_hash, figures in found.items() if figures is not None}

    def _figures(self, torrent: dict[str, Any]) -> dict[str, Any] | None:
        status = torrent.get("status")
        raw_state = TRANSMISSION_STATUS[status] if isinstance(status, int) and 0 <= status < 7 else "unknown"
        done = torrent.get("leftUntilDone") == 0 and _metadata_fraction(torrent) == 1
        if torrent.get("error") == 3:  # a local error (disk full, files gone); 1 and 2 are tracker trouble
            state = "error"
        elif raw_state in ("seed pending", "seeding") or (raw_state == "stopped" and done):
            state = "completed"
        elif raw_state == "downloading":
            if _metadata_fraction(torrent) < 1:
                state = "metadata"
            elif not torrent.get("peersSendingToUs") and not torrent.get("rateDownload"):
                state = "stalled"
            else:
                state = "downloading"
        else:
            state = {"stopped": "paused", "check pending": "checking", "checking": "checking",
                     "download pending": "queued"}.get(raw_state, "unknown")
        return _figures(self.config, state, raw_state, torrent.get("haveValid"), torrent.get("sizeWhenDone"),
                        torrent.get("rateDownload"), torrent.get("activityDate"), torrent.get("peersSendingToUs"),
                        torrent.get("peersConnected"), torrent.get("isPrivate"),
                        [label for label in torrent.get("labels") or () if isinstance(label, str)])

    def tag(self, info_hash: str, tag: str) -> None:
        labels = self._labels(info_hash)
        if tag not in labels:  # torrent-set replaces the whole list
            self.api.rpc("torrent-set", ids=[info_hash.lower()], labels=[*labels, tag])

    def untag(self, info_hash: str, tag: str) -> None:
        labels = self._labels(info_hash)
        if tag in labels:
            self.api.rpc("torrent-set", ids=[info_hash.lower()], labels=[label for label in labels if label != tag])

    def _labels(self, info_hash: str) -> list[str]:
        found = self.api.rpc("torrent-get", ids=[info_hash.lower()], fields=["labels"]).get("torrents") or [{}]
        return [label for label in found[0].get("labels") or [] if isinstance(label, str)]

    def close(self) -> None:
        self.api.close()


# Deluge's torrent states -> discarr's client states (common.torrent_clients.DelugeApi).
DELUGE_STATES = {"Downloading": "downloading", "Seeding": "completed", "Paused": "paused", "Queued": "queued",
                 "Checking": "checking", "Allocating": "checking", "Moving": "checking", "Error": "error"}
DELUGE_FIELDS = ["state", "total_done", "total_wanted", "download_payload_rate", "num_seeds", "num_peers", "private",
                 "is_finished", "num_pieces", "label", "time_since_transfer"]


class DelugeReader:
    """deluged's torrents, through its daemon RPC."""

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.api = DelugeApi(config, timeout)

    def figures(self, hashes: set[str], private_lookups: int | None) -> dict[str, dict[str, Any]]:
        if not hashes:
            self.api.version()  # still ask, so its health is known
            return {}
        found = {}
        for info_hash, torrent in self.api.torrents(sorted(h.lower() for h in hashes), DELUGE_FIELDS).items():
            figures = self._figures(torrent)
            if figures is not None:
                found[info_hash.upper()] = figures
        return found

    def _figures(self, torrent: dict[str, Any]) -> dict[str, Any] | None:
        raw = str(torrent.get("state", ""))
        state = DELUGE_STATES.get(raw, "unknown")
        if state == "downloading" and not torrent.get("num_pieces"):
            state = "metadata"  # a magnet whose metadata never came: no pieces yet
        elif state == "downloading" and not torrent.get("num_seeds") and not torrent.get("num_peers"):
            state = "stalled"  # judged on bytes anyway: Deluge's cached rate of an idle torrent never reaches 0
        # Private is unknown until the metadata came (Deluge says False meanwhile).
        private = torrent.get("private") if torrent.get("num_pieces") else None
        return _figures(self.config, state, raw, torrent.get("total_done"), torrent.get("total_wanted"),
                        torrent.get("download_payload_rate"), None, torrent.get("num_seeds"),
                        torrent.get("num_peers"), private, _label(torrent.get("label")))

    def tag(self, info_hash: str, tag: str) -> None:
        """A private torrent removed from the *arr keeps seeding, labelled (Deluge has one label per torrent:
        it was the *arr's, which no longer follows it)."""
        self.api.add_label(info_hash, tag)

    def close(self) -> None:
        self.api.close()


# NZBGet's job statuses (listgroups `Status`) of post-processing, and the stage each is, in discarr's words.
NZBGET_STAGES = {
    "PP_QUEUED": "queued for post-processing", "LOADING_PARS": "loading par files",
    "VERIFYING_SOURCES": "verifying", "REPAIRING": "repairing", "VERIFYING_REPAIRED": "verifying the repair",
    "RENAMING": "renaming", "UNPACKING": "unpacking", "MOVING": "moving", "EXECUTING_SCRIPT": "running a script",
    "PP_FINISHED": "finishing post-processing",
}
# SABnzbd's history statuses of a job still post-processing (sabnzbd/constants.py), in discarr's words.
SABNZBD_STAGES = {
    "Queued": "queued for post-processing", "QuickCheck": "checking", "Verifying": "verifying",
    "Repairing": "repairing", "Fetching": "fetching more repair blocks", "Extracting": "unpacking",
    "Moving": "moving", "Running": "running a script",
}
SABNZBD_QUEUED = {"Queued", "Grabbing", "Propagating"}
SABNZBD_CHECKING = {"Checking", "QuickCheck"}
MIB = 1024 * 1024
HISTORY_PAGE = 100  # the newest history entries read for post-processing jobs
SABNZBD_REQUIRED_RATIO = 100.2  # sabnzbd/cfg.py req_completion_rate, the default: % of the non-par2 bytes
CLIENT_PAUSED = "paused as a whole"  # the client_state of a job whose whole client is paused (a full disk too)


class NZBGetReader:
    """NZBGet's jobs (listgroups: downloading and post-processing) and history (finished ones)."""

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.api = NZBGetApi(config, timeout)

    def figures(self, ids: set[str], private_lookups: int | None) -> dict[str, dict[str, Any]]:
        status = self.api.status()  # asked even for no job, so its health is known
        if not ids:
            return {}
        found = {}
        for item in self.api.groups():
            if isinstance(item, dict) and (job := nzbget_id(item).upper()) in ids:
                figures = self._queued(item, bool(status.get("DownloadPaused")))
                if figures is not None:
                    found[job] = figures
        if ids - set(found):  # a job whose post-processing is over is in the history
            for item in self.api.history():
                if isinstance(item, dict) and (job := nzbget_id(item).upper()) in ids and job not in found:
                    figures = self._finished(item)
                    if figures is not None:
                        found[job] = figures
        return found

    def _queued(self, item: dict[str, Any], client_paused: bool) -> dict[str, Any] | None:
        total, remaining, paused = (nzbget_size(item, name) for name in ("FileSize", "RemainingSize", "PausedSize"))
        if total is None or remaining is None or paused is None:
            return None
        raw = str(item.get("Status", ""))
        stage = NZBGET_STAGES.get(raw)
        if stage is not None:
            state = "post_processing"
        elif client_paused:
            state, raw = "paused", CLIENT_PAUSED
        elif raw == "PAUSED" or (remaining == paused and remaining):  # every file left is paused
            state = "paused"
        elif raw == "QUEUED" or (not item.get("ActiveDownloads") and remaining):
            state = "queued"
        else:
            state = "downloading"
        # The paused par files are downloaded only when a repair needs them: not part of the job until then.
        health, critical = item.get("Health"), item.get("CriticalHealth")
        measured = ({"health": health / 10, "critical_health": critical / 10}  # per mille
                    if _number(health) is not None and _number(critical) is not None else {})
        return _figures(self.config, state, raw, total - remaining, total - paused, 0, None, 0, 0, None,
                        _label(item.get("Category")), stage=stage, **measured)

    def _finished(self, item: dict[str, Any]) -> dict[str, Any] | None:
        raw = str(item.get("Status", ""))  # "SUCCESS/ALL", "FAILURE/HEALTH", "DELETED/MANUAL", ...
        if raw.startswith("DELETED"):
            return None
        size = nzbget_size(item, "FileSize")
        state = "completed" if raw.startswith("SUCCESS") else "error"
        return _figures(self.config, state, raw, size, size, 0, None, 0, 0, None, _label(item.get("Category")))

    def failed_jobs(self) -> list[dict[str, Any]]:
        """The failed entries of its history (protocol.FAILED_JOB_FIELDS)."""
        return [failed_job(nzbget_id(item).upper(), item.get("NZBID"), item.get("Name"), nzbget_size(item, "FileSize"),
                           item.get("Category"), str(item["Status"]))
                for item in self.api.history()
                if isinstance(item, dict) and str(item.get("Status", "")).startswith("FAILURE")]

    def delete_job(self, history_id: Any) -> None:
        """Remove a failed history entry and its files (HistoryFinalDelete)."""
        self.api.delete_history(int(history_id))

    def tag(self, job: str, tag: str) -> None:
        """Usenet jobs are never kept seeding: nothing to tag."""

    def close(self) -> None:
        self.api.close()


def failed_job(job: str, history_id: Any, title: Any, size: int | None, category: Any, state: str) -> dict[str, Any]:
    """One failed entry of a usenet client's history, as snapshots carry it (protocol.FAILED_JOB_FIELDS)."""
    return {"id": job, "history_id": str(history_id), "title": str(title or job), "size": size or 0,
            "category": str(category or ""), "state": state}


def _megabytes(value: Any) -> int | None:
    """SABnzbd's sizes in MB, sent as text ("1024.50") or numbers."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return _number(number * MIB)


class SABnzbdReader:
    """SABnzbd's queue (downloading jobs) and history (post-processing, completed and failed ones)."""

    def __init__(self, config: DownloadClientConfig, timeout: float) -> None:
        self.config = config
        self.api = SABnzbdApi(config, timeout)

    def figures(self, ids: set[str], private_lookups: int | None) -> dict[str, dict[str, Any]]:
        queue = self.api.queue()  # asked even for no job, so its health is known
        if not ids:
            return {}
        client_paused = bool(queue.get("paused"))
        found = {}
        for slot in queue["slots"]:
            if isinstance(slot, dict) and str(slot.get("nzo_id", "")).upper() in ids:
                figures = self._queued(slot, client_paused)
                if figures is not None:
                    found[str(slot["nzo_id"]).upper()] = figures
        if ids - set(found):  # post-processing jobs are the newest of the history
            for slot in self.api.history(HISTORY_PAGE)["slots"]:
                job = str(slot.get("nzo_id", "")).upper() if isinstance(slot, dict) else ""
                if job in ids and job not in found and (figures := self._finished(slot)) is not None:
                    found[job] = figures
        return found

    def _queued(self, slot: dict[str, Any], client_paused: bool) -> dict[str, Any] | None:
        size, left = _megabytes(slot.get("mb")), _megabytes(slot.get("mbleft"))
        if size is None or left is None:
            return None
        raw = str(slot.get("status", ""))
        if client_paused and slot.get("priority") != "Force":  # a forced job downloads through a pause
            state, raw = "paused", CLIENT_PAUSED
        elif raw == "Paused":
            state = "paused"
        elif raw in SABNZBD_QUEUED:
            state = "queued"
        elif raw in SABNZBD_CHECKING:
            state = "checking"
        else:
            state = "downloading"
        missing = _megabytes(slot.get("mbmissing"))
        measured = self._health(str(slot["nzo_id"]), size, missing) if missing else {}  # only then ask its files
        return _figures(self.config, state, raw, size - min(left, size), size, 0, None, 0, 0, None,
                        _label(slot.get("cat")), **measured)

    def _health(self, nzo_id: str, size: int, missing: int) -> dict[str, float]:
        """The job's health and critical health as NZBGet measures them (% of its bytes), from SABnzbd's own
        rule for a job that can never complete (sabnzbd/nzbstuff.py check_availability_ratio): it needs
        (size - missing) >= 1.002 x (size - its par2 bytes). SABnzbd sends only the missing bytes; its par2
        volumes come from its file list."""
        repair = sum(_megabytes(f.get("mb")) or 0 for f in self.api.files(nzo_id)
                     if isinstance(f, dict) and ("set" in f or str(f.get("filename", "")).lower().endswith(".par2")))
        return {"health": 100.0 * (size - missing) / size,
                "critical_health": min(100.0, SABNZBD_REQUIRED_RATIO * (size - repair) / size)}

    def _finished(self, slot: dict[str, Any]) -> dict[str, Any] | None:
        raw = str(slot.get("status", ""))
        size = _number(slot.get("bytes"))
        stage = SABNZBD_STAGES.get(raw)
        state = "post_processing" if stage else "completed" if raw == "Completed" else "error"
        return _figures(self.config, state, raw, size, size, 0, None, 0, 0, None, _label(slot.get("category")),
                        stage=stage)

    def failed_jobs(self) -> list[dict[str, Any]]:
        """The failed entries of its history (protocol.FAILED_JOB_FIELDS)."""
        return [failed_job(str(slot.get("nzo_id", "")).upper(), slot.get("nzo_id"), slot.get("name"),
                           _number(slot.get("bytes")), slot.get("category"), "Failed")
                for slot in self.api.history(FAILED_JOBS_PER_CLIENT, failed_only=True)["slots"]
                if isinstance(slot, dict) and slot.get("status") == "Failed" and slot.get("nzo_id")]

    def delete_job(self, history_id: Any) -> None:
        """Remove a failed history entry and its files (del_files)."""
        self.api.delete_history(str(history_id))

    def tag(self, job: str, tag: str) -> None:
        """Usenet jobs are never kept seeding: nothing to tag."""

    def close(self) -> None:
        self.api.close()


READERS = {"qbittorrent": QBittorrentReader, "transmission": TransmissionReader, "deluge": DelugeReader,
           "nzbget": NZBGetReader, "sabnzbd": SABnzbdReader}


def protocol_of(record: dict[str, Any]) -> str | None:
    """The protocol whose clients may hold this record's download, or None when none can be matched
    (no downloadId: the *arr's view stands)."""
    return record["protocol"] if record["download_id"] is not None else None


class DownloadClients:
    """Every configured client, for one thread (each keeps its own HTTP session)."""

    def __init__(self, configs: Iterable[DownloadClientConfig], timeout: float) -> None:
        self.readers = {config.name: READERS[config.kind](config, timeout) for config in configs}
        self._last_state: dict[str, str] = {}

    def annotate(self, records: list[dict[str, Any]], private_lookups: int | None = PRIVATE_LOOKUPS_PER_POLL
                 ) -> list[dict[str, Any]]:
        """Give each torrent record its client's figures; returns each client's health.

        `private_lookups`: how many private flags a client may be asked for one by one (None: all).
        """
        if not self.readers:
            return []  # no client configured: every record keeps "client": None
        wanted: dict[str, set[str]] = {"torrent": set(), "usenet": set()}
        for record in records:
            if protocol_of(record) in wanted:
                wanted[record["protocol"]].add(record["download_id"].upper())
        found: dict[str, dict[str, Any]] = {}
        health: list[dict[str, Any]] = []
        down: dict[str, list[str]] = {"torrent": [], "usenet": []}  # protocol -> clients that did not answer
        for reader in self.readers.values():
            try:
                found.update(reader.figures(wanted[reader.config.protocol], private_lookups))
                state, error = "ok", None
            except ClientError as exc:
                state, error = exc.state, exc.reason
            except (TypeError, ValueError, KeyError, AttributeError) as exc:  # JSON of the wrong shape
                state, error = "bad_response", f"{reader.api.where} answered something unexpected ({exc!r:.80})"
            if state != "ok":
                down[reader.config.protocol].append(reader.config.name)
            health.append({"name": reader.config.name, "kind": reader.config.kind, "state": state, "error": error})
            self._log_health(reader.config.name, state, error)
        for record in records:
            protocol = protocol_of(record)
            figures = found.get(record["download_id"].upper()) if protocol in wanted else None
            if figures is None and down.get(protocol):  # it may be in the client that did not answer
                figures = unreachable_figures(down[protocol])
            record["client"] = figures
        return health

    def failed_jobs(self, health: list[dict[str, Any]], limit: int = FAILED_JOBS_PER_CLIENT) -> None:
        """Add to each usenet client's health the failed entries of its history (CLEANUP_USENET_FAILED)."""
        for entry in health:
            reader = self.readers[entry["name"]]
            if entry["state"] != "ok" or reader.config.protocol != "usenet":
                continue
            try:
                entry["failed"] = reader.failed_jobs()[:limit]
            except ClientError as exc:
                entry.update(state=exc.state, error=exc.reason)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:  # JSON of the wrong shape
                entry.update(state="bad_response",
                             error=f"{reader.api.where} answered its history with something unexpected ({exc!r:.80})")

    def tag(self, figures: dict[str, Any], info_hash: str, tag: str) -> None:
        self.readers[figures["name"]].tag(info_hash, tag)

    def mark_kept(self, figures: dict[str, Any], download_id: str, kept: bool) -> str | None:
        """Tag (or untag) a kept download `discarr-keep` in its client, where tags add up (qBittorrent's
        tags, Transmission's labels); the client's name, or None where it cannot be tagged so (Deluge has
        one label, which Sonarr and Radarr find their torrents by; usenet jobs have none)."""
        reader = self.readers[figures["name"]]
        if not hasattr(reader, "untag"):
            return None
        (reader.tag if kept else reader.untag)(download_id, KEEP_TAG)
        return reader.config.name

    def _log_health(self, name: str, state: str, error: str | None) -> None:
        if state != self._last_state.get(name, "ok"):
            if state == "ok":
                log.info("download client %s answers again", name)
            else:
                log.warning("download client %s is unhealthy: %s", name, error)
        self._last_state[name] = state

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
