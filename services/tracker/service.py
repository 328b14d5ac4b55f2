"""The tracker process: PULL snapshots in, REP answers out, checkpoints to disk."""
from __future__ import annotations

import logging
import threading
import time

import zmq

from common import protocol
from common.clock import Clock, SystemClock
from common.runtime import release_memory, set_log_level
from common.settings import Settings
from common.sockets import answer, bind, service_context
from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.state import InstanceConflict, Tracker

log = logging.getLogger(__name__)

BIG_MESSAGE_BYTES = 1024 * 1024  # after a snapshot this big, give the freed memory back


def query_handlers(tracker: Tracker, settings: Settings) -> dict:
    return {
        "ping": lambda body: {"service": "tracker"},
        "log_level": set_log_level,
        "check": lambda body: tracker.check(),
        "progress": lambda body: tracker.progress(settings.thresholds()),
        "analyze": lambda body: tracker.analyze(body["include_import_blocked"], body.get("include_slow", False)),
        "history": lambda body: tracker.history(body["instance"], body["download_id"]),
    }


def run_tracker(settings: Settings, stop: threading.Event, clock: Clock | None = None) -> None:
    tracker = Tracker(DetectionConfig.from_settings(settings), clock or SystemClock())
    checkpoint.load(tracker, settings.tracker_state_file)
    with service_context(settings.curve) as context:
        ingest = bind(context, zmq.PULL, settings.tracker_ingest_endpoint, "tracker", settings.curve)
        queries = bind(context, zmq.REP, settings.tracker_query_endpoint, "tracker", settings.curve)
        handlers = query_handlers(tracker, settings)
        poller = zmq.Poller()
        poller.register(ingest, zmq.POLLIN)
        poller.register(queries, zmq.POLLIN)
        next_checkpoint = time.monotonic() + settings.tracker_checkpoint_seconds
        log.info("tracker listening: ingest %s, queries %s", settings.tracker_ingest_endpoint,
                 settings.tracker_query_endpoint)
        try:
            while not stop.is_set():
                ready = dict(poller.poll(200))
                if ingest in ready:
                    data = ingest.recv()
                    receive_snapshot(tracker, data)
                    if len(data) > BIG_MESSAGE_BYTES:
                        del data
                        release_memory()
                if queries in ready:
                    queries.send(answer(queries.recv(), handlers, "tracker"))
                if time.monotonic() >= next_checkpoint:
                    checkpoint.save(tracker, settings.tracker_state_file)
                    next_checkpoint = time.monotonic() + settings.tracker_checkpoint_seconds
        finally:
            checkpoint.save(tracker, settings.tracker_state_file)


def receive_snapshot(tracker: Tracker, data: bytes) -> None:
    try:
        message = protocol.decode(data)
        if message.type != "snapshot":
            raise protocol.ProtocolError(f"expected a snapshot, got {message.type!r}")
        tracker.ingest(message.body)
    except (protocol.ProtocolError, InstanceConflict) as exc:
        log.warning("ingest rejected a message: %s", exc)
