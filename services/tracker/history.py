"""Progress history of one download, kept as change points.

A point is stored only when the download's bytes or progress moved by a step
(a tenth of the thresholds) or its activity changed, never once per poll. The
stored series is a step function that never overstates how far a download had
got, so the growth the analysis measures is never understated: thinning or
rounding can delay a "stuck" verdict, never invent one.

Thinning keeps `max_points` points that always reach back over the stuck
threshold: first points older than the history window go, then points before
the window's anchor, then the interior point closest in time to its neighbour.

These are the rules (observe, thin, holds, stall, rate); how the state is stored,
compact and by name, is services.tracker.storage.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from common.downloads import measure_sizes
from services.tracker.storage import Hold, Point, PointSeries, StoredRecord

STEP_FRACTION = 0.1


# What a history keeps for its outcome, in checkpoints (older checkpoints lack them: defaults).
OUTCOME_STATE = ("longest_stall_s", "active_s", "active_bytes", "was_stuck", "was_inactive", "was_slow", "removed_as")
# The outage guard's evidence, in checkpoints too: a tracker restarted just before a VPN drop must still
# know which downloads were moving, or it cannot tell their stop from N stuck downloads.
GUARD_STATE = ("moved", "rose", "quiet_s")
# A usenet job's post-processing stage as its client names it, and since when: "repairing for 20 min".
STAGE_STATE = ("stage", "stage_since")


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

    def shown(self) -> dict[str, float]:
        """The thresholds /progress shows for an instance, in the settings' units."""
        return {"stuck_threshold_minutes": self.threshold_s / 60, "min_progress_change": self.min_progress,
                "min_size_change": self.min_bytes, "slow_max_eta_hours": self.slow_eta_s / 3600}

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
    held: tuple[Hold, ...] = ()        # time nobody saw, or an outage held the clock
    points: PointSeries = field(default_factory=PointSeries)
    # Its latest queue records: the first, whose title, status and the like every record shares, and the
    # others of a season pack; most downloads have one record, and then `more` is the one empty tuple.
    first: StoredRecord | None = None
    more: tuple[StoredRecord, ...] = ()
    # For the outcome recorded when it leaves the queue (statistics, SPEC 5.1).
    longest_stall_s: float = 0.0       # its longest stretch without meaningful progress
    active_s: float = 0.0              # observed seconds it was active, and the bytes it gained meanwhile
    active_bytes: int = 0
    was_stuck: bool = False            # ever judged so while in the queue
    was_inactive: bool = False
    was_slow: bool = False
    removed_as: list | None = None     # [category, automatically?] once discarr removed it
    stage: str | None = None           # its client's post-processing stage (usenet), STAGE_STATE
    stage_since: float | None = None
    kept: str | None = None            # who kept it, in words, while the tracker keeps it (Tracker.keeps)
    # The outage guard's evidence (GUARD_STATE); the outages themselves are not checkpointed.
    moved: bool = False                # bytes rose at the last observation
    rose: bool = False                 # bytes rose at some observation
    quiet_s: float = 0.0               # observed seconds since the bytes last rose

    def keep_records(self, records: list[StoredRecord]) -> None:
        self.first, *more = records
        self.more = tuple(more)

    @property
    def records(self) -> tuple[StoredRecord, ...]:
        return (self.first, *self.more)

    @property
    def protected_by(self) -> str | None:
        """Why it is never removed (SPEC 4.2), in words: an admin kept it, or a rule protects any of its
        records (the poller judged them); None when nothing protects it."""
        return self.kept or next((record.protected_by for record in self.records if record.protected_by), None)

    @property
    def client_name(self) -> str:
        """The download client it is in, as the outage guard groups downloads (SPEC section 3): the client
        discarr reads itself when it matched the download there, else the *arr's name for it."""
        first = self.first
        return first.client.name if first.client is not None else first.download_client or "unknown"

    def measured(self) -> tuple[int, int, int, float]:
        """(size, sizeleft, downloaded, progress) of the latest records (common.downloads.measure)."""
        return measure_sizes([record.sizes() for record in self.records] if self.more else [self.first.sizes()])

    def observe_stage(self, now: float) -> None:
        """Note its client's post-processing stage, and when it began."""
        client = self.first.client
        stage = client.stage if client is not None else None
        if stage != self.stage:
            self.stage, self.stage_since = stage, now if stage is not None else None

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
                    self.held += (Hold(self.last_seen, now),)
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
        if (last is None or activity != last.activity
                or abs(downloaded - last.downloaded) >= config.min_bytes * STEP_FRACTION
                or abs(progress - last.progress) >= config.min_progress * STEP_FRACTION):
            self.points.append(Point(now, downloaded, progress, activity))
        self._thin(now, config)

    def _thin(self, now: float, config: DetectionConfig) -> None:
        points = self.points
        if (len(points) <= config.max_points and not self.held
                and (len(points) < 2 or points.time(1) > now - config.history_s)):
            return  # the common case, at every poll: nothing to age out, merge or forget
        window_start = self.observed_start(now, config.threshold_s)
        horizon = min(now - config.history_s, window_start)
        anchor = self._anchor_index(window_start)
        # Points before the anchor only serve charts: age them out first.
        drop = 0
        while drop < anchor and points.time(drop + 1) <= horizon:
            drop += 1
        excess = len(points) - drop - config.max_points
        if excess > 0:
            drop += min(excess, anchor - drop)
        if drop:
            points.delete_before(drop)
            anchor -= drop
        if len(points) > config.max_points:
            times = points.times()
            while len(times) > config.max_points:
                # Merge the interior point closest in time to its predecessor; never the anchor or the newest.
                # max_points >= 2 and everything before the anchor is gone, so there is always one.
                gaps = [later - earlier for earlier, later in zip(times[anchor:-2], times[anchor + 1:-1])]
                victim = anchor + 1 + gaps.index(min(gaps))
                points.delete(victim)
                del times[victim]
        if self.held:
            self.held = tuple(span for span in self.held if span.end is None or span.end > horizon)

    def _anchor_index(self, window_start: float) -> int:
        """Index of the newest point at or before window_start (0 when none is)."""
        index = 0
        for i, point in enumerate(self.points):
            if point.time <= window_start:
                index = i
            else:
                break
        return index

    # --- the outage guard's hold on the clock -----------------------------
    def hold(self, now: float) -> None:
        if not self.on_hold:
            self.held += (Hold(now, None),)

    def release(self, now: float) -> None:
        if self.on_hold:
            self.held = (*self.held[:-1], Hold(self.held[-1].start, now))

    @property
    def on_hold(self) -> bool:
        return bool(self.held) and self.held[-1].end is None

    def held_seconds(self, now: float, since: float = float("-inf")) -> float:
        return sum(max(0.0, (end if end is not None else now) - max(start, since))
                   for start, end in self.held)

    def counted_seconds(self, start: float, now: float) -> float:
        """Seconds from start to now that count towards the threshold (holds excluded)."""
        if not self.held:  # most downloads, most of the time
            return max(0.0, now - start)
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
        for point in reversed(list(self.points.figures())):
            time, then_downloaded, then_progress, _ = point
            if time < self.since:
                break
            if downloaded - then_downloaded >= config.min_bytes or progress - then_progress >= config.min_progress:
                break
            start = point
        if start is None:  # it moved by a threshold since the newest point: no stretch at all
            return now, Point(now, downloaded, progress, self.activity)
        return max(start[0], self.since), Point(start[0], int(start[1]), start[2], self.activity)

    def rate(self, now: float, downloaded: int, window_s: float) -> float:
        """Bytes per observed second over the active part of the last window_s observed seconds."""
        if self.activity != "active" or self.since is None:
            return 0.0
        since = max(self.observed_start(now, window_s), self.since)
        reference = None
        for time, then_downloaded, _, _ in self.points.figures():
            # the newest point at or before `since`, else the first after it
            if time > since and reference is not None:
                break
            reference = (time, then_downloaded)
        if reference is None:
            return 0.0
        time, then_downloaded = reference
        counted = self.counted_seconds(max(time, self.since), now)
        return max(0.0, (downloaded - then_downloaded) / counted) if counted > 0 else 0.0

    # --- checkpoint --------------------------------------------------------
    def to_state(self) -> dict:
        return {"instance": self.instance, "key": self.key, "first_seen": self.first_seen,
                "activity": self.activity, "since": self.since, "error_since": self.error_since,
                "held": [list(span) for span in self.held], "points": [list(point) for point in self.points],
                "records": [record.as_message() for record in self.records],
                "last_bytes": self.last_bytes, "last_seen": self.last_seen,
                **{name: getattr(self, name) for name in (*OUTCOME_STATE, *GUARD_STATE, *STAGE_STATE)}}

    @classmethod
    def from_state(cls, state: dict) -> "DownloadHistory":
        history = cls(instance=sys.intern(state["instance"]), key=state["key"], first_seen=state["first_seen"],
                      activity=sys.intern(state["activity"]), since=state.get("since", state.get("active_since")),
                      error_since=state["error_since"], held=tuple(Hold(*span) for span in state["held"]),
                      points=PointSeries(state["points"]),
                      last_bytes=state["last_bytes"], last_seen=state["last_seen"],
                      **{name: state[name] for name in (*OUTCOME_STATE, *GUARD_STATE, *STAGE_STATE)
                         if name in state})
        history.keep_records([StoredRecord.from_message(record) for record in state["records"]])
        # Outages are not checkpointed: a clock is never held by an outage that is no longer reported
        # (one the restarted tracker recognises again is reported again).
        history.release(history.last_seen)
        return history
