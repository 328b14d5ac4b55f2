"""DelugeApi against real deluged daemons on loopback: what Deluge 2 says of stalled, paused, queued,
magnet, private and moving torrents, its labels, and its failures in discarr's words."""
import os
import signal
import time

import pytest

from common.settings import DownloadClientConfig
from common.torrent_clients import ClientError, DelugeApi
from tests.conftest import free_port, wait_until
from tests.torrent_clients import Deluge, deluge, make_torrent, random_file  # noqa: F401

SIZE = 300_000
FIELDS = ["state", "total_done", "total_wanted", "total_remaining", "download_payload_rate", "num_seeds",
          "num_peers", "private", "is_finished", "num_pieces", "label"]


def api_of(daemon: Deluge, timeout: float = 5, username: str = "admin", password: str | None = None) -> DelugeApi:
    return DelugeApi(DownloadClientConfig("deluge", "deluge", daemon.url, username,
                                          daemon.password if password is None else password), timeout)


def a_torrent(tmp_path, name: str, private: bool = False, size: int = SIZE) -> tuple[bytes, str]:
    return make_torrent(random_file(tmp_path / "sources" / name, size), private=private)


def status_when(api: DelugeApi, info_hash: str, what: str, predicate, timeout: float = 15) -> dict:
    """The torrent's fields once `predicate` holds (Deluge's status follows libtorrent's by up to a second)."""
    def read() -> dict | None:
        status = api.torrents([info_hash], FIELDS).get(info_hash)
        return status if status is not None and predicate(status) else None
    return wait_until(read, timeout, what)


def test_a_stalled_a_paused_and_a_private_torrent_and_a_magnet_without_metadata(deluge, tmp_path):  # noqa: F811
    daemon = deluge()
    added = {}
    for name, private in (("stalled", False), ("private", True), ("paused", False)):
        metainfo, added[name] = a_torrent(tmp_path, f"{name}.mkv", private)
        daemon.add_torrent(metainfo, tmp_path / "empty")
    magnet = "ab" * 20
    daemon.add_magnet(magnet)
    daemon.pause(added["paused"])
    api = api_of(daemon)
    assert api.version().startswith("2.")

    answer = api.torrents([h.upper() for h in (*added.values(), magnet)] + ["CD" * 20], FIELDS)
    assert set(answer) == {*added.values(), magnet}  # by lower-case hash; one Deluge lacks is left out
    # No peer ever came: Deluge has no "stalled" state, only nothing moving.
    assert answer[added["stalled"]] == {
        "state": "Downloading", "total_done": 0, "total_wanted": SIZE, "total_remaining": SIZE,
        "download_payload_rate": 0, "num_seeds": 0, "num_peers": 0, "private": False, "is_finished": False,
        "num_pieces": 19}  # no "label": the Label plugin is not enabled
    assert answer[added["private"]]["private"] is True and answer[added["private"]]["state"] == "Downloading"
    assert answer[added["paused"]]["state"] == "Paused" and answer[added["paused"]]["total_wanted"] == SIZE
    # No metadata: nothing says so but the pieces and the size; `private` reads false, which is unknown.
    assert answer[magnet] == {
        "state": "Downloading", "total_done": 0, "total_wanted": 0, "total_remaining": 0,
        "download_payload_rate": 0, "num_seeds": 0, "num_peers": 0, "private": False, "is_finished": False,
        "num_pieces": 0}
    api.close()


def test_a_torrent_waiting_for_a_download_slot_is_queued(deluge, tmp_path):  # noqa: F811
    daemon = deluge(max_active_downloading=1)
    hashes = []
    for name in ("first.mkv", "second.mkv"):
        metainfo, info_hash = a_torrent(tmp_path, name)
        daemon.add_torrent(metainfo, tmp_path / "empty")
        hashes.append(info_hash)
    api = api_of(daemon)
    states = lambda: sorted(status["state"] for status in api.torrents(hashes, ["state"]).values())  # noqa: E731
    wait_until(lambda: states() == ["Downloading", "Queued"], 15, "one torrent downloading and one queued")


def test_add_label_enables_the_plugin_and_labels_the_torrent(deluge, tmp_path):  # noqa: F811
    daemon = deluge()
    metainfo, kept = a_torrent(tmp_path, "kept.mkv")
    daemon.add_torrent(metainfo, tmp_path / "empty")
    metainfo, other = a_torrent(tmp_path, "other.mkv")
    daemon.add_torrent(metainfo, tmp_path / "empty")
    api = api_of(daemon)
    api.add_label(kept.upper(), "Discarr-Kept")  # Deluge's labels are lower-case
    api.add_label(kept.upper(), "discarr-kept")  # again: the label exists, the torrent has it
    answer = api.torrents([kept, other], ["label"])
    assert answer == {kept: {"label": "discarr-kept"}, other: {"label": ""}}
    assert daemon.torrent(kept, ("label",)) == {"label": "discarr-kept"}
    assert daemon.rpc("label.get_labels") == ("discarr-kept",)


