"""The whole chain on a real usenet client: a loopback NNTP server, a real NZBGet 21, simarr's Sonarr
listing NZBGet's jobs as Sonarr does (--downloads-from nzbget), and discarr's poller (reading NZBGet
itself), tracker and cleanup as processes, with thresholds of seconds."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Deployment, wait_until
from tests.torrent_clients import random_file
from tests.usenet import NNTPServer, NZBGet, news_server, nzbget, post  # noqa: F401

MB = 1024 ** 2
THRESHOLD = 3  # seconds: STUCK_THRESHOLD_MINUTES=0.05


class Chain:
    """simarr's Sonarr on a real NZBGet, with discarr's poller and tracker, started by `start`."""

    def __init__(self, deployment: Deployment, news: NNTPServer, start_nzbget: Any, tmp_path: Path) -> None:
        self.deployment, self.news, self.start_nzbget, self.tmp_path = deployment, news, start_nzbget, tmp_path
        self.client: NZBGet | None = None

    def start(self, health_check: str = "delete", **env: str) -> NZBGet:
        self.client = self.start_nzbget(health_check=health_check)
        self.deployment.simulate("sonarr")
        self.deployment.env.update({
            "NZBGET_URL": self.client.url, "NZBGET_USERNAME": self.client.username,
            "NZBGET_PASSWORD": self.client.password, "STUCK_THRESHOLD_MINUTES": "0.05",
            "MIN_SIZE_CHANGE": str(MB // 4), "ARR_REFRESH_SECONDS": "0", **env})
        self.deployment.start("simarr", "--scenario", "empty", "--downloads-from", "nzbget")
        self.deployment.start("tracker")
        self.deployment.start("poller")
        return self.client

    def grab(self, name: str, size: int = 3 * MB, redundancy: int | None = None,
             category: str = "tv-sonarr") -> tuple[str, Any]:
        """Post a release and add it to NZBGet as Sonarr does, with a drone id: (its downloadId, its posting)."""
        posting = post(self.news, [random_file(self.tmp_path / "upload" / name / f"{name}.mkv", size)],
                       redundancy=redundancy)
        drone = name.encode().hex()[:32].ljust(32, "0")
        self.client.append(posting.nzb, name, category=category, parameters={"drone": drone})
        return drone, posting

    def item(self, download_id: str) -> dict[str, Any] | None:
        """The download as `discarr check` shows it."""
        return next((item for item in self.deployment.cli_json("check")["downloads"]
                     if item["download_id"].lower() == download_id), None)

    def found(self, category: str) -> set[str]:
        return {item["download_id"].lower() for item in self.deployment.cli_json("progress")[category]}

    def queued(self, download_id: str) -> bool:
        return any(next((p["Value"] for p in job["Parameters"] if p["Name"] == "drone"), None) == download_id
                   for job in self.client.groups())


@pytest.fixture
def chain(deployment, nzbget, news_server, tmp_path):  # noqa: F811
    return Chain(deployment, news_server, nzbget, tmp_path)


def test_a_moving_job_is_judged_on_nzbgets_own_bytes_and_is_never_stuck(chain):
    chain.news.throttle_bytes_per_second = 300 * 1024  # 6 MB take about 20 s: several thresholds
    chain.start()
    drone, _ = chain.grab("Moving.Show.S01E01", size=6 * MB)
    item = wait_until(lambda: (found := chain.item(drone)) and found["client"] and found, 20,
                      "NZBGet's own figures for the job")
    assert item["evidence"]["source"] == "nzbget" and item["client"]["state"] == "downloading"
    deadline = time.monotonic() + 4 * THRESHOLD
    while time.monotonic() < deadline and chain.queued(drone):
        assert drone not in chain.found("stuck") | chain.found("inactive")
        time.sleep(0.5)


def test_a_job_whose_server_stops_answering_is_stuck_after_the_threshold(chain):
    chain.news.throttle_bytes_per_second = 300 * 1024
    chain.start()
    drone, _ = chain.grab("Hung.Show.S01E02", size=6 * MB)
    wait_until(lambda: (found := chain.item(drone)) and found["client"] and found["progress"] > 5, 20,
               "the job to move")
    chain.news.hang = True  # the news server takes the requests and never answers them
    hung_at = time.time()
    wait_until(lambda: drone in chain.found("stuck"), 30, "the job to be stuck")
    [stuck] = [item for item in chain.deployment.cli_json("progress")["stuck"] if item["download_id"].lower() == drone]
    # dated from its last counted move (up to a MIN_SIZE_CHANGE and a poll before the hang), a threshold ago
    assert hung_at - 3 <= stuck["evidence"]["since"] <= hung_at + 1
    assert time.time() - stuck["evidence"]["since"] >= THRESHOLD
    assert stuck["evidence"]["source"] == "nzbget" and "nzbget: DOWNLOADING" in stuck["reason"]


def test_a_job_being_repaired_is_never_stuck_and_needs_attention_with_its_stage(chain):
    chain.start()
    drone, posting = chain.grab("Repair.Show.S01E03", size=3 * MB, redundancy=20)
    main = "Repair.Show.S01E03.mkv"
    chain.news.withheld |= posting.spread(main, 0.1)  # a tenth of it missing: par2 repairs it ...
    volumes = [message for name, ids in posting.message_ids.items() if ".vol" in name for message in ids]
    chain.news.stalled |= set(volumes)  # ... with recovery blocks that come slowly
    item = wait_until(lambda: (found := chain.item(drone)) and found.get("client") and
                      found["client"]["state"] == "post_processing" and found, 30, "the job's post-processing")
    assert item["activity"] == "finished" and "(nzbget)" in item["reason"]
    for _ in range(3):  # three thresholds of the *arr showing bytes left that do not move
        time.sleep(THRESHOLD)
        assert drone not in chain.found("stuck") | chain.found("inactive")
    [attention] = [i for i in chain.deployment.cli_json("progress")["attention"] if i["download_id"].lower() == drone]
    assert attention["attention"] == "not_imported" and "not imported: verifying for" in attention["reason"]
    cleanup = chain.deployment.cli_json("cleanup", "--dry-run")
    assert drone not in {c["download_id"].lower() for c in cleanup["candidates"]}
    chain.news.stalled.clear()


def test_a_job_below_critical_health_is_a_candidate_with_its_health_and_cleanup_removes_it(chain):
    chain.news.throttle_bytes_per_second = 200 * 1024
    client = chain.start(health_check="none")  # NZBGet downloads on below critical health
    drone, posting = chain.grab("Dying.Show.S01E04", size=4 * MB, redundancy=5)
    chain.news.withheld |= posting.spread("Dying.Show.S01E04.mkv", 0.4)
    candidate = wait_until(lambda: next((c for c in chain.deployment.cli_json("cleanup", "--dry-run")["candidates"]
                                         if c["download_id"].lower() == drone), None), 30, "the candidate")
    assert candidate["category"] == "inactive"
    assert re.fullmatch(r"articles missing: health \d+\.\d %, needs \d+\.\d % \(nzbget\)", candidate["reason"])
    done = chain.deployment.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    results = {r["download_id"].lower(): r for r in json.loads(done.stdout)["results"]}
    assert results[drone]["result"] == "removed"
    wait_until(lambda: not chain.queued(drone), 10, "NZBGet to drop the job")  # removed through the *arr
    assert client.finished_by_drone(drone) is None or client.finished_by_drone(drone)["Status"].startswith("DELETED")


def test_a_failed_history_entry_no_arr_queues_is_removed_with_its_files(chain):
    client = chain.start(health_check="park", CLEANUP_USENET_FAILED="true")  # park: the failed files stay
    drone, posting = chain.grab("Dead.Movie.2011", size=2 * MB, redundancy=5, category="")  # no *arr's category
    chain.news.withheld |= posting.spread("Dead.Movie.2011.mkv", 0.4)
    failed = wait_until(lambda: client.finished_by_drone(drone), 30, "the job to fail")
    assert failed["Status"].startswith("FAILURE")
    leftovers = Path(failed["DestDir"])
    assert leftovers.exists()
    offered = wait_until(lambda: [c for c in chain.deployment.cli_json("cleanup", "--dry-run")["candidates"]
                                  if c["download_id"].lower() == drone], 20, "the failed entry to be offered")
    assert offered[0]["instance"] == "nzbget" and "failed in nzbget's history" in offered[0]["reason"]
    done = chain.deployment.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    [result] = [r for r in json.loads(done.stdout)["results"] if r["download_id"].lower() == drone]
    assert result["result"] == "removed" and "with its files" in result["detail"]
    assert client.finished_by_drone(drone) is None and not leftovers.exists()
    audit = (chain.deployment.workdir / "data" / "removals.jsonl").read_text().splitlines()
    assert [line["result"] for line in map(json.loads, audit) if line["download_id"].lower() == drone][-2:] == \
        ["removing", "removed"]
    stats = wait_until(lambda: [row for row in chain.deployment.cli_json("stats", "--by", "client")["rows"]
                                if row["key"] == "nzbget" and row["removed"]], 20, "the removal in the statistics")
    assert stats[0]["removed"] == 1
