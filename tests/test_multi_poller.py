"""Several pollers, one per site, feeding one tracker; removals reach the poller that owns the instance."""
import json
import signal
import time

from tests.conftest import free_port, wait_until

MB = 1024 ** 2
GB = 1024 ** 3


def site(kind, other, name, endpoint):
    """The environment of a poller that owns only `kind`."""
    return {f"{other.upper()}_API_KEY": None, "POLLER_NAME": name, "POLLER_COMMAND_ENDPOINT": endpoint}


def test_two_pollers_feed_one_tracker_and_each_removal_reaches_its_owner(deployment):
    deployment.simulate("sonarr", "radarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.03", "MIN_SIZE_CHANGE": str(MB)})
    del deployment.env["POLLER_COMMAND_ENDPOINT"]  # the CLI learns each poller's endpoint from the tracker
    deployment.start("simarr", "--scenario", "empty")
    for kind in ("sonarr", "radarr"):
        deployment.control(kind, "POST", "downloads", {"title": f"Stalled.{kind}", "size": GB,
                                                       "downloaded": 100 * MB, "state": "stalled"})
    endpoint_a, endpoint_b = (f"tcp://127.0.0.1:{free_port()}" for _ in range(2))
    deployment.start("tracker")
    deployment.start("poller", alias="poller-a", env=site("sonarr", "radarr", "site-a", endpoint_a))
    deployment.start("poller", alias="poller-b", env=site("radarr", "sonarr", "site-b", endpoint_b))
    progress = wait_until(lambda: len((p := deployment.cli_json("progress"))["stuck"]) == 2 and p, 30,
                          "both stalled downloads stuck", interval=0.5)
    assert {i["name"]: i["poller"] for i in progress["instances"]} == {"sonarr": "site-a", "radarr": "site-b"}

    done = deployment.cli("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert {r["title"]: r["result"] for r in json.loads(done.stdout)["results"]} == {
        "Stalled.sonarr": "removed", "Stalled.radarr": "removed"}
    for kind in ("sonarr", "radarr"):
        assert [r["method"] for r in deployment.control(kind, "GET", "requests")].count("DELETE") == 1
    audit = [json.loads(line) for line in (deployment.workdir / "data" / "removals.jsonl").read_text().splitlines()]
    assert sorted(line["instance"] for line in audit if line["result"] == "removed") == ["radarr", "sonarr"]

    # Site B disappears: its instance goes stale, site A's stays healthy.
    deployment.stop("poller-b", signal.SIGKILL)
    health = wait_until(lambda: {i["name"]: i for i in deployment.cli_json("progress")["instances"]
                                 if i["state"] == "stale"} or None, 20, "radarr to go stale", interval=0.5)
    assert list(health) == ["radarr"]
    assert "poller 'site-b' is not reporting" in health["radarr"]["error"]
    sonarr = next(i for i in deployment.cli_json("progress")["instances"] if i["name"] == "sonarr")
    assert sonarr["healthy"] is True


def test_an_instance_name_claimed_by_two_pollers_is_refused(deployment):
    deployment.simulate("sonarr")
    deployment.start("simarr", "--scenario", "empty")
    deployment.start("tracker")
    deployment.start("poller", alias="poller-a", env={"POLLER_NAME": "site-a"})
    wait_until(lambda: deployment.cli_json("progress")["instances"], 20, "site-a's snapshot")
    deployment.start("poller", alias="poller-b", env={"POLLER_NAME": "site-b",
                                                      "POLLER_COMMAND_ENDPOINT": f"tcp://127.0.0.1:{free_port()}"})
    wait_until(lambda: "instance names must be unique across pollers" in deployment.log_path("tracker").read_text(),
               20, "the tracker to refuse site-b's sonarr")
    [sonarr] = deployment.cli_json("progress")["instances"]
    assert sonarr["poller"] == "site-a"


def test_a_cleanup_across_two_pollers_with_one_stopped_reports_each_its_own(deployment):
    deployment.simulate("sonarr", "radarr")
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.03", "MIN_SIZE_CHANGE": str(MB)})
    del deployment.env["POLLER_COMMAND_ENDPOINT"]
    deployment.start("simarr", "--scenario", "empty")
    for kind in ("sonarr", "radarr"):
        deployment.control(kind, "POST", "downloads", {"title": f"Stalled.{kind}", "size": GB,
                                                       "downloaded": 100 * MB, "state": "stalled"})
    endpoint_b = f"tcp://127.0.0.1:{free_port()}"
    site_b = site("radarr", "sonarr", "site-b", endpoint_b)
    deployment.start("tracker")
    deployment.start("poller", alias="poller-a",
                     env=site("sonarr", "radarr", "site-a", f"tcp://127.0.0.1:{free_port()}"))
    deployment.start("poller", alias="poller-b", env=site_b)
    wait_until(lambda: len(deployment.cli_json("progress")["stuck"]) == 2, 30, "both stalled downloads stuck",
               interval=0.5)
    deployment.stop("poller-b", signal.SIGKILL)

    done = deployment.cli("cleanup", "--yes", "--json", timeout=60)
    assert done.returncode == 1  # a service did not answer
    results = {r["title"]: r for r in json.loads(done.stdout)["results"]}
    assert results["Stalled.sonarr"]["result"] == "removed"  # site A's removal stands
    assert results["Stalled.radarr"]["result"] == "failed"
    assert results["Stalled.radarr"]["detail"] == "poller site-b did not answer; nothing of it was removed"
    assert "poller did not answer" in done.stderr

    # Site B comes back: the request it missed was never queued for it, so nothing is removed late.
    deployment.start("poller", alias="poller-b", env=site_b)
    wait_until(lambda: any(r["method"] == "GET" for r in deployment.control("radarr", "GET", "requests")[-3:]),
               20, "site B to poll again")
    time.sleep(1)
    assert [r["method"] for r in deployment.control("radarr", "GET", "requests")].count("DELETE") == 0
    assert [d["title"] for d in deployment.control("radarr", "GET", "downloads")] == ["Stalled.radarr"]
