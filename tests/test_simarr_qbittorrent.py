"""simarr with its downloads from a real qBittorrent: the queue Sonarr would show for its torrents."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import requests

from services.simarr.client_source import NO_ETA, job_view, qbittorrent_job
from tests.conftest import Deployment, wait_until
from tests.torrent_clients import make_torrent, qbittorrent, random_file  # noqa: F401

TIMEOUT = 10
STALLED = "The download is stalled with no connections"
METADATA = "qBittorrent is downloading metadata"
NOW = 1_700_000_000.0

COMPLETED = ("uploading", "stalledUP", "pausedUP", "queuedUP", "forcedUP", "stoppedUP")
# qBittorrent states -> the status and errorMessage Sonarr v4 shows for them.
SONARR_SHOWS = [
    (("stalledDL",), "warning", STALLED),
    (("metaDL", "forcedMetaDL"), "queued", METADATA),
    (("pausedDL", "stoppedDL"), "paused", None),
    (("queuedDL", "checkingDL", "checkingUP", "checkingResumeData"), "queued", None),
    (("downloading", "forcedDL", "moving"), "downloading", None),
    (("error",), "warning", "qBittorrent is reporting an error"),
    (("missingFiles",), "warning", "The download is missing files"),
    (COMPLETED, "completed", None),
    (("allocating",), "downloading", "Unknown download state: allocating"),  # not a state Sonarr knows
]
STATE_TABLE = {state: (status, message) for states, status, message in SONARR_SHOWS for state in states}


@pytest.mark.parametrize("state", STATE_TABLE)
def test_every_qbittorrent_state_maps_as_sonarr_maps_it(state: str) -> None:
    done = state in COMPLETED
    torrent = {"hash": "ab" * 20, "state": state, "size": 1000, "progress": 1.0 if done else 0.25, "eta": NO_ETA}
    view = job_view(qbittorrent_job(torrent), NOW)
    assert (view["status"], view["errorMessage"]) == STATE_TABLE[state]
    assert view["trackedDownloadState"] == ("importPending" if done else "downloading")
    assert view["trackedDownloadStatus"] == "ok" and view["statusMessages"] == []
    assert (view["size"], view["sizeleft"]) == (1000, 0 if done else 750)
    # qBittorrent's "no ETA" is no ETA; a completed torrent has no time left.
    assert view["timeleft"] == ("00:00:00" if done else None)


def test_a_known_eta_gives_timeleft_and_completion_time() -> None:
    view = job_view(qbittorrent_job({"hash": "ab" * 20, "state": "downloading", "size": 1000, "progress": 0.5,
                                     "eta": 90}), NOW)
    assert (view["timeleft"], view["estimatedCompletionTime"]) == ("00:01:30", "2023-11-14T22:14:50Z")
    assert job_view(qbittorrent_job({"hash": "ab" * 20, "state": "metaDL", "size": 0, "progress": 0,
                                     "eta": NO_ETA}), NOW)["size"] == 0


# -- against a real qbittorrent-nox -------------------------------------------------------

class Sonarr:
    """simarr's Sonarr, listing the torrents of a real qBittorrent."""

    def __init__(self, deployment: Deployment, qb: Any) -> None:
        self.deployment, self.qb = deployment, qb
        deployment.simulate("sonarr")
        deployment.start("simarr", "--scenario", "empty", "--downloads-from", "qbittorrent",
                         env={"QBITTORRENT_URL": qb.url, "QBITTORRENT_USERNAME": "admin",
                              "QBITTORRENT_PASSWORD": qb.password})
        self.http = requests.Session()
        self.http.headers["X-Api-Key"] = deployment.env["SONARR_API_KEY"]
        self.api = f"{deployment.env['SONARR_URL']}/api/v3"

    def records(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"{self.api}/queue", params={"pageSize": 1000}, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        return answer.json()["records"]

    def record(self, info_hash: str) -> dict[str, Any] | None:
        return next((r for r in self.records() if r.get("downloadId") == info_hash.upper()), None)

    def wait_for(self, info_hash: str, **expected: Any) -> dict[str, Any]:
        """The torrent's record once it shows these fields (qBittorrent needs a second or two to check it)."""
        def shown() -> dict[str, Any] | None:
            record = self.record(info_hash)
            return record if record is not None and expected.items() <= record.items() else None
        return wait_until(shown, 15, f"{info_hash} to show {expected}")

    def remove(self, queue_ids: list[int], remove_from_client: bool) -> requests.Response:
        return self.http.delete(f"{self.api}/queue/bulk", json={"ids": queue_ids}, timeout=TIMEOUT,
                                params={"removeFromClient": str(remove_from_client).lower(), "blocklist": "false"})


@pytest.fixture
def sonarr(deployment: Deployment, qbittorrent) -> Sonarr:  # noqa: F811
    return Sonarr(deployment, qbittorrent("qbittorrent"))


def add_torrent(sonarr: Sonarr, tmp_path: Path, name: str, category: str = "tv-sonarr",
                size: int = 100_000) -> str:
    """A torrent of a fresh random file, saved where its data is not: nothing to seed it."""
    metainfo, info_hash = make_torrent(random_file(tmp_path / "source" / name, size))
    sonarr.qb.add_torrent(metainfo, tmp_path / "empty", category=category)
    return info_hash


def test_a_torrent_without_peers_shows_as_stalled_like_a_scripted_download(sonarr: Sonarr, tmp_path: Path) -> None:
    other = add_torrent(sonarr, tmp_path, "Some.Movie.2024.1080p.WEB.H264-GRP.mkv", category="radarr")
    info_hash = add_torrent(sonarr, tmp_path, "Some.Show.S01E01.1080p.WEB.H264-GRP.mkv", size=150_000)
    sonarr.deployment.control("sonarr", "POST", "downloads",
                              {"title": "Scripted.S01E02.1080p.WEB.H264-GRP", "size": 10, "state": "stalled"})

    record = sonarr.wait_for(info_hash, status="warning")
    assert record["trackedDownloadStatus"] == "ok"
    assert record["trackedDownloadState"] == "downloading"
    assert record["errorMessage"] == STALLED
    assert record["title"] == "Some.Show.S01E01.1080p.WEB.H264-GRP.mkv"
    assert (record["size"], record["sizeleft"]) == (150_000, 150_000)
    assert (record["protocol"], record["downloadClient"]) == ("torrent", "qBittorrent")
    assert "timeleft" not in record and "estimatedCompletionTime" not in record
    scripted = next(r for r in sonarr.records() if r["title"].startswith("Scripted"))
    assert list(record) == list(scripted)  # the same keys, in the same order
    assert sonarr.record(other) is None  # radarr's category is not Sonarr's
    assert sonarr.record(info_hash)["id"] == record["id"]  # stable across reads


def test_a_magnet_without_metadata_is_queued_with_size_0(sonarr: Sonarr) -> None:
    info_hash = os.urandom(20).hex()
    sonarr.qb.add_magnet(info_hash, category="tv-sonarr")
    record = sonarr.wait_for(info_hash, status="queued", errorMessage=METADATA)
    assert (record["size"], record["sizeleft"]) == (0, 0)


def test_a_paused_torrent_is_paused(sonarr: Sonarr, tmp_path: Path) -> None:
    info_hash = add_torrent(sonarr, tmp_path, "Paused.S01E01.1080p.WEB.H264-GRP.mkv")
    sonarr.wait_for(info_hash, status="warning")  # added and checked: a pause sent earlier may be lost
    sonarr.qb.api("POST", "torrents/pause", data={"hashes": info_hash})
    assert "errorMessage" not in sonarr.wait_for(info_hash, status="paused")


def test_removal_keeps_or_deletes_the_torrent_as_removefromclient_says(sonarr: Sonarr, tmp_path: Path) -> None:
    kept = add_torrent(sonarr, tmp_path, "Kept.S01E01.1080p.WEB.H264-GRP.mkv")
    deleted = add_torrent(sonarr, tmp_path, "Deleted.S01E02.1080p.WEB.H264-GRP.mkv")
    kept_id = sonarr.wait_for(kept, status="warning")["id"]
    deleted_id = sonarr.wait_for(deleted, status="warning")["id"]

    assert sonarr.remove([kept_id, 12345], remove_from_client=False).status_code == 404
    assert sonarr.record(kept) is not None  # nothing removed

    assert sonarr.remove([kept_id], remove_from_client=False).status_code == 200
    assert sonarr.record(kept) is None
    assert sonarr.qb.torrent(kept) is not None  # still in qBittorrent, but no longer in the queue

    scripted = sonarr.deployment.control("sonarr", "POST", "downloads", {"title": "Scripted.S01E03", "size": 10})
    assert sonarr.remove([deleted_id, *scripted["queue_ids"]], remove_from_client=True).status_code == 200
    assert sonarr.qb.torrent(deleted) is None
    assert sonarr.records() == []


def test_an_unreachable_qbittorrent_leaves_its_torrents_unavailable(sonarr: Sonarr, tmp_path: Path) -> None:
    info_hash = add_torrent(sonarr, tmp_path, "Outage.S01E01.1080p.WEB.H264-GRP.mkv")
    before = sonarr.wait_for(info_hash, status="warning")
    sonarr.qb.stop()

    after = sonarr.record(info_hash)  # 200, asserted by records()
    assert after["status"] == "downloadClientUnavailable"
    assert (after["id"], after["errorMessage"], after["size"]) == (before["id"], STALLED, before["size"])
    assert "trackedDownloadState" not in after
    # Deleting needs qBittorrent: the removal fails as the *arr's does, and removes nothing.
    assert sonarr.remove([after["id"]], remove_from_client=True).status_code == 500
    assert sonarr.record(info_hash)["status"] == "downloadClientUnavailable"
    assert sonarr.deployment.log_path("simarr").read_text().count("downloadClientUnavailable") == 1  # logged once


@pytest.mark.parametrize("name, env, why", [
    ("qbittorrent", {}, "is not a configured download client"),
    ("transmission", {"TRANSMISSION_URL": "http://127.0.0.1:9/transmission/rpc"}, "is a transmission client"),
])
def test_downloads_from_needs_a_configured_qbittorrent(deployment: Deployment, name: str, env: dict[str, str],
                                                       why: str) -> None:
    deployment.simulate("sonarr")
    deployment.env.update(env)
    done = deployment.cli("simarr", "--downloads-from", name, timeout=TIMEOUT)
    assert done.returncode == 2
    assert done.stderr.startswith(f"discarr simarr: --downloads-from {name} {why}")
    assert len(done.stderr.strip().splitlines()) == 1
