"""The poller's download-client layer against a real qbittorrent-nox and a real transmission-daemon."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from common.settings import DownloadClientConfig
from services.poller.download_clients import KEPT_TAG, DownloadClients, TransmissionReader
from tests.conftest import wait_until
from services.poller.removal import RemovalMode, RemovalPolicy
from tests.records import client_figures, record
from tests.torrent_clients import make_torrent, qbittorrent, random_file, transmission  # noqa: F401

SIZE = 300_000


def queue_of(*hashes: str) -> list[dict]:
    """Queue records as the *arr lists torrents: the hash upper-case in downloadId."""
    return [record(i, info_hash.upper(), size=SIZE) for i, info_hash in enumerate(hashes, 1)]


def annotated(clients: DownloadClients, records: list[dict]) -> tuple[list[dict], list[dict]]:
    health = clients.annotate(records)
    return records, health


def a_stalled_torrent(tmp_path: Path, name: str, private: bool) -> tuple[bytes, str]:
    """A torrent whose data nobody has: added to a client, it finds no peers."""
    return make_torrent(random_file(tmp_path / "sources" / name, SIZE), private=private)


def test_qbittorrent_figures_for_a_stalled_private_torrent_and_a_magnet(qbittorrent, tmp_path):  # noqa: F811
    qb = qbittorrent()
    metainfo, stalled = a_stalled_torrent(tmp_path, "Show.S01E01.mkv", private=True)
    qb.add_torrent(metainfo, tmp_path / "empty", category="tv-sonarr")
    magnet = "ab" * 20
    qb.add_magnet(magnet)
    # qBittorrent adds a torrent after answering the add, so it may not be listed yet
    wait_until(lambda: (qb.torrent(stalled) or {}).get("state") == "stalledDL", 20, "the torrent to stall")
    clients = DownloadClients([DownloadClientConfig("qbittorrent", "qbittorrent", qb.url, "admin", qb.password)], 5)
    records, health = annotated(clients, queue_of(stalled, magnet, "cd" * 20))
    assert health == [{"name": "qbittorrent", "kind": "qbittorrent", "state": "ok", "error": None}]
    figures = records[0]["client"]
    assert figures["state"] == "stalled" and figures["client_state"] == "stalledDL"
    assert (figures["downloaded"], figures["size"], figures["seeds"], figures["peers"]) == (0, SIZE, 0, 0)
    assert figures["private"] is True
    assert records[1]["client"]["state"] == "metadata" and records[1]["client"]["private"] is False
    assert records[2]["client"] is None  # a torrent no client has: the *arr's figures stand

    clients.tag(figures, stalled.upper(), KEPT_TAG)
    assert qb.torrent(stalled)["tags"] == KEPT_TAG
    clients.close()


def test_a_poll_asks_qbittorrent_for_a_bounded_number_of_private_flags(qbittorrent, tmp_path):  # noqa: F811
    qb = qbittorrent()
    hashes = []
    for number in range(3):
        metainfo, info_hash = a_stalled_torrent(tmp_path, f"Show.S01E0{number}.mkv", private=number == 2)
        qb.add_torrent(metainfo, tmp_path / "empty")
        hashes.append(info_hash)
    wait_until(lambda: all(qb.torrent(h) for h in hashes), 20, "the torrents to be added")
    clients = DownloadClients([DownloadClientConfig("qbittorrent", "qbittorrent", qb.url, "admin", qb.password)], 5)

    def private_flags() -> list:
        records = queue_of(*hashes)
        clients.annotate(records, private_lookups=2)
        return [record["client"]["private"] for record in records]

    assert private_flags().count(None) == 1  # two asked this poll, the third not yet known
    flags = private_flags()  # the next poll asks for the third; the two it knows are not asked again
    assert flags == [False, False, True]


def test_a_qbittorrent_that_is_down_or_refuses_the_password_marks_its_torrents(qbittorrent, tmp_path):  # noqa: F811
    qb = qbittorrent()
    metainfo, info_hash = a_stalled_torrent(tmp_path, "Movie.2024.mkv", private=False)
    qb.add_torrent(metainfo, tmp_path / "empty")
    wrong = DownloadClients([DownloadClientConfig("qbittorrent", "qbittorrent", qb.url, "admin", "not-the-pw")], 5)
    records, health = annotated(wrong, queue_of(info_hash))
    assert health[0]["state"] == "unauthorized" and "not-the-pw" not in health[0]["error"]
    assert records[0]["client"]["state"] == "unreachable"

    right = DownloadClients([DownloadClientConfig("qbittorrent", "qbittorrent", qb.url, "admin", qb.password)], 2)
    assert annotated(right, queue_of(info_hash))[0][0]["client"]["state"] in ("stalled", "checking")
    qb.stop()
    records, health = annotated(right, queue_of(info_hash))
    assert health[0]["state"] == "unreachable" and health[0]["error"].startswith("cannot connect to qbittorrent")
    assert records[0]["client"]["state"] == "unreachable" and records[0]["client"]["name"] == "qbittorrent"
    # A usenet download is nobody's torrent: it is never marked.
    usenet = [record(9, "SABnzbd_nzo_abc", protocol="usenet")]
    assert annotated(right, usenet)[0][0]["client"] is None


def test_transmission_figures_and_labels(transmission, tmp_path):  # noqa: F811
    metainfo, info_hash = a_stalled_torrent(tmp_path, "Album.FLAC", private=True)
    transmission.add_torrent(metainfo, tmp_path / "empty")
    clients = DownloadClients([DownloadClientConfig("transmission", "transmission", transmission.url, "admin",
                                                    transmission.password)], 5)
    records = wait_until(lambda: (lambda r: r if r[0]["client"]["state"] == "stalled" else None)(
        annotated(clients, queue_of(info_hash))[0]), 20, "transmission to start the torrent")
    figures = records[0]["client"]
    assert figures["client_state"] == "downloading" and figures["private"] is True
    assert (figures["downloaded"], figures["size"], figures["seeds"]) == (0, SIZE, 0)
    clients.tag(figures, info_hash.upper(), KEPT_TAG)
    clients.tag(figures, info_hash.upper(), KEPT_TAG)  # twice: still one label
    assert transmission.torrent(info_hash)["labels"] == [KEPT_TAG]
    transmission.stop()
    assert annotated(clients, queue_of(info_hash))[1][0]["state"] == "unreachable"


@pytest.mark.parametrize("raw, state", [
    ({"status": 4, "metadataPercentComplete": 0.5}, "metadata"),
    ({"status": 4, "metadataPercentComplete": 1, "peersSendingToUs": 2, "rateDownload": 5000}, "downloading"),
    ({"status": 0, "leftUntilDone": 10, "metadataPercentComplete": 1}, "paused"),
    ({"status": 0, "leftUntilDone": 0, "metadataPercentComplete": 1}, "completed"),
    ({"status": 3}, "queued"),
    ({"status": 6}, "completed"),
    ({"status": 4, "error": 3, "errorString": "No data found"}, "error"),
])
def test_transmission_states(raw, state):
    reader = TransmissionReader(DownloadClientConfig("transmission", "transmission", "http://127.0.0.1:1"), 1)
    assert reader._figures(dict(raw, hashString="ab" * 20, haveValid=0, sizeWhenDone=SIZE))["state"] == state


@pytest.mark.parametrize("keep_private, private, removed_before, expected", [
    (True, True, 0, (False, True, False)),    # kept seeding in the client, release blocklisted
    (False, True, 0, (True, True, False)),    # CLEANUP_PRIVATE=remove: gone from the client too
    (True, False, 0, (True, True, False)),    # a public torrent: the usual removal
    (True, None, 0, (True, True, False)),     # the client cannot tell even when asked: public
    (True, False, 2, (True, True, False)),    # recurring: blocklisted, so the same release never comes back
    (True, True, 1, (False, True, False)),
])
def test_how_a_download_is_removed(keep_private, private, removed_before, expected):
    policy = RemovalPolicy(min_bytes=1, min_progress=1, blocklist=True, keep_private=keep_private)
    records = [record(1, "AB" * 20, client=client_figures(0, private=private))]
    mode = RemovalMode.choose(records, policy, removed_before)
    assert (mode.remove_from_client, mode.blocklist, mode.skip_redownload) == expected
    assert ("kept seeding" in mode.describe("sonarr")) is (not expected[0])
    assert ("recurring" in mode.describe("sonarr")) is (removed_before > 0)


def test_a_recurring_download_is_blocklisted_whatever_cleanup_blocklist_says():
    # The *arrs read skipRedownload only with blocklist=true: without it the same release comes back.
    policy = RemovalPolicy(min_bytes=1, min_progress=1, blocklist=False)
    records = [record(1, "AB" * 20)]
    assert RemovalMode.choose(records, policy, removed_before=0).blocklist is False
    recurring = RemovalMode.choose(records, policy, removed_before=1)
    assert (recurring.remove_from_client, recurring.blocklist, recurring.skip_redownload) == (True, True, False)


@pytest.fixture
def lying_transmission():
    """An HTTP server on loopback that answers every RPC call with the body the test sets, but
    session-get as Transmission does (transmission-rpc asks it first, for the RPC version)."""
    answer = {"body": b"{}"}
    session = json.dumps({"result": "success", "arguments": {"version": "4.0.6", "rpc-version": 17}}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(session if request["method"] == "session-get" else answer["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/transmission/rpc"
    yield url, lambda body: answer.update(body=json.dumps(body).encode())
    server.shutdown()
    server.server_close()


def test_a_client_answering_json_of_the_wrong_shape_never_stops_the_poller(lying_transmission):
    url, answer_with = lying_transmission
    clients = DownloadClients([DownloadClientConfig("transmission", "transmission", url)], 2)
    info_hash = "ab" * 20
    # Figures as words: its bytes are not known, so the *arr's figures stand (not a torrent stalled at 0).
    answer_with({"result": "success", "arguments": {"torrents": [
        {"hashString": info_hash, "status": "four", "metadataPercentComplete": "most", "haveValid": "lots"}]}})
    records, health = annotated(clients, queue_of(info_hash))
    assert health[0]["state"] == "ok" and records[0]["client"] is None
    # A state it does not know, with bytes it does: unknown, with its bytes.
    answer_with({"result": "success", "arguments": {"torrents": [
        {"hashString": info_hash, "status": "four", "haveValid": 5, "sizeWhenDone": 10}]}})
    records, health = annotated(clients, queue_of(info_hash))
    assert (records[0]["client"]["state"], records[0]["client"]["downloaded"]) == ("unknown", 5)
    # Torrents that are not maps: nothing is known of this one.
    answer_with({"result": "success", "arguments": {"torrents": ["not a map", None]}})
    records, health = annotated(clients, queue_of(info_hash))
    assert health[0]["state"] == "ok" and records[0]["client"] is None
    # Not an RPC answer at all: unhealthy, and its torrents are marked so nothing is removed on the *arr's word.
    for body in ([1, 2, 3], {"result": "success", "arguments": {"torrents": {"a": 1}}}, {"result": "no"}):
        answer_with(body)
        records, health = annotated(clients, queue_of(info_hash))
        assert health[0]["state"] == "bad_response", body
        assert records[0]["client"]["state"] == "unreachable"


@pytest.mark.parametrize("number", [1e19, 1e20, 2 ** 64, float("inf"), -5])
def test_numbers_out_of_range_from_a_client_are_unknown_for_that_torrent_never_a_failed_poll(lying_transmission,
                                                                                            number):
    from common import protocol
    from services.poller.service import encode_snapshot
    url, answer_with = lying_transmission
    clients = DownloadClients([DownloadClientConfig("transmission", "transmission", url)], 2)
    odd, fine = "ab" * 20, "cd" * 20
    answer_with({"result": "success", "arguments": {"torrents": [
        {"hashString": odd, "status": 4, "haveValid": number, "sizeWhenDone": number, "leftUntilDone": number,
         "rateDownload": number, "activityDate": number, "peersSendingToUs": number, "peersConnected": number},
        {"hashString": fine, "status": 4, "haveValid": 10, "sizeWhenDone": SIZE, "leftUntilDone": SIZE - 10,
         "rateDownload": 5, "peersSendingToUs": 1, "peersConnected": 1}]}})
    records, health = annotated(clients, queue_of(odd, fine))
    assert health[0]["state"] == "ok"
    assert records[0]["client"] is None  # the *arr's figures stand for that one download
    assert (records[1]["client"]["downloaded"], records[1]["client"]["size"]) == (10, SIZE)
    snapshot = {"instance": "sonarr", "kind": "sonarr", "taken_at": 0.0, "poller": {"name": "p", "endpoint": "",
                "next_within": 1.0}, "health": {"state": "ok", "error": None}, "clients": health, "records": records}
    assert protocol.decode(encode_snapshot(snapshot)).body["records"] == records
