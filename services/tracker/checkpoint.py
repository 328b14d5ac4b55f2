"""The tracker's checkpoint: all history in one msgpack file, replaced atomically.

Written to a temporary file, flushed, then renamed over the old one, so a
crash mid-write leaves the previous checkpoint intact. A file that cannot be
read is set aside (renamed *.corrupt) and reported, never fatal.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import msgpack

from services.tracker.history import DownloadHistory
from services.tracker.state import FailedJob, InstanceState, Keep, Tracker

log = logging.getLogger(__name__)

FORMAT = "discarr-tracker-state"
FORMAT_VERSION = 1


def save(tracker: Tracker, path: str | os.PathLike) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT, "version": FORMAT_VERSION, "saved_at": tracker.clock.now(),
        "instances": [vars(instance) for instance in tracker.instances.values()],
        "downloads": [history.to_state() for histories in tracker.downloads.values()
                      for history in histories.values()],
        "failed_jobs": [[poller, client, job.fields, job.first_seen]
                        for (poller, client), jobs in tracker.failed_jobs.items() for job in jobs.values()],
        "keeps": [[instance, key, keep.by, keep.for_good, keep.at] for (instance, key), keep in tracker.keeps.items()],
    }
    temporary = target.with_name(target.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(msgpack.packb(state, use_bin_type=True))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def load(tracker: Tracker, path: str | os.PathLike) -> bool:
    """Restore the tracker from its checkpoint; False when there was none to use."""
    source = Path(path)
    if not source.exists():
        return False
    try:
        state = msgpack.unpackb(source.read_bytes(), raw=False, strict_map_key=True)
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != FORMAT_VERSION:
            raise ValueError("not a discarr tracker checkpoint of this version")
        instances = [InstanceState(**fields) for fields in state["instances"]]
        histories = [DownloadHistory.from_state(fields) for fields in state["downloads"]]
        failed_jobs = [(poller, client, FailedJob(fields, first_seen))
                       for poller, client, fields, first_seen in state.get("failed_jobs", ())]
        keeps = {(instance, key): Keep(by, for_good, at) for instance, key, by, for_good, at in state.get("keeps", ())}
    except Exception as exc:  # any fault in the file: set it aside, start empty
        aside = source.with_name(f"{source.name}.corrupt-{int(time.time())}")
        os.replace(source, aside)
        log.error("checkpoint %s is unreadable (%s); moved it to %s and starting empty",
                  source, str(exc).splitlines()[0][:200], aside.name)
        return False
    tracker.instances = {instance.name: instance for instance in instances}
    tracker.downloads = {}
    for history in histories:
        tracker.downloads.setdefault(history.instance, {})[history.key] = history
    tracker.keeps = keeps
    for (instance, key), keep in keeps.items():
        if (history := tracker.downloads.get(instance, {}).get(key)) is not None:
            history.kept = keep.words()
    tracker.failed_jobs = {}
    for poller, client, job in failed_jobs:
        tracker.failed_jobs.setdefault((poller, client), {})[job.fields["id"]] = job
    tracker.observed_until = max((history.last_seen for history in histories), default=0.0)
    tracker.judge(histories)
    log.info("restored %d downloads from %s", len(histories), source)
    return True