def test_a_torrent_moving_between_two_daemons_shows_its_bytes_rising(deluge, tmp_path):  # noqa: F811
    size = 3_000_000
    source = random_file(tmp_path / "seed" / "Movie.2024.mkv", size)
    metainfo, info_hash = make_torrent(source, piece_length=65536)
    seeder, leecher = deluge("seeder"), deluge("leecher")
    seeder.add_torrent(metainfo, source.parent)
    leecher.add_torrent(metainfo, tmp_path / "leech", max_download_speed=600)  # KiB/s: about 5 s in all
    seeding, downloading = api_of(seeder), api_of(leecher)
    seed = status_when(seeding, info_hash, "the seeder to check its data", lambda s: s["state"] == "Seeding")
    assert seed["is_finished"] is True and seed["total_done"] == size and seed["total_remaining"] == 0

    # No tracker, DHT, LSD or PeX: the leecher is told where the seeder is.
    first = wait_until(lambda: leecher.add_peer(info_hash, seeder) or (
        lambda s: s if 0 < s["total_done"] < size else None)(downloading.torrents([info_hash], FIELDS)[info_hash]),
        15, "the first bytes to arrive", interval=0.5)
    assert first["state"] == "Downloading" and first["num_seeds"] == 1
    later = status_when(downloading, info_hash, "more bytes", lambda s: s["total_done"] > first["total_done"])
    assert later["state"] in ("Downloading", "Seeding") and later["download_payload_rate"] > 0
    done = status_when(downloading, info_hash, "the download to finish", lambda s: s["state"] == "Seeding")
    assert (done["total_done"], done["total_remaining"], done["is_finished"]) == (size, 0, True)
    assert (tmp_path / "leech" / "Movie.2024.mkv").read_bytes() == source.read_bytes()


def test_delete_removes_the_torrents_and_their_files(deluge, tmp_path):  # noqa: F811
    daemon = deluge()
    source = random_file(tmp_path / "data" / "Album.FLAC", SIZE)
    metainfo, info_hash = make_torrent(source)
    daemon.add_torrent(metainfo, source.parent)
    api = api_of(daemon)
    status_when(api, info_hash, "the data to be checked", lambda s: s["state"] == "Seeding")
    api.delete([info_hash.upper(), "cd" * 20])  # one Deluge never had: already gone
    assert api.torrents([info_hash], FIELDS) == {}
    wait_until(lambda: not source.exists(), 10, "the files to be deleted")


def test_a_wrong_password_or_username_or_a_read_only_account_is_unauthorized(deluge):  # noqa: F811
    daemon = deluge()
    for username, password in (("admin", "not-the-pw-3141"), ("stranger-2718", daemon.password)):
        api = api_of(daemon, username=username, password=password)
        with pytest.raises(ClientError) as failure:
            api.torrents(["ab" * 20], FIELDS)
        assert failure.value.state == "unauthorized"
        assert failure.value.reason == f"deluge at 127.0.0.1:{daemon.web_port} refused the username or password"
        for secret in (username, password):
            assert secret not in failure.value.reason and secret not in str(failure.value)
        assert failure.value.__cause__ is None and failure.value.__suppress_context__

    with open(daemon.home / "auth", "a") as auth:  # deluged reads its accounts again when the file changes
        auth.write("reader:reader-pw:1\n")  # 1: Deluge's read-only level
    with pytest.raises(ClientError) as failure:
        api_of(daemon, username="reader", password="reader-pw").torrents(["ab" * 20], FIELDS)
    assert (failure.value.state, failure.value.reason) == (
        "unauthorized", f"deluge at 127.0.0.1:{daemon.web_port} gives this user a read-only account")


def test_a_hung_daemon_holds_a_call_no_longer_than_the_timeout_and_a_stopped_one_is_unreachable(deluge):  # noqa: F811
    daemon = deluge()
    api = api_of(daemon, timeout=1.5)
    assert api.version().startswith("2.")
    os.kill(daemon.process.pid, signal.SIGSTOP)
    try:
        for connection in ("open", "new"):  # a call on the open connection, then a connect and login
            started = time.monotonic()
            with pytest.raises(ClientError) as failure:
                api.torrents(["ab" * 20], FIELDS)
            assert time.monotonic() - started < 1.5 + 0.5, connection
            assert failure.value.state == "unreachable"
            assert failure.value.reason == f"no answer from deluge at 127.0.0.1:{daemon.web_port} within 1.5s"
    finally:
        os.kill(daemon.process.pid, signal.SIGCONT)
    assert api.torrents(["ab" * 20], FIELDS) == {}  # a late answer is never read as this call's

    daemon.stop()
    started = time.monotonic()
    with pytest.raises(ClientError) as failure:
        api.version()
    assert time.monotonic() - started < 1.5
    assert failure.value.state == "unreachable"
    assert failure.value.reason == f"cannot connect to deluge at 127.0.0.1:{daemon.web_port}"


def test_a_connection_lost_to_a_restart_is_opened_again_once(deluge, tmp_path):  # noqa: F811
    daemon = deluge()
    metainfo, info_hash = a_torrent(tmp_path, "Show.S02E01.mkv")
    daemon.add_torrent(metainfo, tmp_path / "empty")
    api = api_of(daemon)
    assert info_hash in api.torrents([info_hash], ["state"])
    daemon.stop()
    daemon.start()  # same ports, same state: the torrent is still there
    assert api.torrents([info_hash], ["state"])[info_hash]["state"] in ("Checking", "Downloading")


def test_an_empty_hash_list_asks_nothing():
    nobody = DelugeApi(DownloadClientConfig("deluge", "deluge", f"deluge://127.0.0.1:{free_port()}", "a", "b"), 5)
    assert nobody.torrents([], FIELDS) == {}  # a call would have failed: nothing listens there
    nobody.delete([])
    with pytest.raises(ClientError) as failure:
        nobody.torrents(["ab" * 20], FIELDS)
    assert failure.value.state == "unreachable" and failure.value.reason.startswith("cannot connect to deluge at ")
