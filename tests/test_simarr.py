"""simarr over real HTTP: it must look like Sonarr/Radarr/Lidarr/Readarr to discarr's poller."""
from __future__ import annotations

import json
import time
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
    assert len(sonarr.downloads()) == len(DEMO_DOWNLOADS["sonarr"]) == 9
    assert sonarr.queue_page(1, 100, "timeleft", True)["totalRecords"] == 12
    clock.advance(25)
    andor = next(d for d in sonarr.downloads() if d["title"].startswith("Andor"))
    assert andor["state"] == "stalled"
    penguin = next(d for d in sonarr.downloads() if d["title"].startswith("The.Penguin"))
    assert penguin["state"] == "post_processing"  # finished, unpacking: never stuck
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


# -- usenet post-processing and imports ---------------------------------------------------

def test_a_finished_usenet_download_post_processes_then_waits_for_import(sim: Sim, clock: ManualClock) -> None:
    sim.add(protocol="usenet", rate=1000, post_processing=60)
    clock.advance(1010)  # the bytes were all there at 1000 s
    record = sim.records()[0]
    assert (record["status"], record["trackedDownloadStatus"], record["trackedDownloadState"]) == \
        ("downloading", "ok", "downloading")
    assert (record["sizeleft"], record["timeleft"]) == (0, "00:00:00")
    assert record["estimatedCompletionTime"] == "2023-11-14T22:30:10Z"  # now
    assert sim.control("sonarr", "downloads")[0]["state"] == "post_processing"
    clock.advance(49)
    assert sim.records()[0]["status"] == "downloading"
    clock.advance(1)
    record = sim.records()[0]
    assert (record["status"], record["trackedDownloadState"], record["sizeleft"]) == \
        ("completed", "importPending", 0)


def test_post_processing_set_directly_lasts_until_changed_or_for_its_seconds(sim: Sim, clock: ManualClock) -> None:
    held = sim.add(title="Held", protocol="usenet", state="post_processing", downloaded=1_000_000)
    sim.add(title="Timed", protocol="usenet", rate=1000, post_processing=30,
            script=[{"at": 100, "state": "post_processing"}])
    clock.advance(120)
    records = sim.records()
    assert by_title(records, "Held")["sizeleft"] == 0 and by_title(records, "Held")["status"] == "downloading"
    assert by_title(records, "Timed")["status"] == "downloading" and by_title(records, "Timed")["sizeleft"] == 0
    clock.advance(10)  # 30 s after the script put it into post-processing
    assert by_title(sim.records(), "Timed")["status"] == "completed"
    clock.advance(10_000)
    assert by_title(sim.records(), "Held")["status"] == "downloading"
    sim.control("sonarr", f"downloads/{held['download_id']}", {"state": "completed"})
    assert by_title(sim.records(), "Held")["status"] == "completed"


def test_an_imported_download_leaves_the_queue_and_its_ids_are_gone(sim: Sim, clock: ManualClock) -> None:
    auto = sim.add(title="Auto.S01E01", rate=1000, post_processing=10, import_after=30, episodes=2)
    scripted = sim.add(title="Scripted.S01E01", state="stalled", script=[{"at": 50, "state": "imported"}])
    updated = sim.add(title="Updated.S01E01", state="completed")
    sim.add(title="Stays.S01E01", state="completed")
    clock.advance(1039)  # done at 1000, post-processed at 1010, imported at 1040
    assert sorted(r["title"] for r in sim.records()) == ["Auto.S01E01", "Auto.S01E01", "Stays.S01E01",
                                                          "Updated.S01E01"]
    sim.control("sonarr", f"downloads/{updated['download_id']}", {"state": "imported"})
    clock.advance(1)
    assert [r["title"] for r in sim.records()] == ["Stays.S01E01"]
    assert [d["title"] for d in sim.control("sonarr", "downloads")] == ["Stays.S01E01"]
    assert sim.queue()["totalRecords"] == 1
    for queue_id in (*auto["queue_ids"], *scripted["queue_ids"], *updated["queue_ids"]):
        assert sim.api("sonarr", f"queue/{queue_id}", method="DELETE").status_code == 404
    assert sim.api("sonarr", "queue/bulk", method="DELETE", json={"ids": auto["queue_ids"]}).status_code == 404
    response = sim.http.post(f"{sim.url}/__simarr__/downloads/{auto['download_id']}", json={"rate": 1},
                             timeout=TIMEOUT)
    assert response.status_code == 404


