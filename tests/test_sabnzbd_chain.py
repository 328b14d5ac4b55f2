"""The whole chain on SABnzbd's API: simarr's Sonarr lists the jobs of the SABnzbd stand-in (tests/sabnzbd.py,
SABnzbd 4.3.3's own answers) as Sonarr does (--downloads-from sabnzbd), and discarr's poller reads the same
API itself. SABnzbd is not packaged for this system: its API is what discarr talks to, and the stand-in
speaks it."""
import json
import time

import pytest

from tests.conftest import wait_until
from tests.sabnzbd import SABnzbdStandIn

THRESHOLD = 3  # seconds: STUCK_THRESHOLD_MINUTES=0.05


@pytest.fixture
def sabnzbd(tmp_path):
    with SABnzbdStandIn(tmp_path / "incomplete", tmp_path / "complete") as sab:
        yield sab


@pytest.fixture
def chain(deployment, sabnzbd):
    deployment.simulate("sonarr")
    deployment.env.update(SABNZBD_URL=sabnzbd.url, SABNZBD_API_KEY=sabnzbd.api_key, STUCK_THRESHOLD_MINUTES="0.05",
                          MIN_SIZE_CHANGE=str(1024 * 1024), ARR_REFRESH_SECONDS="0")

    def start(**env: str):
        deployment.env.update(env)
        deployment.start("simarr", "--scenario", "empty", "--downloads-from", "sabnzbd")
        deployment.start("tracker")
        deployment.start("poller")
    return start


def item(deployment, job_id: str):
    return next((i for i in deployment.cli_json("check")["downloads"] if i["download_id"] == job_id), None)


def test_a_job_unpacking_for_three_thresholds_is_never_a_candidate_and_needs_attention(deployment, sabnzbd, chain):
    sabnzbd.add_job("SABnzbd_nzo_unpack", "Show.S01E01.1080p", category="tv-sonarr", mb=700, mbleft=0)
    sabnzbd.finish_job("SABnzbd_nzo_unpack", stage="Extracting")
    chain()
    shown = wait_until(lambda: (found := item(deployment, "SABnzbd_nzo_unpack")) and found["client"] and found, 20,
                       "SABnzbd's own figures for the job")
    assert (shown["status"], shown["sizeleft"]) == ("downloading", 0)  # as Sonarr shows it
    assert shown["activity"] == "finished" and shown["reason"].startswith("unpacking for ")
    for _ in range(3):
        time.sleep(THRESHOLD)
        assert deployment.cli_json("cleanup", "--dry-run")["candidates"] == []
    [attention] = deployment.cli_json("progress")["attention"]
    assert attention["attention"] == "not_imported" and "not imported: unpacking for " in attention["reason"]


def test_a_job_missing_more_articles_than_its_repair_data_covers_is_a_candidate(deployment, sabnzbd, chain):
    sabnzbd.add_job("SABnzbd_nzo_sick", "Sick.S01E02.1080p", category="tv-sonarr", mb=1000, mbleft=400,
                    mbmissing=300, par2_mb=50)
    chain()
    candidate = wait_until(lambda: next(iter(deployment.cli_json("cleanup", "--dry-run")["candidates"]), None), 20,
                           "the candidate")
    assert candidate["reason"] == "articles missing: health 70.0 %, needs 95.2 % (sabnzbd)"


def test_a_failed_entry_no_arr_queues_is_offered_only_when_asked_and_removed_with_its_files(deployment, sabnzbd,
                                                                                             chain):
    folder = sabnzbd.add_failed("SABnzbd_nzo_dead", "Dead.Release.2011", category="movies-by-hand",
                                files=["a.rar", "b.rar"])
    chain(CLEANUP_USENET_FAILED="true")
    offered = wait_until(lambda: deployment.cli_json("cleanup", "--dry-run")["candidates"], 20, "the failed entry")
    assert [(c["instance"], c["download_id"]) for c in offered] == [("sabnzbd", "SABNZBD_NZO_DEAD")]
    auto = deployment.cli("progress", "--json")
    assert auto.returncode == 0
    done = deployment.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert result["result"] == "removed" and not folder.exists()
    assert "SABnzbd_nzo_dead" not in sabnzbd.history_ids()


def test_without_cleanup_usenet_failed_a_failed_entry_is_never_offered(deployment, sabnzbd, chain):
    sabnzbd.add_failed("SABnzbd_nzo_dead", "Dead.Release.2011", category="movies-by-hand")
    chain()
    time.sleep(2)
    assert deployment.cli_json("cleanup", "--dry-run")["candidates"] == []
