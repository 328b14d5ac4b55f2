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
from common.torrent_clients import ClientError, QBittorrentApi, TransmissionApi
from services.poller.normalize import MAX_BYTES

log = logging.getLogger(__name__)

KEPT_TAG = "discarr-kept"  # set on a torrent removed from the *arr only, so the user can find it
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
             speed: Any, last_activity: Any, seeds: Any, peers: Any, private: Any) -> dict[str, Any] | None:
    """The client's figures for one torrent; None when its bytes cannot be read: then the *arr's figures
    stand for it, rather than bytes the client never said (a torrent at 0 would look stalled)."""
    size, done = _number(size), _number(downloaded)
    if size is None or done is None:
        return None
    return {"name": config.name, "kind": config.kind, "state": state, "client_state": client_state,
            "downloaded": min(done, size), "size": size, "download_speed": _count(speed),
            "last_activity": float(last_activity) if _count(last_activity) else None,
            "seeds": _count(seeds), "peers": _count(peers),
            "private": private if isinstance(private, bool) else None}


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
        return _figures(self.config, QBITTORRENT_STATES.get(raw_state, "unknown"), raw_state,
                        torrent.get("completed"), torrent.get("size"), torrent.get("dlspeed"),
                        torrent.get("last_activity"), torrent.get("num_seeds"), torrent.get("num_leechs"),
                        self._is_private(info_hash, torrent))

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
                        torrent.get("peersConnected"), torrent.get("isPrivate"))

    def tag(self, info_hash: str, tag: str) -> None:
        found = self.api.rpc("torrent-get", ids=[info_hash.lower()], fields=["labels"]).get("torrents") or [{}]
        labels = [label for label in found[0].get("labels") or [] if isinstance(label, str)]
        if tag not in labels:  # torrent-set replaces the whole list
            self.api.rpc("torrent-set", ids=[info_hash.lower()], labels=[*labels, tag])

    def close(self) -> None:
        self.api.close()


READERS = {"qbittorrent": QBittorrentReader, "transmission": TransmissionReader}


def is_torrent(record: dict[str, Any]) -> bool:
    return record["protocol"] == "torrent" and record["download_id"] is not None


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
        hashes = {record["download_id"].upper() for record in records if is_torrent(record)}
        found: dict[str, dict[str, Any]] = {}
        health, down = [], []
        for reader in self.readers.values():
            try:
                found.update(reader.figures(hashes, private_lookups))
                state, error = "ok", None
            except ClientError as exc:
                state, error = exc.state, exc.reason
            except (TypeError, ValueError, KeyError, AttributeError) as exc:  # JSON of the wrong shape
                state, error = "bad_response", f"{reader.api.where} answered something unexpected ({exc!r:.80})"
            if state != "ok":
                down.append(reader.config.name)
            health.append({"name": reader.config.name, "kind": reader.config.kind, "state": state, "error": error})
            self._log_health(reader.config.name, state, error)
        for record in records:
            figures = found.get(record["download_id"].upper()) if is_torrent(record) else None
            if figures is None and down and is_torrent(record):
                figures = unreachable_figures(down)
            record["client"] = figures
        return health

    def tag(self, figures: dict[str, Any], info_hash: str, tag: str) -> None:
        self.readers[figures["name"]].tag(info_hash, tag)

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
