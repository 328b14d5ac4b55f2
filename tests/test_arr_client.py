"""The poller's HTTP client against simarr over real HTTP: paging, sizes, faults, removal."""
import codecs
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common.clock import ManualClock
from common.settings import InstanceConfig
from services.poller.arr_client import ArrClient, ArrError
from services.simarr.model import SimInstance
from services.simarr import server as server_module
from services.simarr.server import SimarrServer

GB = 1024 ** 3


@pytest.fixture
def simarr():
    sonarr = SimInstance(name="sonarr", kind="sonarr", url_base="/sonarr", api_key="good", clock=ManualClock())
    lidarr = SimInstance(name="lidarr", kind="lidarr", url_base="", api_key="good", clock=ManualClock(),
                         decimal_sizes=True)
    server = SimarrServer([sonarr, lidarr])
    server.start_background()
    yield server, sonarr, lidarr
    server.shutdown()


def client_for(server, base, kind="sonarr", key="good", timeout=2.0):
    return ArrClient(InstanceConfig(kind, kind, f"http://127.0.0.1:{server.port}{base}", key), timeout)


def test_every_page_of_a_long_queue_is_read(simarr):
    server, sonarr, _ = simarr
    sonarr.add_bulk(2345, state="downloading", rate=1000, size=GB)
    records, complete = client_for(server, "/sonarr").fetch_queue()
    assert complete and len(records) == len({r["id"] for r in records}) == 2345
    pages = [int(r["query"]["page"]) for r in sonarr.requests() if r["path"] == "/api/v3/queue"]
    assert pages == [1, 2, 3]


def test_lidarr_uses_api_v1_and_decimal_sizes_become_integers(simarr):
    server, _, lidarr = simarr
    lidarr.add_download(title="Artist - Album (2020) [FLAC]", size=4467066880, downloaded=GB, state="stalled")
    [record], _ = client_for(server, "", kind="lidarr").fetch_queue()
    assert record["size"] == 4467066880 and record["sizeleft"] == 4467066880 - GB
    assert lidarr.requests()[0]["path"] == "/api/v1/queue"


@pytest.mark.parametrize("mode, state, reason", [
    ("401", "unauthorized", "refused the API key (HTTP 401)"),
    ("500", "bad_response", "answered HTTP 500"),
    ("garbage", "bad_response", "answered application/json, not JSON"),
    ("html", "bad_response", "answered text/html, not JSON"),
    ("down", "unreachable", "cannot connect to"),
])
def test_faults_become_a_health_state_and_a_one_line_reason(simarr, mode, state, reason):
    server, sonarr, _ = simarr
    sonarr.set_fault(mode)
    with pytest.raises(ArrError) as raised:
        client_for(server, "/sonarr").fetch_queue()
    assert raised.value.state == state
    assert reason in raised.value.reason and "\n" not in raised.value.reason


def test_a_slow_server_times_out(simarr):
    server, sonarr, _ = simarr
    sonarr.set_fault("slow", delay=1.0)
    with pytest.raises(ArrError) as raised:
        client_for(server, "/sonarr", timeout=0.2).fetch_queue()
    assert raised.value.state == "unreachable" and "within 0.2s" in raised.value.reason


def test_a_wrong_key_is_never_in_the_reason(simarr):
    server, _, _ = simarr
    with pytest.raises(ArrError) as raised:
        client_for(server, "/sonarr", key="secret-key-xyz").fetch_queue()
    assert "secret-key-xyz" not in raised.value.reason


def test_a_bulk_removal_refused_for_a_gone_record_is_not_sent_again_one_by_one(simarr):
    server, sonarr, _ = simarr
    pack = sonarr.add_download(title="Show.S01", size=GB, state="stalled", episodes=3)
    # One id that is no longer there: bulk is all-or-404 and removes nothing; naming the others again
    # one by one would name them in a second DELETE (SPEC section 4). The next cleanup reads the queue again.
    removed, answer = client_for(server, "/sonarr").remove(pack["queue_ids"] + [999], remove_from_client=True,
                                                         blocklist=False, skip_redownload=False, timeout=5)
    assert removed is False and "HTTP 404" in answer and "nothing was removed" in answer
    assert len(sonarr.downloads()) == 1
    assert [r["path"] for r in sonarr.requests() if r["method"] == "DELETE"] == ["/api/v3/queue/bulk"]


def test_a_server_without_the_bulk_endpoint_is_asked_one_by_one(simarr, monkeypatch):
    server, sonarr, _ = simarr
    pack = sonarr.add_download(title="Show.S01", size=GB, state="stalled", episodes=2)
    monkeypatch.setattr(server_module, "_endpoint", no_bulk_endpoint(server_module._endpoint))
    removed, answer = client_for(server, "/sonarr").remove(pack["queue_ids"], remove_from_client=True,
                                                         blocklist=False, skip_redownload=False, timeout=5)
    assert removed is True and "HTTP 405; one by one" in answer
    assert sonarr.downloads() == []
    deletes = [r for r in sonarr.requests() if r["method"] == "DELETE"]
    assert [r["path"] for r in deletes[1:]] == [f"/api/v3/queue/{queue_id}" for queue_id in pack["queue_ids"]]
    assert deletes[1]["query"] == {"removeFromClient": "true", "blocklist": "false", "skipRedownload": "false"}


