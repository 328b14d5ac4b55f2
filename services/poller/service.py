"""The poller process: reads every *arr queue and PUSHes one snapshot per instance.

Each instance is polled by its own thread on its own schedule, so a slow or
dead instance never delays another. Only the main thread touches the ZeroMQ
socket (sockets are not thread-safe). While the tracker is away, only the
newest snapshot of each instance is kept: memory stays bounded, and the
tracker is current with the first snapshot it receives after its return.
The main thread also answers removal requests on its REP socket.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

import zmq

from common import protocol
from common.clock import Clock, SystemClock
from common.protection import ProtectionRules
from common.downloads import UNKNOWN_STATUS
from common.runtime import ProcessFailed, set_log_level
from common.settings import InstanceConfig, Settings
from common.sockets import bind, connect, serve_one, service_context
from common.version import ping_answer
from services.poller.arr_client import ArrClient, ArrError
from services.poller.audit import AuditLog
from services.poller.download_clients import DownloadClients
from services.poller.removal import RemovalMemory, RemovalPolicy, Remover

log = logging.getLogger(__name__)


BACKOFF_LIMIT = 8  # a failing instance is asked at most every 8 poll intervals
MAIN_LOOP_WAIT_MS = 20  # how long a new snapshot may wait in the outbox: it adds to change-to-visible


def failed_poll(instance: InstanceConfig, clock: Clock, poller: dict[str, Any], why: str) -> dict[str, Any]:
    """The snapshot of a poll that read nothing: unhealthy, and no records, so no history is touched."""
    return {"instance": instance.name, "kind": instance.kind, "taken_at": clock.now(), "poller": poller,
            "poll_seconds": 0.0, "health": {"state": "bad_response", "error": why}, "clients": [],
            "records": None}


def take_snapshot(client: ArrClient, clock: Clock, poller: dict[str, Any], download_clients: DownloadClients,
                  memory: RemovalMemory, failed_jobs: bool = False,
                  rules: ProtectionRules = ProtectionRules()) -> dict[str, Any]:
    """One instance's queue, with its downloads' client figures and the protection rule each falls under,
    as a snapshot body; with `failed_jobs` (CLEANUP_USENET_FAILED), each usenet client's failed history
    entries and those removed lately.

    A failure is reported as health, not raised.
    """
    started = time.monotonic()
    taken_at = clock.now()
    clients: list[dict[str, Any]] = []
    complete = True
    removals: list[dict[str, Any]] = []
    try:
        records: list | None
        records, complete = client.fetch_queue()
        if complete:
            memory.read_whole_queue(client.instance.name, records)
        health = {"state": "ok", "error": None}
        clients = download_clients.annotate(records)
        if failed_jobs:
            download_clients.failed_jobs(clients)
            for entry in clients:
                if "failed" in entry:
                    entry["removed"] = [notice["download_id"] for notice in memory.notices(entry["name"])]
        memory.stamp(client.instance.name, records)
        if rules:
            for record in records:
                record["protected_by"] = rules.judge(record)
        removals = memory.notices(client.instance.name)
    except ArrError as exc:
        records, health = None, {"state": exc.state, "error": exc.reason}
    incomplete = sum(1 for record in records or () if record["status"] == UNKNOWN_STATUS)
    if incomplete:
        health = {"state": "bad_response",
                  "error": f"{incomplete} of {len(records)} queue records lack a status; "
                           "they keep their last known state"}
    return {"instance": client.instance.name, "kind": client.instance.kind, "taken_at": taken_at,
            "poller": poller, "poll_seconds": time.monotonic() - started, "health": health, "clients": clients,
            "records": records, "complete": complete, "removals": removals}


class InstancePoller(threading.Thread):
    """Polls one instance every interval and hands each snapshot to the sender."""

    def __init__(self, instance: InstanceConfig, settings: Settings, outbox: "queue.Queue[dict]",
                 stop: threading.Event, clock: Clock, memory: RemovalMemory) -> None:
        super().__init__(name=f"poll-{instance.name}", daemon=True)
        self.client = ArrClient(instance, settings.request_timeout_seconds, with_tags=bool(settings.protect_tags))
        self.rules = ProtectionRules.from_settings(settings)
        self.download_clients = DownloadClients(settings.download_clients, settings.request_timeout_seconds)
        self.memory = memory
        self.failed_jobs = settings.cleanup_usenet_failed
        self.interval = settings.poll_interval_seconds
        self.outbox, self.stop, self.clock = outbox, stop, clock
        self.timeout = settings.request_timeout_seconds
        self.poller = {"name": settings.poller_name, "endpoint": settings.poller_endpoint_for_clients}
        self._last_state = "ok"

    def run(self) -> None:
        failures = 0
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                snapshot = take_snapshot(self.client, self.clock, self.poller, self.download_clients, self.memory,
                                         self.failed_jobs, self.rules)
            except Exception:  # a bug meeting odd data: this poll is lost, never the thread
                log.exception("polling %s failed; trying again next poll", self.client.instance.name)
                snapshot = failed_poll(self.client.instance, self.clock, self.poller,
                                       "the poll failed inside the poller (see its log)")
            # Back off from an instance that keeps failing, up to BACKOFF_LIMIT intervals.
            failures = failures + 1 if snapshot["records"] is None else 0
            delay = self.interval * min(2 ** failures, BACKOFF_LIMIT)
            # Tell the tracker when to expect the next snapshot, so it can tell a slow poll from a dead poller.
            snapshot["poller"] = dict(self.poller, next_within=delay + max(snapshot["poll_seconds"], self.timeout))
            self._log_health(snapshot["health"])
            self.outbox.put(snapshot)
            self.stop.wait(max(0.0, delay - (time.monotonic() - started)))
        self.client.close()
        self.download_clients.close()

    def _log_health(self, health: dict) -> None:
        # Log changes of health, not every failed poll.
        if health["state"] != self._last_state:
            if health["state"] == "ok":
                log.info("%s is healthy again", self.client.instance.name)
            else:
                log.warning("%s is unhealthy: %s", self.client.instance.name, health["error"])
            self._last_state = health["state"]


def run_poller(settings: Settings, stop: threading.Event, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    if not settings.instances:
        log.warning("no *arr instance is configured (set SONARR_API_KEY, RADARR_API_KEY, ...)")
    outbox: "queue.Queue[dict]" = queue.Queue()
    audit = AuditLog(settings.audit_log)
    memory = RemovalMemory(audit, clock)
    pollers = [InstancePoller(i, settings, outbox, stop, clock, memory) for i in settings.instances]
    # Removals use their own HTTP sessions: a requests.Session is not shared across threads.
    remover = Remover({i.name: ArrClient(i, settings.request_timeout_seconds, with_tags=bool(settings.protect_tags))
                       for i in settings.instances},
                      {i.name: RemovalPolicy.from_settings(settings.for_instance(i.name)) for i in settings.instances},
                      audit, clock, DownloadClients(settings.download_clients, settings.request_timeout_seconds),
                      memory, settings.removal_timeout_seconds, ProtectionRules.from_settings(settings))
    with service_context(settings.curve) as context:
        commands = bind(context, zmq.REP, settings.poller_command_endpoint, "poller", settings.curve)
        # IMMEDIATE: queue nothing for a tracker that is not there.
        push = connect(context, zmq.PUSH, settings.tracker_ingest_endpoint, settings.curve,
                       sndhwm=max(1, len(pollers)), immediate=1)
        handlers = {"ping": lambda body: ping_answer("poller"),
                    "remove": remover.handle,
                    "keep": lambda body: remover.keep(body, kept=True),
                    "unkeep": lambda body: remover.keep(body, kept=False),
                    "log_level": set_log_level}
        sender = SnapshotSender(push, settings.tracker_ingest_endpoint)
        sockets = zmq.Poller()
        sockets.register(commands, zmq.POLLIN)
        try:
            for poller in pollers:
                poller.start()
            log.info("polling %s every %gs (download clients: %s); removal requests on %s",
                     ", ".join(i.name for i in settings.instances) or "nothing", settings.poll_interval_seconds,
                     ", ".join(c.name for c in settings.download_clients) or "none",
                     settings.poller_command_endpoint)
            while not stop.is_set():
                # Wait for a request, or for the tracker to take what is pending; new snapshots are
                # picked up at least every MAIN_LOOP_WAIT_MS.
                sockets.register(push, zmq.POLLOUT if sender.pending else 0)
                ready = dict(sockets.poll(MAIN_LOOP_WAIT_MS))
                if commands in ready:
                    serve_one(commands, handlers, "poller")
                while True:
                    try:
                        sender.keep(outbox.get_nowait())
                    except queue.Empty:
                        break
                if push in ready or sender.pending:
                    sender.flush()
                dead = [poller.name for poller in pollers if not poller.is_alive()]
                if dead and not stop.is_set():
                    raise ProcessFailed(f"poll thread(s) {', '.join(dead)} stopped; exiting so the supervisor "
                                     "restarts the poller")
        finally:
            stop.set()


class SnapshotSender:
    """Delivers the newest snapshot of each instance; while the tracker is away, keeps only that.

    Each snapshot is encoded once, when it is kept, and sent when the socket can take it.
    """

    def __init__(self, push: zmq.Socket, endpoint: str) -> None:
        self.push = push
        self.endpoint = endpoint
        self.pending: dict[str, bytes] = {}
        self.tracker_away = False

    def keep(self, snapshot: dict) -> None:
        try:
            self.pending[snapshot["instance"]] = encode_snapshot(snapshot)
        except protocol.ProtocolError as exc:  # a bug: the poller built a snapshot its own protocol refuses
            log.error("a snapshot of %s could not be encoded and was dropped: %s", snapshot["instance"], exc)

    def flush(self) -> None:
        for name in list(self.pending):
            try:
                self.push.send(self.pending[name], zmq.NOBLOCK)
            except zmq.Again:
                if not self.tracker_away:
                    log.warning("tracker is not receiving at %s; keeping only the newest snapshot "
                                "of each instance until it is back", self.endpoint)
                    self.tracker_away = True
                return
            del self.pending[name]
            if self.tracker_away:
                log.info("tracker is back; delivering snapshots")
                self.tracker_away = False


def encode_snapshot(snapshot: dict) -> bytes:
    """A snapshot as it is sent. normalize_record built every record field by field, and the tracker
    checks each one on receipt: checking them here too was two thirds of encoding 10,000 records."""
    return protocol.encode("snapshot", snapshot, check_records=False)
