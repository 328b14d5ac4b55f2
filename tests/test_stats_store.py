"""The tracker's statistics store (SPEC 5.1), on a real SQLite file in tmp_path."""
from __future__ import annotations

import dataclasses
import logging
import os
import random
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from common.clock import ManualClock
from services.tracker.stats import Outcome, StatsStore, release_group

NOW = 1_700_000_000.0
HOUR = 3600.0
DAY = 86400.0
LOGGER = "services.tracker.stats"


def stay(download_id: str, **changes) -> Outcome:
    """A completed 2-hour torrent download from indexer A via qBittorrent; override what matters."""
    fields = dict(instance="sonarr", download_id=download_id, title=f"Show.S01E01.1080p.WEB.H264-{download_id}",
                  release_group="NTb", indexer="IndexerA", download_client="qBittorrent", protocol="torrent",
                  size=4_000_000_000, first_seen=NOW - 2 * HOUR, last_seen=NOW, outcome="completed", category=None,
                  automatic=False, was_stuck=False, was_inactive=False, was_slow=False, longest_stall_s=0.0,
                  mean_speed_bps=1_000_000.0, recurred=0)
    fields.update(changes)
    return Outcome(**fields)


def rows_in(path) -> list[tuple]:
    """What a user sees opening the file with the sqlite3 shell."""
    with closing(sqlite3.connect(path)) as db:
        return db.execute("SELECT instance, download_id, first_seen, outcome FROM outcomes ORDER BY rowid").fetchall()


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


def sample() -> list[Outcome]:
    """One of each outcome, over two indexers, two clients, two instances, two groups."""
    return [
        stay("c1", first_seen=NOW - 1 * HOUR, mean_speed_bps=2_000_000.0),
        stay("c2", first_seen=NOW - 3 * HOUR, mean_speed_bps=4_000_000.0, release_group="FLUX"),
        stay("r-hand", outcome="removed", category="stuck", was_stuck=True, longest_stall_s=7200.0,
             mean_speed_bps=10.0, indexer="IndexerB"),
        stay("r-auto", outcome="removed", category="inactive", automatic=True, was_inactive=True,
             mean_speed_bps=None, indexer="IndexerB", download_client="Transmission"),
        stay("f1", outcome="failed", was_slow=True, mean_speed_bps=500.0, indexer="IndexerB",
             download_client="Transmission"),
        stay("g1", instance="radarr", outcome="gone", indexer=None, release_group=None, download_client="SABnzbd",
             protocol="usenet", mean_speed_bps=None, first_seen=NOW - 10 * HOUR),
    ]


def test_each_outcome_is_written_once_and_summarised_per_indexer(tmp_path):
    path = tmp_path / "data" / "discarr.sqlite3"  # the directory is created
    store = StatsStore(path)
    store.add(sample())
    assert store.flush() is True

    assert sorted(row[1] for row in rows_in(path)) == ["c1", "c2", "f1", "g1", "r-auto", "r-hand"]
    assert store.stats(0, "indexer") == [
        {"key": "IndexerB", "downloads": 3, "completed": 0, "removed": 2, "stuck": 1, "inactive": 1, "slow": 1,
         "recurring": 0, "stuck_or_removed": 2, "median_hours_to_complete": None, "median_speed_bps": 255.0},
        {"key": "IndexerA", "downloads": 2, "completed": 2, "removed": 0, "stuck": 0, "inactive": 0, "slow": 0,
         "recurring": 0, "stuck_or_removed": 0, "median_hours_to_complete": 2.0, "median_speed_bps": 3_000_000.0},
        {"key": "(none)", "downloads": 1, "completed": 0, "removed": 0, "stuck": 0, "inactive": 0, "slow": 0,
         "recurring": 0, "stuck_or_removed": 0, "median_hours_to_complete": None, "median_speed_bps": None},
    ]
    # What the tracker wrote is what is stored, field for field.
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        auto = dict(db.execute("SELECT * FROM outcomes WHERE download_id = 'r-auto'").fetchone())
    assert auto == {**dataclasses.asdict(sample()[3]), "automatic": 1, "was_stuck": 0, "was_inactive": 1,
                    "was_slow": 0}
    store.close()


