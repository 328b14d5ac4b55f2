"""The whole chain on a real Deluge: simarr's Sonarr lists deluged's torrents of its label as Sonarr does
(--downloads-from deluge), and the poller asks the same deluged for its own figures. Thresholds are
seconds; the torrents are real, made here from random bytes."""
import json
import time
from pathlib import Path

import pytest

from common.settings import DownloadClientConfig
from common.torrent_clients import DelugeApi
from tests.conftest import wait_until
from tests.torrent_clients import Deluge, deluge, make_torrent, random_file  # noqa: F401

SIZE = 4 * 1024 * 1024
LABEL = "tv-sonarr"  # Sonarr finds its Deluge torrents by their label


@pytest.fixture
def chain(deployment, deluge):  # noqa: F811
    """simarr (Sonarr on a real deluged), tracker and poller; returns that deluged."""
    daemon = deluge("deluge")
    deployment.simulate("sonarr")
    deployment.env.update(DELUGE_URL=daemon.url, DELUGE_USERNAME="admin", DELUGE_PASSWORD=daemon.password,
                          STUCK_THRESHOLD_MINUTES=str(4 / 60), MIN_PROGRESS_CHANGE="1", MIN_SIZE_CHANGE=str(64 * 1024))
    deployment.start("simarr", "--scenario", "empty", "--downloads-from", "deluge")
    deployment.start("tracker")
    deployment.start("poller")
    return daemon


def api_of(daemon: Deluge) -> DelugeApi:
    return DelugeApi(DownloadClientConfig("deluge", "deluge", daemon.url, "admin", daemon.password), 5)


def add(daemon: Deluge, tmp_path: Path, metainfo: bytes, info_hash: str, **options) -> str:
    """Add a torrent as Sonarr does: into the client, then labelled with Sonarr's category."""
    daemon.add_torrent(metainfo, tmp_path / "leech", **options)
    wait_until(lambda: daemon.torrent(info_hash) is not None, 15, "deluged to add the torrent")
    api_of(daemon).add_label(info_hash, LABEL)
    return info_hash


def add_stalled(daemon: Deluge, tmp_path: Path, name: str, private: bool = False) -> tuple[bytes, str]:
    """A torrent nobody seeds."""
    metainfo, info_hash = make_torrent(random_file(tmp_path / "sources" / name, 300_000), private=private)
    return metainfo, add(daemon, tmp_path, metainfo, info_hash)


def items(deployment, category: str) -> dict[str, dict]:
    return {item["download_id"]: item for item in deployment.cli_json("progress")[category]}


def wait_stuck(deployment, *hashes: str, timeout: float = 30) -> dict[str, dict]:
    wanted = {h.upper() for h in hashes}
    return wait_until(lambda: (lambda s: s if wanted <= set(s) else None)(items(deployment, "stuck")),
                      timeout, f"{len(wanted)} download(s) to be stuck")


def test_a_stalled_torrent_is_stuck_on_delugeds_evidence_and_a_paused_one_never(deployment, chain, tmp_path):
    _, stalled = add_stalled(chain, tmp_path, "Show.S01E01.1080p.mkv")
    _, paused = add_stalled(chain, tmp_path, "Show.S01E02.1080p.mkv")
    chain.pause(paused)
    stuck = wait_stuck(deployment, stalled)
    item = stuck[stalled.upper()]
    assert item["evidence"]["source"] == "deluge"
    assert item["client"]["state"] == "stalled" and item["client"]["client_state"] == "Downloading"
    time.sleep(8)  # two thresholds more
    assert paused.upper() not in items(deployment, "stuck")
    [shown] = [i for i in deployment.cli_json("check")["downloads"] if i["download_id"] == paused.upper()]
    assert shown["reason"] == "deluge: paused (Paused)"


def test_a_real_transfer_between_two_delugeds_shows_progress_and_is_never_stuck(
        deployment, chain, deluge, tmp_path):  # noqa: F811
    seeder = deluge("seeder")
    data = random_file(tmp_path / "seed" / "Movie.2024.2160p.mkv", SIZE)
    metainfo, info_hash = make_torrent(data, piece_length=64 * 1024)
    seeder.add_torrent(metainfo, data.parent, max_upload_speed=512)  # KiB/s: about 8 s for the whole file
    wait_until(lambda: (seeder.torrent(info_hash, ("state",)) or {}).get("state") == "Seeding", 30, "the seeder")
    add(chain, tmp_path, metainfo, info_hash)
    chain.add_peer(info_hash, seeder)
    seen_progress = set()

    def finished() -> bool:
        item = next((i for i in deployment.cli_json("check")["downloads"] if i["download_id"] == info_hash.upper()),
                    None)
        if item is None:
            return False
        assert item["category"] != "stuck", f"a moving transfer was called stuck: {item['reason']}"
        if item["activity"] == "active":
            assert item["evidence"]["source"] == "deluge"
            seen_progress.add(round(item["progress"]))
        return item["status"] == "completed"

    wait_until(finished, 90, "the transfer to finish", interval=0.3)
    assert len([p for p in seen_progress if 0 < p < 100]) >= 3, f"progress seen: {sorted(seen_progress)}"


def test_cleanup_keeps_a_private_torrent_seeding_labelled_and_removes_a_public_one(deployment, chain, tmp_path):
    _, private = add_stalled(chain, tmp_path, "Private.Show.S02E03.mkv", private=True)
    _, public = add_stalled(chain, tmp_path, "Public.Show.S02E04.mkv")
    wait_stuck(deployment, private, public)
    done = deployment.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    results = {r["download_id"]: r for r in json.loads(done.stdout)["results"]}
    assert results[private.upper()]["result"] == results[public.upper()]["result"] == "removed"
    assert "kept seeding in deluge (private torrent), tagged discarr-kept" in results[private.upper()]["detail"]
    assert chain.torrent(private, ("label",))["label"] == "discarr-kept"
    assert chain.torrent(public) is None
    # The password went to deluged and nowhere else.
    written = [path.read_text(errors="replace") for path in tmp_path.rglob("*")
               if path.is_file() and path.suffix in (".log", ".jsonl", ".msgpack") and "deluge" not in path.parts]
    assert written and not any(chain.password in text for text in written)
