"""How the tracker stores what it keeps of each download: named fields, at the least memory.

At 100,000 downloads every byte per download is 100 kB, so:
- a queue record is a `StoredRecord` (a NamedTuple: a tuple's memory, with names) of only the
  fields the tracker reads back, its repeated words interned (one copy each);
- a download client's figures are a `ClientFigures` NamedTuple the same way;
- progress points are packed into one `bytes` (`PointSeries`), 32 bytes a point, instead of a
  list of tuples of boxed numbers (about 150 bytes a point);
- holds are a tuple of `Hold`s, and no holds at all is the one shared empty tuple.

Nothing here knows the rules (services.tracker.history): storage only.
"""
from __future__ import annotations

import struct
import sys
from typing import Any, Iterator, NamedTuple

from common.downloads import CLIENT_UNREACHABLE, UNKNOWN_STATUS, classify, download_key, unreachable_client


def _interned(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


class ClientFigures(NamedTuple):
    """A download client's own figures for one torrent or usenet job (protocol.CLIENT_FIELDS and
    CLIENT_OPTIONAL_FIELDS)."""

    name: str
    kind: str
    state: str
    client_state: str
    downloaded: int
    size: int
    download_speed: int
    last_activity: float | None
    seeds: int
    peers: int
    private: bool | None
    stage: str | None = None
    health: float | None = None
    critical_health: float | None = None
    labels: tuple[str, ...] = ()

    @classmethod
    def from_message(cls, figures: dict[str, Any]) -> "ClientFigures":
        stage = figures.get("stage")
        return cls(sys.intern(figures["name"]), sys.intern(figures["kind"]), sys.intern(figures["state"]),
                   sys.intern(figures["client_state"]), figures["downloaded"], figures["size"],
                   figures["download_speed"], figures["last_activity"], figures["seeds"], figures["peers"],
                   figures["private"], _interned(stage), figures.get("health"), figures.get("critical_health"),
                   tuple(sys.intern(label) for label in figures.get("labels", ()) if isinstance(label, str)))

    def as_message(self) -> dict[str, Any]:
        """As the snapshot carried it: the optional fields only when the client said them."""
        fields = self._asdict()
        for name in _OPTIONAL_FIGURES:
            if fields[name] in (None, ()):
                del fields[name]
        if "labels" in fields:
            fields["labels"] = list(self.labels)
        return fields

    @property
    def below_critical_health(self) -> bool:
        """A usenet job missing more articles than its repair data covers: it can never complete."""
        return self.health is not None and self.critical_health is not None and self.health < self.critical_health


_OPTIONAL_FIGURES = ("stage", "health", "critical_health", "labels")  # protocol.CLIENT_OPTIONAL_FIELDS


class StoredRecord(NamedTuple):
    """What the tracker keeps of one queue record: the fields its answers and outcomes read."""

    id: int
    title: str
    status: str
    tracked_state: str | None
    size: int
    sizeleft: int
    eta: str | None
    protocol: str | None
    download_client: str | None
    indexer: str | None
    client: ClientFigures | None
    removed_before: int
    protected_by: str | None = None  # the protection rule it falls under (common.protection), in words

    @classmethod
    def from_message(cls, record: dict[str, Any]) -> "StoredRecord":
        """From a snapshot's record (protocol.RECORD_FIELDS); older checkpoints lack the newer fields."""
        figures = record.get("client")
        return cls(record["id"], record["title"], sys.intern(record["status"]),
                   _interned(record["tracked_state"]), record["size"], record["sizeleft"], record["eta"],
                   _interned(record["protocol"]), _interned(record["download_client"]),
                   _interned(record.get("indexer")), None if figures is None else ClientFigures.from_message(figures),
                   record.get("removed_before", 0), record.get("protected_by"))

    def as_message(self) -> dict[str, Any]:
        """As a checkpoint keeps it: the record's fields by name."""
        fields = self._asdict()
        fields["client"] = None if self.client is None else self.client.as_message()
        if self.protected_by is None:  # an optional field, sent only when a rule protects it
            del fields["protected_by"]
        return fields

    def sizes(self) -> tuple[int, int]:
        """(size, sizeleft): the client's own byte counts when it has them, else the *arr's
        (common.downloads.record_sizes; a stored record never holds an unreachable client)."""
        client = self.client
        if client is not None and client.state != CLIENT_UNREACHABLE:
            return client.size, client.size - client.downloaded
        return self.size, self.sizeleft


class ReceivedRecord(NamedTuple):
    """A snapshot's record as the tracker takes it in: what it stores, and what its rules
    (common.downloads) made of the rest, worked out as the record arrives so the decoded
    map is freed at once instead of a whole snapshot of them piling up."""

    stored: StoredRecord
    key: str                    # its download (common.downloads.download_key)
    activity: str               # common.downloads.classify
    unknown: bool               # the *arr left its status out: no evidence
    unreachable: str | None     # the download client that did not answer for it
    tracked_error: bool         # trackedDownloadStatus "error"


def receive_record(record: dict[str, Any]) -> ReceivedRecord:
    """A checked snapshot record (protocol.RECORD_FIELDS), taken in."""
    return ReceivedRecord(StoredRecord.from_message(record), download_key(record), classify(record),
                          record["status"] == UNKNOWN_STATUS, unreachable_client([record]),
                          record["tracked_status"] == "error")


class Point(NamedTuple):
    """One change point of a download's progress."""

    time: float
    downloaded: int
    progress: float
    activity: str


# Activities by their code in a packed point (common.downloads.classify's words).
ACTIVITIES = ("idle", "active", "finished", "attention", "failed", "unavailable")
_CODES = {activity: float(code) for code, activity in enumerate(ACTIVITIES)}
_POINT = struct.Struct("<dddd")  # time, downloaded (exact below 2**53 bytes), progress, activity code


def _unpacked(values: tuple[float, float, float, float]) -> Point:
    return Point(values[0], int(values[1]), values[2], ACTIVITIES[int(values[3])])


class PointSeries:
    """A download's change points, oldest first, packed into one bytes object.

    Read like a list of `Point`s (index, iterate, reverse, len); changed by `append`,
    `delete_before` and `delete`, each of which packs the series anew (at most a few
    dozen points, a few times a poll: cheaper than the memory a list of tuples costs).
    """

    __slots__ = ("_packed",)

    def __init__(self, points: Any = ()) -> None:
        self._packed = b"".join(_POINT.pack(time, downloaded, progress, _CODES[activity])
                                for time, downloaded, progress, activity in points)

    def __len__(self) -> int:
        return len(self._packed) // _POINT.size

    def __bool__(self) -> bool:
        return bool(self._packed)

    def __getitem__(self, index: int) -> Point:
        return _unpacked(_POINT.unpack_from(self._packed, self._offset(index)))

    def _offset(self, index: int) -> int:
        count = len(self)
        if index < 0:
            index += count
        if not 0 <= index < count:
            raise IndexError("point index out of range")
        return index * _POINT.size

    def __iter__(self) -> Iterator[Point]:
        return map(_unpacked, _POINT.iter_unpack(self._packed))

    def __reversed__(self) -> Iterator[Point]:
        size = _POINT.size
        return (_unpacked(_POINT.unpack_from(self._packed, offset))
                for offset in range(len(self._packed) - size, -1, -size))

    def figures(self) -> Iterator[tuple[float, float, float, float]]:
        """(time, downloaded, progress, activity code) of each point, oldest first, unnamed and unconverted:
        for the loops that run over every download at every ingest."""
        return _POINT.iter_unpack(self._packed)

    def time(self, index: int) -> float:
        """The time of one point, without building the Point."""
        return _POINT.unpack_from(self._packed, index * _POINT.size)[0]

    def times(self) -> list[float]:
        """Every point's time, oldest first."""
        return memoryview(self._packed).cast("d")[0::4].tolist()

    def append(self, point: Point) -> None:
        time, downloaded, progress, activity = point
        self._packed += _POINT.pack(time, downloaded, progress, _CODES[activity])

    def delete_before(self, index: int) -> None:
        """Drop the points before `index`."""
        self._packed = self._packed[index * _POINT.size:]

    def delete(self, index: int) -> None:
        offset = self._offset(index)
        self._packed = self._packed[:offset] + self._packed[offset + _POINT.size:]


class Hold(NamedTuple):
    """A stretch whose time does not count: nobody saw it, or an outage held the clock. `end` is None
    while it lasts."""

    start: float
    end: float | None