def test_stats_per_client_instance_and_group(tmp_path):
    store = StatsStore(tmp_path / "stats.sqlite3")
    store.add(sample())  # stats() flushes first: what was just added is counted

    by_client = {row["key"]: row for row in store.stats(0, "client")}
    assert [row["key"] for row in store.stats(0, "client")] == ["Transmission", "qBittorrent", "SABnzbd"]
    assert by_client["Transmission"]["removed"] == 1 and by_client["Transmission"]["inactive"] == 1
    assert by_client["qBittorrent"]["downloads"] == 3 and by_client["qBittorrent"]["stuck"] == 1
    assert by_client["qBittorrent"]["median_speed_bps"] == 2_000_000.0  # of 10, 2e6, 4e6

    by_instance = store.stats(0, "instance")
    assert [(row["key"], row["downloads"], row["completed"]) for row in by_instance] == [
        ("sonarr", 5, 2), ("radarr", 1, 0)]
    assert by_instance[0]["median_hours_to_complete"] == 2.0  # of 1 h and 3 h

    by_group = {row["key"]: row for row in store.stats(0, "group")}
    assert by_group.keys() == {"NTb", "FLUX", "(none)"}
    assert (by_group["NTb"]["downloads"], by_group["NTb"]["removed"]) == (4, 2)
    assert by_group["FLUX"]["median_hours_to_complete"] == 3.0
    store.close()


def test_stats_counts_only_the_period_and_rejects_an_unknown_grouping(tmp_path):
    store = StatsStore(tmp_path / "stats.sqlite3")
    store.add([stay("old", first_seen=NOW - 40 * DAY, last_seen=NOW - 30 * DAY), stay("new")])
    assert [row["downloads"] for row in store.stats(NOW - 7 * DAY, "indexer")] == [1]
    assert [row["downloads"] for row in store.stats(NOW - 30 * DAY, "indexer")] == [2]  # inclusive
    assert store.stats(NOW + 1, "indexer") == []
    with pytest.raises(ValueError) as raised:
        store.stats(0, "tracker")
    message = str(raised.value)
    assert "\n" not in message and all(choice in message for choice in ("indexer", "client", "instance", "group"))
    store.close()


def test_a_recurring_download_is_one_row_per_stay(tmp_path):
    path = tmp_path / "stats.sqlite3"
    store = StatsStore(path)
    store.add([stay("abc", first_seen=NOW - 30 * HOUR, last_seen=NOW - 20 * HOUR, outcome="removed",
                    category="stuck", was_stuck=True, recurred=0)])
    assert store.times_removed("sonarr", "abc") == 1  # known before it is even written
    store.flush()
    store.add([stay("abc", first_seen=NOW - 10 * HOUR, last_seen=NOW - 8 * HOUR, outcome="removed",
                    category="stuck", was_stuck=True, automatic=True, recurred=1),
               stay("abc", first_seen=NOW - 4 * HOUR, last_seen=NOW, recurred=2)])
    store.close()

    assert [row[1:] for row in rows_in(path)] == [
        ("abc", NOW - 30 * HOUR, "removed"), ("abc", NOW - 10 * HOUR, "removed"), ("abc", NOW - 4 * HOUR, "completed")]
    store = StatsStore(path)  # after a tracker restart, the store still knows
    assert store.times_removed("sonarr", "abc") == 2
    assert store.times_removed("radarr", "abc") == 0
    [row] = store.stats(0, "indexer")
    assert (row["downloads"], row["completed"], row["removed"], row["stuck"], row["recurring"]) == (3, 1, 2, 2, 2)
    assert row["median_hours_to_complete"] == 4.0
    store.close()


def test_the_same_stay_added_again_writes_no_duplicate_and_reopening_loses_nothing(tmp_path):
    path = tmp_path / "stats.sqlite3"
    store = StatsStore(path)
    store.add(sample())
    store.add(sample()[:2])  # twice in one batch
    store.flush()
    before = store.stats(0, "client")
    store.close()

    store = StatsStore(path)  # a tracker restart that reports the same departures again
    store.add(sample())
    assert store.flush() is True
    assert len(rows_in(path)) == 6
    assert store.stats(0, "client") == before
    store.close()


