"""The SABnzbd stand-in (tests/sabnzbd.py) answers as SABnzbd 4.3.3 does, over real HTTP.

The shapes asserted here are those of SABnzbd's source (sabnzbd/api.py `build_queue`, `build_history`,
`add_active_history`; sabnzbd/database.py `unpack_history_info`; sabnzbd/interface.py `check_apikey`):
see the module docstring of tests/sabnzbd.py for the files and functions each answer copies.
"""
from __future__ import annotations

import re

import pytest
import requests

from tests.sabnzbd import ABORTED, MEBI, SABnzbdStandIn, availability_ratio

NZO = "SABnzbd_nzo_k2v8q1xe"
OTHER = "SABnzbd_nzo_p86tgx3a"
THIRD = "SABnzbd_nzo_ksfai6zz"
TIMELEFT = re.compile(r"^\d+:\d\d:\d\d$|^\d+:\d\d:\d\d:\d\d$")
TWO_DECIMALS = re.compile(r"^\d+\.\d\d$")

QUEUE_KEYS = {  # api.py build_header(for_template=False) + build_queue
    "version", "paused", "pause_int", "paused_all", "diskspace1", "diskspace2", "diskspace1_norm",
    "diskspace2_norm", "diskspacetotal1", "diskspacetotal2", "speedlimit", "speedlimit_abs", "have_warnings",
    "finishaction", "quota", "have_quota", "left_quota", "cache_art", "cache_size", "kbpersec", "speed", "mbleft",
    "mb", "sizeleft", "size", "noofslots_total", "noofslots", "start", "limit", "finish", "status", "timeleft",
    "slots"}
SLOT_KEYS = {  # api.py build_queue, per job
    "index", "nzo_id", "unpackopts", "priority", "script", "filename", "labels", "password", "cat", "mbleft", "mb",
    "size", "sizeleft", "percentage", "mbmissing", "direct_unpack", "status", "timeleft", "avg_age"}
HISTORY_SLOT_KEYS = {  # api.py add_active_history == database.py unpack_history_info
    "completed", "name", "nzb_name", "category", "pp", "script", "report", "url", "status", "nzo_id", "storage",
    "path", "script_line", "download_time", "postproc_time", "stage_log", "downloaded", "completeness",
    "fail_message", "url_info", "bytes", "size", "meta", "series", "duplicate_key", "md5sum", "password",
    "action_line", "loaded", "retry", "archive"}


@pytest.fixture
def sab(tmp_path):
    stand_in = SABnzbdStandIn(tmp_path / "incomplete", tmp_path / "complete")
    yield stand_in
    stand_in.close()


def api(sab: SABnzbdStandIn, mode: str, base: str = "", **params) -> dict:
    response = requests.get(f"{sab.url}{base}/api", timeout=5,
                            params={"mode": mode, "output": "json", "apikey": sab.api_key, **params})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json;charset=UTF-8"
    return response.json()


def queue(sab: SABnzbdStandIn, **params) -> dict:
    return api(sab, "queue", **params)["queue"]


def history(sab: SABnzbdStandIn, **params) -> dict:
    return api(sab, "history", **params)["history"]


def slot(sab: SABnzbdStandIn, nzo_id: str) -> dict:
    return next(s for s in queue(sab)["slots"] if s["nzo_id"] == nzo_id)


def test_version_needs_no_key_and_answers_on_both_urls(sab):
    for base in ("", "/sabnzbd"):
        response = requests.get(f"{sab.url}{base}/api", params={"mode": "version", "output": "json"}, timeout=5)
        assert response.status_code == 200
        assert response.json() == {"version": "4.3.3"}
    assert requests.get(f"{sab.url}/elsewhere/api", params={"mode": "version"}, timeout=5).status_code == 404


@pytest.mark.parametrize("key, message", [(None, "API Key Required"), ("", "API Key Required"),
                                          ("wrong", "API Key Incorrect")])