def no_bulk_endpoint(endpoint):
    """simarr as an old server that has no queue/bulk: 405."""
    def answer(instance, method, route, params, body):
        if method == "DELETE" and route == ["queue", "bulk"]:
            return server_module.Reply(405)
        return endpoint(instance, method, route, params, body)
    return answer


def test_removing_what_is_already_gone_removes_nothing(simarr):
    server, _, _ = simarr
    removed, answer = client_for(server, "/sonarr").remove([123, 456], remove_from_client=True, blocklist=True,
                                                      skip_redownload=False, timeout=5)
    assert removed is False and "HTTP 404" in answer


@pytest.mark.parametrize("kind, flag", [("sonarr", "includeUnknownSeriesItems"), ("radarr", "includeUnknownMovieItems"),
                                        ("lidarr", "includeUnknownArtistItems"),
                                        ("readarr", "includeUnknownAuthorItems")])
def test_each_app_is_asked_for_its_unknown_items_by_its_own_flag(kind, flag):
    instance = SimInstance(name=kind, kind=kind, url_base="", api_key="good", clock=ManualClock())
    instance.add_download(title="Matched.Release", size=GB, state="stalled")
    instance.add_download(title="Unmatched.Release", size=GB, state="stalled", unknown=True)
    server = SimarrServer([instance])
    server.start_background()
    try:
        records, complete = client_for(server, "", kind=kind).fetch_queue()
    finally:
        server.shutdown()
    assert complete and sorted(r["title"] for r in records) == ["Matched.Release", "Unmatched.Release"]
    [query] = [r["query"] for r in instance.requests()]
    assert query[flag] == "true"


def test_the_queue_is_read_in_title_order_never_by_added(simarr):
    # Readarr records have no `added`, and the default order (timeleft) changes while pages are read.
    server, sonarr, _ = simarr
    sonarr.add_bulk(3, state="downloading", rate=1000)
    client_for(server, "/sonarr").fetch_queue()
    assert {r["query"]["sortKey"] for r in sonarr.requests()} == {"title"}


def test_records_that_move_between_pages_are_read_again(simarr):
    server, sonarr, _ = simarr
    sonarr.add_bulk(2345, state="downloading", rate=1000, size=GB)
    sonarr.set_fault("pages_move", count=3)  # the first read of three pages sees records move
    records, complete = client_for(server, "/sonarr").fetch_queue()
    assert complete and len({r["id"] for r in records}) == 2345
    assert len([r for r in sonarr.requests() if r["path"] == "/api/v3/queue"]) == 6


def test_a_read_that_never_adds_up_is_marked_incomplete(simarr):
    server, sonarr, _ = simarr
    sonarr.add_bulk(2345, state="downloading", rate=1000, size=GB)
    sonarr.set_fault("pages_move")
    records, complete = client_for(server, "/sonarr").fetch_queue()
    assert not complete and len(records) < 2345


def test_a_record_without_size_is_read_with_size_0(simarr):
    server, sonarr, _ = simarr
    sonarr.load_frozen([{"id": 7, "seriesId": 1, "title": "No.Size.S01E01", "status": "queued",
                         "trackedDownloadState": "downloading", "downloadId": "ABC"}])
    [record], complete = client_for(server, "/sonarr").fetch_queue()
    assert complete and (record["status"], record["size"], record["sizeleft"]) == ("queued", 0, 0)


QUEUE_PAGE = (b'{"page": 1, "pageSize": 1000, "totalRecords": 1, "records": [{"id": 7, "title": "Odd.Release", '
              b'"status": "downloading", "downloadId": "ABC", "size": %s, "sizeleft": 0}]}')


@pytest.mark.parametrize("body, size", [
    (QUEUE_PAGE % b"1000", 1000),
    (codecs.BOM_UTF8 + QUEUE_PAGE % b"1000", 1000),  # a byte-order mark before the JSON
    # Not JSON by the standard, or not a size, but what a lying server may send: read as size 0.
    (QUEUE_PAGE % b"NaN", 0),
    (QUEUE_PAGE % b"Infinity", 0),
    (QUEUE_PAGE % b"123456789012345678901234567890", 0),  # beyond 64 bits: msgpack could not carry it
])
def test_queue_json_is_read_however_odd_a_server_writes_it(body, size):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ArrClient(InstanceConfig("sonarr", "sonarr", f"http://127.0.0.1:{server.server_address[1]}",
                                          "good"), 2.0)
        records, complete = client.fetch_queue()
    finally:
        server.shutdown()
    assert complete and [(r["title"], r["size"]) for r in records] == [("Odd.Release", size)]