def test_five_thousand_outcomes_are_one_transaction(tmp_path, monkeypatch):
    statements: list[str] = []
    real_connect = sqlite3.connect

    def traced_connect(*args, **kwargs):
        connection = real_connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(sqlite3, "connect", traced_connect)
    path = tmp_path / "stats.sqlite3"
    store = StatsStore(path)
    statements.clear()  # the schema's creation is not the point here

    store.add(stay(f"d{n}", first_seen=NOW - n) for n in range(5000))
    assert statements == []  # add() only queues
    assert store.flush() is True
    assert statements[0].startswith("BEGIN") and statements[-1] == "COMMIT"
    assert sum(s.startswith("INSERT") for s in statements) == 5000
    assert sum(s in ("COMMIT", "ROLLBACK") or s.startswith("BEGIN") for s in statements) == 2
    assert store.flush() is True and len(statements) == 5002  # nothing left to write
    store.close()
    assert len(rows_in(path)) == 5000


@pytest.mark.parametrize("make_file, why", [
    (lambda path: path.write_bytes(random.Random(7).randbytes(16384)), "not a readable SQLite database"),
    (lambda path: _sqlite(path, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)",
                          "INSERT INTO moz_places (url) VALUES ('https://example.org')"),
     "another application's SQLite database"),
    (lambda path: _sqlite(path, "CREATE TABLE outcomes (id INTEGER)", "PRAGMA user_version = 9"),
     "newer discarr"),
    (lambda path: _sqlite(path, "CREATE TABLE settings (k TEXT, v TEXT)", "PRAGMA user_version = 1"),
     "not a discarr stats database"),
], ids=["random-bytes", "foreign-sqlite", "newer-version", "foreign-with-version"])
def test_a_file_that_is_not_ours_is_set_aside_with_one_warning(tmp_path, caplog, make_file, why):
    path = tmp_path / "discarr.sqlite3"
    make_file(path)
    (tmp_path / "discarr.sqlite3-wal").write_bytes(b"stale journal of the old file")
    original = path.read_bytes()

    caplog.set_level(logging.INFO, logger=LOGGER)
    store = StatsStore(path, clock=ManualClock(NOW))
    store.add([stay("x")])
    assert store.flush() is True
    assert store.stats(0, "indexer")[0]["downloads"] == 1

    [warning] = warnings(caplog)
    assert why in warning and "discarr.sqlite3.corrupt-1700000000" in warning
    aside = tmp_path / "discarr.sqlite3.corrupt-1700000000"
    assert aside.read_bytes() == original  # kept for the user, untouched
    assert (tmp_path / "discarr.sqlite3.corrupt-1700000000-wal").read_bytes() == b"stale journal of the old file"
    assert [row[1] for row in rows_in(path)] == ["x"]
    store.close()


def _sqlite(path, *statements):
    db = sqlite3.connect(path)
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def filled(path, rows: int = 3000) -> None:
    """A sound stats file of a few hundred pages, closed."""
    store = StatsStore(path)
    store.add(stay(f"old{n}", first_seen=NOW - n) for n in range(rows))
    assert store.flush() is True
    store.close()


def damage(path) -> None:
    """Garbage over every page after the second: the header and the schema still read (so the file
    looks like ours), the rows do not, as after a failing disk or a copy cut short."""
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
    with open(path, "r+b") as handle:
        handle.seek(2 * page)
        handle.write(random.Random(3).randbytes(path.stat().st_size - 2 * page))
    with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] > 0
        with pytest.raises(sqlite3.DatabaseError, match="malformed"):
            db.execute("SELECT * FROM outcomes").fetchall()


def test_a_file_with_damaged_pages_is_set_aside_at_start(tmp_path, caplog):
    path = tmp_path / "discarr.sqlite3"
    filled(path)
    damage(path)
    original = path.read_bytes()

    caplog.set_level(logging.INFO, logger=LOGGER)
    store = StatsStore(path, clock=ManualClock(NOW))
    [warning] = warnings(caplog)
    assert "discarr.sqlite3.corrupt-1700000000" in warning
    assert (tmp_path / "discarr.sqlite3.corrupt-1700000000").read_bytes() == original  # kept for the user
    store.add([stay("new")])
    assert [row["downloads"] for row in store.stats(0, "indexer")] == [1]
    store.close()

    store = StatsStore(path, clock=ManualClock(NOW))  # the next start finds a sound file
    assert [row["downloads"] for row in store.stats(0, "indexer")] == [1]
    assert len(warnings(caplog)) == 1
    store.close()