def test_a_missing_or_wrong_key_is_a_403_in_plain_text_even_when_json_is_asked(sab, key, message):
    params = {"mode": "queue", "output": "json"} | ({} if key is None else {"apikey": key})
    response = requests.get(f"{sab.url}/api", params=params, timeout=5)
    assert response.status_code == 403
    assert response.text == message  # interface.py check_apikey: no JSON, no "error: " prefix in 4.x
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_the_nzb_key_only_opens_the_adding_modes(sab):
    response = requests.get(f"{sab.url}/api", params={"mode": "queue", "apikey": sab.nzb_key}, timeout=5)
    assert (response.status_code, response.text) == (403, "API Key Incorrect")
    assert api(sab, "auth", key=sab.nzb_key) == {"auth": "nzbkey"}
    assert api(sab, "auth", key="nope") == {"auth": "badkey"}


def test_an_unknown_mode_is_not_implemented_and_an_unmodelled_one_is_a_501(sab):
    assert api(sab, "frobnicate") == {"status": False, "error": "not implemented"}
    assert api(sab, "") == {"status": False, "error": "not implemented"}
    response = requests.get(f"{sab.url}/api", params={"mode": "addurl", "apikey": sab.api_key}, timeout=5)
    assert response.status_code == 501


def test_queue_has_the_keys_and_types_of_build_queue(sab):
    sab.add_job(NZO, "Show.S01E02.1080p.WEB-DL-GRP", "tv", mb=1234.5, mbleft=600.25, mbmissing=12.5)
    sab.set_speed(5 * MEBI)
    q = queue(sab, start=0, limit=0)
    assert set(q) == QUEUE_KEYS
    for key in ("mb", "mbleft", "kbpersec", "diskspace1", "diskspace2", "diskspacetotal1", "diskspacetotal2"):
        assert TWO_DECIMALS.match(q[key]), (key, q[key])
    for key in ("speedlimit", "speedlimit_abs", "have_warnings", "pause_int", "cache_art", "speed", "size",
                "sizeleft", "quota", "left_quota", "diskspace1_norm"):
        assert isinstance(q[key], str), key
    for key in ("noofslots", "noofslots_total", "start", "limit", "finish"):
        assert type(q[key]) is int, key
    assert q["paused"] is False and q["paused_all"] is False and q["have_quota"] is False
    assert q["finishaction"] is None
    assert (q["status"], q["mb"], q["mbleft"], q["kbpersec"], q["speed"]) == (
        "Downloading", "1234.50", "600.25", "5120.00", "5.0 M")
    assert (q["noofslots"], q["noofslots_total"], q["size"], q["sizeleft"]) == (1, 1, "1.2 GB", "600.2 MB")
    assert q["quota"] == "0 " and q["cache_size"] == "0 B"

    s = q["slots"][0]
    assert set(s) == SLOT_KEYS
    assert (s["nzo_id"], s["filename"], s["cat"], s["status"], s["priority"]) == (
        NZO, "Show.S01E02.1080p.WEB-DL-GRP", "tv", "Downloading", "Normal")
    # numbers as strings, exactly as build_queue formats them
    assert (s["mb"], s["mbleft"], s["mbmissing"], s["percentage"]) == ("1234.50", "600.25", "12.50", "51")
    assert (s["size"], s["sizeleft"], s["unpackopts"], s["script"], s["password"]) == (
        "1.2 GB", "600.2 MB", "3", "None", "")
    assert type(s["index"]) is int and s["index"] == 0
    assert s["labels"] == [] and s["direct_unpack"] is None
    assert s["timeleft"] == "0:02:00" and TIMELEFT.match(s["timeleft"])
    assert s["avg_age"] == "1d"


def test_the_raw_body_is_compact_ujson_with_escaped_slashes(sab):
    sab.add_failed(NZO, "Broken.Release.2011.2160p-GRP", "movies")
    raw = requests.get(f"{sab.url}/api", params={"mode": "history", "apikey": sab.api_key}, timeout=5).text
    assert '"fail_message":"Aborted, cannot be completed - https:\\/\\/sabnzbd.org\\/not-complete"' in raw


