"""The whole chain on a real qBittorrent: simarr reads its queue from qbittorrent-nox as Sonarr
does, and the poller asks the same qBittorrent for its own figures.

Thresholds are seconds; the torrents are real, made here from random bytes.
"""
import json
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.torrent_clients import make_torrent, qbittorrent, random_file  # noqa: F401

SIZE = 4 * 1024 * 1024
CATEGORY = "tv-sonarr"


@pytest.fixture
def chain(deployment, qbittorrent):  # noqa: F811
    """simarr (Sonarr backed by a real qBittorrent), tracker and poller; returns that qBittorrent."""
    qb = qbittorrent("qbittorrent")
    deployment.simulate("sonarr")
    deployment.env.update(QBITTORRENT_URL=qb.url, QBITTORRENT_USERNAME="admin", QBITTORRENT_PASSWORD=qb.password,
                          STUCK_THRESHOLD_MINUTES=str(4 / 60), MIN_PROGRESS_CHANGE="1",
                          MIN_SIZE_CHANGE=str(64 * 1024))
    deployment.start("simarr", "--scenario", "empty", "--downloads-from", "qbittorrent")
    deployment.start("tracker")
    deployment.start("poller")
    return qb


def add_stalled(qb, tmp_path: Path, name: str, private: bool = False) -> tuple[bytes, str]:
    """A torrent nobody seeds, in Sonarr's category: qBittorrent calls it stalledDL."""
    metainfo, info_hash = make_torrent(random_file(tmp_path / "sources" / name, 300_000), private=private)
    qb.add_torrent(metainfo, tmp_path / "leech", category=CATEGORY)
    return metainfo, info_hash


def state_of(qb, info_hash: str) -> str | None:
    """The torrent's qBittorrent state; None until qBittorrent has added it (adding is asynchronous)."""
    torrent = qb.torrent(info_hash)
    return torrent["state"] if torrent else None


def stuck_items(deployment) -> dict[str, dict]:
    return {item["download_id"]: item for item in deployment.cli_json("progress")["stuck"]}


def wait_stuck(deployment, *hashes: str, timeout: float = 30) -> dict[str, dict]:
    wanted = {h.upper() for h in hashes}
    return wait_until(lambda: (lambda s: s if wanted <= set(s) else None)(stuck_items(deployment)),
                      timeout, f"{len(wanted)} download(s) to be stuck")


def test_a_stalled_torrent_and_a_magnet_without_metadata_are_stuck_on_the_clients_evidence(
        deployment, chain, tmp_path):
    _, stalled = add_stalled(chain, tmp_path, "Show.S01E01.1080p.mkv")
    magnet = "5e" * 20
    chain.add_magnet(magnet, category=CATEGORY)
    stuck = wait_stuck(deployment, stalled, magnet)

    item = stuck[stalled.upper()]
    assert item["status"] == "warning" and item["title"] == "Show.S01E01.1080p.mkv"
    assert item["evidence"]["source"] == "qbittorrent"
    assert item["client"]["client_state"] == "stalledDL" and item["client"]["seeds"] == 0
    assert "qbittorrent: stalledDL, 0 seeds, 0 peers" in item["reason"]
    metadata = stuck[magnet.upper()]
    assert metadata["status"] == "queued" and metadata["size"] == 0
    assert metadata["client"]["client_state"] == "metaDL"
    assert metadata["evidence"]["source"] == "qbittorrent"


def test_a_real_transfer_between_two_qbittorrents_shows_progress_and_is_never_stuck(
        deployment, chain, qbittorrent, tmp_path):  # noqa: F811
    seeder = qbittorrent("seeder")
    data = random_file(tmp_path / "seed" / "Movie.2024.2160p.mkv", SIZE)
    metainfo, info_hash = make_torrent(data, piece_length=64 * 1024)
    seeder.add_torrent(metainfo, data.parent, upLimit=str(512 * 1024))  # about 8 s for the whole file
    wait_until(lambda: state_of(seeder, info_hash) in ("stalledUP", "uploading"), 30, "the seeder to seed")
    # Added paused (never "active" while it checks its files), then resumed with its peer at once,
    # so the only pause in its progress is the connection itself.
    chain.add_torrent(metainfo, tmp_path / "leech", category=CATEGORY, paused="true")
    wait_until(lambda: state_of(chain, info_hash) == "pausedDL", 30, "the leecher to be ready")
    chain.api("POST", "torrents/resume", data={"hashes": info_hash})
    wait_until(lambda: state_of(chain, info_hash) in ("stalledDL", "downloading"), 30, "the leecher to start")
    chain.add_peer(info_hash, seeder)

    seen_progress = set()

    def finished() -> bool:
        check = deployment.cli_json("check")
        item = next((i for i in check["downloads"] if i["download_id"] == info_hash.upper()), None)
        if item is None:
            return False
        assert item["category"] != "stuck", f"a moving transfer was called stuck: {item['reason']}"
        if item["activity"] == "active":
            assert item["evidence"]["source"] == "qbittorrent"
            seen_progress.add(round(item["progress"]))
        return item["status"] == "completed"

    wait_until(finished, 90, "the transfer to finish", interval=0.3)
    assert len([p for p in seen_progress if 0 < p < 100]) >= 3, f"progress seen: {sorted(seen_progress)}"
    assert chain.torrent(info_hash)["completed"] == SIZE


