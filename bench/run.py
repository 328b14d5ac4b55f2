"""`make bench`: the whole pipeline measured, each figure beside its floor from the same run.

Figures (median of RUNS runs unless said otherwise):
- poll cycle of 10,000 records (4 instances), and simarr's own serving time for the same pages (floor);
- the poller's own work per record (parse, normalise, encode), beside bare msgpack encode+decode (floor);
- change-to-visible: a download added to simarr until the tracker answers for it, beside the poll interval;
- tracker resident memory per tracked download at 100,000 downloads;
- query round trips with 50 concurrent clients (median, p99), beside a bare pyzmq REQ/REP echo (floor);
- a poll's download-client figures for a queue of 100 torrents from a real qbittorrent-nox holding 1,000,
  beside a bare torrents/info request for all (floor); skipped when qbittorrent-nox is not installed.
Writes bench/results.json and prints a table.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import requests
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import protocol  # noqa: E402
from common.settings import DownloadClientConfig, InstanceConfig  # noqa: E402
from common.sockets import RequestClient, make_socket  # noqa: E402
from services.poller.arr_client import PAGE_SIZE, ArrClient  # noqa: E402
from services.poller.download_clients import DownloadClients  # noqa: E402
from services.poller.normalize import normalize_record  # noqa: E402
from tests.conftest import free_port, wait_until  # noqa: E402
from tests.records import record  # noqa: E402
from tests.torrent_clients import QBittorrent, bencode  # noqa: E402

RUNS = 5
KINDS = ("sonarr", "radarr", "lidarr", "readarr")
RECORDS = 10_000
POLL_INTERVAL = 1.0
CLIENTS = 50
REQUESTS_PER_CLIENT = 40
MEMORY_DOWNLOADS = 100_000
CLIENT_TORRENTS = 1_000


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: list[subprocess.Popen] = []
        self.port = free_port()
        self.env = dict(os.environ, PYTHONUNBUFFERED="1", SIMARR_PORT=str(self.port), LOG_LEVEL="WARNING",
                        POLL_INTERVAL_SECONDS=str(POLL_INTERVAL),
                        TRACKER_INGEST_ENDPOINT=f"tcp://127.0.0.1:{free_port()}",
                        TRACKER_QUERY_ENDPOINT=f"tcp://127.0.0.1:{free_port()}",
                        POLLER_COMMAND_ENDPOINT=f"tcp://127.0.0.1:{free_port()}",
                        TRACKER_STATE_FILE=str(workdir / "state.msgpack"), TRACKER_CHECKPOINT_SECONDS="3600")
        for kind in KINDS:
            self.env[f"{kind.upper()}_URL"] = f"http://127.0.0.1:{self.port}/{kind}"
            self.env[f"{kind.upper()}_API_KEY"] = f"bench-{kind}"

    def start(self, *args: str) -> subprocess.Popen:
        log = open(self.workdir / f"{args[0]}.log", "ab")
        process = subprocess.Popen([sys.executable, "-m", "services", *args], env=self.env, cwd=self.workdir,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.running.append(process)
        return process

    def stop(self) -> None:
        for process in self.running:
            process.send_signal(signal.SIGTERM)
        for process in self.running:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def control(port: int, kind: str, method: str, path: str, body: object = None) -> object:
    response = requests.request(method, f"http://127.0.0.1:{port}/{kind}/__simarr__/{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- poll cycle ------------------------------------------------------------------
def poll_cycle(port: int) -> tuple[float, float, float, float]:
    """(poller cycle, simarr floor, poller work per record, msgpack floor per record), seconds."""
    clients = [ArrClient(InstanceConfig(k, k, f"http://127.0.0.1:{port}/{k}", f"bench-{k}"), 30) for k in KINDS]
    # Floor: simarr serving the same pages to a bare client that does nothing with them.
    session = requests.Session()
    started = time.perf_counter()
    raw_pages = []
    for kind in KINDS:
        page, pages = 1, 1
        while page <= pages:
            response = session.get(f"http://127.0.0.1:{port}/{kind}/api/{clients[KINDS.index(kind)].instance.api_version}"
                                   "/queue", params={"page": page, "pageSize": PAGE_SIZE},
                                   headers={"X-Api-Key": f"bench-{kind}"}, timeout=30)
            raw_pages.append(response.content)
            pages = -(-response.json()["totalRecords"] // PAGE_SIZE)
            page += 1
    floor = time.perf_counter() - started
    started = time.perf_counter()
    snapshots = []
    for client in clients:
        records, _ = client.fetch_queue()
        snapshots.append(protocol.encode("snapshot", {
            "instance": client.instance.name, "kind": client.instance.kind, "taken_at": time.time(),
            "poller": {"name": "bench", "endpoint": "tcp://127.0.0.1:1", "next_within": 1.0},
            "health": {"state": "ok", "error": None}, "clients": [], "records": records}))
    cycle = time.perf_counter() - started
    # The poller's own work per record, without HTTP: parse, normalise, encode.
    raw_records = [record for content in raw_pages for record in json.loads(content)["records"]]
    started = time.perf_counter()
    normalised = [normalize_record(record) for record in json.loads(json.dumps(raw_records))]
    protocol.encode("snapshot", {"instance": "x", "kind": "sonarr", "taken_at": 0.0, "records": normalised,
                                 "poller": {"name": "b", "endpoint": "tcp://127.0.0.1:1", "next_within": 1.0},
                                 "health": {"state": "ok", "error": None}, "clients": []})
    work = (time.perf_counter() - started) / len(raw_records)
    started = time.perf_counter()
    msgpack.unpackb(msgpack.packb(normalised))
    bare = (time.perf_counter() - started) / len(raw_records)
    for client in clients:
        client.close()
    return cycle, floor, work, bare


# --- round trips -------------------------------------------------------------------
def round_trips(endpoint: str, message_type: str, body: dict) -> list[float]:
    """Latencies (s) of CLIENTS concurrent clients, each sending REQUESTS_PER_CLIENT requests."""
    context = zmq.Context()
    samples: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client() -> None:
        with RequestClient("bench", endpoint, 10, context=context) as requester:
            barrier.wait()
            mine = []
            for _ in range(REQUESTS_PER_CLIENT):
                started = time.perf_counter()
                requester.request(message_type, body)
                mine.append(time.perf_counter() - started)
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    context.term()
    return samples


def echo_server(endpoint: str, stop: threading.Event) -> None:
    """The floor: a bare REP socket that answers every request with the same protocol reply."""
    context = zmq.Context()
    sock = make_socket(context, zmq.REP)
    sock.bind(endpoint)
    reply = protocol.ok({"service": "echo"})
    while not stop.is_set():
        if sock.poll(100):
            sock.recv()
            sock.send(reply)
    sock.close()
    context.term()


# --- change to visible ---------------------------------------------------------------
def change_to_visible(port: int, endpoint: str) -> float:
    time.sleep(random.uniform(0, POLL_INTERVAL))  # a change lands anywhere in the poll cycle, not just after one
    added = control(port, "sonarr", "POST", "downloads", {"title": f"Bench.Change.{time.time()}", "size": 10 ** 9,
                                                           "state": "downloading", "rate": 10 ** 6})
    started = time.perf_counter()
    with RequestClient("tracker", endpoint, 5) as client:
        while True:
            try:
                client.request("history", {"instance": "sonarr", "download_id": added["download_id"]})
                return time.perf_counter() - started
            except Exception:
                time.sleep(0.005)


# --- tracker memory -------------------------------------------------------------------
def _client_figures(i: int, step: int) -> dict:
    """What qBittorrent says of one torrent: every figure its own, as in a real queue."""
    return {"name": "qbittorrent", "kind": "qbittorrent", "state": "downloading", "client_state": "downloading",
            "downloaded": step * 10 ** 9 + i, "size": 4 * 10 ** 9, "download_speed": 1000 + i,
            "last_activity": 1.7e9 + i, "seeds": 3, "peers": 5, "private": False}


def tracker_memory(workdir: Path, with_client: bool = False) -> tuple[float, float]:
    """Resident bytes per tracked download at MEMORY_DOWNLOADS downloads, in a tracker process,
    and the round trip of a "progress" query at that size (analysis must not hold up ingest).
    `with_client`: every download also carries its download client's figures."""
    processes = Processes(workdir)
    tracker = processes.start("tracker")
    context = zmq.Context()
    push = make_socket(context, zmq.PUSH)
    push.connect(processes.env["TRACKER_INGEST_ENDPOINT"])
    try:
        with RequestClient("tracker", processes.env["TRACKER_QUERY_ENDPOINT"], 60, context=context) as client:
            wait_until(lambda: client.request("ping"), 30, "the tracker")
            baseline = rss_bytes(tracker.pid)
            per_instance = MEMORY_DOWNLOADS // len(KINDS)
            for step in range(3):  # three polls, each download moving: history points and all
                for n, kind in enumerate(KINDS):
                    records = [{"id": n * per_instance + i, "download_id": f"{kind}-{i:08d}",
                                "title": f"Some.Release.Name.S01E{i % 100:02d}.1080p.WEB.H264-GROUP{i}",
                                "status": "downloading", "tracked_status": "ok", "tracked_state": "downloading",
                                "error_message": None, "size": 4 * 10 ** 9, "sizeleft": 4 * 10 ** 9 - step * 10 ** 9,
                                "eta": "2026-11-24T20:00:00Z", "added": "2026-11-24T18:00:00Z",
                                "protocol": "torrent", "download_client": "qBittorrent",
                                "client": _client_figures(i, step) if with_client else None,
                                "removed_before": 0}
                               for i in range(per_instance)]
                    push.send(protocol.encode("snapshot", {
                        "instance": kind, "kind": kind, "taken_at": time.time(), "records": records,
                        "poller": {"name": "bench", "endpoint": "tcp://127.0.0.1:1", "next_within": 600},
                        "health": {"state": "ok", "error": None}, "clients": []}))
            last = {"instance": KINDS[-1], "download_id": f"{KINDS[-1]}-{per_instance - 1:08d}"}
            wait_until(lambda: _points(client, last) == 3, 300, "all three snapshots ingested", interval=0.5)
            per_download = (rss_bytes(tracker.pid) - baseline) / MEMORY_DOWNLOADS
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                client.request("progress", timeout=60)
                timings.append(time.perf_counter() - started)
            return per_download, statistics.median(timings)
    finally:
        push.close()
        context.term()
        processes.stop()


