"""The codec: round trips, versions, shapes and size limits."""
import msgpack
import pytest

from common import protocol
from common.protocol import ProtocolError, decode, encode
from tests import records


def record(**fields):
    return records.record(1, "ABC", title="Show.S01E01", **fields)


def snapshot(items):
    return records.snapshot("sonarr", items)


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
    (msgpack.packb({"v": 1, "type": "snapshot", "body": dict(snapshot([dict(record(), size="big")]))}),
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