def test_an_idle_queue_and_a_queue_without_speed_say_idle(sab):
    q = queue(sab)
    assert (q["status"], q["slots"], q["mb"], q["timeleft"], q["noofslots"]) == ("Idle", [], "0.00", "0:00:00", 0)
    sab.add_job(NZO, "Some.Job", "tv", mb=100, mbleft=100)
    q = queue(sab)
    assert q["status"] == "Idle"  # jobs in the queue, nothing moving: BPSMeter.bps == 0
    assert q["slots"][0]["status"] == "Downloading" and q["slots"][0]["timeleft"] == "0:00:00"


def test_slot_statuses_follow_build_queue(sab):
    sab.add_job("SABnzbd_nzo_down0001", "A", "tv", mb=100, mbleft=50, status="Downloading")
    sab.add_job("SABnzbd_nzo_wait0001", "B", "tv", mb=100, mbleft=100, status="Queued")
    sab.add_job("SABnzbd_nzo_paus0001", "C", "tv", mb=100, mbleft=100, status="Paused")
    sab.add_job("SABnzbd_nzo_prop0001", "D", "tv", mb=100, mbleft=100, status="Propagating", propagation_minutes=7)
    sab.add_job("SABnzbd_nzo_chek0001", "E", "tv", mb=100, mbleft=100, status="Checking")
    sab.add_job("SABnzbd_nzo_grab0001", "F", "tv", mb=0, mbleft=0, status="Grabbing")
    sab.add_job("SABnzbd_nzo_fetc0001", "G", "tv", mb=100, mbleft=10, status="Fetching", priority="Repair")
    sab.set_speed(MEBI)
    slots = {s["filename"]: s for s in queue(sab)["slots"]}
    assert {name: s["status"] for name, s in slots.items()} == {
        "A": "Downloading", "B": "Downloading",  # waiting for its turn looks the same as downloading
        "C": "Paused", "D": "Propagating", "E": "Checking", "F": "Grabbing", "G": "Fetching"}
    assert slots["D"]["labels"] == ["PROPAGATING 7 min"]
    assert slots["G"]["priority"] == "Repair"
    assert slots["F"]["percentage"] == "0" and slots["F"]["mb"] == "0.00"
    assert slots["C"]["timeleft"] == slots["D"]["timeleft"] == slots["E"]["timeleft"] == "0:00:00"
    assert slots["A"]["timeleft"] == "0:00:50" and slots["B"]["timeleft"] == "0:02:30"  # running total

    sab.pause()  # under a global pause every slot shows its own nzo.status
    slots = {s["filename"]: s for s in queue(sab)["slots"]}
    assert {name: s["status"] for name, s in slots.items()} == {
        "A": "Queued", "B": "Queued", "C": "Paused", "D": "Queued", "E": "Checking", "F": "Grabbing",
        "G": "Fetching"}
    assert {s["timeleft"] for s in slots.values()} == {"0:00:00"}


def test_paused_and_checking_jobs_are_left_out_of_the_queue_totals(sab):
    sab.add_job(NZO, "A", "tv", mb=100, mbleft=40)
    sab.add_job(OTHER, "B", "movies", mb=300, mbleft=300, status="Paused")
    sab.add_job(THIRD, "C", "tv", mb=50, mbleft=50, status="Checking")
    q = queue(sab)
    assert (q["mb"], q["mbleft"], q["noofslots_total"], q["noofslots"]) == ("100.00", "40.00", 1, 3)


def test_queue_paging_and_filters_as_queue_info(sab):
    for number, cat in enumerate(["tv", "movies", "tv", "tv"]):
        sab.add_job(f"SABnzbd_nzo_job0000{number}", f"Job.{number}", cat, mb=10, mbleft=10)
    page = queue(sab, start=1, limit=2)
    assert [s["nzo_id"] for s in page["slots"]] == ["SABnzbd_nzo_job00001", "SABnzbd_nzo_job00002"]
    assert [s["index"] for s in page["slots"]] == [1, 2]
    assert (page["start"], page["limit"], page["finish"], page["noofslots"]) == (1, 2, 3, 4)
    tv = queue(sab, category="tv")
    assert [s["cat"] for s in tv["slots"]] == ["tv", "tv", "tv"]
    assert tv["noofslots"] == 4  # sic: queue_info counts every job unless searching or asking for nzo_ids
    assert queue(sab, cat="movies")["slots"][0]["nzo_id"] == "SABnzbd_nzo_job00001"
    assert queue(sab, nzo_ids="SABnzbd_nzo_job00003")["noofslots"] == 1
    assert queue(sab, search="job.2")["slots"][0]["nzo_id"] == "SABnzbd_nzo_job00002"