# Each way the tracker touches the file, and what it answers once the damaged file is replaced.
ON_A_DAMAGED_FILE = {
    "stats": (lambda store: [row["downloads"] for row in store.stats(0, "indexer")], [2]),
    "flush": (lambda store: store.flush(), True),
    "times_removed": (lambda store: store.times_removed("sonarr", "waiting-2"), 1),
    "enforce_retention": (lambda store: store.enforce_retention(), 0),
}


@pytest.mark.parametrize("operation", ON_A_DAMAGED_FILE)
def test_pages_damaged_while_running_are_set_aside_and_the_waiting_rows_kept(tmp_path, caplog, operation):
    path = tmp_path / "discarr.sqlite3"
    filled(path)
    store = StatsStore(path, clock=ManualClock(NOW))  # sound when opened
    damage(path)
    caplog.set_level(logging.INFO, logger=LOGGER)
    store.add([stay("waiting-1"), stay("waiting-2", outcome="removed", category="stuck")])

    call, answer = ON_A_DAMAGED_FILE[operation]
    assert call(store) == answer
    [warning] = warnings(caplog)
    assert "discarr.sqlite3.corrupt-1700000000" in warning
    assert (tmp_path / "discarr.sqlite3.corrupt-1700000000").exists()
    # The new file answers, with the rows that were waiting in memory; never a stats command broken for good.
    assert [row["downloads"] for row in store.stats(0, "indexer")] == [2]
    assert store.times_removed("sonarr", "waiting-2") == 1
    store.close()
    assert sorted(row[1] for row in rows_in(path)) == ["waiting-1", "waiting-2"]
    assert len(warnings(caplog)) == 1


def test_an_unwritable_data_directory_is_not_fatal_and_rows_wait_for_it(tmp_path, caplog):
    data = tmp_path / "data"
    path = data / "discarr.sqlite3"
    store = StatsStore(path)
    store.add([stay("before")])
    store.close()

    # The data directory disappears behind a regular file (an unmounted or broken volume).
    data.rename(tmp_path / "data.away")
    data.write_text("not a directory")
    caplog.set_level(logging.INFO, logger=LOGGER)
    store = StatsStore(path)  # not fatal
    store.add([stay("during-1"), stay("during-2")])
    assert store.flush() is False
    assert store.flush() is False
    assert len(warnings(caplog)) == 2  # one when opening, one for the first failed flush; no flood
    assert str(path) in warnings(caplog)[1] and "2 outcomes" in warnings(caplog)[1]

    data.unlink()
    (tmp_path / "data.away").rename(data)
    assert store.flush() is True
    assert sorted(row[1] for row in rows_in(path)) == ["before", "during-1", "during-2"]
    assert any("writable again" in r.getMessage() for r in caplog.records if r.name == LOGGER)
    store.close()


def test_a_full_disk_on_flush_keeps_the_rows_for_a_later_flush(tmp_path, monkeypatch, caplog):
    connections: list[sqlite3.Connection] = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: connections.append(real_connect(*a, **k))
                        or connections[-1])
    path = tmp_path / "stats.sqlite3"
    store = StatsStore(path)
    store.add([stay("first")])
    assert store.flush() is True

    # The open connection may not grow the file any more: SQLite reports SQLITE_FULL, as on a full disk.
    opened = connections[-1]
    pages = opened.execute("PRAGMA page_count").fetchone()[0]
    opened.execute(f"PRAGMA max_page_count = {pages}")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store.add(stay(f"big{n}", title="x" * 2000) for n in range(200))
    assert store.flush() is False
    assert "full" in warnings(caplog)[0]
    assert [row[1] for row in rows_in(path)] == ["first"]  # the failed batch left nothing half-written

    # The store reopened the file for the next flush; with room again, all 200 are written.
    assert store.flush() is True
    assert connections[-1] is not opened
    assert len(rows_in(path)) == 201
    store.close()


