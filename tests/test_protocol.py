"""The codec: round trips, versions, shapes and size limits."""
import msgpack
import pytest

from common import protocol
from common.protocol import ProtocolError, decode, encode


def record(**fields):
    base = {"id": 1, "download_id": "ABC", "title": "Show.S01E01", "status": "downloading",
            "tracked_status": "ok", "tracked_state": "downloading", "error_message": None,
            "size": 100, "sizeleft": 50, "eta": None, "added": None, "protocol": "torrent",
            "download_client": "qBittorrent"}
    base.update(fields)
    return base


def snapshot(records):
    return {"instance": "sonarr", "kind": "sonarr", "taken_at": 1.5,
            "poller": {"name": "poller", "endpoint": "tcp://127.0.0.1:5557", "next_within": 30},
            "health": {"state": "ok", "error": None}, "records": records}


def test_round_trip_carries_the_version():
    data = encode("snapshot", snapshot([record()]))
    assert msgpack.unpackb(data)["v"] == protocol.PROTOCOL_VERSION
    message = decode(data)
    assert message.type == "snapshot"
    assert message.body["records"][0]["title"] == "Show.S01E01"


def test_a_message_of_another_version_is_refused_clearly():
    data = msgpack.packb({"v": 99, "type": "ping", "body": {}})
    with pytest.raises(ProtocolError, match="protocol version 99 is not supported"):
        decode(data)


@pytest.mark.parametrize("data, why", [
    (b"\xc1garbage", "not a msgpack message"),
    (b"", "not a msgpack message"),
    (msgpack.packb({"v": 1, "type": "ping", "body": {}}) + b"x", "trailing bytes"),
    (msgpack.packb([1, 2, 3]), "must be a map"),
    (msgpack.packb({"v": 1, "body": {}}), "no type"),
    (msgpack.packb({"v": 1, "type": "launch", "body": {}}), "unknown message type"),
    (msgpack.packb({"v": 1, "type": "history", "body": {"instance": "sonarr"}}), "missing field 'download_id'"),
    (msgpack.packb({"v": 1, "type": "analyze", "body": {"include_import_blocked": 1}}), "has type int"),
    (msgpack.packb({"v": 1, "type": "snapshot", "body": dict(snapshot([record(size="big")]))}),
     "record 0: field 'size' has type str"),
    (msgpack.packb({"v": 1, "type": "snapshot", "body": dict(snapshot([]), health={"state": "fine"})}),
     "health state"),
])
def test_wrong_shapes_are_refused_with_a_reason(data, why):
    with pytest.raises(ProtocolError, match=why):
        decode(data)


def test_an_oversized_message_is_refused_before_unpacking():
    with pytest.raises(ProtocolError, match="exceeds the limit"):
        decode(b"\x00" * (protocol.MAX_MESSAGE_BYTES + 1))


def test_a_hostile_container_length_cannot_exhaust_memory():
    # A 5-byte array header claiming 4 billion elements.
    with pytest.raises(ProtocolError):
        decode(b"\xdd\xff\xff\xff\xff")


def test_encode_refuses_a_wrong_shape_at_the_sender():
    with pytest.raises(ProtocolError):
        encode("history", {"instance": "sonarr"})