def test_update_job_moves_the_figures(sab):
    sab.add_job(NZO, "A", "tv", mb=1000, mbleft=1000)
    sab.update_job(NZO, mbleft=250, mbmissing=30.0, priority="High")
    s = slot(sab, NZO)
    assert (s["mbleft"], s["mbmissing"], s["percentage"], s["priority"]) == ("250.00", "30.00", "75", "High")
    sab.update_job(NZO, status="Paused")
    assert slot(sab, NZO)["status"] == "Paused"


def test_history_has_the_keys_of_add_active_history_and_of_the_database(sab):
    sab.add_job(NZO, "Show.S01E02.1080p.WEB-DL-GRP", "tv", mb=1000, mbleft=0)
    sab.finish_job(NZO, stage="Repairing")
    failed_path = sab.add_failed(OTHER, "Broken.Release.2011.2160p-GRP", "movies", files=["a.rar", "a.r00"])
    h = history(sab)
    assert {"total_size", "month_size", "week_size", "day_size", "slots", "ppslots", "noofslots",
            "last_history_update", "version"} == set(h)
    assert (h["ppslots"], h["noofslots"], h["version"]) == (1, 2, "4.3.3")
    assert type(h["last_history_update"]) is int
    active, failed = h["slots"]
    assert set(active) == HISTORY_SLOT_KEYS and set(failed) == HISTORY_SLOT_KEYS

    assert (active["nzo_id"], active["status"], active["category"], active["name"], active["nzb_name"]) == (
        NZO, "Repairing", "tv", "Show.S01E02.1080p.WEB-DL-GRP", "Show.S01E02.1080p.WEB-DL-GRP.nzb")
    assert active["action_line"] == "Repairing: 42%" and active["loaded"] is True
    assert active["storage"] == "" and active["fail_message"] == "" and active["retry"] is False
    assert type(active["bytes"]) is int and active["bytes"] == 1000 * MEBI
    assert type(active["completed"]) is int and type(active["download_time"]) is int
    assert [stage["name"] for stage in active["stage_log"]] == ["Source", "Download", "Servers"]
    assert all(isinstance(stage["actions"], list) for stage in active["stage_log"])
    assert active["script"] is None and active["pp"] == "D" and active["size"] == "1000.0 MB"

    assert (failed["nzo_id"], failed["status"], failed["fail_message"]) == (OTHER, "Failed", ABORTED)
    assert failed["path"] == failed["storage"] == str(failed_path)
    assert failed["retry"] is True and failed["loaded"] is False and failed["action_line"] == ""
    assert failed["archive"] is False and failed["series"] is None and failed["completeness"] is None


@pytest.mark.parametrize("stage, action_line, loaded", [
    ("Queued", "", False), ("QuickCheck", "Repair: Quick Checking", True), ("Verifying", "Verifying: 01/12", True),
    ("Repairing", "Repairing: 42%", True), ("Fetching", "Fetching: Fetching 12 blocks...", True),
    ("Extracting", "Unpacking: 03/12", True), ("Moving", "Moving: ...", True),
    ("Running", "Running script: script.py", True)])
def test_every_post_processing_stage_shows_in_the_history(sab, stage, action_line, loaded):
    sab.add_job(NZO, "A", "tv", mb=10, mbleft=0)
    sab.finish_job(NZO, stage=stage)
    assert queue(sab)["slots"] == []
    entry = history(sab)["slots"][0]
    assert (entry["status"], entry["action_line"], entry["loaded"]) == (stage, action_line, loaded)