# -- figures refreshed every N seconds ------------------------------------------------------

def test_figures_are_those_of_the_latest_refresh(sim: Sim, clock: ManualClock) -> None:
    assert sim.control("sonarr", "refresh", {"seconds": 60}) == {"seconds": 60}
    sim.add(title="Moving", rate=1000)
    sim.add(title="Stalls", rate=1000, script=[{"at": 30, "state": "stalled"}])
    clock.advance(59)  # no refresh since they were added: their first figures
    records = sim.records()
    assert by_title(records, "Moving")["sizeleft"] == 1_000_000
    assert by_title(records, "Moving")["estimatedCompletionTime"] == "2023-11-14T22:30:00Z"  # from the add
    assert by_title(records, "Stalls")["status"] == "downloading"
    assert sim.control("sonarr", "downloads")[0]["downloaded"] == 59_000  # the simulation itself moves on
    clock.advance(1)  # the refresh at 60 s
    records = sim.records()
    assert by_title(records, "Moving")["sizeleft"] == 940_000
    assert by_title(records, "Moving")["timeleft"] == "00:15:40"
    stalls = by_title(records, "Stalls")
    assert (stalls["status"], stalls["sizeleft"]) == ("warning", 970_000)
    clock.advance(59.5)
    assert by_title(sim.records(), "Moving")["sizeleft"] == 940_000
    sim.add(title="New", rate=1000, size=5000)  # additions show at once, with their first figures
    assert (len(sim.records()), by_title(sim.records(), "New")["sizeleft"]) == (3, 5000)
    clock.advance(0.5)  # 120 s
    assert by_title(sim.records(), "Moving")["sizeleft"] == 880_000
    sim.control("sonarr", "refresh", {"seconds": 0})
    clock.advance(1)
    assert by_title(sim.records(), "Moving")["sizeleft"] == 879_000


# -- the host sleeps ------------------------------------------------------------------------

def test_a_sleeping_host_answers_nothing_and_its_downloads_resume_where_they_stopped(
        sim: Sim, clock: ManualClock) -> None:
    sim.add(title="Moving", rate=1000)
    sim.add(title="Stalls", rate=1000, script=[{"at": 200, "state": "stalled"}])
    clock.advance(100)
    assert sim.control("sonarr", "sleep", {"seconds": 3600}) == {"seconds": 3600}
    clock.advance(1800)
    with pytest.raises(requests.ConnectionError):
        sim.api("sonarr", "queue")
    assert sim.api("radarr", "queue").status_code == 200  # another host
    assert [d["downloaded"] for d in sim.control("sonarr", "downloads")] == [100_000, 100_000]
    clock.advance(1800)  # awake again
    records = sim.records()
    assert by_title(records, "Moving")["sizeleft"] == 900_000
    assert by_title(records, "Moving")["timeleft"] == "00:15:00"
    clock.advance(60)
    records = sim.records()
    assert by_title(records, "Moving")["sizeleft"] == 840_000
    assert by_title(records, "Stalls")["status"] == "downloading"  # its script waits too
    clock.advance(50)
    assert by_title(sim.records(), "Stalls")["status"] == "warning"
    assert [e["status"] for e in sim.control("sonarr", "requests")] == [0, 200, 200, 200]


# -- unknown items --------------------------------------------------------------------------