def test_rows_kept_for_an_unwritable_disk_are_bounded(tmp_path, caplog):
    (tmp_path / "data").write_text("not a directory")
    store = StatsStore(tmp_path / "data" / "stats.sqlite3", max_pending=3)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store.add([stay(f"d{n}") for n in range(5)])
    assert any("dropped the oldest 2" in message for message in warnings(caplog))
    assert store.flush() is False
    (tmp_path / "data").unlink()
    assert store.flush() is True
    assert [row[1] for row in rows_in(tmp_path / "data" / "stats.sqlite3")] == ["d2", "d3", "d4"]
    store.close()


def test_a_malformed_outcome_is_refused_without_blocking_the_others(tmp_path, caplog):
    store = StatsStore(tmp_path / "stats.sqlite3")
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store.add([stay("good-1"), stay("bad", title=None), stay("bad-size", size="lots"), stay("good-2")])
    assert len(warnings(caplog)) == 2
    assert store.flush() is True
    assert [row[1] for row in rows_in(tmp_path / "stats.sqlite3")] == ["good-1", "good-2"]
    store.close()


def test_rows_flushed_into_a_file_that_stats_then_finds_damaged_go_into_the_new_one(tmp_path, caplog):
    path = tmp_path / "discarr.sqlite3"
    filled(path)
    store = StatsStore(path, clock=ManualClock(NOW))
    # Only the first leaf of the table is damaged: an insert (at the other end) succeeds, a full scan fails.
    with closing(sqlite3.connect(path)) as db:
        try:
            [(page, size)] = db.execute("SELECT pageno, pgsize FROM dbstat WHERE name = 'outcomes' "
                                        "AND pagetype = 'leaf' ORDER BY pageno LIMIT 1").fetchall()
        except sqlite3.OperationalError:
            pytest.skip("this SQLite has no dbstat table to find a leaf page with")
    with open(path, "r+b") as handle:
        handle.seek((page - 1) * size)
        handle.write(random.Random(5).randbytes(size))
    caplog.set_level(logging.INFO, logger=LOGGER)
    store.add([stay("waiting-1"), stay("waiting-2")])

    assert [row["downloads"] for row in store.stats(0, "indexer")] == [2]
    [warning] = warnings(caplog)
    assert "discarr.sqlite3.corrupt-1700000000" in warning
    store.close()
    assert sorted(row[1] for row in rows_in(path)) == ["waiting-1", "waiting-2"]


def test_numbers_out_of_sqlites_range_are_stored_empty_with_the_rows_around_them(tmp_path, caplog):
    path = tmp_path / "stats.sqlite3"
    store = StatsStore(path)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    store.add([stay("before"),
               stay("beyond-int64", size=10**20),
               stay("below-int64", size=-(2**63) - 1),
               stay("largest-int64", size=2**63 - 1, recurred=10**19),
               stay("infinite-speed", mean_speed_bps=float("inf"), longest_stall_s=float("-inf")),
               stay("nan-stall", longest_stall_s=float("nan"), mean_speed_bps=float("nan")),
               # Without a time a stay can be neither counted in a period nor expired: refused, alone.
               stay("no-time", last_seen=float("nan")),
               stay("after")])
    [warning] = warnings(caplog)
    assert "no-time" in warning
    assert store.flush() is True
    assert store.flush() is True  # nothing left behind to fail the next one

    with closing(sqlite3.connect(path)) as db:
        stored = {download_id: tuple(rest) for download_id, *rest in db.execute(
            "SELECT download_id, size, mean_speed_bps, longest_stall_s, recurred FROM outcomes")}
    assert stored == {
        "before": (4_000_000_000, 1_000_000.0, 0.0, 0),
        "beyond-int64": (None, 1_000_000.0, 0.0, 0),
        "below-int64": (None, 1_000_000.0, 0.0, 0),
        "largest-int64": (2**63 - 1, 1_000_000.0, 0.0, None),
        "infinite-speed": (4_000_000_000, None, None, 0),
        "nan-stall": (4_000_000_000, None, None, 0),
        "after": (4_000_000_000, 1_000_000.0, 0.0, 0),
    }
    [row] = store.stats(0, "indexer")  # empty fields are skipped, not a failed median
    assert (row["downloads"], row["recurring"], row["median_speed_bps"], row["median_hours_to_complete"]) == (
        7, 0, 1_000_000.0, 2.0)
    store.close()


