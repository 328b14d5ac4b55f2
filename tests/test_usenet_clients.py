"""The poller's usenet readers: SABnzbd against the API stand-in (tests/sabnzbd.py, SABnzbd 4.3.3's own
shapes), NZBGet against a real nzbget fed by a loopback NNTP server (tests/usenet.py)."""
import pytest

from common.settings import DownloadClientConfig
from services.poller.download_clients import DownloadClients
from tests.records import record
from tests.sabnzbd import SABnzbdStandIn


@pytest.fixture
def sabnzbd(tmp_path):
    with SABnzbdStandIn(tmp_path / "incomplete", tmp_path / "complete") as sab:
        yield sab


def clients_for(sab, api_key=None):
    return DownloadClients([DownloadClientConfig("sabnzbd", "sabnzbd", sab.url, api_key=api_key or sab.api_key)], 2)


def usenet(*ids):
    return [record(i, job, protocol="usenet") for i, job in enumerate(ids, 1)]


def figures_of(sab, *ids, api_key=None):
    records = usenet(*ids)
    health = clients_for(sab, api_key).annotate(records)
    return {r["download_id"]: r["client"] for r in records}, health


def test_sabnzbd_jobs_downloading_paused_queued_and_a_client_paused_as_a_whole(sabnzbd):
    sabnzbd.add_job("SABnzbd_nzo_down", "Show.S01E01", mb=1000, mbleft=400)
    sabnzbd.add_job("SABnzbd_nzo_paus", "Show.S01E02", mb=1000, status="Paused")
    sabnzbd.add_job("SABnzbd_nzo_prop", "Show.S01E03", mb=1000, status="Propagating")
    found, health = figures_of(sabnzbd, "SABnzbd_nzo_down", "SABnzbd_nzo_paus", "SABnzbd_nzo_prop", "SABnzbd_nzo_gone")
    assert health == [{"name": "sabnzbd", "kind": "sabnzbd", "state": "ok", "error": None}]
    down = found["SABnzbd_nzo_down"]
    assert (down["state"], down["downloaded"], down["size"]) == ("downloading", 600 * 2 ** 20, 1000 * 2 ** 20)
    assert found["SABnzbd_nzo_paus"]["state"] == "paused" and found["SABnzbd_nzo_prop"]["state"] == "queued"
    assert found["SABnzbd_nzo_gone"] is None  # no job of that id: the *arr's figures stand
    sabnzbd.pause_all()
    found, _ = figures_of(sabnzbd, "SABnzbd_nzo_down")
    assert (found["SABnzbd_nzo_down"]["state"], found["SABnzbd_nzo_down"]["client_state"]) == \
        ("paused", "paused as a whole")
    sabnzbd.resume_all()
    sabnzbd.disk_full(True)  # SABnzbd pauses itself: a full disk is a client paused as a whole
    found, _ = figures_of(sabnzbd, "SABnzbd_nzo_down")
    assert found["SABnzbd_nzo_down"]["state"] == "paused"


def test_sabnzbd_post_processing_stages_are_the_jobs_stage(sabnzbd):
    for number, stage in enumerate(["Verifying", "Repairing", "Extracting", "Moving", "Running"]):
        job = f"SABnzbd_nzo_pp{number}"
        sabnzbd.add_job(job, f"Show.S01E1{number}", mb=500, mbleft=0)
        sabnzbd.finish_job(job, stage=stage)
    found, _ = figures_of(sabnzbd, *(f"SABnzbd_nzo_pp{n}" for n in range(5)))
    assert [(f["state"], f["stage"]) for f in found.values()] == [
        ("post_processing", "verifying"), ("post_processing", "repairing"), ("post_processing", "unpacking"),
        ("post_processing", "moving"), ("post_processing", "running a script")]