@pytest.mark.parametrize("kind, flag, ids, languages", [
    ("sonarr", "includeUnknownSeriesItems", ("seriesId", "episodeId", "seasonNumber"), True),
    ("radarr", "includeUnknownMovieItems", ("movieId",), True),
    ("lidarr", "includeUnknownArtistItems", ("artistId", "albumId"), False),
    ("readarr", "includeUnknownAuthorItems", ("authorId", "bookId"), False),
])
def test_unknown_items_are_listed_only_with_the_apps_own_flag(
        sim: Sim, kind: str, flag: str, ids: tuple[str, ...], languages: bool) -> None:
    sim.add(kind, title="Matched", state="stalled")
    sim.add(kind, title="Unmatched", unknown=True, state="import_blocked")
    page = sim.queue(kind)
    assert (page["totalRecords"], [r["title"] for r in page["records"]]) == (1, ["Matched"])
    other_flags = {name: "true" for name in ("includeUnknownSeriesItems", "includeUnknownMovieItems",
                                             "includeUnknownArtistItems", "includeUnknownAuthorItems")
                   if name != flag}
    assert sim.queue(kind, **other_flags)["totalRecords"] == 1
    assert sim.queue(kind, **{flag: "false"})["totalRecords"] == 1
    page = sim.queue(kind, **{flag.lower(): "True"})
    assert page["totalRecords"] == 2
    matched, unmatched = by_title(page["records"], "Matched"), by_title(page["records"], "Unmatched")
    assert all(key in matched for key in ids) and not any(key in unmatched for key in ids)
    if languages:
        assert unmatched["languages"] == [{"id": 0, "name": "Unknown"}]
    else:
        assert "languages" not in unmatched
    status = sim.api(kind, "queue/status").json()
    assert (status["totalCount"], status["count"], status["unknownCount"]) == (2, 1, 1)
    assert (status["warnings"], status["unknownWarnings"]) == (False, True)


# -- records moving between pages -----------------------------------------------------------

def test_records_move_between_pages_while_a_queue_is_read(sim: Sim) -> None:
    for number in range(25):
        sim.add(title=f"Show.{number:02d}")
    titles = [f"Show.{number:02d}" for number in range(25)]
    assert sim.control("sonarr", "fault", {"mode": "pages_move", "count": 3}) == \
        {"mode": "pages_move", "delay": 0.0, "count": 3}
    pages = [sim.queue(page=number, sortKey="title") for number in (1, 2, 3)]
    assert all(page["totalRecords"] == 25 for page in pages)
    read = [r["title"] for page in pages for r in page["records"]]
    assert len(read) == 25 and len(set(read)) < 25
    assert read[:10] == ["Show.24", *titles[:9]]  # the last record moved to the front
    assert read[10:12] == ["Show.08", "Show.09"]  # then one more: Show.08 is read twice
    # The fault has cleared itself after 3 reads: a read now sees each record once.
    read = [r["title"] for number in (1, 2, 3) for r in sim.queue(page=number, sortKey="title")["records"]]
    assert read == titles
    sim.control("sonarr", "fault", {"mode": "pages_move"})
    for _ in range(5):
        assert len({r["title"] for r in sim.queue(sortKey="title")["records"]}) == 10
    assert sim.queue(sortKey="title", pageSize=100)["records"][0]["title"] != "Show.00"
    sim.control("sonarr", "fault", {"mode": "none"})
    assert [r["title"] for r in sim.queue(sortKey="title", pageSize=100)["records"]] == titles
    assert sim.queue(page=7)["page"] == 3
    response = sim.http.post(f"{sim.url}/__simarr__/fault", json={"mode": "down", "count": 2}, timeout=TIMEOUT)
    assert response.status_code == 400


# -- frozen queues from real captures --------------------------------------------------------

REAL_SAMPLES = Path(__file__).resolve().parent / "fixtures" / "arr-samples" / "real"