def test_a_job_ends_completed_or_failed(sab, tmp_path):
    sab.add_job(NZO, "Good", "tv", mb=10, mbleft=0, files=["good.mkv"])
    sab.add_job(OTHER, "Bad", "tv", mb=10, mbleft=0, files=["bad.rar"])
    sab.finish_job(NZO, "Extracting")
    sab.finish_job(OTHER, "Repairing")
    sab.set_history_status(NZO, "Completed")
    sab.set_history_status(OTHER, "Failed", fail_message="[Bad] Repair failed, not enough repair blocks (12 short)")
    by_id = {entry["nzo_id"]: entry for entry in history(sab)["slots"]}
    assert by_id[NZO]["status"] == "Completed" and by_id[NZO]["storage"] == str(tmp_path / "complete" / "Good")
    assert (tmp_path / "complete" / "Good" / "good.mkv").exists()
    assert not (tmp_path / "incomplete" / "Good").exists()
    assert by_id[OTHER]["status"] == "Failed"
    assert by_id[OTHER]["stage_log"][-1] == {"name": "Repair", "actions": [
        "[Bad] Repair failed, not enough repair blocks (12 short)"]}
    assert (tmp_path / "incomplete" / "Bad" / "bad.rar").exists() and by_id[OTHER]["retry"] is True


def test_history_limit_zero_is_the_configured_history_limit_not_all(sab):
    for number in range(12):
        sab.add_failed(f"SABnzbd_nzo_fail{number:04d}", f"Failed.{number}", "tv", age_seconds=number)
    h = history(sab, start=0, limit=0)
    assert (len(h["slots"]), h["noofslots"]) == (10, 12)  # cfg.history_limit, default 10
    assert h["slots"][0]["nzo_id"] == "SABnzbd_nzo_fail0000"  # newest first
    assert len(history(sab, start=0, limit=100)["slots"]) == 12
    assert [s["nzo_id"] for s in history(sab, start=10, limit=5)["slots"]] == [
        "SABnzbd_nzo_fail0010", "SABnzbd_nzo_fail0011"]


def test_history_filters(sab):
    sab.add_failed(NZO, "A.Show", "tv")
    sab.add_completed(OTHER, "A.Movie", "movies")
    sab.add_job(THIRD, "Another.Show", "tv", mb=10, mbleft=0)
    sab.finish_job(THIRD, "Verifying")
    assert [s["nzo_id"] for s in history(sab, category="tv")["slots"]] == [THIRD, NZO]
    assert [s["nzo_id"] for s in history(sab, failed_only=1)["slots"]] == [NZO]
    assert [s["nzo_id"] for s in history(sab, status="Completed,Verifying")["slots"]] == [THIRD, OTHER]
    assert [s["nzo_id"] for s in history(sab, nzo_ids=OTHER)["slots"]] == [OTHER]


def test_last_history_update_answers_false_when_nothing_changed(sab):
    sab.add_failed(NZO, "A", "tv")
    mark = history(sab)["last_history_update"]
    assert api(sab, "history", last_history_update=mark) == {"history": False}
    sab.add_failed(OTHER, "B", "tv")
    assert history(sab, last_history_update=mark)["last_history_update"] == mark + 1


def test_queue_delete_with_del_files_removes_the_job_and_its_folder(sab, tmp_path):
    sab.add_job(NZO, "Gone.Job", "tv", mb=100, mbleft=50, files=["gone.part01.rar", "gone.part02.rar"])
    folder = tmp_path / "incomplete" / "Gone.Job"
    assert (folder / "gone.part01.rar").exists()
    answer = api(sab, "queue", name="delete", value=NZO, del_files=1)
    assert answer == {"status": True, "nzo_ids": [NZO]}
    assert not folder.exists()
    assert sab.queue_ids() == [] and queue(sab)["slots"] == []


