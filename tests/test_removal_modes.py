"""How each download is removed (SPEC section 4), proven by what simarr and a download client were asked.

The poller's Remover runs here against simarr over real HTTP, and against a small qBittorrent
stand-in on loopback that answers what a test sets: a private flag, none at all, or the flag of a
qBittorrent too old to tell.
"""
import json
import os
import threading
import time
from datetime import datetime, timezone
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from common.clock import ManualClock
from common.protocol import removal_request
from common.settings import DownloadClientConfig, InstanceConfig
from services.poller.arr_client import ArrClient
from services.poller.audit import AuditLog
from services.poller.download_clients import DownloadClients
from services.poller.removal import RemovalMemory, RemovalPolicy, Remover
from services.simarr.model import SimInstance
from services.simarr.server import SimarrServer
from tests.records import record

GB = 1024 ** 3
HASH = "C0FFEE" * 6 + "ABCD"
LOGIN = ("qbittorrent", "/api/v2/auth/login")


class QBittorrentStandIn:
    """qBittorrent's Web API, as much of it as the poller and qbittorrent-api use; every call is logged in order.

    Like qBittorrent 5 it calls its session cookie QBT_SID_<port>, and answers 403 to a call without a session.
    """

    def __init__(self, log: list) -> None:
        self.log = log
        self.private: dict[str, object] = {}  # torrents/properties' answer; {} as a qBittorrent too old to tell
        self.gone: set[str] = set()  # hashes torrents/info lists but torrents/properties answers 404 for
        self.completed = GB // 10  # the torrent's bytes
        self.sessions: set[str] = set()  # the session ids handed out; cleared, as by a restart
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.answer()

            def do_POST(self):
                self.answer()

            def answer(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(url.query) | (parse_qs(self.rfile.read(length).decode()) if length else {})
                stand_in.log.append(("qbittorrent", url.path))
                session = SimpleCookie(self.headers.get("Cookie", "")).get(stand_in.cookie)
                status, body, headers = stand_in.reply(url.path, form, session is not None
                                                       and session.value in stand_in.sessions)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.cookie = f"QBT_SID_{self.server.server_address[1]}"

    def reply(self, path: str, form: dict, logged_in: bool) -> tuple[int, bytes, dict[str, str]]:
        if path.endswith("auth/login"):
            session = os.urandom(8).hex()
            self.sessions.add(session)
            return 200, b"Ok.", {"Set-Cookie": f"{self.cookie}={session}; HttpOnly; path=/"}
        if not logged_in:
            return 403, b"Forbidden", {}
        if path.endswith("app/version"):
            return 200, b"v5.0.0", {}
        if path.endswith("app/webapiVersion"):
            return 200, b"2.11.2", {}
        if path.endswith("torrents/info"):
            return 200, json.dumps([
                {"hash": info_hash, "state": "stalledDL", "completed": self.completed, "size": GB, "dlspeed": 0,
                 "last_activity": 0, "num_seeds": 0, "num_leechs": 0}
                for info_hash in form.get("hashes", [HASH.lower()])[0].split("|")]).encode(), {}
        if path.endswith("torrents/properties"):
            if form["hash"][0].upper() in self.gone:
                return 404, b"Not Found", {}
            return 200, json.dumps(self.private).encode(), {}
        return 200, b"", {}

    def clients(self) -> DownloadClients:
        """The poller's download clients, this stand-in their only one."""
        return DownloadClients([DownloadClientConfig("qbittorrent", "qbittorrent", self.url, "admin", "pw")], 2)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path):
    """simarr's Sonarr holding one stalled torrent, a qBittorrent stand-in, and a Remover for both."""
    log: list = []
    clock = ManualClock(time.time())
    sonarr = SimInstance(name="sonarr", kind="sonarr", url_base="", api_key="key", clock=clock)
    queue_ids = sonarr.add_download(title="Stalled.Show.S01E01", size=GB, downloaded=GB // 10, state="stalled",
                                    download_id=HASH)["queue_ids"]
    simarr = SimarrServer([sonarr])
    simarr.start_background()
    qbittorrent = QBittorrentStandIn(log)

    def remover(blocklist=True, removed_before=0):
        audit = AuditLog(tmp_path / "removals.jsonl")
        memory = RemovalMemory(audit, clock)
        for _ in range(removed_before):
            memory.add({"instance": "sonarr", "download_id": HASH, "category": "stuck"}, "test")
        return Remover({"sonarr": ArrClient(InstanceConfig("sonarr", "sonarr", f"http://127.0.0.1:{simarr.port}",
                                                          "key"), 2)},
                       {"sonarr": RemovalPolicy(min_bytes=GB, min_progress=50, blocklist=blocklist)}, audit, clock,
                       qbittorrent.clients(), memory)

    item = {"instance": "sonarr", "download_id": HASH, "queue_ids": queue_ids, "title": "Stalled.Show.S01E01",
            "category": "stuck", "progress": 10.0, "size": GB, "sizeleft": GB - GB // 10, "reason": "no progress"}
    yield sonarr, qbittorrent, remover, item, log
    simarr.shutdown()
    qbittorrent.close()


def remove(remover, item):
    request = removal_request([item], requested_by="test", dry_run=False, include_import_blocked=False,
                              now=time.time(), valid_for=30)
    [result] = remover.handle(request)["results"]
    return result


def deletes(sonarr):
    return [r["query"] for r in sonarr.requests() if r["method"] == "DELETE"]


@pytest.mark.parametrize("answer", [{"is_private": False}, {}], ids=["public", "a client too old to tell"])
def test_unknown_privacy_is_asked_before_removing_and_then_public(world, answer):
    sonarr, qbittorrent, remover, item, log = world
    qbittorrent.private = answer
    result = remove(remover(), item)
    assert result["result"] == "removed"
    assert ("qbittorrent", "/api/v2/torrents/properties") in log  # asked, although no poll had asked yet
    assert deletes(sonarr) == [{"removeFromClient": "true", "blocklist": "true", "skipRedownload": "false"}]


def test_a_private_torrent_is_kept_seeding(world):
    sonarr, qbittorrent, remover, item, log = world
    qbittorrent.private = {"is_private": True}
    result = remove(remover(), item)
    assert result["result"] == "removed" and "kept seeding" in result["detail"]
    assert ("qbittorrent", "/api/v2/torrents/addTags") in log
    assert deletes(sonarr) == [{"removeFromClient": "false", "blocklist": "true", "skipRedownload": "false"}]


def test_a_recurring_download_is_blocklisted_even_when_cleanup_does_not_blocklist(world):
    sonarr, qbittorrent, remover, item, log = world
    qbittorrent.private = {"is_private": False}
    result = remove(remover(blocklist=False, removed_before=1), item)
    assert result["result"] == "removed" and "recurring (removed 1x before)" in result["detail"]
    assert deletes(sonarr) == [{"removeFromClient": "true", "blocklist": "true", "skipRedownload": "false"}]


def test_without_recurring_cleanup_blocklist_false_is_respected(world):
    sonarr, qbittorrent, remover, item, log = world
    qbittorrent.private = {"is_private": False}
    remove(remover(blocklist=False), item)
    assert deletes(sonarr) == [{"removeFromClient": "true", "blocklist": "false", "skipRedownload": "false"}]


def test_a_download_that_finished_since_the_analysis_is_kept(world):
    sonarr, qbittorrent, remover, item, log = world
    sonarr.update_download(HASH, state="post_processing", downloaded=GB)
    qbittorrent.completed = GB
    result = remove(remover(), item)
    assert (result["result"], result["detail"]) == (
        "skipped", "finished since analysis: complete and waiting for import, so it is kept")
    assert deletes(sonarr) == []


def test_the_client_logs_in_once_and_again_only_when_its_session_is_refused(world):
    _, qbittorrent, _, _, log = world
    clients = qbittorrent.clients()
    for _ in range(3):
        assert clients.annotate([record(1, HASH)])[0]["state"] == "ok"
    assert log.count(LOGIN) == 1  # the session is kept, although its cookie is named QBT_SID_<port>
    qbittorrent.sessions.clear()  # as a restarted qBittorrent forgets them: the next call is answered 403
    assert clients.annotate([record(1, HASH)])[0]["state"] == "ok"
    assert log.count(LOGIN) == 2


def test_a_torrent_gone_before_its_properties_are_read_leaves_its_privacy_unknown_and_the_client_healthy(world):
    _, qbittorrent, _, _, log = world
    qbittorrent.private = {"is_private": True}
    gone = "DEAD" * 10
    qbittorrent.gone = {gone}
    clients = qbittorrent.clients()
    records = [record(1, HASH), record(2, gone)]
    health = clients.annotate(records, private_lookups=None)
    assert health == [{"name": "qbittorrent", "kind": "qbittorrent", "state": "ok", "error": None}]
    assert records[0]["client"]["private"] is True
    assert records[1]["client"]["private"] is None and records[1]["client"]["state"] == "stalled"
    # Unknown, not settled: listed again, it is asked again.
    qbittorrent.gone.clear()
    clients.annotate(records, private_lookups=None)
    assert records[1]["client"]["private"] is True


def test_what_was_removed_is_told_to_the_tracker_for_an_hour_even_across_a_restart(world, tmp_path):
    sonarr, qbittorrent, remover, item, log = world
    qbittorrent.private = {"is_private": False}
    first = remover()
    remove(first, item)
    [notice] = first.memory.notices("sonarr")
    assert (notice["download_id"], notice["category"], notice["requested_by"]) == (HASH, "stuck", "test")
    restarted = RemovalMemory(AuditLog(tmp_path / "removals.jsonl"), first.clock)  # read back from the audit log
    assert [n["download_id"] for n in restarted.notices("sonarr")] == [HASH] and restarted.notices("radarr") == []
    first.clock.advance(3601)
    assert restarted.notices("sonarr") == []


def test_a_delete_without_an_answer_is_remembered_across_any_restart_until_the_queue_drops_it(tmp_path):
    # Found by the household simulation: a DELETE got no answer, the record stayed in the queue, and a poller
    # restarted more than an hour later named it in a second DELETE.
    clock = ManualClock(1_800_000_000.0)
    audit = AuditLog(tmp_path / "removals.jsonl")
    lost, done = (dict(ITEM, download_id=download_id, queue_ids=[queue_id])
                  for download_id, queue_id in (("LOST", 11), ("DONE", 22)))
    for item, outcomes in ((lost, ["unknown", "failed"]), (done, ["removed"])):
        audit.append(audit_line(clock, item, "removing", delete_ids=item["queue_ids"]))
        for outcome in outcomes:
            audit.append(audit_line(clock, item, outcome))
    clock.advance(2 * 3600)
    memory = RemovalMemory(audit, clock)
    assert memory.named_at("sonarr", [11]) == 1_800_000_000.0  # it may still be removed: never named again
    assert memory.named_at("sonarr", [22]) is None  # removed long ago: a record listed again is a new one
    memory.read_whole_queue("sonarr", [{"id": 22}])  # the queue no longer lists 11: it is gone, forgotten
    assert memory.named_at("sonarr", [11]) is None


ITEM = {"instance": "sonarr", "title": "Show", "category": "stuck", "reason": "no progress"}


def audit_line(clock, item, result, **extra):
    return {"time": datetime.fromtimestamp(clock.now(), timezone.utc).isoformat(), "request_id": "r1",
            "requested_by": "auto", "instance": item["instance"], "download_id": item["download_id"],
            "title": item["title"], "result": result, **extra}
