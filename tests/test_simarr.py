"""simarr over real HTTP: it must look like Sonarr/Radarr/Lidarr/Readarr to discarr's poller."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests

from common.clock import ManualClock
from services.simarr.model import STATES, SimInstance
from services.simarr.scenarios import DEMO_DOWNLOADS, build_instances
from services.simarr.server import SimarrServer

TIMEOUT = 5
KEYS = {"sonarr": "sonarr-key", "radarr": "radarr-key", "lidarr": "lidarr-key", "readarr": "readarr-key"}
# Sonarr at the root: its URL base "" must not swallow the others'.
BASES = {"sonarr": "", "radarr": "/radarr", "lidarr": "/lidarr", "readarr": "/readarr"}
VERSIONS = {"sonarr": "v3", "radarr": "v3", "lidarr": "v1", "readarr": "v1"}
OPENAPI = json.loads((Path(__file__).parent / "fixtures" / "arr_openapi.json").read_text())


class Sim:
    """A running SimarrServer with one instance of each kind, and helpers to call it."""

    def __init__(self, clock: ManualClock, **options: Any):
        self.clock = clock
        self.instances = {kind: SimInstance(name=kind, kind=kind, url_base=BASES[kind], api_key=KEYS[kind],
                                            clock=clock, **options) for kind in KEYS}
        self.server = SimarrServer(list(self.instances.values()))
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.http = requests.Session()

    def api(self, kind: str, path: str, method: str = "GET", timeout: float = TIMEOUT,
            **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", {"X-Api-Key": KEYS[kind]})
        url = f"{self.url}{BASES[kind]}/api/{VERSIONS[kind]}/{path}"
        return self.http.request(method, url, timeout=timeout, **kwargs)

    def queue(self, kind: str = "sonarr", **params: Any) -> dict[str, Any]:
        response = self.api(kind, "queue", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def records(self, kind: str = "sonarr") -> list[dict[str, Any]]:
        return self.queue(kind, pageSize=1000)["records"]

    def control(self, kind: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.url}{BASES[kind]}/__simarr__/{path}"
        response = (self.http.post(url, json=body, timeout=TIMEOUT) if body is not None
                    else self.http.get(url, timeout=TIMEOUT))
        assert response.status_code == 200, response.text
        return response.json()

    def add(self, kind: str = "sonarr", **spec: Any) -> dict[str, Any]:
        spec.setdefault("title", "Some.Show.S01E01.1080p.WEB.H264-GRP")
        spec.setdefault("size", 1_000_000)
        return self.control(kind, "downloads", spec)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[Sim]:
    sim = Sim(clock)
    sim.server.start_background()
    yield sim
    sim.http.close()
    sim.server.shutdown()


def by_title(records: list[dict[str, Any]], title: str) -> dict[str, Any]:
    return next(r for r in records if r["title"] == title)


# -- paging ----------------------------------------------------------------------------

def test_default_page_is_ten_records_in_the_paging_envelope(sim: Sim) -> None:
    sim.control("sonarr", "bulk", {"count": 25})
    page = sim.queue()
    assert {k: v for k, v in page.items() if k != "records"} == {
        "page": 1, "pageSize": 10, "sortKey": "timeleft", "sortDirection": "ascending", "totalRecords": 25}
    assert len(page["records"]) == 10


def test_every_record_of_2500_is_read_across_pages(sim: Sim) -> None:
    sim.control("sonarr", "bulk", {"count": 2500, "rate": 1000})
    ids: list[int] = []
    page_number = 1
    while True:
        page = sim.queue(page=page_number)
        assert page["totalRecords"] == 2500
        ids += [record["id"] for record in page["records"]]
        if page_number * page["pageSize"] >= page["totalRecords"]:
            break
        page_number += 1
    assert page_number == 250
    assert len(ids) == len(set(ids)) == 2500


def test_a_page_past_the_end_is_the_last_page(sim: Sim) -> None:
    sim.control("sonarr", "bulk", {"count": 25})
    page = sim.queue(page=9)
    assert page["page"] == 3 and len(page["records"]) == 5
    assert sim.queue("radarr", page=4) == {"page": 1, "pageSize": 10, "sortKey": "timeleft",
                                           "sortDirection": "ascending", "totalRecords": 0, "records": []}


def test_sorting_by_title_both_ways_and_unknown_keys_by_id(sim: Sim) -> None:
    for title in ("B.Show.S01E01", "a.Show.S01E01", "C.Show.S01E01"):
        sim.add(title=title)
    titles = [r["title"] for r in sim.queue(sortKey="title")["records"]]
    assert titles == ["a.Show.S01E01", "B.Show.S01E01", "C.Show.S01E01"]
    descending = sim.queue(sortKey="title", sortDirection="descending")
    assert [r["title"] for r in descending["records"]] == titles[::-1]
    assert descending["sortDirection"] == "descending"
    ids = [r["id"] for r in sim.queue(sortKey="nonsense")["records"]]
    assert ids == sorted(ids)


def test_timeleft_sorts_unknown_etas_last(sim: Sim) -> None:
    sim.add(title="Stalled", state="stalled")
    sim.add(title="Slow", rate=10)
    sim.add(title="Fast", rate=1000)
    assert [r["title"] for r in sim.queue()["records"]] == ["Fast", "Slow", "Stalled"]


# -- auth and URL bases ----------------------------------------------------------------

def test_api_key_by_header_or_query_and_the_query_wins(sim: Sim) -> None:
    assert sim.api("radarr", "queue").status_code == 200
    assert sim.api("radarr", "queue", headers={}, params={"apikey": KEYS["radarr"]}).status_code == 200
    for headers, params in [({}, {}), ({"X-Api-Key": "wrong"}, {}),
                            ({"X-Api-Key": KEYS["radarr"]}, {"apikey": "wrong"})]:
        response = sim.api("radarr", "queue", headers=headers, params=params)
        assert response.status_code == 401 and response.content == b""
    assert sim.api("radarr", "queue", headers={"X-Api-Key": "wrong"},
                   params={"apikey": KEYS["radarr"]}).status_code == 200


def test_instances_are_served_under_their_url_bases(sim: Sim) -> None:
    sim.add("sonarr", title="Root.Show.S01E01")
    sim.add("radarr", title="Some.Movie.2024")
    assert [r["title"] for r in sim.records("sonarr")] == ["Root.Show.S01E01"]
    assert [r["title"] for r in sim.records("radarr")] == ["Some.Movie.2024"]
    # Another instance's key is wrong here; a base nobody serves, a wrong version and unknown paths are 404.
    assert sim.api("radarr", "queue", headers={"X-Api-Key": KEYS["sonarr"]}).status_code == 401
    key = {"X-Api-Key": KEYS["radarr"]}
    for path in ["/sonarr/api/v3/queue", "/radarr/api/v1/queue", "/radarr/api/v3/series", "/radarr/api/v3"]:
        assert sim.http.get(sim.url + path, headers=key, timeout=TIMEOUT).status_code == 404, path
    assert sim.api("radarr", "queue", method="POST").status_code == 404


def test_system_status_names_the_app_and_its_url_base(sim: Sim) -> None:
    status = sim.api("lidarr", "system/status").json()
    assert (status["appName"], status["urlBase"], status["authentication"]) == ("Lidarr", "/lidarr", "forms")
    assert status["version"].startswith("2.")


# -- record shapes ---------------------------------------------------------------------

def test_unknown_values_are_omitted_never_null(sim: Sim) -> None:
    for state in STATES:
        sim.add(title=f"Show.{state}.S01E01", state=state, rate=1000)
    sim.add(title="No.Id.S01E01", no_download_id=True)
    text = sim.api("sonarr", "queue", params={"pageSize": 100}).text
    assert "null" not in text
    records = json.loads(text)["records"]
    stalled = by_title(records, "Show.stalled.S01E01")
    assert (stalled["status"], stalled["trackedDownloadStatus"], stalled["trackedDownloadState"]) == \
        ("warning", "ok", "downloading")
    assert stalled["statusMessages"] == [] and stalled["errorMessage"]
    for state in ("stalled", "paused", "queued", "metadata"):
        record = by_title(records, f"Show.{state}.S01E01")
        assert "timeleft" not in record and "estimatedCompletionTime" not in record, state
    assert by_title(records, "Show.downloading.S01E01")["timeleft"] == "00:16:40"
    assert "downloadId" not in by_title(records, "No.Id.S01E01")


def test_a_season_pack_is_one_record_per_episode_with_the_full_size(sim: Sim) -> None:
    added = sim.add(title="The.Bear.S03.1080p.HULU.WEB-DL.DDP5.1.H.264-NTb", episodes=4,
                    size=25_574_586_699, downloaded=5_000_000_000)
    records = sim.records()
    assert len(records) == 4 and sorted(r["id"] for r in records) == sorted(added["queue_ids"])
    assert {r["downloadId"] for r in records} == {added["download_id"]}
    assert {(r["size"], r["sizeleft"], r["seasonNumber"]) for r in records} == {(25_574_586_699, 20_574_586_699, 3)}
    assert len({r["episodeId"] for r in records}) == 4


def test_download_ids_look_like_the_clients_ones(sim: Sim) -> None:
    torrent = sim.add(title="T")["download_id"]
    usenet = sim.add(title="U", protocol="usenet")["download_id"]
    assert len(torrent) == 40 and torrent == torrent.upper() and int(torrent, 16) >= 0
    assert usenet.startswith("SABnzbd_nzo_") and len(usenet) == len("SABnzbd_nzo_") + 8
    assert by_title(sim.records(), "U")["downloadClient"] == "SABnzbd"


def test_decimal_sizes_are_sent_as_floats(clock: ManualClock) -> None:
    sim = Sim(clock, decimal_sizes=True)
    sim.server.start_background()
    try:
        sim.add(size=4_467_066_880, downloaded=1_000)
        response = sim.api("sonarr", "queue")
        assert '"size":4467066880.0' in response.text
        record = response.json()["records"][0]
        assert isinstance(record["size"], float) and record["sizeleft"] == 4_467_065_880.0
    finally:
        sim.http.close()
        sim.server.shutdown()


# -- simulated time ----------------------------------------------------------------------

def test_the_clock_moves_downloading_bytes_but_not_stalled_ones(sim: Sim, clock: ManualClock) -> None:
    sim.add(title="Moving", rate=1000)
    sim.add(title="Stalled", state="stalled", rate=1000)
    clock.advance(100)
    records = sim.records()
    assert by_title(records, "Moving")["sizeleft"] == 900_000
    assert by_title(records, "Stalled")["sizeleft"] == 1_000_000


def test_speed_scales_simulated_time(clock: ManualClock) -> None:
    instance = SimInstance(name="radarr", kind="radarr", url_base="", api_key="k", clock=clock, speed=10)
    instance.add_download(title="Fast.Movie.2024", size=1_000_000, rate=1000)
    clock.advance(10)
    record = instance.queue_page(1, 10, "timeleft", True)["records"][0]
    assert record["sizeleft"] == 900_000 and record["timeleft"] == "00:01:30"


def test_a_finished_download_waits_for_import(sim: Sim, clock: ManualClock) -> None:
    sim.add(rate=1000)
    clock.advance(5000)
    record = sim.records()[0]
    assert (record["status"], record["trackedDownloadState"], record["sizeleft"]) == \
        ("completed", "importPending", 0)


def test_a_script_stalls_a_download_at_its_time(sim: Sim, clock: ManualClock) -> None:
    sim.add(rate=1000, script=[{"at": 20, "state": "stalled"}])
    clock.advance(10)
    assert sim.records()[0]["status"] == "downloading"
    clock.advance(30)
    record = sim.records()[0]
    assert (record["status"], record["sizeleft"]) == ("warning", 980_000)


def test_a_control_update_applies_now_and_drops_the_script(sim: Sim, clock: ManualClock) -> None:
    download_id = sim.add(rate=1000, script=[{"at": 20, "state": "stalled"}])["download_id"]
    clock.advance(10)
    updated = sim.control("sonarr", f"downloads/{download_id}", {"rate": 2000})
    assert (updated["downloaded"], updated["script"]) == (10_000, [])
    clock.advance(30)
    [state] = sim.control("sonarr", "downloads")
    assert (state["state"], state["downloaded"]) == ("downloading", 70_000)


def test_the_control_api_refuses_bad_input(sim: Sim) -> None:
    url = f"{sim.url}/__simarr__/"
    assert sim.http.post(url + "downloads", json={"title": "X", "size": 1, "state": "bogus"},
                         timeout=TIMEOUT).status_code == 400
    assert sim.http.post(url + "downloads/NOPE", json={"rate": 1}, timeout=TIMEOUT).status_code == 404
    assert sim.http.post(url + "fault", json={"mode": "sideways"}, timeout=TIMEOUT).status_code == 400


# -- removal ---------------------------------------------------------------------------

def test_deleting_one_record_removes_the_whole_download(sim: Sim) -> None:
    pack = sim.add(title="Pack.S01", episodes=3)
    sim.add(title="Other.S01E01")
    response = sim.api("sonarr", f"queue/{pack['queue_ids'][1]}", method="DELETE",
                       params={"removeFromClient": "true", "blocklist": "true"})
    assert response.status_code == 200 and response.content == b""
    assert [r["title"] for r in sim.records()] == ["Other.S01E01"]
    assert sim.api("sonarr", f"queue/{pack['queue_ids'][0]}", method="DELETE").status_code == 404


def test_bulk_delete_is_all_or_nothing(sim: Sim) -> None:
    first = sim.add(title="First", episodes=2)
    second = sim.add(title="Second")
    response = sim.api("sonarr", "queue/bulk", method="DELETE", json={"ids": [*second["queue_ids"], 12345]})
    assert response.status_code == 404
    assert len(sim.records()) == 3
    response = sim.api("sonarr", "queue/bulk", method="DELETE", json={"ids": [first["queue_ids"][0]]},
                       params={"removeFromClient": "true", "blocklist": "false", "skipRedownload": "false"})
    assert response.status_code == 200 and response.json() == {}
    assert [r["title"] for r in sim.records()] == ["Second"]


# -- request log, queue status, faults --------------------------------------------------

def test_the_request_log_records_api_calls(sim: Sim) -> None:
    sim.queue("radarr", page=2)
    sim.api("radarr", "queue/bulk", method="DELETE", json={"ids": [1]}, params={"blocklist": "true"})
    log = sim.control("radarr", "requests")
    assert log == [
        {"method": "GET", "path": "/api/v3/queue", "query": {"page": "2"}, "body": None, "status": 200},
        {"method": "DELETE", "path": "/api/v3/queue/bulk", "query": {"blocklist": "true"},
         "body": {"ids": [1]}, "status": 404},
    ]
    sim.control("radarr", "requests/clear", {})
    assert sim.control("radarr", "requests") == []


def test_queue_status_counts_records_and_problems(sim: Sim) -> None:
    sim.add(title="Pack.S01", episodes=2)
    sim.add(title="Blocked", state="import_blocked")
    status = sim.api("sonarr", "queue/status").json()
    assert status == {"totalCount": 3, "count": 3, "unknownCount": 0, "errors": False, "warnings": True,
                      "unknownErrors": False, "unknownWarnings": False}


def test_fault_modes(sim: Sim) -> None:
    for number in range(4):
        sim.add("radarr", title=f"Movie.{number}")

    def fault(mode: str, delay: float = 0.0) -> None:
        sim.control("radarr", "fault", {"mode": mode, "delay": delay})

    fault("down")
    with pytest.raises(requests.ConnectionError):
        sim.api("radarr", "queue")
    fault("slow", 0.05)
    assert sim.api("radarr", "queue").status_code == 200
    fault("401")
    response = sim.api("radarr", "queue")
    assert response.status_code == 401 and response.content == b""
    fault("500")
    assert sim.api("radarr", "queue").status_code == 500
    fault("garbage")
    response = sim.api("radarr", "queue")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(ValueError):
        response.json()
    fault("html")
    response = sim.api("radarr", "queue")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    fault("missing_fields")
    records = sim.records("radarr")
    assert sum("size" not in r and "sizeleft" not in r and "status" not in r for r in records) == 2
    fault("none")
    assert all("size" in r for r in sim.records("radarr"))
    # A fault is the instance's own: the others answer normally.
    assert sim.api("sonarr", "queue").status_code == 200
    assert [entry["status"] for entry in sim.control("radarr", "requests")] == [0, 200, 401, 500, 200, 200, 200, 200]
    fault("slow", 0.5)
    with pytest.raises(requests.Timeout):
        sim.api("radarr", "queue", timeout=0.1)


# -- conformance with the servers' OpenAPI documents -------------------------------------

@pytest.mark.parametrize("kind", list(KEYS))
def test_records_conform_to_the_servers_openapi_schema(sim: Sim, clock: ManualClock, kind: str) -> None:
    schema = OPENAPI[kind]
    for state in STATES:
        for protocol in ("torrent", "usenet"):
            sim.add(kind, title=f"Title.{state}.{protocol}", state=state, rate=100, protocol=protocol)
    sim.add(kind, title="No.Id", no_download_id=True)
    if kind == "sonarr":
        sim.add(kind, title="Pack.S02", episodes=3)
    clock.advance(10)
    page = sim.queue(kind, pageSize=100)
    assert set(page) <= set(schema["QueueResourcePagingResource"])
    assert len(page["records"]) == 2 * len(STATES) + 1 + (3 if kind == "sonarr" else 0)
    enums = schema["enums"]
    for record in page["records"]:
        assert set(record) <= set(schema["QueueResource"]), set(record) - set(schema["QueueResource"])
        assert isinstance(record["status"], str)
        if enums["status"] is not None:
            assert record["status"] in enums["status"]
        assert record.get("trackedDownloadStatus", "ok") in enums["trackedDownloadStatus"]
        assert record.get("trackedDownloadState", "downloading") in enums["trackedDownloadState"]
        assert record["protocol"] in enums["protocol"]


@pytest.mark.parametrize("kind, failed, blocked", [("sonarr", "failed", "importBlocked"),
                                                     ("lidarr", "downloadFailed", "importFailed"),
                                                     ("readarr", "downloadFailed", "importFailed")])
def test_tracked_states_use_each_servers_names(sim: Sim, kind: str, failed: str, blocked: str) -> None:
    sim.add(kind, title="Failed", state="failed")
    sim.add(kind, title="Blocked", state="import_blocked")
    records = sim.records(kind)
    assert by_title(records, "Failed")["trackedDownloadState"] == failed
    blocked_record = by_title(records, "Blocked")
    assert (blocked_record["status"], blocked_record["trackedDownloadStatus"],
            blocked_record["trackedDownloadState"]) == ("completed", "warning", blocked)
    assert blocked_record["statusMessages"][0]["messages"]


# -- scale and scenarios ---------------------------------------------------------------

def test_ten_thousand_records_in_one_page(sim: Sim) -> None:
    assert sim.control("sonarr", "bulk", {"count": 10_000, "rate": 1000}) == {"added": 10_000}
    page = sim.queue(pageSize=10_000)
    assert page["totalRecords"] == 10_000 and len(page["records"]) == 10_000


def test_the_demo_shows_a_download_going_stuck_within_a_minute(clock: ManualClock) -> None:
    specs = [(kind, kind, BASES[kind], KEYS[kind]) for kind in KEYS]
    instances = {i.kind: i for i in build_instances(specs, "demo", clock, 1.0)}
    sonarr = instances["sonarr"]
    assert len(sonarr.downloads()) == len(DEMO_DOWNLOADS["sonarr"]) == 8
    assert sonarr.queue_page(1, 100, "timeleft", True)["totalRecords"] == 11
    clock.advance(25)
    andor = next(d for d in sonarr.downloads() if d["title"].startswith("Andor"))
    assert andor["state"] == "stalled"
    clock.advance(300)
    for instance in instances.values():
        movers = [d for d in instance.downloads() if d["rate"] > 0 and d["state"] != "stalled"]
        assert movers and all(d["state"] == "downloading" for d in movers), instance.name
    assert build_instances(specs, "empty", clock, 1.0)[0].downloads() == []
    with pytest.raises(ValueError):
        build_instances(specs, "busy", clock, 1.0)


def test_readarr_sorts_by_added_although_its_records_have_none():
    from common.clock import ManualClock
    from services.simarr.model import SimInstance
    readarr = SimInstance(name="readarr", kind="readarr", url_base="", api_key="k", clock=ManualClock())
    readarr.add_bulk(3, state="downloading", rate=10 ** 6, size=10 ** 10)
    assert readarr.queue_page(1, 10, "added", True)["totalRecords"] == 3
