"""Queue responses captured by users from their own live servers (tests/fixtures/arr-samples/real,
sources in its SOURCES.md), served frozen by simarr and read by the real poller and tracker.

Frozen means nothing moves: after the threshold, every download the *arr calls downloading with
bytes left is stuck, and nothing else is (SPEC section 3).
"""
import json
from pathlib import Path

import pytest

from tests.conftest import wait_until

SAMPLES = Path(__file__).parent / "fixtures" / "arr-samples" / "real"

# Each sample's downloads and the verdict due once the threshold has passed: "stuck", the kind of
# attention ("import_blocked", "not_imported"), or None (never stuck, never removed).
EXPECTED = {
    "lidarr-varken-1": {"59D7C9909EEC7682C88F0F4669A0C2AAB6D1D44D": "stuck"},  # warning: stalled, no connections
    "radarr-exportarr-1": {"SABnzbd_nzo_asdf1234": "not_imported"},  # completed, nothing left, never imported
    # Two records of one download, one of them import pending: it is not all downloading, so it is kept.
    "radarr-ruddarr-1": {"7FCF20EEAACD0F7810C11FD62E90076E9A25B76F:dbid_1510": None},
    "sonarr-cleanuparr-1": {"62ad6b32-0eff-449c-9cab-85565aa59ed6": "import_blocked"},
    "sonarr-pearlarr-1": {"B7640FF13A2ADCA981B821D03CEBD1B569798459": None,  # paused
                          "1111111111111111111111111111111111111111": "import_blocked",
                          "2222222222222222222222222222222222222222": "import_blocked"},
    "sonarr-pythonsonarr-1": {"SABnzbd_nzo_8kc3adsl": "stuck"},  # downloading, bytes left, nothing moves
    "sonarr-qflix-2": {"45502C242D89346414CD96F06B97E96DA38B09EA": "stuck"},  # a magnet whose metadata never came
    "sonarr-ruddarr-1": {"B7614F8F3E52276FEBEF99E45792CDB885B44B50": None,  # completed, import pending
                         "687DF4991F687EDE2C46DE612B5BA1A4B1DDCF81": "stuck",  # a season pack of 6 records
                         "A4A5D5FF43FDD995A1AF0D9EA7CA8F7873FE64E6": "stuck"},
}


def records_of(name: str) -> list[dict]:
    data = json.loads((SAMPLES / f"{name}.json").read_text())
    return data if isinstance(data, list) else data["records"]


def verdict(item: dict) -> str | None:
    return item["attention"] if item["category"] == "attention" else item["category"]


def test_every_real_sample_is_in_the_table():
    assert sorted(path.stem for path in SAMPLES.glob("*.json")) == sorted(EXPECTED)
    for name, downloads in EXPECTED.items():
        assert {record["downloadId"] for record in records_of(name)} == set(downloads), name


@pytest.fixture
def replayed(deployment):
    """Every sample served frozen as an instance of its own kind; poller and tracker read them."""
    deployment.env.update({"STUCK_THRESHOLD_MINUTES": "0.05", "EXTRA_INSTANCES": ",".join(EXPECTED)})
    frozen = []
    for name in EXPECTED:
        prefix = name.upper().replace("-", "_")
        deployment.env.update({f"{prefix}_URL": f"http://127.0.0.1:{deployment.simarr_port}/{name}",
                               f"{prefix}_API_KEY": f"key-{name}", f"{prefix}_KIND": name.split("-")[0]})
        frozen += ["--frozen", f"{name}={SAMPLES / name}.json"]
    deployment.start("simarr", "--scenario", "empty", *frozen)
    deployment.start("tracker")
    deployment.start("poller")
    return deployment


def test_every_real_sample_is_read_and_judged_by_the_spec(replayed):
    due = sum(1 for downloads in EXPECTED.values() for v in downloads.values() if v == "stuck")
    wait_until(lambda: len(replayed.cli_json("progress")["stuck"]) == due, 30,
               "the frozen downloads to be stuck", interval=0.5)
    check = replayed.cli_json("check")
    health = {i["name"]: i for i in check["instances"]}
    for name, downloads in EXPECTED.items():
        assert health[name]["healthy"], health[name]["error"]  # read without error
        assert health[name]["records"] == len(records_of(name))
        items = [item for item in check["downloads"] if item["instance"] == name]
        assert sorted(item["download_id"] for item in items) == sorted(downloads)  # one per downloadId
        assert {item["download_id"]: verdict(item) for item in items} == downloads, name
    # A cleanup offers exactly the stuck ones: nothing finished, paused or waiting for import.
    cleanup = replayed.cli_json("cleanup", "--dry-run")
    assert sorted(item["download_id"] for item in cleanup["candidates"]) == sorted(
        key for downloads in EXPECTED.values() for key, v in downloads.items() if v == "stuck")