def real_records(name: str) -> list[dict[str, Any]]:
    loaded = json.loads((REAL_SAMPLES / name).read_text())
    return loaded if isinstance(loaded, list) else loaded["records"]


def test_frozen_records_are_served_unchanged_in_their_key_order(sim: Sim) -> None:
    records = real_records("sonarr-ruddarr-1.json")
    assert sim.control("sonarr", "frozen", {"records": records}) == {"frozen": 13}
    response = sim.api("sonarr", "queue", params={"pageSize": 100, "sortKey": "nonsense"})
    served = json.loads(response.text)["records"]
    assert served == sorted(records, key=lambda r: r["id"])
    assert [list(r) for r in served] == [list(r) for r in sorted(records, key=lambda r: r["id"])]
    # Floats and fractions stay as they were captured, in Radarr's and Lidarr's too.
    radarr = real_records("radarr-ruddarr-1.json")
    sim.control("radarr", "frozen", {"records": radarr})
    assert "5870368312.844" in sim.api("radarr", "queue").text
    sim.control("lidarr", "frozen", {"records": real_records("lidarr-varken-1.json")})
    assert '"size":89456788.0' in sim.api("lidarr", "queue").text


def test_frozen_records_are_paged_and_sorted_with_scripted_ones(sim: Sim) -> None:
    sim.add(title="Aaa.Scripted.S01E01", rate=10)
    sim.control("sonarr", "frozen", {"records": real_records("sonarr-ruddarr-1.json")})
    page = sim.queue(sortKey="title", pageSize=5, page=3)
    assert (page["totalRecords"], page["page"], len(page["records"])) == (14, 3, 4)
    titles = [r["title"] for p in (1, 2, 3) for r in sim.queue(sortKey="title", pageSize=5, page=p)["records"]]
    assert titles == sorted(titles, key=str.casefold) and titles[0] == "Aaa.Scripted.S01E01"
    # By timeleft: 00:01:29 (frozen), then 1.03:46:40 (scripted); the records without one come last
    # both ways, in the order they were captured.
    sim.control("sonarr", "frozen", {"records": real_records("sonarr-ruddarr-1.json")
                                     + real_records("sonarr-pythonsonarr-1.json")})
    lacking = [r["id"] for r in real_records("sonarr-ruddarr-1.json")]
    records = sim.queue(pageSize=100)["records"]
    assert [r.get("timeleft") for r in records[:3]] == ["00:01:29", "1.03:46:40", None]
    assert [r["id"] for r in records[2:]] == lacking
    records = sim.queue(pageSize=100, sortDirection="descending")["records"]
    assert [r.get("timeleft") for r in records[:3]] == ["1.03:46:40", "00:01:29", None]
    assert [r["id"] for r in records[2:]] == lacking


def test_frozen_unknown_items_need_the_apps_own_flag(sim: Sim) -> None:
    sim.control("sonarr", "frozen", {"records": real_records("sonarr-pearlarr-1.json")})
    assert sim.queue()["totalRecords"] == 0  # none of its records has a seriesId
    assert sim.queue(includeUnknownMovieItems="true")["totalRecords"] == 0
    assert sim.queue(includeUnknownSeriesItems="true")["totalRecords"] == 3
    sim.control("radarr", "frozen", {"records": real_records("radarr-exportarr-1.json")})
    assert sim.queue("radarr")["totalRecords"] == 1


