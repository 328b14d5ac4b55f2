"""What every process does the same way: logging, and stopping on SIGTERM/SIGINT."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import sys
import threading


class ProcessFailed(RuntimeError):
    """The process cannot go on as it should (a thread of it died): it exits non-zero, so that its
    supervisor restarts it, rather than run half-dead."""


def configure_logging(process: str, level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO), stream=sys.stderr, force=True,
        format=f"%(asctime)s {process} %(levelname)s %(message)s")
    # urllib3 logs full URLs at DEBUG; a URL never carries a key here, but its noise hides ours.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def _malloc_trim():
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    return trim


_MALLOC_TRIM = _malloc_trim()


def release_memory() -> None:
    """Hand freed heap back to the OS (glibc only; elsewhere nothing).

    A big message is received on ZeroMQ's I/O thread and decoded in ours; the
    freed space of both stays resident unless trimmed, and a tracker fed 100,000
    records per poll would keep tens of megabytes it no longer uses.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def set_log_level(body: dict) -> dict:
    """The "log_level" request: change this process's logging level at run time (/verbose)."""
    level = body["level"].upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}")
    logging.getLogger().setLevel(level)
    return {"level": level}


def stop_event_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, so main loops end cleanly (honcho sends SIGTERM)."""
    stop = threading.Event()

    def _handler(signum: int, _frame: object) -> None:
        logging.getLogger(__name__).info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)
    return stop