def test_an_unexpected_error_while_writing_keeps_the_rows_and_never_escapes_flush(tmp_path, monkeypatch, caplog):
    class Refusing(sqlite3.Connection):
        """What executemany raised for an integer beyond 64 bits, before rows were checked."""
        refuse = True

        def executemany(self, *args):
            if Refusing.refuse:
                raise OverflowError("Python int too large to convert to SQLite INTEGER")
            return super().executemany(*args)

    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, factory=Refusing, **k))
    path = tmp_path / "stats.sqlite3"
    store = StatsStore(path)
    store.add([stay("a"), stay("b")])
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert store.flush() is False
    assert store.flush() is False
    [warning] = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert "OverflowError" in warning.getMessage() and warning.exc_info  # with its traceback, once

    Refusing.refuse = False
    assert store.flush() is True
    assert sorted(row[1] for row in rows_in(path)) == ["a", "b"]
    store.close()


def test_retention_deletes_only_rows_older_than_the_setting(tmp_path):
    clock = ManualClock(NOW)
    path = tmp_path / "stats.sqlite3"
    store = StatsStore(path, retention_days=30, clock=clock)
    store.add([stay("31-days", first_seen=NOW - 32 * DAY, last_seen=NOW - 31 * DAY),
               # started long ago but seen 29 days ago: kept, retention goes by last_seen
               stay("29-days", first_seen=NOW - 40 * DAY, last_seen=NOW - 29 * DAY),
               stay("today")])
    assert store.enforce_retention() == 1
    assert sorted(row[1] for row in rows_in(path)) == ["29-days", "today"]
    assert store.enforce_retention() == 0

    clock.advance(2 * DAY)
    assert store.enforce_retention() == 1
    assert [row[1] for row in rows_in(path)] == ["today"]
    store.close()


# The first schema, as version 1 of discarr wrote it (kept here verbatim, not imported).
V1_DDL = """
CREATE TABLE outcomes (
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
);
CREATE INDEX outcomes_last_seen ON outcomes (last_seen);
PRAGMA user_version = 1;
"""


def test_a_version_1_file_is_migrated_and_its_rows_survive(tmp_path, caplog):
    path = tmp_path / "discarr.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_DDL)
    db.executemany(
        "INSERT INTO outcomes (instance, download_id, title, release_group, indexer, download_client, protocol, "
        "size, first_seen, last_seen, outcome, category, automatic, was_stuck, was_inactive, longest_stall_s, "
        "mean_speed_bps) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [("sonarr", "old-1", "Show.S01E01.720p.HDTV.x264-KILLERS", "KILLERS", "IndexerA", "qBittorrent",
          "torrent", 1_000_000, NOW - 3 * HOUR, NOW - HOUR, "completed", None, 0, 0, 0, 60.0, 5000.0),
         ("sonarr", "old-2", "Show.S01E02.720p.HDTV.x264-KILLERS", "KILLERS", "IndexerA", "qBittorrent",
          "torrent", 1_000_000, NOW - 9 * HOUR, NOW - HOUR, "removed", "stuck", 1, 1, 0, 7200.0, None)])
    db.commit()
    db.close()

    caplog.set_level(logging.INFO, logger=LOGGER)
    store = StatsStore(path)
    assert warnings(caplog) == []  # an older version of ours is upgraded, never set aside
    assert not list(tmp_path.glob("*.corrupt-*"))
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert db.execute("SELECT download_id, was_slow, recurred FROM outcomes ORDER BY download_id").fetchall() == [
            ("old-1", 0, 0), ("old-2", 0, 0)]
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"outcomes_last_seen", "outcomes_indexer", "outcomes_client", "outcomes_group"} <= indexes

    store.add([stay("new", was_slow=True, recurred=1, indexer="IndexerA")])
    [row] = store.stats(0, "indexer")
    assert (row["downloads"], row["completed"], row["removed"], row["stuck"], row["slow"], row["recurring"]) == (
        3, 2, 1, 1, 1, 1)
    store.close()
    StatsStore(path).close()  # opening the migrated file again changes nothing
    assert len(rows_in(path)) == 3


# The second schema, as version 2 of discarr left it: version 1 and its ALTERs (verbatim, not imported).
V2_DDL = V1_DDL.replace("PRAGMA user_version = 1;", "") + """
ALTER TABLE outcomes ADD COLUMN was_slow INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outcomes ADD COLUMN recurred INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outcomes_indexer ON outcomes (indexer, last_seen);
CREATE INDEX outcomes_client ON outcomes (download_client, last_seen);
CREATE INDEX outcomes_group ON outcomes (release_group, last_seen);
PRAGMA user_version = 2;
"""