def test_sabnzbd_missing_articles_beyond_its_repair_data_are_health_below_critical(sabnzbd):
    sabnzbd.add_job("SABnzbd_nzo_sick", "Sick.S01E01", mb=1000, mbleft=500, mbmissing=300, par2_mb=50)
    sabnzbd.add_job("SABnzbd_nzo_fine", "Fine.S01E01", mb=1000, mbleft=500, mbmissing=20, par2_mb=50)
    found, _ = figures_of(sabnzbd, "SABnzbd_nzo_sick", "SABnzbd_nzo_fine")
    sick, fine = found["SABnzbd_nzo_sick"], found["SABnzbd_nzo_fine"]
    assert sick["health"] == pytest.approx(70.0) and sick["critical_health"] == pytest.approx(95.19, abs=0.01)
    assert fine["health"] > fine["critical_health"]
    asked = [request.query.get("mode") for request in sabnzbd.log]
    assert asked.count("get_files") == 2  # only jobs with articles missing cost a look at their files


def test_sabnzbd_failed_history_entries_and_their_removal_with_their_files(sabnzbd):
    folder = sabnzbd.add_failed("SABnzbd_nzo_dead", "Dead.Release.2011", category="tv", files=["a.rar", "b.rar"])
    sabnzbd.add_completed("SABnzbd_nzo_done", "Done.Release.2012", category="tv")
    clients = clients_for(sabnzbd)
    reader = clients.readers["sabnzbd"]
    [job] = reader.failed_jobs()
    assert (job["id"], job["history_id"], job["title"], job["category"]) == \
        ("SABNZBD_NZO_DEAD", "SABnzbd_nzo_dead", "Dead.Release.2011", "tv")
    assert folder.exists()
    reader.delete_job(job["history_id"])
    assert not folder.exists() and reader.failed_jobs() == []
    [delete] = [r for r in sabnzbd.log if r.query.get("name") == "delete"]
    assert (delete.query["del_files"], delete.query["archive"]) == ("1", "0")


def test_sabnzbd_with_a_wrong_key_or_down_is_unhealthy_and_its_jobs_are_unjudged(sabnzbd):
    sabnzbd.add_job("SABnzbd_nzo_down", "Show.S01E01", mb=1000, mbleft=400)
    found, health = figures_of(sabnzbd, "SABnzbd_nzo_down", api_key="not-the-key")
    assert health[0]["state"] == "unauthorized" and "not-the-key" not in health[0]["error"]
    assert found["SABnzbd_nzo_down"]["state"] == "unreachable"
    url = sabnzbd.url
    sabnzbd.close()
    records = usenet("SABnzbd_nzo_down")
    health = DownloadClients([DownloadClientConfig("sabnzbd", "sabnzbd", url, api_key="k")], 1).annotate(records)
    assert health[0]["state"] == "unreachable" and records[0]["client"]["state"] == "unreachable"


def test_the_pollers_recheck_removes_a_job_below_critical_health_even_while_it_moves_or_is_paused():
    from services.poller.removal import RemovalPolicy, recheck
    from tests.records import client_figures
    policy = RemovalPolicy(min_bytes=1024 ** 2, min_progress=1.0, blocklist=True)
    item = {"instance": "sonarr", "download_id": "D", "category": "inactive", "size": 10 ** 9, "sizeleft": 6 * 10 ** 8,
            "progress": 40.0, "evidence": {"start_bytes": 4 * 10 ** 8, "start_progress": 40.0}}

    def job(downloaded, state):
        return [record(1, "D", protocol="usenet", size=10 ** 9, downloaded=downloaded,
                       client=client_figures(downloaded, 10 ** 9, state=state, name="nzbget", health=59.0,
                                             critical_health=94.9))]
    assert recheck(item, job(5 * 10 ** 8, "downloading"), policy, False) is None  # moved 100 MB: still hopeless
    assert recheck(item, job(4 * 10 ** 8, "paused"), policy, False) is None  # NZBGet's HealthCheck=pause