# --- download-client figures ----------------------------------------------------------------
def client_enrichment(workdir: Path) -> dict[str, float] | None:
    """Seconds for one poll's qBittorrent figures of a queue of 100 torrents in a client of CLIENT_TORRENTS
    (private flags known), beside the bare torrents/info request for every torrent and its JSON parse."""
    if shutil.which("qbittorrent-nox") is None:
        return None
    qb = QBittorrent(workdir, "qbittorrent").start()
    try:
        hashes = []
        for number in range(CLIENT_TORRENTS):  # torrents nobody seeds: metadata only, no data on disk
            info = {"name": f"Bench.Release.{number:05d}.mkv", "length": 16384, "piece length": 16384,
                    "pieces": os.urandom(20), **({"private": 1} if number % 2 else {})}
            qb.add_torrent(bencode({"info": info}), workdir / "empty", paused="true")
            hashes.append(hashlib.sha1(bencode(info)).hexdigest())
        wait_until(lambda: len(qb.api("GET", "torrents/info").json()) == CLIENT_TORRENTS, 120, "the torrents")
        # The queue holds a tenth of the client's torrents: the rest are seeding, as in a real library.
        records = [record(i, info_hash.upper()) for i, info_hash in enumerate(hashes[:CLIENT_TORRENTS // 10])]
        clients = DownloadClients([DownloadClientConfig("qbittorrent", "qbittorrent", qb.url, "admin", qb.password)],
                                  30)
        clients.annotate(records, private_lookups=None)  # the first poll learns every private flag
        polls, floors = [], []
        for _ in range(RUNS):
            started = time.perf_counter()
            clients.annotate(records)
            polls.append(time.perf_counter() - started)
            started = time.perf_counter()
            qb.api("GET", "torrents/info").json()
            floors.append(time.perf_counter() - started)
        assert all(record["client"]["private"] is not None for record in records)
        poll, floor = statistics.median(polls), statistics.median(floors)
        return {"seconds": poll, "torrents_info_floor_seconds": floor, "ratio": poll / floor,
                "torrents": CLIENT_TORRENTS}
    finally:
        qb.stop()


def _points(client: RequestClient, download: dict) -> int:
    try:
        return len(client.request("history", download)["points"])
    except Exception:  # not ingested yet
        return 0


def main() -> None:
    results: dict[str, object] = {"runs": RUNS}
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        processes = Processes(workdir)
        processes.start("simarr", "--scenario", "empty")
        wait_until(lambda: _up(processes.port), 30, "simarr")
        for kind in KINDS:
            control(processes.port, kind, "POST", "bulk", {"count": RECORDS // len(KINDS), "state": "downloading",
                                                           "rate": 10 ** 6, "size": 10 ** 10})
        cycles = [poll_cycle(processes.port) for _ in range(RUNS)]
        cycle = statistics.median(c[0] for c in cycles)
        floor = statistics.median(c[1] for c in cycles)
        work = statistics.median(c[2] for c in cycles)
        bare = statistics.median(c[3] for c in cycles)
        results["poll_cycle_10k"] = {"seconds": cycle, "simarr_floor_seconds": floor,
                                     "excluding_simulator_seconds": cycle - floor, "ratio": cycle / floor}
        results["poller_work_per_record"] = {"microseconds": work * 1e6, "msgpack_floor_microseconds": bare * 1e6,
                                             "ratio": work / bare}

        processes.start("tracker")
        processes.start("poller")
        endpoint = processes.env["TRACKER_QUERY_ENDPOINT"]
        with RequestClient("tracker", endpoint, 30) as client:
            wait_until(lambda: client.request("progress", timeout=30)["tracked"] >= RECORDS, 120, "10k tracked",
                       interval=0.5)
        visible = [change_to_visible(processes.port, endpoint) for _ in range(4 * RUNS)]
        results["change_to_visible"] = {"median_seconds": statistics.median(visible), "max_seconds": max(visible),
                                        "samples": len(visible),
                                        "poll_interval_seconds": POLL_INTERVAL,
                                        "target_seconds": POLL_INTERVAL + 0.1}

        some_id = control(processes.port, "sonarr", "GET", "downloads")[0]["download_id"]
        query = [round_trips(endpoint, "history", {"instance": "sonarr", "download_id": some_id})
                 for _ in range(RUNS)]
        processes.stop()
        echo_endpoint = f"tcp://127.0.0.1:{free_port()}"
        stop = threading.Event()
        server = threading.Thread(target=echo_server, args=(echo_endpoint, stop))
        server.start()
        echo = [round_trips(echo_endpoint, "ping", {}) for _ in range(RUNS)]
        stop.set()
        server.join()
        median = statistics.median(statistics.median(run) for run in query)
        p99 = statistics.median(percentile(run, 0.99) for run in query)
        echo_median = statistics.median(statistics.median(run) for run in echo)
        echo_p99 = statistics.median(percentile(run, 0.99) for run in echo)
        results["query_round_trip_50_clients"] = {
            "median_ms": median * 1e3, "p99_ms": p99 * 1e3, "echo_median_ms": echo_median * 1e3,
            "echo_p99_ms": echo_p99 * 1e3, "median_ratio": median / echo_median, "p99_ratio": p99 / echo_p99}
        # Each in a fresh directory: the tracker above left a checkpoint whose instances belong to another poller.
        memory = [tracker_memory(Path(tempfile.mkdtemp(dir=scratch))) for _ in range(RUNS)]
        results["tracker_memory_per_download"] = {"bytes": statistics.median(m[0] for m in memory),
                                                  "downloads": MEMORY_DOWNLOADS, "target_bytes": 2048}
        results["progress_query_at_100k"] = {"median_ms": statistics.median(m[1] for m in memory) * 1e3}
        results["download_client_figures_1k"] = client_enrichment(Path(tempfile.mkdtemp(dir=scratch)))
        with_client = [tracker_memory(Path(tempfile.mkdtemp(dir=scratch)), with_client=True) for _ in range(RUNS)]
        results["tracker_memory_per_download_with_client_figures"] = {
            "bytes": statistics.median(m[0] for m in with_client), "downloads": MEMORY_DOWNLOADS,
            "target_bytes": 2048}
    out = ROOT / "bench" / "results.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)


def _up(port: int) -> bool:
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=1)
        return True
    except requests.ConnectionError:
        return False


def _print_table(results: dict) -> None:
    cycle, work = results["poll_cycle_10k"], results["poller_work_per_record"]
    visible, query = results["change_to_visible"], results["query_round_trip_50_clients"]
    memory = results["tracker_memory_per_download"]
    rows = [
        ("poll cycle, 10,000 records", f"{cycle['seconds']:.3f} s", f"simarr {cycle['simarr_floor_seconds']:.3f} s",
         f"{cycle['ratio']:.2f}x; own {cycle['excluding_simulator_seconds']:.3f} s (target < 0.5 s)"),
        ("poller work per record", f"{work['microseconds']:.1f} us", f"msgpack {work['msgpack_floor_microseconds']:.1f} us",
         f"{work['ratio']:.1f}x"),
        ("change to visible", f"{visible['median_seconds'] * 1e3:.0f} ms",
         f"poll {visible['poll_interval_seconds']:.1f} s", f"max {visible['max_seconds'] * 1e3:.0f} ms "
                                                            f"(target < {visible['target_seconds'] * 1e3:.0f} ms)"),
        ("query median, 50 clients", f"{query['median_ms']:.2f} ms", f"echo {query['echo_median_ms']:.2f} ms",
         f"{query['median_ratio']:.2f}x (target < 5 ms)"),
        ("query p99, 50 clients", f"{query['p99_ms']:.2f} ms", f"echo {query['echo_p99_ms']:.2f} ms",
         f"{query['p99_ratio']:.2f}x (target < 50 ms)"),
        ("tracker memory per download", f"{memory['bytes']:.0f} B", f"at {memory['downloads']:,}",
         "(target < 2048 B)"),
        ("  with client figures", f"{results['tracker_memory_per_download_with_client_figures']['bytes']:.0f} B",
         f"at {memory['downloads']:,}", "(target < 2048 B)"),
        ("progress query at 100,000", f"{results['progress_query_at_100k']['median_ms']:.1f} ms", "", ""),
    ]
    figures = results["download_client_figures_1k"]
    if figures is not None:
        rows.append(("qBittorrent figures, 100 of 1,000", f"{figures['seconds'] * 1e3:.1f} ms",
                     f"all torrents/info {figures['torrents_info_floor_seconds'] * 1e3:.1f} ms",
                     f"{figures['ratio']:.2f}x"))
    print(f"median of {results['runs']} runs")
    for row in rows:
        print(f"{row[0]:<30} {row[1]:>12}  {row[2]:<22} {row[3]}")


if __name__ == "__main__":
    main()
