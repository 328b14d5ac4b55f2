"""The usenet fixtures are real: NZBGet 21 downloads, repairs and fails on tests/usenet.py's NNTP server.

Each test posts a few MB of random bytes, adds the NZB as Sonarr does and watches NZBGet's
JSON-RPC (`listgroups`, `history`, `status`); the field values they rely on are listed in
tests/usenet.py's docstring.
"""
import socket
import time
import zlib
from pathlib import Path
from typing import Any, Callable

from tests.conftest import wait_until
from tests.torrent_clients import random_file
from tests.usenet import GROUP, NZBGet, news_server, nzbget, post, size_of  # noqa: F401

DRONE = "0123456789abcdef0123456789abcdef"
POST_PROCESSING = {"PP_QUEUED", "LOADING_PARS", "VERIFYING_SOURCES", "REPAIRING", "VERIFYING_REPAIRED",
                   "RENAMING", "UNPACKING", "MOVING", "EXECUTING_SCRIPT", "PP_FINISHED"}


def a_release(tmp_path: Path, name: str, size: int) -> Path:
    return random_file(tmp_path / "upload" / name, size)


def watch(client: NZBGet, nzb_id: int, timeout: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every listgroups look at the job until it is in the history, and its history entry."""
    looks: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.queued(nzb_id)
        if job is not None:
            looks.append(job)
        elif (done := client.finished(nzb_id)) is not None:
            return looks, done
        time.sleep(0.05)
    raise AssertionError(f"job {nzb_id} not in nzbget's history after {timeout}s")


def look_until(client: NZBGet, nzb_id: int, predicate: Callable[[dict[str, Any]], bool], timeout: float,
               what: str) -> dict[str, Any]:
    """The job's first listgroups entry that satisfies `predicate`."""
    return wait_until(lambda: (job := client.queued(nzb_id)) is not None and predicate(job) and job, timeout, what)


def drone_of(item: dict[str, Any]) -> str | None:
    return next((p["Value"] for p in item["Parameters"] if p["Name"] == "drone"), None)


def test_the_nntp_server_answers_a_newsreader(news_server, tmp_path):  # noqa: F811
    dots = tmp_path / "upload" / "dots.bin"
    dots.parent.mkdir()
    dots.write_bytes(b"\x04" * 1000)  # yEnc makes 0x04 a '.': every line starts with one
    posting = post(news_server, [dots])
    message_id = f"<{posting.message_ids['dots.bin'][0]}>"
    with socket.create_connection(("127.0.0.1", news_server.port), timeout=5) as sock:
        reader = sock.makefile("rb")

        def ask(command: str) -> str:
            sock.sendall(command.encode() + b"\r\n")
            return reader.readline().decode().rstrip("\r\n")

        def block() -> list[str]:
            return list(iter(lambda: reader.readline().decode().rstrip("\r\n"), "."))

        assert reader.readline().startswith(b"201 ")
        assert ask("CAPABILITIES").startswith("101 ") and "READER" in block()
        assert ask("MODE READER").startswith("201 ")
        assert ask(f"BODY {message_id}").startswith("480 ")
        assert ask(f"AUTHINFO USER {news_server.user}").startswith("381 ")
        assert ask("AUTHINFO PASS wrong").startswith("481 ")
        assert ask(f"AUTHINFO USER {news_server.user}").startswith("381 ")
        assert ask(f"AUTHINFO PASS {news_server.password}").startswith("281 ")
        assert ask(f"GROUP {GROUP}") == f"211 1 1 1 {GROUP}"
        assert ask("GROUP alt.binaries.none").startswith("411 ")
        assert ask(f"STAT {message_id}") == f"223 0 {message_id}"
        assert ask(f"BODY {message_id}") == f"222 0 {message_id}"
        body = block()
        assert body[0] == "=ybegin part=1 total=1 line=128 size=1000 name=dots.bin"
        assert body[1] == "=ypart begin=1 end=1000"
        assert all(line.startswith("..") for line in body[2:-1])  # dot-stuffed
        crc = f"{zlib.crc32(dots.read_bytes()):08x}"
        assert body[-1] == f"=yend size=1000 part=1 pcrc32={crc} crc32={crc}"
        assert ask(f"ARTICLE {message_id}") == f"220 0 {message_id}"
        assert f"Message-ID: {message_id}" in block()
        news_server.withheld.add(message_id.strip("<>"))
        assert ask(f"BODY {message_id}").startswith("430 ")
        assert ask("BODY <unknown@discarr.invalid>").startswith("430 ")
        assert ask("DATE")[:4] == "111 " and len(ask("DATE")) == 18
        assert ask("XOVER 1-10").startswith("500 ")
        assert ask("quit").startswith("205 ")


def test_nzbget_downloads_a_posted_release(news_server, nzbget, tmp_path):  # noqa: F811
    release = a_release(tmp_path, "Show.S01E01.720p.WEB.bin", 3_000_000)
    posting = post(news_server, [release], redundancy=10)
    client = nzbget()
    nzb_id = client.append(posting.nzb, "Show.S01E01.720p.WEB", "tv-sonarr", {"drone": DRONE})

    looks, done = watch(client, nzb_id, 20)

    assert POST_PROCESSING & {look["Status"] for look in looks}
    # ParCheck=auto holds the par2 volumes back: in post-processing only they are left, paused
    finishing = [look for look in looks if look["Status"] in POST_PROCESSING]
    assert all(size_of(look, "RemainingSize") == size_of(look, "PausedSize") > 0 for look in finishing)
    assert (done["Status"], done["ParStatus"], done["DeleteStatus"], done["MarkStatus"]) == \
        ("SUCCESS/PAR", "SUCCESS", "NONE", "NONE")
    assert (done["Health"], done["Category"], drone_of(done)) == (1000, "tv-sonarr", DRONE)
    assert (Path(done["DestDir"]) / release.name).read_bytes() == release.read_bytes()


def test_a_throttled_download_is_seen_moving_and_stops_when_nzbget_pauses(news_server, nzbget,  # noqa: F811
                                                                         tmp_path):
    news_server.throttle_bytes_per_second = 300_000
    # Small articles: NZBGet counts progress per finished article, so they finish often
    posting = post(news_server, [a_release(tmp_path, "Movie.2024.1080p.bin", 3_000_000)], part_size=16384)
    client = nzbget()
    nzb_id = client.append(posting.nzb, "Movie.2024.1080p", "radarr", {"drone": DRONE})

    first = look_until(client, nzb_id, lambda job: job["ActiveDownloads"] > 0, 10, "the job to download")
    time.sleep(1)
    second = client.queued(nzb_id)

    assert second["Status"] == "DOWNLOADING"
    assert size_of(second, "RemainingSize") < size_of(first, "RemainingSize")
    assert (drone_of(second), second["Category"]) == (DRONE, "radarr")

    client.pause_all()
    paused = look_until(client, nzb_id, lambda job: job["ActiveDownloads"] == 0, 10,
                        "the articles in flight to finish")
    time.sleep(1)
    assert client.rpc("status")["DownloadPaused"] is True
    # Paused as a whole, NZBGet shows its jobs QUEUED, not PAUSED, and nothing left is paused
    assert (client.queued(nzb_id)["Status"], size_of(paused, "PausedSize")) == ("QUEUED", 0)
    assert size_of(client.queued(nzb_id), "RemainingSize") == size_of(paused, "RemainingSize")

    client.resume_all()
    look_until(client, nzb_id, lambda job: size_of(job, "RemainingSize") < size_of(paused, "RemainingSize"), 10,
               "the job to move again")


def test_missing_articles_are_repaired_from_par2(news_server, nzbget, tmp_path):  # noqa: F811
    release = a_release(tmp_path, "Show.S01E02.1080p.bin", 4_000_000)
    posting = post(news_server, [release], redundancy=20)
    missing = posting.spread(release.name, 0.10)
    news_server.withheld |= missing
    client = nzbget()
    nzb_id = client.append(posting.nzb, "Show.S01E02.1080p", "tv-sonarr", {"drone": DRONE})

    looks, done = watch(client, nzb_id, 25)

    assert {"VERIFYING_SOURCES", "REPAIRING", "VERIFYING_REPAIRED"} & {look["Status"] for look in looks}
    assert (done["Status"], done["ParStatus"], done["DeleteStatus"], done["MarkStatus"]) == \
        ("SUCCESS/PAR", "SUCCESS", "NONE", "NONE")
    assert done["FailedArticles"] == len(missing)
    assert done["CriticalHealth"] <= done["Health"] < 1000
    assert (Path(done["DestDir"]) / release.name).read_bytes() == release.read_bytes()


def test_below_critical_health_nzbget_deletes_the_job_as_failed(news_server, nzbget, tmp_path):  # noqa: F811
    release = a_release(tmp_path, "Show.S01E03.1080p.bin", 4_000_000)
    posting = post(news_server, [release], redundancy=5)
    news_server.withheld |= posting.spread(release.name, 0.40)
    client = nzbget(health_check="delete")
    nzb_id = client.append(posting.nzb, "Show.S01E03.1080p", "tv-sonarr", {"drone": DRONE})

    _, done = watch(client, nzb_id, 20)

    assert (done["Status"], done["ParStatus"], done["DeleteStatus"], done["MarkStatus"]) == \
        ("FAILURE/HEALTH", "NONE", "HEALTH", "NONE")
    assert done["Health"] < done["CriticalHealth"]
    assert drone_of(done) == DRONE


def test_below_critical_health_is_seen_while_it_downloads_with_health_check_none(news_server, nzbget,  # noqa: F811
                                                                                tmp_path):
    news_server.throttle_bytes_per_second = 1_000_000
    release = a_release(tmp_path, "Show.S01E04.1080p.bin", 4_000_000)
    posting = post(news_server, [release], redundancy=5)
    news_server.withheld |= posting.spread(release.name, 0.40)
    client = nzbget(health_check="none")
    nzb_id = client.append(posting.nzb, "Show.S01E04.1080p", "tv-sonarr", {"drone": DRONE})

    looks, done = watch(client, nzb_id, 25)

    assert any(look["Status"] == "DOWNLOADING" and look["Health"] < look["CriticalHealth"] for look in looks)
    assert (done["Status"], done["ParStatus"], done["DeleteStatus"], done["MarkStatus"]) == \
        ("FAILURE/PAR", "FAILURE", "NONE", "NONE")
    assert done["Health"] < done["CriticalHealth"]


def test_below_critical_health_nzbget_pauses_the_job_with_health_check_pause(news_server, nzbget,  # noqa: F811
                                                                            tmp_path):
    release = a_release(tmp_path, "Show.S01E05.1080p.bin", 4_000_000)
    posting = post(news_server, [release], redundancy=5)
    news_server.withheld |= posting.spread(release.name, 0.40)
    client = nzbget(health_check="pause")
    nzb_id = client.append(posting.nzb, "Show.S01E05.1080p", "tv-sonarr", {"drone": DRONE})

    job = look_until(client, nzb_id, lambda job: job["Status"] == "PAUSED", 15, "nzbget to pause the job")

    assert job["Health"] < job["CriticalHealth"]
    assert size_of(job, "RemainingSize") == size_of(job, "PausedSize") > 0
    assert client.rpc("status")["DownloadPaused"] is False


def test_a_hung_server_stops_the_job_while_nzbget_stays_up(news_server, nzbget, tmp_path):  # noqa: F811
    news_server.throttle_bytes_per_second = 300_000
    release = a_release(tmp_path, "Show.S01E06.720p.bin", 3_000_000)
    posting = post(news_server, [release])
    client = nzbget()
    nzb_id = client.append(posting.nzb, "Show.S01E06.720p", "tv-sonarr", {"drone": DRONE})
    look_until(client, nzb_id, lambda job: size_of(job, "DownloadedSize") > 0, 10, "the job to move")

    news_server.hang = True
    time.sleep(0.5)  # an article whose last bytes were already on their way may still complete
    before = client.queued(nzb_id)
    time.sleep(3)
    after = client.queued(nzb_id)

    assert size_of(after, "RemainingSize") == size_of(before, "RemainingSize") > 0
    assert (after["Status"], after["ActiveDownloads"] > 0) == ("DOWNLOADING", True)
    assert client.rpc("version") and client.process.poll() is None

    news_server.hang, news_server.throttle_bytes_per_second = False, 0
    _, done = watch(client, nzb_id, 20)
    assert (done["Status"], done["ParStatus"]) == ("SUCCESS/HEALTH", "NONE")
    assert (Path(done["DestDir"]) / release.name).read_bytes() == release.read_bytes()