def test_removing_a_frozen_record_removes_its_whole_download(sim: Sim) -> None:
    records = real_records("sonarr-ruddarr-1.json")
    sim.control("sonarr", "frozen", {"records": records})
    pack = [r["id"] for r in records if r["downloadId"] == "687DF4991F687EDE2C46DE612B5BA1A4B1DDCF81"]
    assert sim.api("sonarr", f"queue/{pack[2]}", method="DELETE").status_code == 200
    assert sim.queue()["totalRecords"] == 7
    assert sim.api("sonarr", f"queue/{pack[0]}", method="DELETE").status_code == 404
    hard = [r["id"] for r in records if r["title"].startswith("Hard.")]
    jamie = next(r["id"] for r in records if r["title"].startswith("Jamie."))
    response = sim.api("sonarr", "queue/bulk", method="DELETE", json={"ids": [hard[0], jamie, 4242]})
    assert response.status_code == 404 and sim.queue()["totalRecords"] == 7
    response = sim.api("sonarr", "queue/bulk", method="DELETE", json={"ids": [hard[0], jamie]})
    assert response.status_code == 200 and sim.queue()["totalRecords"] == 0


def test_the_control_api_refuses_bad_frozen_records(sim: Sim) -> None:
    url = f"{sim.url}/__simarr__/frozen"
    for body in ({"records": [{"title": "no id"}]}, {"records": [{"id": 1}, {"id": 1}]}, {"records": {}}, {}):
        assert sim.http.post(url, json=body, timeout=TIMEOUT).status_code == 400, body


def test_the_simarr_command_serves_frozen_files_and_refreshes_every_n_seconds(deployment: Any) -> None:
    deployment.simulate("sonarr", "radarr", "lidarr")
    frozen = [f"{kind}={REAL_SAMPLES / name}" for kind, name in [
        ("sonarr", "sonarr-pearlarr-1.json"),  # a paging envelope (of unknown items)
        ("radarr", "radarr-ruddarr-1.json"), ("lidarr", "lidarr-varken-1.json")]]  # and a bare list
    deployment.start("simarr", "--scenario", "demo", "--speed", "1000", "--refresh-seconds", "3600",
                     *(arg for option in frozen for arg in ("--frozen", option)))

    def queue(kind: str, **params: str) -> dict[str, Any]:
        response = requests.get(f"http://127.0.0.1:{deployment.simarr_port}/{kind}/api/{VERSIONS[kind]}/queue",
                                params={"pageSize": "100", "sortKey": "title", **params},
                                headers={"X-Api-Key": f"key-{kind}"}, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()

    time.sleep(0.5)  # at 1000x the demo's early imports (simulated seconds 20 to 130) are over
    radarr = queue("radarr")
    assert radarr["totalRecords"] == len(deployment.control("radarr", "GET", "downloads")) + 2
    assert "5870368312.844" in json.dumps(radarr)
    assert queue("lidarr")["totalRecords"] == len(DEMO_DOWNLOADS["lidarr"]) + 1
    assert queue("sonarr", includeUnknownSeriesItems="true")["totalRecords"] == queue("sonarr")["totalRecords"] + 3
    # At 1000 simulated seconds per second the demo's movers move fast, but the figures shown
    # are those of the latest refresh, an hour away.
    first = queue("sonarr")["records"]
    time.sleep(0.5)
    second = queue("sonarr")["records"]  # a download imported meanwhile leaves at once: compare the others
    assert [r for r in second if r["id"] in {f["id"] for f in first}] == [
        r for r in first if r["id"] in {s["id"] for s in second}]
    assert deployment.control("sonarr", "GET", "downloads")[0]["downloaded"] > DEMO_DOWNLOADS["sonarr"][0]["downloaded"]


def test_the_simarr_command_refuses_a_bad_frozen_option(deployment: Any, tmp_path: Path) -> None:
    deployment.simulate("sonarr")
    (tmp_path / "object.json").write_text('{"page": 1}')
    for option in ("nobody=" + str(REAL_SAMPLES / "sonarr-ruddarr-1.json"), f"sonarr={tmp_path / 'missing.json'}",
                   f"sonarr={tmp_path / 'object.json'}"):
        done = deployment.cli("simarr", "--frozen", option, timeout=30)
        assert done.returncode == 2 and "--frozen" in done.stderr, (option, done.stderr)