def test_queue_delete_without_del_files_keeps_the_downloaded_files(sab, tmp_path):
    sab.add_job(NZO, "Kept.Job", "tv", mb=100, mbleft=50, files=["kept.part01.rar"])
    folder = tmp_path / "incomplete" / "Kept.Job"
    assert api(sab, "queue", name="delete", value=NZO) == {"status": True, "nzo_ids": [NZO]}
    assert (folder / "kept.part01.rar").exists()  # purge_data(delete_all_data=False)
    assert not list(folder.glob("SABnzbd_article_*"))


def test_queue_delete_answers_for_unknown_ids_several_ids_and_all(sab, tmp_path):
    assert api(sab, "queue", name="delete", value="SABnzbd_nzo_nothere") == {"status": False, "nzo_ids": []}
    assert api(sab, "queue", name="delete") == {"status": False, "error": "expects one parameter"}
    sab.add_job(NZO, "A", "tv", mb=1, mbleft=1)
    sab.add_job(OTHER, "B", "tv", mb=1, mbleft=1)
    sab.add_job(THIRD, "C", "tv", mb=1, mbleft=1)
    assert api(sab, "queue", name="delete", value=f"{NZO}, SABnzbd_nzo_nothere", del_files=1) == {
        "status": True, "nzo_ids": [NZO]}
    assert api(sab, "queue", name="delete", value="all") == {"status": True, "nzo_ids": [OTHER, THIRD]}
    assert not (tmp_path / "incomplete" / "B").exists()  # value=all deletes the files whatever del_files says


def test_queue_pause_and_resume_of_one_job_report_every_id_given(sab):
    sab.add_job(NZO, "A", "tv", mb=1, mbleft=1)
    assert api(sab, "queue", name="pause", value=f"{NZO},SABnzbd_nzo_nothere") == {
        "status": True, "nzo_ids": [NZO, "SABnzbd_nzo_nothere"]}
    assert slot(sab, NZO)["status"] == "Paused"
    assert api(sab, "queue", name="resume", value=NZO) == {"status": True, "nzo_ids": [NZO]}
    assert slot(sab, NZO)["status"] == "Downloading"


def test_history_delete_of_a_failed_job_with_del_files_and_archive_0_removes_entry_and_files(sab):
    folder = sab.add_failed(NZO, "Broken.Job", "tv", files=["broken.part01.rar", "broken.part02.rar"])
    assert (folder / "broken.part01.rar").exists()
    answer = api(sab, "history", name="delete", value=NZO, del_files=1, archive=0)
    assert answer == {"status": True}  # report(): no nzo_ids from mode=history
    assert not folder.exists()
    assert history(sab)["slots"] == [] and history(sab, archive=1)["slots"] == []


def test_history_delete_without_archive_0_moves_the_entry_to_the_archive(sab):
    folder = sab.add_failed(NZO, "Broken.Job", "tv")
    assert api(sab, "history", name="delete", value=NZO) == {"status": True}
    assert folder.exists()  # no del_files: the files stay
    assert history(sab)["slots"] == []
    archived = history(sab, archive=1)["slots"]
    assert [(s["nzo_id"], s["archive"]) for s in archived] == [(NZO, True)]


def test_history_delete_with_del_files_never_touches_a_completed_jobs_files(sab):
    storage = sab.add_completed(NZO, "Done.Job", "tv", files=["done.mkv"])
    assert api(sab, "history", name="delete", value=NZO, del_files=1, archive=0) == {"status": True}
    assert (storage / "done.mkv").exists()  # get_incomplete_path: only a Failed job's path is deleted
    assert history(sab)["slots"] == []


def test_history_delete_answers_true_for_anything_and_leaves_active_post_processing_alone(sab, tmp_path):
    assert api(sab, "history", name="delete", value="SABnzbd_nzo_nothere", del_files=1) == {"status": True}
    assert api(sab, "history", name="delete") == {"status": False, "error": "expects one parameter"}
    sab.add_job(NZO, "Busy", "tv", mb=10, mbleft=0)
    sab.add_job(OTHER, "Waiting", "tv", mb=10, mbleft=0)
    sab.finish_job(NZO, "Extracting")
    sab.finish_job(OTHER, "Queued")
    assert api(sab, "history", name="delete", value=f"{NZO},{OTHER}", del_files=1, archive=0) == {"status": True}
    # PostProcessor.delete: a job waiting for post-processing goes (files too); one being processed stays.
    assert [s["nzo_id"] for s in history(sab)["slots"]] == [NZO]
    assert (tmp_path / "incomplete" / "Busy").exists() and not (tmp_path / "incomplete" / "Waiting").exists()


