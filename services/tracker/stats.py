"""The tracker's record of every download that left the queue (SPEC 5.1), in SQLite.

Pure storage and queries: the tracker hands over finished stays as `Outcome`s and
asks `stats()` for the per-indexer / client / instance / group summary. The tracker
is the only writer. Nothing here is ever fatal to it: a file that is not ours, or whose
pages are damaged, is set aside and replaced; a disk that refuses a write keeps the rows
queued in memory until a later flush succeeds; a number SQLite cannot hold is stored empty.
"""
from __future__ import annotations

import collections
import logging
import math
import os
import re
import sqlite3
import statistics
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    instance: str
    download_id: str
    title: str
    release_group: str | None
    indexer: str | None
    download_client: str | None
    protocol: str | None
    size: int
    first_seen: float          # epoch seconds
    last_seen: float
    outcome: str               # "completed" | "removed" | "failed" | "gone"
    category: str | None       # for removed: "stuck" | "inactive" | "slow" | "import_blocked"
    automatic: bool            # removed by automatic cleanup (requested_by "auto")
    was_stuck: bool            # ever judged stuck / inactive / slow while in the queue
    was_inactive: bool
    was_slow: bool
    longest_stall_s: float
    mean_speed_bps: float | None  # mean speed while active
    recurred: int              # how often it came back after a removal before this stay


COLUMNS = tuple(field.name for field in fields(Outcome))
# The numbers are nullable from schema version 3 on: one out of SQLite's range is stored empty.
NULLABLE = {"release_group", "indexer", "download_client", "protocol", "category", "size", "longest_stall_s",
            "mean_speed_bps", "recurred"}
TEXT = {"instance", "download_id", "title", "release_group", "indexer", "download_client", "protocol", "outcome",
        "category"}
INTEGER = {"size", "recurred"}
REAL = {"first_seen", "last_seen", "longest_stall_s", "mean_speed_bps"}  # the rest are booleans