def test_cleanup_keeps_a_private_torrent_seeding_and_a_recurring_release_is_blocklisted(
        deployment, chain, tmp_path):
    _, private = add_stalled(chain, tmp_path, "Private.Show.S02E03.mkv", private=True)
    public_metainfo, public = add_stalled(chain, tmp_path, "Public.Show.S02E04.mkv")
    wait_stuck(deployment, private, public)
    deployment.control("sonarr", "POST", "requests/clear")
    # The terminal's preview says so before anyone confirms, as the Discord preview does.
    preview = deployment.cli("cleanup", "--dry-run")
    assert "Private torrents are removed from the *arr only and keep seeding" in " ".join(preview.stdout.split())
    assert "private torrent" in preview.stdout

    done = deployment.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    results = {r["download_id"]: r for r in json.loads(done.stdout)["results"]}
    assert results[private.upper()]["result"] == results[public.upper()]["result"] == "removed"
    assert "kept seeding in qbittorrent (private torrent), tagged discarr-kept" in results[private.upper()]["detail"]
    # The private torrent is still in qBittorrent, tagged; the public one is gone from it.
    assert chain.torrent(private)["tags"] == "discarr-kept"
    assert chain.torrent(public) is None
    deletes = {r["query"]["removeFromClient"]: r["query"] for r in deployment.control("sonarr", "GET", "requests")
               if r["method"] == "DELETE"}
    assert deletes["false"]["blocklist"] == "true"  # the private one: blocklisted, kept in the client
    assert deletes["true"]["blocklist"] == "true"

    # The same release is grabbed again: same hash. It is recurring, and not blocklisted into a loop.
    chain.add_torrent(public_metainfo, tmp_path / "leech", category=CATEGORY)
    item = wait_until(lambda: (lambda i: i if i and i["recurring"] else None)(
        stuck_items(deployment).get(public.upper())), 30, "the download to come back, stuck")
    assert item["removed_before"] == 1 and item["reason"].startswith("recurring (removed 1x before)")
    assert private.upper() not in stuck_items(deployment)  # removed from Sonarr, it stays out of the queue
    deployment.control("sonarr", "POST", "requests/clear")
    again = deployment.cli_json("cleanup", "--yes")
    assert [r["result"] for r in again["results"]] == ["removed"]
    assert "this release is blocklisted, so it is never grabbed again" in again["results"][0]["detail"]
    [delete] = [r for r in deployment.control("sonarr", "GET", "requests") if r["method"] == "DELETE"]
    assert delete["query"] == {"removeFromClient": "true", "blocklist": "true", "skipRedownload": "false"}

    # The password went to qBittorrent and nowhere else.
    written = [path.read_text(errors="replace") for path in tmp_path.rglob("*")
               if path.is_file() and path.suffix in (".log", ".jsonl", ".msgpack") and "qbittorrent" not in path.parts]
    assert written and not any(chain.password in text for text in written)


def test_an_unreachable_client_is_unhealthy_and_nothing_of_it_is_removed(deployment, chain, tmp_path):
    _, stalled = add_stalled(chain, tmp_path, "Show.S03E01.mkv")
    wait_stuck(deployment, stalled)
    chain.stop()
    clients = wait_until(lambda: [c for c in deployment.cli_json("progress")["download_clients"] if not c["healthy"]],
                         30, "qbittorrent to be reported unhealthy")
    assert clients[0]["name"] == "qbittorrent" and clients[0]["state"] == "unreachable"
    cleanup = deployment.cli_json("cleanup", "--yes")
    assert cleanup["candidates"] == [] and cleanup["results"] == []
    assert [item["download_id"] for item in cleanup["withheld"]] == [stalled.upper()]
    assert "cannot be reached" in cleanup["withheld"][0]["withheld"]