def test_history_delete_failed_removes_all_failed_jobs_and_their_files(sab):
    first = sab.add_failed(NZO, "One", "tv")
    second = sab.add_failed(OTHER, "Two", "tv")
    sab.add_completed(THIRD, "Three", "tv")
    assert api(sab, "history", name="delete", value="failed", del_files=1, archive=0) == {"status": True}
    assert not first.exists() and not second.exists()
    assert [s["nzo_id"] for s in history(sab)["slots"]] == [THIRD]


def test_pause_and_resume_the_whole_client(sab):
    sab.add_job(NZO, "A", "tv", mb=10, mbleft=5)
    assert api(sab, "pause") == {"status": True}
    q = queue(sab)
    assert (q["status"], q["paused"], q["paused_all"]) == ("Paused", True, False)  # mode=pause: Downloader only
    assert q["slots"][0]["status"] == "Queued" and q["slots"][0]["timeleft"] == "0:00:00"
    assert api(sab, "resume") == {"status": True}
    q = queue(sab)
    assert (q["status"], q["paused"], q["paused_all"]) == ("Idle", False, False)
    sab.pause_all()  # the scheduler's "pause all": PAUSED_ALL as well
    q = queue(sab)
    assert (q["status"], q["paused"], q["paused_all"]) == ("Paused", True, True)
    api(sab, "resume")  # unpause_all clears both
    assert (queue(sab)["paused"], queue(sab)["paused_all"]) == (False, False)
    sab.pause_all()
    sab.resume_all()
    assert queue(sab)["paused"] is False


def test_a_full_disk_pauses_the_downloader_with_a_warning_and_nothing_else(sab):
    sab.add_job(NZO, "A", "tv", mb=10, mbleft=5)
    sab.disk_full(True)
    q = queue(sab)
    assert (q["status"], q["paused"], q["paused_all"]) == ("Paused", True, False)
    assert (q["diskspace1"], q["diskspace1_norm"], q["have_warnings"]) == ("0.05", "51.2 M", "1")
    assert q["slots"][0]["status"] == "Queued"
    warnings = api(sab, "warnings")["warnings"]
    assert [(w["type"], w["text"], w["origin"]) for w in warnings] == [
        ("WARNING", "Too little diskspace forcing PAUSE", "assembler.py155")]
    assert type(warnings[0]["time"]) is int
    sab.disk_full(False)
    q = queue(sab)
    assert q["diskspace1"] == "200.00" and q["paused"] is True  # fulldisk_autoresume is off by default
    assert api(sab, "warnings", name="clear") == {"status": True}
    assert queue(sab)["have_warnings"] == "0"


def test_a_full_disk_resumes_by_itself_only_with_fulldisk_autoresume(tmp_path):
    with SABnzbdStandIn(tmp_path / "i", tmp_path / "c", fulldisk_autoresume=True) as sab:
        sab.disk_full(True)
        assert queue(sab)["paused"] is True
        sab.disk_full(False)
        assert queue(sab)["paused"] is False


def test_fullstatus_carries_the_header_the_warnings_and_the_servers(sab):
    sab.disk_full(True, free_gb=1.5)
    status = api(sab, "fullstatus", skip_dashboard=1)["status"]
    assert (status["paused"], status["paused_all"], status["diskspace1"], status["diskspacetotal1"]) == (
        True, False, "1.50", "500.00")
    assert status["warnings"][0]["text"] == "Too little diskspace forcing PAUSE"
    assert status["servers"] == [] and status["version"] == "4.3.3"
    assert "localipv4" not in status
    assert api(sab, "status")["status"]["diskspace1"] == "1.50"


