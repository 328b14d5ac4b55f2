"""The tracker process: PULL snapshots in, REP answers out, checkpoints to disk."""
from __future__ import annotations

import logging
import threading
import time
from typing import Iterator

import zmq

from common import protocol
from common.clock import Clock, SystemClock
from common.runtime import release_memory, set_log_level
from common.settings import Settings
from common.sockets import bind, one_frame, serve_one, service_context
from common.version import ping_answer
from services.tracker import checkpoint
from services.tracker.history import DetectionConfig
from services.tracker.state import InstanceConflict, Tracker
from services.tracker.storage import receive_record
from services.tracker.stats import StatsStore

log = logging.getLogger(__name__)

BIG_MESSAGE_BYTES = 1024 * 1024  # after a snapshot this big, give the freed memory back
QUERIES_PER_TURN = 50  # queries answered in a row before ingest takes its next slice
RETENTION_EVERY_SECONDS = 86400.0  # STATS_RETENTION_DAYS is enforced daily


def query_handlers(tracker: Tracker, settings: Settings) -> dict:
    return {
        "ping": lambda body: dict(ping_answer("tracker"), ingesting=tracker.ingesting and dict(tracker.ingesting)),
        "log_level": set_log_level,
        "check": lambda body: tracker.check(body.get("offset", 0), body.get("limit")),
        "progress": lambda body: tracker.progress(settings.thresholds()),
        "auto_report": lambda body: tracker.keep_auto_report(body["report"]),
        "stats": lambda body: tracker.stats_answer(body["days"], body["by"]),
        "analyze": lambda body: tracker.analyze(body["include_import_blocked"], body.get("include_slow", False)),
        "history": lambda body: tracker.history(body["instance"], body["download_id"]),
        "keep": lambda body: tracker.keep(body["instance"], body["download_id"], body["by"], body["for_good"]),
        "unkeep": lambda body: tracker.unkeep(body["instance"], body["download_id"]),
        "protection": lambda body: tracker.protection(body["downloads"]),
    }


def run_tracker(settings: Settings, stop: threading.Event, clock: Clock | None = None) -> None:
    clock = clock or SystemClock()
    stats = StatsStore(settings.stats_db, settings.stats_retention_days, clock)
    tracker = Tracker(DetectionConfig.from_settings(settings), clock, stats,
                      configure=lambda instance: DetectionConfig.from_settings(settings.for_instance(instance)))
    checkpoint.load(tracker, settings.tracker_state_file)
    with service_context(settings.curve) as context:
        ingest = bind(context, zmq.PULL, settings.tracker_ingest_endpoint, "tracker", settings.curve)
        queries = bind(context, zmq.REP, settings.tracker_query_endpoint, "tracker", settings.curve)
        handlers = query_handlers(tracker, settings)
        poller = zmq.Poller()
        poller.register(ingest, zmq.POLLIN)
        poller.register(queries, zmq.POLLIN)
        next_checkpoint = time.monotonic() + settings.tracker_checkpoint_seconds
        next_retention = time.monotonic()  # at start, then daily
        log.info("tracker listening: ingest %s, queries %s", settings.tracker_ingest_endpoint,
                 settings.tracker_query_endpoint)
        ingesting: SnapshotIngest | None = None
        try:
            while not stop.is_set():
                # While a snapshot is being ingested, only look for queries: each waits at most one slice.
                ready = dict(poller.poll(0 if ingesting else 200))
                if queries in ready:
                    serve_waiting(queries, handlers)
                if ingesting is not None:
                    if not ingesting.step():
                        ingesting.finish()
                        ingesting = None
                    continue  # no checkpoint of a half-ingested snapshot
                if ingest in ready:
                    ingesting = SnapshotIngest(tracker, ingest.recv_multipart())
                if time.monotonic() >= next_checkpoint:
                    save_checkpoint(tracker, settings.tracker_state_file)
                    stats.flush()  # rows a full disk refused before
                    next_checkpoint = time.monotonic() + settings.tracker_checkpoint_seconds
                if time.monotonic() >= next_retention:
                    stats.enforce_retention()
                    next_retention = time.monotonic() + RETENTION_EVERY_SECONDS
        finally:
            if ingesting is not None:  # finish what was received: nothing is lost on the way out
                while ingesting.step():
                    pass
            save_checkpoint(tracker, settings.tracker_state_file)
            stats.close()


def serve_waiting(queries: zmq.Socket, handlers: dict) -> None:
    """Answer the queries already waiting, up to QUERIES_PER_TURN, so ingest still moves under load."""
    for _ in range(QUERIES_PER_TURN):
        serve_one(queries, handlers, "tracker")
        if not queries.poll(0):
            return


def save_checkpoint(tracker: Tracker, path: str) -> bool:
    """Write the checkpoint; a disk that is full or read-only is logged, and the next checkpoint retries."""
    try:
        checkpoint.save(tracker, path)
        return True
    except OSError as exc:
        log.error("cannot write the checkpoint %s (%s); history stays in memory and the next checkpoint "
                  "tries again", path, exc.strerror or exc)
        return False


class SnapshotIngest:
    """One message from the PULL socket, decoded and ingested a slice at a time.

    Anything wrong with it drops that message only.
    """

    def __init__(self, tracker: Tracker, frames: list[bytes]) -> None:
        self.size = sum(len(frame) for frame in frames)
        self._slices = self._ingest(tracker, frames)

    @staticmethod
    def _ingest(tracker: Tracker, frames: list[bytes]) -> Iterator[None]:
        message = yield from protocol.decode_in_slices(one_frame(frames), receive_record=receive_record)
        del frames[:]  # the bytes are decoded: free them before the history grows
        if message.type != "snapshot":
            raise protocol.ProtocolError(f"expected a snapshot, got {message.type!r}")
        yield from tracker.ingest_in_slices(message.body)

    def step(self) -> bool:
        """Ingest one more slice; False once the message is ingested or dropped."""
        try:
            next(self._slices)
            return True
        except StopIteration:
            return False
        except (protocol.ProtocolError, InstanceConflict) as exc:
            log.warning("ingest rejected a message: %s", exc)
        except Exception:
            log.exception("ingest failed on a snapshot; it was dropped and the tracker goes on")
        return False

    def finish(self) -> None:
        if self.size > BIG_MESSAGE_BYTES:
            release_memory()  # give the freed memory of a big snapshot back