def test_a_version_2_file_is_migrated_to_take_empty_numbers_and_its_rows_survive(tmp_path, caplog):
    path = tmp_path / "discarr.sqlite3"
    old = [dataclasses.asdict(stay("old-1", was_slow=True, recurred=2, longest_stall_s=60.0)),
           dataclasses.asdict(stay("old-2", outcome="removed", category="stuck", automatic=True, was_stuck=True,
                                   mean_speed_bps=None, release_group=None))]
    with closing(sqlite3.connect(path)) as db:
        db.executescript(V2_DDL)
        db.executemany(f"INSERT INTO outcomes ({', '.join(old[0])}) VALUES ({', '.join('?' * len(old[0]))})",
                       [tuple(row.values()) for row in old])
        db.commit()

    caplog.set_level(logging.INFO, logger=LOGGER)
    store = StatsStore(path)
    assert warnings(caplog) == []
    assert not list(tmp_path.glob("*.corrupt-*"))
    with closing(sqlite3.connect(path)) as db:
        db.row_factory = sqlite3.Row
        assert db.execute("PRAGMA user_version").fetchone()[0] == 3
        assert [dict(row) for row in db.execute("SELECT * FROM outcomes ORDER BY download_id")] == old
        not_null = {row["name"]: row["notnull"] for row in db.execute("PRAGMA table_info(outcomes)")}
        assert not_null["size"] == not_null["longest_stall_s"] == not_null["mean_speed_bps"] == 0
        assert not_null["recurred"] == 0
        assert not_null["instance"] == not_null["first_seen"] == not_null["last_seen"] == not_null["outcome"] == 1
        indexes = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"outcomes_last_seen", "outcomes_indexer", "outcomes_client", "outcomes_group"} <= indexes

    store.add([stay("old-1"),  # the same stay again: the rebuilt table still knows its key
               stay("new", size=10**20)])
    assert store.flush() is True
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT download_id, size FROM outcomes ORDER BY download_id").fetchall() == [
            ("new", None), ("old-1", 4_000_000_000), ("old-2", 4_000_000_000)]
    [row] = store.stats(0, "indexer")
    assert (row["downloads"], row["completed"], row["removed"], row["slow"], row["recurring"]) == (3, 2, 1, 1, 1)
    store.close()
    StatsStore(path).close()  # opening the migrated file again changes nothing
    assert len(rows_in(path)) == 3