def test_missing_articles_show_as_mbmissing_and_repair_data_only_in_get_files(sab):
    # 1000 MB job with 50 MB of par2; 80 MB of articles missing is more than its repair data covers.
    sab.add_job(NZO, "Holey.Job", "tv", mb=1000, mbleft=300, mbmissing=80, par2_mb=50,
                files=["holey.part01.rar", "holey.part02.rar"])
    s = slot(sab, NZO)
    assert (s["mbmissing"], s["mb"], s["mbleft"], s["percentage"]) == ("80.00", "1000.00", "300.00", "70")
    assert not {key for key in s if "par" in key or "health" in key or "repair" in key}
    files = api(sab, "get_files", value=NZO)["files"]
    assert {"filename", "mbleft", "mb", "bytes", "age", "nzf_id", "status"} <= set(files[0])
    par2 = [f for f in files if f["filename"].endswith(".par2")]
    assert sum(float(f["bytes"]) for f in par2) == 50 * MEBI
    assert [f["status"] for f in par2 if "set" in f] == ["queued"]  # volumes not fetched yet: nzo.extrapars
    can_succeed, ratio = availability_ratio(float(s["mb"]), float(s["mbmissing"]),
                                            sum(float(f["mb"]) for f in par2))
    assert not can_succeed and round(ratio, 2) == 96.84
    assert availability_ratio(1000, 40, 50) == (True, pytest.approx(100 * 960 / 950))
    assert api(sab, "get_files", value="SABnzbd_nzo_nothere") == {"files": []}


def test_abort_hopeless_is_sabnzbds_own_end_for_such_a_job(sab, tmp_path):
    sab.add_job(NZO, "Holey.Job", "tv", mb=1000, mbleft=300, mbmissing=80, par2_mb=50, files=["holey.rar"])
    sab.abort_hopeless(NZO)
    assert queue(sab)["slots"] == []
    entry = history(sab)["slots"][0]
    assert (entry["nzo_id"], entry["status"], entry["fail_message"]) == (
        NZO, "Failed", "Aborted, cannot be completed - https://sabnzbd.org/not-complete")
    assert entry["fail_message"].endswith("https://sabnzbd.org/not-complete")  # the untranslated part
    download = next(stage for stage in entry["stage_log"] if stage["name"] == "Download")
    assert "Aborted" not in " ".join(download["actions"])  # set_download_report overwrote that line
    assert entry["retry"] is True and (tmp_path / "incomplete" / "Holey.Job" / "holey.rar").exists()


def test_the_request_log_has_method_path_and_query(sab):
    sab.add_job(NZO, "A", "tv", mb=1, mbleft=1)
    api(sab, "queue", start=0, limit=0)
    api(sab, "queue", base="/sabnzbd", name="delete", value=NZO, del_files=1)
    requests.post(f"{sab.url}/api", data={"mode": "history", "output": "json", "apikey": sab.api_key}, timeout=5)
    requests.get(f"{sab.url}/api", params={"mode": "queue", "apikey": "wrong"}, timeout=5)
    assert [(r.method, r.path, r.query.get("mode"), r.query.get("name")) for r in sab.log] == [
        ("GET", "/api", "queue", None), ("GET", "/sabnzbd/api", "queue", "delete"),
        ("POST", "/api", "history", None), ("GET", "/api", "queue", None)]
    assert sab.log[0].query == {"mode": "queue", "output": "json", "apikey": sab.api_key, "start": "0",
                                "limit": "0"}
    assert sab.log[1].query["del_files"] == "1" and sab.log[3].query["apikey"] == "wrong"
    assert [r.query.get("name") for r in sab.requests_for("queue")] == [None, "delete", None]


def test_without_directories_it_keeps_its_own_and_removes_them_on_close():
    sab = SABnzbdStandIn()
    folder = sab.download_dir
    sab.add_job(NZO, "A", "tv", mb=1, mbleft=1)
    assert (folder / "A").exists()
    sab.close()
    assert not folder.exists()
