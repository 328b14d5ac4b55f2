"""The codec: round trips, versions, shapes and size limits."""
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    with pytest.raises(ProtocolError, match=why):
        decode_sliced(data)


def decode_sliced(data, every=2, **options):
    """decode_in_slices run to its end, counting its yields."""
    steps = protocol.decode_in_slices(data, every, **options)
    yields = 0
    while True:
        try:
            next(steps)
            yields += 1
        except StopIteration as done:
            decode_sliced.yields = yields
            return done.value


def test_a_large_snapshot_is_decoded_in_slices_to_the_same_message():
    data = encode("snapshot", snapshot([records.record(n, f"ID{n}", title=f"Show.S01E{n:02d}") for n in range(10)]))
    assert decode_sliced(data, every=2) == decode(data)
    assert decode_sliced.yields == 5  # 10 records, each checked as it is unpacked, 2 at a time


def test_a_sliced_decode_gives_each_checked_record_to_the_receiver():
    data = encode("snapshot", snapshot([records.record(n, f"ID{n}") for n in range(3)]))
    message = decode_sliced(data, receive_record=lambda record: record["download_id"])
    assert message.body["records"] == ["ID0", "ID1", "ID2"]
    bad = msgpack.packb({"v": 1, "type": "snapshot", "body": dict(snapshot([dict(record(), size="big")]))})
    with pytest.raises(ProtocolError, match="record 0: field 'size' has type str"):
        decode_sliced(bad, receive_record=lambda record: pytest.fail("an unchecked record was received"))


@pytest.mark.parametrize("data", [
    msgpack.packb({"v": 1, "type": "snapshot", "body": {"records": None}}),
    msgpack.packb({"v": 1, "type": "snapshot", "body": [1]}),
    msgpack.packb({"v": 1, "type": "snapshot", 1: 2}),
    # records announced as an array of 4 billion: refused before any is read
    b"\x83" + b"".join(map(msgpack.packb, ["v", 1, "type", "snapshot", "body"])) + b"\x81"
    + msgpack.packb("records") + b"\xdd\xff\xff\xff\xff",
])
def test_a_sliced_decode_refuses_what_decode_refuses(data):
    with pytest.raises(ProtocolError):
        decode(data)
    with pytest.raises(ProtocolError):
        decode_sliced(data)


VALID = encode("snapshot", snapshot([record(), records.record(2, "DEF", title="Show.S01E02")]))


def whole_unpack(data):
    """What a message means when unpacked in one go and checked: the reference for the decoder,
    which reads it piece by piece (ProtocolError when it is not a valid message)."""
    try:
        envelope = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:
        raise ProtocolError("not msgpack") from None
    if (not isinstance(envelope, dict) or envelope.get("v") != protocol.PROTOCOL_VERSION
            or not isinstance(envelope.get("type"), str)
            or any(not isinstance(key, str) for key in [*envelope, *(envelope.get("body") or {})])):
        raise ProtocolError("not a message")
    protocol.validate(envelope["type"], envelope.get("body"))
    return protocol.Message(envelope["type"], envelope.get("body"))


@settings(max_examples=300, deadline=None)
@given(cut=st.integers(0, len(VALID)), junk=st.binary(max_size=8), flip=st.integers(0, len(VALID) - 1),
       every=st.integers(1, 3))
def test_a_damaged_message_is_refused_or_read_as_a_whole_unpack_reads_it(cut, junk, flip, every):
    damaged = bytearray(VALID[:cut] + junk + VALID[cut:])
    damaged[flip % len(damaged)] ^= 0x5A
    outcomes = []
    for decoder in (whole_unpack, lambda data: decode_sliced(data, every)):
        try:
            outcomes.append(decoder(bytes(damaged)))
        except ProtocolError:
            outcomes.append("refused")
    assert outcomes[0] == outcomes[1]


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


def test_a_number_msgpack_cannot_carry_is_a_protocol_error_never_a_crash():
    from common.protocol import ProtocolError, encode
    with pytest.raises(ProtocolError, match="cannot be packed"):
        encode("stats", {"days": 10 ** 20, "by": "indexer"})