# Each entry migrates the schema one version forward; a new file runs them all, so the
# upgrade path is the path every install takes. Never edit a released step: append one.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # version 1
        """CREATE TABLE outcomes (
            instance        TEXT    NOT NULL,
            download_id     TEXT    NOT NULL,
            title           TEXT    NOT NULL,
            release_group   TEXT,
            indexer         TEXT,
            download_client TEXT,
            protocol        TEXT,
            size            INTEGER NOT NULL DEFAULT 0,
            first_seen      REAL    NOT NULL,
            last_seen       REAL    NOT NULL,
            outcome         TEXT    NOT NULL,
            category        TEXT,
            automatic       INTEGER NOT NULL DEFAULT 0,
            was_stuck       INTEGER NOT NULL DEFAULT 0,
            was_inactive    INTEGER NOT NULL DEFAULT 0,
            longest_stall_s REAL    NOT NULL DEFAULT 0,
            mean_speed_bps  REAL,
            PRIMARY KEY (instance, download_id, first_seen)
        )""",
        "CREATE INDEX outcomes_last_seen ON outcomes (last_seen)",
    ),
    (  # version 2: slow downloads and recurrence; indexes for the per-key questions
        "ALTER TABLE outcomes ADD COLUMN was_slow INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE outcomes ADD COLUMN recurred INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX outcomes_indexer ON outcomes (indexer, last_seen)",
        "CREATE INDEX outcomes_client ON outcomes (download_client, last_seen)",
        "CREATE INDEX outcomes_group ON outcomes (release_group, last_seen)",
    ),
    (  # version 3: the numbers may be empty (one out of SQLite's range is stored so, never lost). SQLite
       # cannot drop NOT NULL in place: the table is rebuilt, its key and indexes with it.
        """CREATE TABLE outcomes_v3 (
            instance        TEXT    NOT NULL,
            download_id     TEXT    NOT NULL,
            title           TEXT    NOT NULL,
            release_group   TEXT,
            indexer         TEXT,
            download_client TEXT,
            protocol        TEXT,
            size            INTEGER DEFAULT 0,
            first_seen      REAL    NOT NULL,
            last_seen       REAL    NOT NULL,
            outcome         TEXT    NOT NULL,
            category        TEXT,
            automatic       INTEGER NOT NULL DEFAULT 0,
            was_stuck       INTEGER NOT NULL DEFAULT 0,
            was_inactive    INTEGER NOT NULL DEFAULT 0,
            was_slow        INTEGER NOT NULL DEFAULT 0,
            longest_stall_s REAL    DEFAULT 0,
            mean_speed_bps  REAL,
            recurred        INTEGER DEFAULT 0,
            PRIMARY KEY (instance, download_id, first_seen)
        )""",
        """INSERT INTO outcomes_v3 (instance, download_id, title, release_group, indexer, download_client, protocol,
            size, first_seen, last_seen, outcome, category, automatic, was_stuck, was_inactive, was_slow,
            longest_stall_s, mean_speed_bps, recurred)
        SELECT instance, download_id, title, release_group, indexer, download_client, protocol,
            size, first_seen, last_seen, outcome, category, automatic, was_stuck, was_inactive, was_slow,
            longest_stall_s, mean_speed_bps, recurred FROM outcomes""",
        "DROP TABLE outcomes",
        "ALTER TABLE outcomes_v3 RENAME TO outcomes",
        "CREATE INDEX outcomes_last_seen ON outcomes (last_seen)",
        "CREATE INDEX outcomes_indexer ON outcomes (indexer, last_seen)",
        "CREATE INDEX outcomes_client ON outcomes (download_client, last_seen)",
        "CREATE INDEX outcomes_group ON outcomes (release_group, last_seen)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
# The columns each version must have, to tell our file from another app's.
COLUMNS_AT = {3: set(COLUMNS), 2: set(COLUMNS), 1: set(COLUMNS) - {"was_slow", "recurred"}}
INT64 = range(-2**63, 2**63)  # what an SQLite INTEGER holds

GROUPINGS = {"indexer": "indexer", "client": "download_client", "instance": "instance", "group": "release_group"}
MAX_PENDING = 100_000  # rows kept in memory while the disk refuses them (~ a few dozen MB at most)


class StatsStore:
    def __init__(self, path: str | os.PathLike, retention_days: float = 365, clock=None,
                 max_pending: int = MAX_PENDING) -> None:
        self.path = Path(path)
        self.retention_days = retention_days
        self._now = clock.now if clock is not None else time.time
        self._max_pending = max_pending
        self._pending: collections.deque[tuple] = collections.deque()
        self._db: sqlite3.Connection | None = None
        self._failing = False
        # The tracker may ask for stats from another thread than the one adding outcomes.
        self._lock = threading.RLock()
        try:
            self._connect()
        except (sqlite3.Error, OSError) as exc:  # e.g. a read-only disk at startup: retried at each flush
            log.warning("stats database %s cannot be opened yet (%s); will retry", self.path, exc)

    # -- writing ---------------------------------------------------------------------------

    def add(self, outcomes: Iterable[Outcome]) -> None:
        """Queue outcomes in memory; `flush` writes them."""
        with self._lock:
            for outcome in outcomes:
                try:
                    self._pending.append(_row(outcome))
                # One bad row must not block every later flush (ArithmeticError: e.g. int(Decimal("Infinity"))).
                except (TypeError, ValueError, ArithmeticError) as exc:
                    log.warning("not recording outcome %r: %s", getattr(outcome, "download_id", outcome), exc)
            dropped = len(self._pending) - self._max_pending
            if dropped > 0:
                for _ in range(dropped):
                    self._pending.popleft()
                log.warning("stats: more than %d outcomes are waiting for the disk; dropped the oldest %d",
                            self._max_pending, dropped)

    def flush(self) -> bool:
        """Write what is queued in one transaction; False (rows kept) when the disk refuses. Never raises:
        the tracker calls it from its main loop."""
        with self._lock:
            if not self._pending:
                return True
            batch = list(self._pending)
            try:
                self._on_file(lambda db: _insert(db, batch))
            except Exception as exc:  # whatever it is, the rows wait and the tracker goes on
                self._disconnect()  # the next flush reopens from the path: the disk may be back
                expected = isinstance(exc, (sqlite3.Error, OSError))
                if not self._failing:
                    log.warning("stats: cannot write %d outcomes to %s (%s: %s); keeping them for the next flush",
                                len(batch), self.path, type(exc).__name__, exc, exc_info=not expected)
                else:
                    log.debug("stats: still cannot write to %s (%s)", self.path, exc)
                self._failing = True
                return False
            for _ in batch:
                self._pending.popleft()
            if self._failing:
                log.info("stats: %s is writable again; wrote %d queued outcomes", self.path, len(batch))
                self._failing = False
            return True

    def enforce_retention(self) -> int:
        """Delete rows whose last_seen is older than retention_days; the number deleted."""
        with self._lock:
            cutoff = self._now() - self.retention_days * 86400
            try:
                return self._flush_then(lambda db: _delete_before(db, cutoff))
            except (sqlite3.Error, OSError) as exc:
                self._disconnect()
                log.warning("stats: cannot apply retention to %s (%s); will retry", self.path, exc)
                return 0

    def close(self) -> None:
        with self._lock:
            if self._pending and not self.flush():
                log.warning("stats: %d outcomes lost at shutdown: %s is not writable", len(self._pending), self.path)
            self._disconnect()

    # -- reading ---------------------------------------------------------------------------

    def stats(self, since: float, by: str) -> list[dict]:
        """Per-key summary of the stays last seen at or after `since` (SPEC 5 `stats` rows).

        Raises sqlite3.Error / OSError when the database cannot be read at all.
        """
        column = GROUPINGS.get(by)
        if column is None:
            raise ValueError(f"unknown stats grouping {by!r}; choose one of: {', '.join(GROUPINGS)}")
        with self._lock:
            # Flushed first (best effort), so what was just added is counted.
            selected = self._flush_then(lambda db: db.execute(
                f"SELECT {column}, outcome, was_stuck, was_inactive, was_slow, recurred, "
                "last_seen - first_seen, mean_speed_bps FROM outcomes WHERE last_seen >= ?", (since,)).fetchall())
        groups: dict[str, list[tuple]] = {}
        for key, *rest in selected:
            groups.setdefault(key or "(none)", []).append(tuple(rest))
        # Medians need every value of a group, so the grouping is done here, not in SQL.
        rows = []
        for key, members in groups.items():
            durations = [duration / 3600 for outcome, *_, duration, _ in members if outcome == "completed"]
            speeds = [speed for *_, speed in members if speed is not None]
            rows.append({
                "key": key,
                "downloads": len(members),
                "completed": sum(m[0] == "completed" for m in members),
                "removed": sum(m[0] == "removed" for m in members),
                "stuck": sum(bool(m[1]) for m in members),
                "inactive": sum(bool(m[2]) for m in members),
                "slow": sum(bool(m[3]) for m in members),
                "recurring": sum((m[4] or 0) > 0 for m in members),  # an empty count: not known to recur
                "stuck_or_removed": sum(bool(m[1]) or m[0] == "removed" for m in members),
                "median_hours_to_complete": statistics.median(durations) if durations else None,
                "median_speed_bps": statistics.median(speeds) if speeds else None,
            })
        # The worst sources first: the share of downloads that got stuck or had to be removed.
        rows.sort(key=lambda row: (-row["stuck_or_removed"] / row["downloads"], -row["downloads"], row["key"]))
        return rows

    def times_removed(self, instance: str, download_id: str) -> int:
        """How many earlier stays of this download discarr removed: the tracker's `recurred` for a
        download that comes back, even after a tracker restart. Best effort: an unreadable file
        counts as no earlier removal rather than failing the tracker's snapshot."""
        with self._lock:
            outcome = COLUMNS.index("outcome")
            queued = sum(row[0] == instance and row[1] == download_id and row[outcome] == "removed"
                         for row in self._pending)
            try:
                written = self._on_file(lambda db: db.execute(
                    "SELECT COUNT(*) FROM outcomes WHERE instance = ? AND download_id = ? AND outcome = 'removed'",
                    (instance, download_id)).fetchone()[0])
            except (sqlite3.Error, OSError) as exc:
                self._disconnect()
                log.debug("stats: cannot read %s (%s)", self.path, exc)
                written = 0
            return queued + written

    # -- the file --------------------------------------------------------------------------

    def _on_file(self, operation: Callable[[sqlite3.Connection], T], rewrite: list[tuple] | None = None) -> T:
        """operation(db) on the file. When SQLite finds the file damaged, it is set aside and the operation
        done again on a new one (after writing `rewrite` into it): a damaged file never breaks a command
        for good."""
        try:
            return operation(self._connect())
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            self._disconnect()
            self._set_aside(f"damaged ({exc})")
        if rewrite:
            self._pending.extend(rewrite)
            self.flush()
        return operation(self._connect())

    def _flush_then(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Flush (best effort), then `_on_file(operation)`. The rows this flush wrote into a file that the
        operation then finds damaged go again into the new one: they were waiting in memory when this
        call began, and must not go down with that file."""
        batch = list(self._pending)
        return self._on_file(operation, rewrite=batch if self.flush() else None)

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        problem = self._inspect()
        if problem:
            self._set_aside(problem)
        db = self._open()
        try:
            db.execute("PRAGMA journal_mode=WAL")  # a reader never blocks the writer
            db.execute("PRAGMA synchronous=NORMAL")  # with WAL: safe against a crash, fewer fsyncs
            _migrate(db)
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _inspect(self) -> str | None:
        """Why the file at our path is not ours to use, or None. Read-only, because a read-write
        open would replay (and delete) a foreign file's -wal before we could set it aside."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            return _foreign(db) or _quick_check(db)
        except sqlite3.OperationalError:  # locked, unreadable disk: not the file's fault, keep it
            raise
        except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed"
            return f"not a readable SQLite database ({exc})"
        finally:
            db.close()

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly, so one flush is one transaction.
        return sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)

    def _disconnect(self) -> None:
        if self._db is not None:
            with suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def _set_aside(self, problem: str) -> None:
        aside = self.path.with_name(f"{self.path.name}.corrupt-{int(self._now())}")
        for suffix in ("-wal", "-shm"):  # the journal belongs to the old file, never to the new one
            companion = Path(f"{self.path}{suffix}")
            if companion.exists():
                os.replace(companion, f"{aside}{suffix}")
        os.replace(self.path, aside)
        log.warning("stats database %s is %s; moved it to %s and starting a new one", self.path, problem, aside.name)


def _row(outcome: Outcome) -> tuple:
    """The outcome as SQLite values, checked now so a bad one is refused by `add`, not by every flush.
    A number SQLite cannot hold is stored empty; the row is refused only where a column needs it."""
    row = []
    for name in COLUMNS:
        value = getattr(outcome, name)
        if value is None and name in NULLABLE:
            row.append(None)
        elif name in TEXT:
            if not isinstance(value, str):
                raise TypeError(f"{name} must be text, not {type(value).__name__}")
            # SQLite stores UTF-8: a lone surrogate (JSON allows "\ud800") would refuse every later flush.
            row.append(value.encode("utf-8", "replace").decode("utf-8"))
        elif name in INTEGER or name in REAL:
            number = _integer(value) if name in INTEGER else _real(value)
            if number is None and name not in NULLABLE:  # a stay without its times: no period counts it
                raise ValueError(f"{name} must be a finite number, not {value!r:.40}")
            row.append(number)
        else:
            row.append(bool(value))
    return tuple(row)


def _integer(value) -> int | None:
    """value as an SQLite INTEGER, or None when it is infinite, NaN or beyond 64 bits."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    number = int(value)
    return number if number in INT64 else None


def _real(value) -> float | None:
    """value as an SQLite REAL, or None when it is infinite or NaN (SQLite stores NaN as NULL anyway,
    and an infinity would make a median, or the JSON of a stats answer, meaningless)."""
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the largest float
        return None
    return number if math.isfinite(number) else None


def _foreign(db: sqlite3.Connection) -> str | None:
    """Why this file is not a stats database this code may use, or None when it is (or is empty)."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if version == 0:
        return f"another application's SQLite database (tables: {', '.join(tables[:5])})" if tables else None
    if version > SCHEMA_VERSION:
        return f"from a newer discarr (schema version {version}, this one knows {SCHEMA_VERSION})"
    columns = {row[1] for row in db.execute("PRAGMA table_info(outcomes)")}
    if version < 0 or not COLUMNS_AT[version] <= columns:
        return f"not a discarr stats database (schema version {version} without its table)"
    return None


def _quick_check(db: sqlite3.Connection) -> str | None:
    """What PRAGMA quick_check finds wrong with the file's pages, or None when nothing. A damaged page
    otherwise shows only when a query reaches it, after the file was kept as sound."""
    [(result,)] = db.execute("PRAGMA quick_check(1)").fetchall()
    return None if result == "ok" else f"damaged (quick_check: {' '.join(result.split())})"


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file itself is damaged or not a database; locked, read-only or full is not."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+: the (extended) result code
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
    # Python 3.10: both codes raise the base class itself (as do only a few rare others, such as SQLITE_FORMAT);
    # busy, locked, read-only, full and I/O errors raise OperationalError, a constraint IntegrityError.
    return type(exc) is sqlite3.DatabaseError


def _insert(db: sqlite3.Connection, batch: list[tuple]) -> None:
    with _transaction(db):
        # OR IGNORE: the same stay added again (a tracker restart) is not a new row.
        db.executemany(f"INSERT OR IGNORE INTO outcomes ({', '.join(COLUMNS)}) "
                       f"VALUES ({', '.join('?' * len(COLUMNS))})", batch)


def _delete_before(db: sqlite3.Connection, cutoff: float) -> int:
    with _transaction(db):
        return db.execute("DELETE FROM outcomes WHERE last_seen < ?", (cutoff,)).rowcount


def _migrate(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for target in range(version + 1, SCHEMA_VERSION + 1):
        with _transaction(db):  # each step whole or not at all: SQLite DDL is transactional
            for statement in MIGRATIONS[target - 1]:
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {target}")
        if version:
            log.info("stats database migrated to schema version %d", target)


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


# -- release groups --------------------------------------------------------------------------

# Tokens that say "this is a release name": only then is a trailing "-WORD" a group, so
# "Artist - Some-Album" or a plain title ending in a hyphenated word gives none.
_RELEASE_MARKER = re.compile(
    r"(?<![a-z0-9])(?:\d{3,4}[pi]|4k|uhd|web|web-?dl|web-?rip|blu-?ray|bd|bdrip|brrip|remux|hdtv|dvd|dvdrip|"
    r"x26[45]|h\.?26[45]|hevc|avc|xvid|divx|av1|flac|mp3|aac|opus|alac|\d{3}\s?kbps|epub|mobi|azw3|pdf|ebook|"
    r"retail|m4b|audiobook|s\d{1,2}(?:e\d{1,3})?|complete)(?![a-z0-9])", re.IGNORECASE)
# Suffixes that indexers and usenet posters glue after the group: the group is before them.
_TRAILING_JUNK = re.compile(
    r"(?:\s*\[[^\[\]]*\]|\s*\([^()]*\)|\s*\{[^{}]*\}"                    # [rartv], (2007), {tag}
    r"|\.(?:mkv|mp4|m4v|avi|wmv|ts|nzb|torrent|rar|zip|par2|epub|mobi|azw3|pdf|flac|mp3|m4b)"  # extensions
    r"|-(?:Obfuscated|Obfuscation|Scrambled|sample|postbot|xpost|Rakuv[a-z0-9]*|WhiteRev|BUYMORE|AsRequested"
    r"|AlternativeToRequested|GEROV|Z0iDS3N|Chamele0n|4P|4Planet|AlteZachen|RePACKPOST|NZBGeek))\s*$",
    re.IGNORECASE)
# The right half of hyphenated format names (WEB-DL, Blu-Ray, DTS-HD, ...) and language tags.
_NOT_A_GROUP = {"dl", "ray", "rip", "hd", "ma", "x", "es", "en", "eng", "cat", "jap", "ger", "fra", "fre", "ita",
                "lc", "hdrip"}
_ANIME_GROUP = re.compile(r"^\[(?!\s)([A-Za-z0-9][\w .&-]{0,39}?)(?<!\s)\]\s*\S")


def release_group(title: str) -> str | None:
    """The release group named by a release title, or None when the title names none.

    Conservative: a wrong group would blame the wrong uploader, so anything doubtful is None.
    """
    title = (title or "").strip()
    anime = _ANIME_GROUP.match(title)  # "[SubsPlease] Show - 01 (1080p)"
    if anime and not (_RELEASE_MARKER.search(anime.group(1)) or anime.group(1).isdigit()
                      or "www" in anime.group(1).lower()):
        return anime.group(1)
    while True:
        stripped = _TRAILING_JUNK.sub("", title)
        if stripped == title:
            break
        title = stripped
    # The group is glued to the last token ("x264-GROUP"), never after a space ("Artist - Album").
    match = re.search(r"(?<=[^\s-])-([A-Za-z0-9]+)$", title)
    if not match:
        return None
    group, before = match.group(1), title[:match.start()]
    if (group.isdigit() or group.lower() in _NOT_A_GROUP or _RELEASE_MARKER.fullmatch(group)
            or not _RELEASE_MARKER.search(before)):
        return None
    return group
