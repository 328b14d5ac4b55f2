"""Progress history of one download, kept as change points.

A point is stored only when the download's bytes or progress moved by a step
(a tenth of the thresholds) or its activity changed, never once per poll. The
stored series is a step function that never overstates how far a download had
got, so the growth the analysis measures is never understated: thinning or
rounding can delay a "stuck" verdict, never invent one.

Thinning keeps `max_points` points that always reach back over the stuck
threshold: first points older than the history window go, then points before
the window's anchor, then the interior point closest in time to its neighbour.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from common.downloads import CLIENT_UNREACHABLE, measure_sizes
from common.protocol import CLIENT_FIELDS, RECORD_FIELDS

# A point is (time, downloaded bytes, progress percent, activity code).
Point = tuple  # (float, int, float, str)

STEP_FRACTION = 0.1

# Queue records are kept as tuples in RECORD_FIELDS order, their repeated words interned:
# a dict per record would be most of the tracker's memory at 100,000 downloads.
RECORD_KEYS = tuple(RECORD_FIELDS)
_CLIENT = RECORD_KEYS.index("download_client")
_SIZE, _SIZELEFT = RECORD_KEYS.index("size"), RECORD_KEYS.index("sizeleft")
_TITLE = RECORD_KEYS.index("title")
_INTERNED = [RECORD_KEYS.index(key) for key in
             ("status", "tracked_status", "tracked_state", "error_message", "protocol", "download_client", "indexer")]
# A download client's figures are kept as a tuple in CLIENT_FIELDS order too.
CLIENT_KEYS = tuple(CLIENT_FIELDS)
_FIGURES, _REMOVED_BEFORE = RECORD_KEYS.index("client"), RECORD_KEYS.index("removed_before")
_CLIENT_STATE, _CLIENT_SIZE = CLIENT_KEYS.index("state"), CLIENT_KEYS.index("size")
_CLIENT_DOWNLOADED = CLIENT_KEYS.index("downloaded")
_CLIENT_INTERNED = [CLIENT_KEYS.index(key) for key in ("name", "kind", "state", "client_state")]
# Fields that checkpoints written before download-client figures lack.
RECORD_DEFAULTS = {"client": None, "removed_before": 0, "indexer": None}


def _intern(values: list, indexes: list[int]) -> tuple:
    for index in indexes:  # words that repeat across downloads: one copy each
        if values[index] is not None:
            values[index] = sys.intern(values[index])
    return tuple(values)


def _compact(record: dict[str, Any]) -> tuple:
    values = [record[key] for key in RECORD_KEYS]
    if values[_FIGURES] is not None:
        values[_FIGURES] = _intern([values[_FIGURES][key] for key in CLIENT_KEYS], _CLIENT_INTERNED)
    return _intern(values, _INTERNED)


def _expand(stored: tuple) -> dict[str, Any]:
    record = dict(zip(RECORD_KEYS, stored))
    if record["client"] is not None:
        record["client"] = dict(zip(CLIENT_KEYS, record["client"]))
    return record


def _sizes(stored: tuple) -> tuple[int, int]:
    """common.downloads.record_sizes, read off the compact tuple."""
    figures = stored[_FIGURES]
    if figures is not None and figures[_CLIENT_STATE] != CLIENT_UNREACHABLE:
        return figures[_CLIENT_SIZE], figures[_CLIENT_SIZE] - figures[_CLIENT_DOWNLOADED]
    return stored[_SIZE], stored[_SIZELEFT]


# What a history keeps for its outcome, in checkpoints (older checkpoints lack them: defaults).
OUTCOME_STATE = ("longest_stall_s", "active_s", "active_bytes", "was_stuck", "was_inactive", "was_slow", "removed_as")


@dataclass(frozen=True)
class DetectionConfig:
    threshold_s: float = 7200.0
    min_progress: float = 1.0
    min_bytes: float = 104857600.0
    history_s: float = 4 * 3600.0
    max_points: int = 50
    poll_s: float = 30.0        # POLL_INTERVAL_SECONDS: a longer silence than 3 polls is time nobody saw
    refresh_s: float = 60.0     # ARR_REFRESH_SECONDS: how often the *arrs refresh their figures
    slow_eta_s: float = 72 * 3600.0  # SLOW_MAX_ETA_HOURS; 0 turns "slow" off

    @property
    def gap_s(self) -> float:
        """Longer than this between two observations, the time between counts neither for nor against."""
        return 3 * self.poll_s

    @property
    def stop_window_s(self) -> float:
        """A download has stopped moving when its bytes have not risen for longer than this (outage guard).

        Never a single poll: the *arrs refresh their figures only every `refresh_s`, and a rise
        just after one poll is seen only at the next one.
        """
        return max(3 * self.poll_s, self.refresh_s + self.poll_s)

    @classmethod
    def from_settings(cls, settings: Any) -> "DetectionConfig":
        return cls(threshold_s=settings.stuck_threshold_seconds,
                   min_progress=settings.min_progress_change,
                   min_bytes=settings.min_size_change,
                   history_s=settings.progress_history_hours * 3600.0,
                   max_points=settings.max_snapshots_per_download,
                   poll_s=settings.poll_interval_seconds,
                   refresh_s=settings.arr_refresh_seconds,
                   slow_eta_s=settings.slow_max_eta_hours * 3600.0)


@dataclass(slots=True)
class DownloadHistory:
    """What the tracker knows of one download (instance, download key)."""

    instance: str
    key: str
    first_seen: float
    activity: str = "idle"             # see common.downloads.classify
    since: float | None = None         # start of the current unbroken stretch of this activity
    error_since: float | None = None   # start of an unbroken trackedDownloadStatus "error"
    last_bytes: int = 0                # bytes at the last poll
    last_seen: float = 0.0             # time of the last poll that saw it: verdicts rest on evidence up to here
    verdict: str | None = None         # "stuck", "inactive", "slow", "attention", "soon_stuck" or None
    withheld: str | None = None        # why no removal may rest on the verdict now (its client is unreachable)
    held: list = field(default_factory=list)  # [start, end|None]: time nobody saw, or an outage held the clock
    points: list = field(default_factory=list)
    stored: list = field(default_factory=list)  # the latest queue records of this download, compacted
    # For the outcome recorded when it leaves the queue (statistics, SPEC 5.1).
    longest_stall_s: float = 0.0       # its longest stretch without meaningful progress
    active_s: float = 0.0              # observed seconds it was active, and the bytes it gained meanwhile
    active_bytes: int = 0
    was_stuck: bool = False            # ever judged so while in the queue
    was_inactive: bool = False
    was_slow: bool = False
    removed_as: list | None = None     # [category, automatically?] once discarr removed it
    # The outage guard's view, not checkpointed: a restarted tracker starts without evidence of outages.
    moved: bool = False                # bytes rose at the last observation
    rose: bool = False                 # bytes rose at some observation since the tracker started
    quiet_s: float = 0.0               # observed seconds since the bytes last rose

    @property
    def records(self) -> list[dict[str, Any]]:
        return [_expand(record) for record in self.stored]

    def keep_records(self, records: list[dict[str, Any]]) -> None:
        self.stored = [_compact(record) for record in records]

    @property
    def title(self) -> str:
        return self.stored[0][_TITLE]

    def measured(self) -> tuple[int, int, int, float]:
        """(size, sizeleft, downloaded, progress) of the latest records, without rebuilding them."""
        return measure_sizes([_sizes(record) for record in self.stored])

    @property
    def removed_before(self) -> int:
        return self.stored[0][_REMOVED_BEFORE]

    @property
    def client_figures(self) -> dict[str, Any] | None:
        """The download client's own figures (stored records never hold an unreachable mark)."""
        figures = self.stored[0][_FIGURES]
        return None if figures is None else dict(zip(CLIENT_KEYS, figures))

    @property
    def download_client(self) -> str | None:
        return self.stored[0][_CLIENT]

    # --- recording -------------------------------------------------------
    def observe(self, now: float, downloaded: int, progress: float, activity: str,
                tracked_error: bool, config: DetectionConfig) -> None:
        last = self.points[-1] if self.points else None
        if last is not None:
            step = now - self.last_seen
            if step > config.gap_s:
                # Time nobody saw (a host asleep, a process down, an *arr not answering) is no evidence:
                # the clock is held over it, as if it had not happened.
                if not self.on_hold:
                    self.held.append([self.last_seen, now])
                step = 0.0
            self.moved = downloaded > self.last_bytes
            self.rose = self.rose or self.moved
            self.quiet_s = 0.0 if self.moved else self.quiet_s + step
            if self.activity == "active" and activity == "active":
                self.active_s += step
                self.active_bytes += max(0, downloaded - self.last_bytes)
        self.last_seen = now
        self.last_bytes = downloaded
        if activity != self.activity or last is None:
            self.since = now
        self.activity = activity
        if tracked_error:
            self.error_since = self.error_since if self.error_since is not None else now
        else:
            self.error_since = None
        if (last is None or activity != last[3]
                or abs(downloaded - last[1]) >= config.min_bytes * STEP_FRACTION
                or abs(progress - last[2]) >= config.min_progress * STEP_FRACTION):
            self.points.append((now, downloaded, progress, sys.intern(activity)))
        self._thin(now, config)

    def _thin(self, now: float, config: DetectionConfig) -> None:
        window_start = self.observed_start(now, config.threshold_s)
        horizon = min(now - config.history_s, window_start)
        anchor = self._anchor_index(window_start)
        # Points before the anchor only serve charts: age them out first.
        drop = 0
        while drop < anchor and self.points[drop + 1][0] <= horizon:
            drop += 1
        excess = len(self.points) - drop - config.max_points
        if excess > 0:
            drop += min(excess, anchor - drop)
        if drop:
            del self.points[:drop]
            anchor -= drop
        while len(self.points) > config.max_points:
            # Merge the interior point closest in time to its predecessor; never the anchor or the newest.
            # max_points >= 2 and everything before the anchor is gone, so this range is never empty.
            candidates = range(anchor + 1, len(self.points) - 1)
            victim = min(candidates, key=lambda i: self.points[i][0] - self.points[i - 1][0])
            del self.points[victim]
        self.held = [span for span in self.held if span[1] is None or span[1] > horizon]

    def _anchor_index(self, window_start: float) -> int:
        """Index of the newest point at or before window_start (0 when none is)."""
        index = 0
        for i, point in enumerate(self.points):
            if point[0] <= window_start:
                index = i
            else:
                break
        return index

    # --- the outage guard's hold on the clock -----------------------------
    def hold(self, now: float) -> None:
        if not self.held or self.held[-1][1] is not None:
            self.held.append([now, None])

    def release(self, now: float) -> None:
        if self.held and self.held[-1][1] is None:
            self.held[-1][1] = now

    @property
    def on_hold(self) -> bool:
        return bool(self.held) and self.held[-1][1] is None

    def held_seconds(self, now: float, since: float = float("-inf")) -> float:
        return sum(max(0.0, (end if end is not None else now) - max(start, since))
                   for start, end in self.held)

    def counted_seconds(self, start: float, now: float) -> float:
        """Seconds from start to now that count towards the threshold (holds excluded)."""
        return max(0.0, now - start - self.held_seconds(now, since=start))

    def observed_start(self, now: float, seconds: float) -> float:
        """The time from which `seconds` of observed time (holds excluded) reach up to now."""
        start, remaining = now, seconds
        for span_start, span_end in sorted(self.held, reverse=True):
            end = min(now if span_end is None else span_end, start)
            if end <= span_start:
                continue
            if start - end >= remaining:
                break
            remaining -= start - end
            start = span_start
        return start - remaining

    # --- questions the analysis asks --------------------------------------
    def stalled_since(self, now: float, downloaded: int, progress: float,
                      config: DetectionConfig) -> tuple[float, Point] | None:
        """Start of the current active stretch over which bytes and progress rose by less than the thresholds.

        Returns (start time, the point at the start); None when the download is not active.
        """
        if self.activity != "active" or self.since is None or not self.points:
            return None
        start = None
        for point in reversed(self.points):
            if point[0] < self.since:
                break
            if downloaded - point[1] >= config.min_bytes or progress - point[2] >= config.min_progress:
                break
            start = point
        if start is None:  # it moved by a threshold since the newest point: no stretch at all
            return now, (now, downloaded, progress, self.activity)
        return max(start[0], self.since), start

    def rate(self, now: float, downloaded: int, window_s: float) -> float:
        """Bytes per observed second over the active part of the last window_s observed seconds."""
        if self.activity != "active" or self.since is None:
            return 0.0
        since = max(self.observed_start(now, window_s), self.since)
        reference = None
        for point in self.points:  # the newest point at or before `since`, else the first after it
            if point[0] > since and reference is not None:
                break
            reference = point
        if reference is None:
            return 0.0
        counted = self.counted_seconds(max(reference[0], self.since), now)
        return max(0.0, (downloaded - reference[1]) / counted) if counted > 0 else 0.0

    # --- checkpoint --------------------------------------------------------
    def to_state(self) -> dict:
        return {"instance": self.instance, "key": self.key, "first_seen": self.first_seen,
                "activity": self.activity, "since": self.since,
                "error_since": self.error_since, "held": self.held, "points": self.points,
                "records": self.records, "last_bytes": self.last_bytes, "last_seen": self.last_seen,
                **{name: getattr(self, name) for name in OUTCOME_STATE}}

    @classmethod
    def from_state(cls, state: dict) -> "DownloadHistory":
        history = cls(instance=sys.intern(state["instance"]), key=state["key"], first_seen=state["first_seen"],
                      activity=state["activity"], since=state.get("since", state.get("active_since")),
                      error_since=state["error_since"], held=state["held"],
                      points=[tuple(point) for point in state["points"]],
                      last_bytes=state["last_bytes"], last_seen=state["last_seen"],
                      **{name: state[name] for name in OUTCOME_STATE if name in state})
        history.keep_records([dict(RECORD_DEFAULTS, **record) for record in state["records"]])
        # Outages are not checkpointed: a clock is never held by an outage that is no longer reported.
        history.release(history.last_seen)
        return history
