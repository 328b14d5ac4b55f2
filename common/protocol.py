"""The wire protocol: every message every socket carries, and its codec.

A message is a msgpack map ``{"v": PROTOCOL_VERSION, "type": str, "body": map}``.
This module is the only place that packs or unpacks bytes for a socket, so the
version check, the size limits and the shape checks apply everywhere.

Message types (requests name what they ask; every reply is "ok" or "error"):

========== ============= ==================================================
type       direction     body
========== ============= ==================================================
snapshot   poller→tracker ``QueueSnapshot`` as a map (see ``snapshot_body``)
check      →tracker       ``{"offset"?: int, "limit"?: int}``: the current queue as the tracker sees it,
                          `limit` downloads from `offset` (all without a limit; see ``merge_check``)
progress   →tracker       ``{}``: statistics, stuck, inactive, soon stuck, and the latest automatic-cleanup report
auto_report →tracker      ``{"report": map}``: the bot's automatic-cleanup state, for every asker of progress
analyze    →tracker       ``{"include_import_blocked": bool, "include_slow"?: bool}``: removal candidates
history    →tracker       ``{"instance": str, "download_id": str}``: chart points
remove     →poller        ``{"request_id", "expires_at", "requested_by", "dry_run",
                          "include_import_blocked", "include_slow"?, "downloads": [ITEM]}``
                          → ``{"results": [RESULT]}``
stats      →tracker       ``{"days": float, "by": "indexer"|"client"|"instance"|"group"}``: outcomes of the
                          downloads that left the queue (SPEC 5.1)
keep       →tracker       ``{"instance", "download_id", "by", "for_good"}``: never removed (SPEC 4.2)
           →poller        the same: tagged discarr-keep in its client, audited with who kept it
unkeep     →tracker/poller ``{"instance", "download_id", "by"}``: removable again
protection →tracker       ``{"downloads": [{"instance", "download_id"}]}``: why each is protected now
                          (sent with a removal request: a keep made since the preview wins)
log_level  →tracker/poller ``{"level": "DEBUG"|"INFO"|...}``: set its logging level (/verbose)
ping       →any REP       ``{}``
ok         reply          the answer
error      reply          ``{"error": str}``
========== ============= ==================================================
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, Generator

import msgpack

PROTOCOL_VERSION = 1

# A snapshot of 100,000 records is about 25 MB; nothing legitimate is larger.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024 - 1
_MAX_CONTAINER = 1_000_000
# Records unpacked, checked and received between two yields of decode_in_slices: under a millisecond.
DECODE_SLICE_RECORDS = 100


class ProtocolError(ValueError):
    """Bytes that are not a valid message of this protocol version."""


# type -> {field: accepted python types}; extra fields are allowed (forward compatible).
_NUMBER = (int, float)
_OPT_STR = (str, type(None))
SCHEMAS: dict[str, dict[str, tuple[type, ...]]] = {
    "snapshot": {"instance": (str,), "kind": (str,), "taken_at": _NUMBER, "poller": (dict,),
                 "health": (dict,), "clients": (list,), "records": (list, type(None))},
    "check": {},
    "progress": {},
    "analyze": {"include_import_blocked": (bool,)},
    "history": {"instance": (str,), "download_id": (str,)},
    "remove": {"request_id": (str,), "expires_at": _NUMBER, "requested_by": (str,), "dry_run": (bool,),
               "include_import_blocked": (bool,), "downloads": (list,)},
    "log_level": {"level": (str,)},
    "stats": {"days": _NUMBER, "by": (str,)},
    "auto_report": {"report": (dict,)},
    "keep": {"instance": (str,), "download_id": (str,), "by": (str,), "for_good": (bool,)},
    "unkeep": {"instance": (str,), "download_id": (str,), "by": (str,)},
    "protection": {"downloads": (list,)},
    "ping": {},
    "ok": {},
    "error": {"error": (str,)},
}
# type -> {field: accepted python types} for fields a sender may leave out (newer than the first version).
OPTIONAL_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "snapshot": {"complete": (bool,),  # False: the queue was read incompletely; keep what was not seen
                 "removals": (list,)},  # REMOVAL_NOTICE_FIELDS: what this poller removed of the instance lately
    "check": {"offset": (int,), "limit": (int,)},
    "analyze": {"include_slow": (bool,)},
    "remove": {"include_slow": (bool,), "sent_at": _NUMBER,
               "protected": (dict,)},  # "instance/download_id" -> why, as the tracker knew when it was sent
}

# Fields of one normalised queue record inside a snapshot (see services.poller.normalize).
RECORD_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (int,), "download_id": _OPT_STR, "title": (str,), "status": (str,),
    "tracked_status": _OPT_STR, "tracked_state": _OPT_STR, "error_message": _OPT_STR,
    "size": (int,), "sizeleft": (int,), "eta": _OPT_STR, "added": _OPT_STR,
    "protocol": _OPT_STR, "download_client": _OPT_STR, "indexer": _OPT_STR,
    "client": (dict, type(None)),   # the download client's own figures (CLIENT_FIELDS), when it has the torrent
    "removed_before": (int,),       # how often this poller removed this download before: it came back
}

# Record fields a sender may leave out (newer than the first version).
RECORD_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "arr_tags": (list,),        # the labels of the *arr tags on its series, movie, artist or author
    "protected_by": _OPT_STR,   # the protection rule it falls under, in words (common.protection)
}

# The download client's own figures for one torrent (see services.poller.download_clients).
CLIENT_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "kind": (str,), "state": (str,), "client_state": (str,), "downloaded": (int,),
    "size": (int,), "download_speed": (int,), "last_activity": (float, type(None)), "seeds": (int,),
    "peers": (int,), "private": (bool, type(None)),
}

# Client figures a sender may leave out (newer than the first version; usenet clients and labels).
CLIENT_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {
    "stage": _OPT_STR,                          # a usenet job's post-processing stage: "verifying", "repairing", ...
    "health": (float, int, type(None)),         # a usenet job's health, % of its articles there
    "critical_health": (float, int, type(None)),  # below this % it can never complete
    "labels": (list,),                          # its tags, labels and category in the client
}

# The health of one download client, as each snapshot reports it.
CLIENT_HEALTH_FIELDS: dict[str, tuple[type, ...]] = {
    "name": (str,), "kind": (str,), "state": (str,), "error": _OPT_STR,
}
# ... and, with CLEANUP_USENET_FAILED, a usenet client's failed history entries and those this poller removed.
CLIENT_HEALTH_OPTIONAL_FIELDS: dict[str, tuple[type, ...]] = {"failed": (list,), "removed": (list,)}
# One failed entry of a usenet client's history (services.poller.download_clients.failed_job).
FAILED_JOB_FIELDS: dict[str, tuple[type, ...]] = {
    "id": (str,), "history_id": (str,), "title": (str,), "size": (int,), "category": (str,), "state": (str,),
}

# Who sent a snapshot: the tracker routes removals of that instance to `endpoint`, and
# calls the instance stale when no snapshot came well after `next_within` seconds.
POLLER_FIELDS: dict[str, tuple[type, ...]] = {"name": (str,), "endpoint": (str,), "next_within": _NUMBER}

# Fields of one download named in a "remove" request: the ITEM the analysis produced.
REMOVAL_ITEM_FIELDS: dict[str, tuple[type, ...]] = {
    "instance": (str,), "download_id": (str,), "queue_ids": (list,), "title": (str,),
    "category": (str,), "progress": _NUMBER, "size": (int,), "sizeleft": (int,), "reason": (str,),
}

# One download a poller removed lately, as its snapshots tell the tracker (the outcome "removed" in stats).
REMOVAL_NOTICE_FIELDS: dict[str, tuple[type, ...]] = {
    "download_id": (str,), "category": (str,), "requested_by": (str,), "at": _NUMBER,
}

HEALTH_STATES = ("ok", "unreachable", "unauthorized", "bad_response")


@dataclass(frozen=True)
class Message:
    type: str
    body: dict[str, Any]


def _check_fields(where: str, body: dict, fields: dict[str, tuple[type, ...]], optional: bool = False) -> None:
    for name, types in fields.items():
        if name not in body:
            if optional:
                continue
            raise ProtocolError(f"{where}: missing field {name!r}")
        value = body[name]
        # bool is an int in Python; a bool where a number is expected is still wrong.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"{where}: field {name!r} has type {type(value).__name__}")


def validate(message_type: str, body: Any, *, check_records: bool = True) -> None:
    if message_type not in SCHEMAS:
        raise ProtocolError(f"unknown message type {message_type!r}")
    if not isinstance(body, dict):
        raise ProtocolError(f"{message_type}: body must be a map")
    _check_fields(message_type, body, SCHEMAS[message_type])
    _check_fields(message_type, body, OPTIONAL_FIELDS.get(message_type, {}), optional=True)
    if message_type == "snapshot":
        _check_fields("snapshot poller", body["poller"], POLLER_FIELDS)
        health = body["health"]
        if health.get("state") not in HEALTH_STATES:
            raise ProtocolError(f"snapshot: health state must be one of {', '.join(HEALTH_STATES)}")
        for index, client in enumerate(body["clients"]):
            if not isinstance(client, dict):
                raise ProtocolError(f"snapshot: client {index} must be a map")
            _check_fields(f"snapshot client {index}", client, CLIENT_HEALTH_FIELDS)
            _check_fields(f"snapshot client {index}", client, CLIENT_HEALTH_OPTIONAL_FIELDS, optional=True)
            for job_index, job in enumerate(client.get("failed", ())):
                if not isinstance(job, dict):
                    raise ProtocolError(f"snapshot: client {index} failed job {job_index} must be a map")
                _check_fields(f"snapshot client {index} failed job {job_index}", job, FAILED_JOB_FIELDS)
        for index, record in enumerate(body["records"] if check_records and body["records"] else ()):
            _checked_record(index, record)
        for index, notice in enumerate(body.get("removals") or ()):
            if not isinstance(notice, dict):
                raise ProtocolError(f"snapshot: removal {index} must be a map")
            _check_fields(f"snapshot removal {index}", notice, REMOVAL_NOTICE_FIELDS)
    if message_type == "remove":
        for index, item in enumerate(body["downloads"]):
            if not isinstance(item, dict):
                raise ProtocolError(f"remove: download {index} must be a map")
            _check_fields(f"remove download {index}", item, REMOVAL_ITEM_FIELDS)


def _checked_record(index: int, record: Any) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise ProtocolError(f"snapshot: record {index} must be a map")
    _check_fields(f"snapshot record {index}", record, RECORD_FIELDS)
    _check_fields(f"snapshot record {index}", record, RECORD_OPTIONAL_FIELDS, optional=True)
    if record["client"] is not None:
        _check_fields(f"snapshot record {index} client", record["client"], CLIENT_FIELDS)
        _check_fields(f"snapshot record {index} client", record["client"], CLIENT_OPTIONAL_FIELDS, optional=True)
    return record


def encode(message_type: str, body: dict[str, Any] | None = None, *, check_records: bool = True) -> bytes:
    """Pack one message, checked first. `check_records=False` skips a snapshot's records, for a sender
    that built each one field by field (services.poller.normalize); the receiver checks them all."""
    body = {} if body is None else body
    validate(message_type, body, check_records=check_records)
    try:
        return msgpack.packb({"v": PROTOCOL_VERSION, "type": message_type, "body": body}, use_bin_type=True)
    except (OverflowError, TypeError, ValueError) as exc:  # an integer beyond 64 bits, a value msgpack cannot carry
        raise ProtocolError(f"{message_type}: cannot be packed ({exc})") from None


def decode(data: bytes) -> Message:
    """Unpack and check one message; any fault raises ProtocolError."""
    steps = decode_in_slices(data)
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def decode_in_slices(data: bytes, every: int = DECODE_SLICE_RECORDS, *,
                     receive_record: Callable[[dict[str, Any]], Any] | None = None
                     ) -> Generator[None, None, Message]:
    """decode(), as a generator that yields after every `every` records of a snapshot, so the caller
    serves others between slices of a large one instead of making them wait for all of it.
    Returns the Message (`yield from`).

    Each record is checked as soon as it is unpacked; `receive_record` then replaces it by what the
    receiver keeps of it, so a large snapshot's decoded maps never pile up in memory.
    """
    _check_size(data)
    unpacker = _unpacker(data)

    def each(index: int, record: Any) -> Any:
        record = _checked_record(index, record)
        return record if receive_record is None else receive_record(record)
    try:
        envelope = yield from _unpack_map(unpacker, lambda key: key == "body" and _body_in_slices(unpacker, every,
                                                                                                   each))
    except ProtocolError:
        raise
    except Exception as exc:
        raise ProtocolError(f"not a msgpack message ({type(exc).__name__})") from None
    _check_end(unpacker, data)
    message_type, body = _envelope_parts(envelope)
    validate(message_type, body, check_records=False)  # each was checked as it was unpacked
    return Message(message_type, body)


def _body_in_slices(unpacker: msgpack.Unpacker, every: int, each: Callable[[int, Any], Any]
                    ) -> Generator[None, None, Any]:
    return (yield from _unpack_map(unpacker, lambda key: key == "records" and _array_in_slices(unpacker, every,
                                                                                                 each)))


def _unpack_map(unpacker: msgpack.Unpacker, streamed: Callable[[Any], Generator | bool]
                ) -> Generator[None, None, Any]:
    """One map read key by key, the values `streamed` picks read by their own generator."""
    size = _container_header(unpacker.read_map_header)
    if size is None:  # not a map: read whole, and the checks say what is wrong
        return unpacker.unpack()
    result = {}
    for _ in range(size):
        key = unpacker.unpack()
        if not isinstance(key, str):
            raise ProtocolError("map keys must be strings")
        reader = streamed(key)
        result[key] = (yield from reader) if reader else unpacker.unpack()
    return result


def _array_in_slices(unpacker: msgpack.Unpacker, every: int, each: Callable[[int, Any], Any]
                     ) -> Generator[None, None, Any]:
    size = _container_header(unpacker.read_array_header)
    if size is None:
        return unpacker.unpack()
    items = []
    for index in range(size):
        items.append(each(index, unpacker.unpack()))
        if index % every == every - 1:
            yield
    return items


def _container_header(read: Callable[[], int]) -> int | None:
    """The size a container header announces, None when the next value is not that container."""
    try:
        size = read()
    except ValueError as exc:
        if isinstance(exc, (msgpack.FormatError, msgpack.StackError)):
            raise
        return None  # "Unexpected type header": the unpacker has not moved
    if size > _MAX_CONTAINER:
        raise ProtocolError(f"a container of {size} items exceeds the limit of {_MAX_CONTAINER}")
    return size


def _check_size(data: bytes) -> None:
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")


def _unpacker(data: bytes) -> msgpack.Unpacker:
    unpacker = msgpack.Unpacker(
        raw=False, strict_map_key=True, use_list=True, max_buffer_size=MAX_MESSAGE_BYTES,
        max_str_len=MAX_MESSAGE_BYTES, max_bin_len=MAX_MESSAGE_BYTES,
        max_array_len=_MAX_CONTAINER, max_map_len=_MAX_CONTAINER, max_ext_len=0)
    unpacker.feed(data)
    return unpacker


def _check_end(unpacker: msgpack.Unpacker, data: bytes) -> None:
    if unpacker.tell() != len(data):
        raise ProtocolError("trailing bytes after the message")


def _envelope_parts(envelope: Any) -> tuple[str, Any]:
    if not isinstance(envelope, dict):
        raise ProtocolError("message must be a map")
    version = envelope.get("v")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r} is not supported (expected {PROTOCOL_VERSION})")
    message_type = envelope.get("type")
    if not isinstance(message_type, str):
        raise ProtocolError("message has no type")
    return message_type, envelope.get("body")


def removal_request(downloads: list[dict[str, Any]], *, requested_by: str, dry_run: bool,
                    include_import_blocked: bool, now: float, valid_for: float,
                    include_slow: bool = False, protected: dict[str, str] | None = None) -> dict[str, Any]:
    """The body of a "remove" request: a fresh id, so a retry is recognised, the sender's time, and
    `expires_at`: the poller starts nothing after it (`valid_for` is shorter than the sender's wait,
    so a removal never starts after the sender gave up). `protected`: the tracker's answer to
    "protection" for these downloads, asked just before (a keep made since the preview wins)."""
    return {"request_id": uuid.uuid4().hex, "sent_at": now, "expires_at": now + valid_for,
            "requested_by": requested_by, "dry_run": dry_run, "include_import_blocked": include_import_blocked,
            "include_slow": include_slow, "downloads": downloads, "protected": protected or {}}


def protection_query(downloads: list[dict[str, Any]]) -> dict[str, Any]:
    """The body of a "protection" request for these downloads."""
    return {"downloads": [{"instance": item["instance"], "download_id": item["download_id"]} for item in downloads]}


def unanswered(request: dict[str, Any], poller: str) -> list[dict[str, Any]]:
    """The RESULTs of a "remove" request its poller did not answer: each download failed, naming it."""
    return [dict(item, result="failed", detail=f"poller {poller} did not answer; nothing of it was removed")
            for item in request["downloads"]]


def cleanup_analysis(analysis: dict[str, Any], usenet_failed: bool) -> dict[str, Any]:
    """An "analyze" answer as a cleanup by a user offers it: with CLEANUP_USENET_FAILED (`usenet_failed`),
    the usenet clients' failed history entries that no *arr queues are candidates too (never for
    automatic cleanup, which reads the answer as it is)."""
    if not usenet_failed or not analysis.get("usenet_failed"):
        return analysis
    return dict(analysis, candidates=[*analysis["candidates"], *analysis["usenet_failed"]])


def removal_requests(analysis: dict[str, Any], default_endpoint: str, **request: Any) -> dict[str, dict[str, Any]]:
    """One "remove" request per poller, from the tracker's "analyze" answer: endpoint -> body.

    Each instance's downloads go to the poller that owns it (``analysis["pollers"]``);
    an instance no poller has claimed yet goes to `default_endpoint`.
    """
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in analysis["candidates"]:
        endpoint = analysis.get("pollers", {}).get(item["instance"], default_endpoint)
        grouped.setdefault(endpoint, []).append(item)
    return {endpoint: removal_request(items, **request) for endpoint, items in grouped.items()}


# Downloads per "check" answer: a whole queue of 100,000 downloads would not fit in one message.
CHECK_PAGE_SIZE = 5000


def check_page(offset: int) -> dict[str, Any]:
    """The body of a "check" request for the page starting at `offset`."""
    return {"offset": offset, "limit": CHECK_PAGE_SIZE}


def merge_check(whole: dict[str, Any] | None, page: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Add one page of a "check" answer to what came before; returns the whole so far and the
    offset of the next page to ask for (None when every download is there)::

        check, offset = None, 0
        while offset is not None:
            check, offset = merge_check(check, ask("check", check_page(offset)))
    """
    if whole is None:
        whole = page
    else:
        whole["downloads"].extend(page["downloads"])
    have = len(whole["downloads"])
    return whole, (have if page["downloads"] and have < page["tracked"] else None)


def ok(body: dict[str, Any] | None = None) -> bytes:
    return encode("ok", body)


def error(text: str) -> bytes:
    return encode("error", {"error": text})