@pytest.mark.parametrize("title, group", [
    # the examples of the brief
    ("Severance.S02E07.1080p.ATVP.WEB-DL.DDP5.1.H.264-NTb", "NTb"),
    ("Movie.2023.2160p.UHD.BluRay.x265-TERMiNAL", "TERMiNAL"),
    ("Radiohead - In Rainbows (2007) [FLAC]", None),
    ("Show S01E01", None),
    # titles from real queues (tests/fixtures)
    ("Severance.S02E07.1080p.WEB.H264-SuccessfulCrab", "SuccessfulCrab"),
    ("Severance.S02E08.2160p.ATVP.WEB-DL.DDP5.1.DV.H.265-NTb", "NTb"),
    ("Hard.2020.S01.1080p.WEB-DL.DD2.0.H264-RK", "RK"),
    ("The.Bear.S03E01.Tomorrow.1080p.HULU.WEB-DL.DDP5.1.H.264-NTb.mkv", "NTb"),
    ("Jamie.Cooks.Spring.S01E02.XviD-AFG[EZTVx.to].avi", "AFG"),
    ("The.Seven.Deadly.Sins-Prisoners.of.the.Sky.1080p.Dual.Audio.BD.Remux.DTS-HD.MA-TTGA", "TTGA"),
    ("Yamada-kun.and.the.Seven.Witches.S00.480p.DVDRip.Opus2.0.x264-Headpatter", "Headpatter"),
    ("SOUTH.PARK.THE.END.OF.OBESITY.2024.2160p.WEB.H265-ThistleQuokkaOfScientificChampagne",
     "ThistleQuokkaOfScientificChampagne"),
    ("Some.Movie.1.Has.A.Title-1080P", None),  # a resolution, not a group
    ("Resident Alien [2024] S03E02 Ustunluk 1080p Netflix.WEBDL H264 EAC3 TSRG", None),  # no "-GROUP"
    ("Saijaku Muhai no Bahamut [BDRip 1920x1080 x264 FLAC] [Exp]", None),
    ("Hail The Sun - Mental Knife [2018][320 KBPS][Pradyutvam]", None),
    ("45502c242d89346414cd96f06b97e96da38b09ea", None),  # an obfuscated usenet name
    # season packs
    ("The.Bear.S03.1080p.HULU.WEB-DL.DDP5.1.H.264-NTb", "NTb"),
    ("The.Hour.UK.2011.S01.1080p.BluRay.x264-BTN", "BTN"),
    ("Show.Name.S01-S03.COMPLETE.1080p.BluRay.x264-GROUP", "GROUP"),
    # tracker tags and extensions after the group
    ("Show.S01E01.720p.HDTV.x264-KILLERS[rartv]", "KILLERS"),
    ("Show.S01E01.720p.HDTV.x264-KILLERS[eztv].mkv", "KILLERS"),
    # usenet posting suffixes
    ("Show.S05E10.1080p.WEB.H264-GROUP-Obfuscated", "GROUP"),
    ("Show.S05E10.1080p.WEB.H264-GROUP-xpost", "GROUP"),
    ("Movie.2019.1080p.BluRay.REMUX.AVC.DTS-HD.MA.5.1-FGT", "FGT"),
    # spaces instead of dots; music and books
    ("Some Movie 2020 1080p BluRay x264-GROUP", "GROUP"),
    ("Radiohead-In_Rainbows-WEB-2007-ENRiCH", "ENRiCH"),
    ("Author.-.Title.2020.RETAIL.EPUB.eBook-GROUP", "GROUP"),
    ("Author - Title (2020) [epub]", None),
    ("Movie (2020) [1080p] [WEBRip] [5.1] [YTS.MX]", None),
    # anime: the group leads in brackets
    ("[SubsPlease] Sousou no Frieren - 01 (1080p) [F02B9CEC].mkv", "SubsPlease"),
    ("[Erai-raws] Show - 01 [1080p][Multiple Subtitle].mkv", "Erai-raws"),
    ("[BDRip 1080p] Show - 01", None),
    # the right half of a format name is no group
    ("Movie.2020.1080p.WEB-DL", None),
    ("Movie.2019.720p.Blu-Ray", None),
    ("Movie.2019.1080p.BluRay.DTS-HD", None),
    ("The Amazing Spider-Man", None),
    ("", None),
])
def test_release_group_on_real_titles(title, group):
    assert release_group(title) == group


def test_rows_flushed_before_the_tracker_is_killed_are_kept(tmp_path):
    """A killed tracker leaves a WAL file behind; the next start reads it as its own, never as corrupt."""
    path = tmp_path / "discarr.sqlite3"
    script = (
        "import os, sys\n"
        "from services.tracker.stats import StatsStore\n"
        "from tests.test_stats_store import stay\n"
        "store = StatsStore(sys.argv[1])\n"
        "store.add([stay('killed-after-flush')])\n"
        "assert store.flush()\n"
        "store.add([stay('never-flushed')])\n"
        "os._exit(0)  # no close(), no checkpoint\n")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60,
                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert (tmp_path / "discarr.sqlite3-wal").exists()

    store = StatsStore(path)
    assert [row["downloads"] for row in store.stats(0, "indexer")] == [1]
    assert not list(tmp_path.glob("*.corrupt-*"))
    store.close()


def test_a_title_with_a_lone_surrogate_is_stored_and_blocks_no_later_row(tmp_path):
    # JSON allows "\ud800" in a title; SQLite stores UTF-8, which cannot hold it.
    store = StatsStore(tmp_path / "stats.sqlite3")
    store.add([stay("A", title="Show.\ud800.S01E01"), stay("B")])
    assert store.flush() is True
    store.add([stay("C")])
    assert store.flush() is True
    with sqlite3.connect(tmp_path / "stats.sqlite3") as db:
        assert sorted(row[0] for row in db.execute("SELECT download_id FROM outcomes")) == ["A", "B", "C"]
    store.close()
