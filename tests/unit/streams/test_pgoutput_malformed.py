"""The decoder on hand-built and damaged input: errors name type byte and offset.

Hand-built messages follow
https://www.postgresql.org/docs/15/protocol-logicalrep-message-formats.html.
"""

from __future__ import annotations

import copy
import json
import pickle
import struct
from pathlib import Path

import pytest

from streams.exceptions import DecodeError, StreamsError
from streams.pgoutput import (
    UNCHANGED_TOAST,
    Begin,
    Insert,
    PgOutputDecoder,
    RelationCache,
    StreamStart,
    StreamStop,
    Truncate,
    Update,
)

VECTORS = Path(__file__).parent / "vectors"


def text(value: bytes) -> bytes:
    return b"t" + struct.pack("!i", len(value)) + value


def tuple_data(*columns: bytes) -> bytes:
    return struct.pack("!H", len(columns)) + b"".join(columns)


def insert(relation_id: int, *columns: bytes, xid: int | None = None) -> bytes:
    head = b"I" + (struct.pack("!I", xid) if xid is not None else b"")
    return head + struct.pack("!I", relation_id) + b"N" + tuple_data(*columns)


def captured(version: int, scenario: str, kind: bytes) -> bytes:
    rows = json.loads((VECTORS / f"v{version}" / f"{scenario}.json").read_text())["messages"]
    return next(bytes.fromhex(r["data"]) for r in rows if bytes.fromhex(r["data"])[:1] == kind)


def test_unknown_message_type_raises_decode_error_naming_type_byte_and_offset():
    with pytest.raises(DecodeError) as caught:
        PgOutputDecoder().decode(b"Zxyz")
    assert caught.value.type_byte == ord("Z") and caught.value.offset == 0
    assert "'Z'" in str(caught.value) and "offset 0" in str(caught.value)
    assert isinstance(caught.value, StreamsError)


def test_two_phase_messages_of_protocol_3_are_unknown_types():
    with pytest.raises(DecodeError, match="unknown message type"):
        PgOutputDecoder(2).decode(b"b" + bytes(29))  # Begin Prepare


def test_empty_buffer_is_a_decode_error():
    with pytest.raises(DecodeError, match="empty message at offset 0"):
        PgOutputDecoder().decode(b"")


def test_truncated_buffer_raises_decode_error_naming_the_offset_of_the_cut_field():
    message = insert(16384, text(b"42"), text(b"hello"), b"n")
    # Type(1) + relation id(4) + 'N'(1) + column count(2) = 8: first column at 8,
    # second ('t' + length + 'hello') at 15.
    assert PgOutputDecoder().decode(message).new == ("42", "hello", None)
    with pytest.raises(DecodeError) as caught:
        PgOutputDecoder().decode(message[:18])  # inside 'hello'
    assert caught.value.offset == 15 and caught.value.type_byte == ord("I")
    assert "offset 15" in str(caught.value) and "truncated" in str(caught.value)
    with pytest.raises(DecodeError) as caught:
        PgOutputDecoder().decode(message[:-1])  # the last column's kind byte is gone
    assert caught.value.offset == len(message) - 1


@pytest.mark.parametrize("scenario", ["insert", "update_replica_identity_full", "truncate", "logical_message"])
def test_every_cut_of_a_captured_message_raises_decode_error_within_the_buffer(scenario):
    decoder = PgOutputDecoder(1)
    for kind in (b"B", b"R", b"I", b"U", b"T", b"M", b"C"):
        try:
            whole = captured(1, scenario, kind)
        except StopIteration:
            continue
        decoder.decode(whole)
        for cut in range(1, len(whole), max(1, len(whole) // 200)):
            with pytest.raises(DecodeError) as caught:
                decoder.decode(whole[:cut])
            assert 0 <= caught.value.offset <= cut
            assert caught.value.type_byte == whole[0]


def test_truncated_fixed_size_message_names_where_its_fields_start():
    begin = captured(2, "insert", b"B")
    with pytest.raises(DecodeError) as caught:
        PgOutputDecoder().decode(begin[:10])
    assert caught.value.offset == 1 and "20 bytes needed, 9 left" in str(caught.value)


def test_trailing_bytes_after_a_message_are_an_error():
    begin = captured(2, "insert", b"B")
    with pytest.raises(DecodeError, match="1 trailing bytes") as caught:
        PgOutputDecoder().decode(begin + b"\x00")
    assert caught.value.offset == len(begin)


def test_unknown_tuple_column_kind_is_an_error_at_its_offset():
    with pytest.raises(DecodeError, match="unknown tuple column kind 0x78") as caught:
        PgOutputDecoder().decode(insert(1, b"x"))
    assert caught.value.offset == 8


def test_update_without_new_tuple_marker_is_an_error():
    message = b"U" + struct.pack("!I", 1) + b"X" + tuple_data(b"n")
    with pytest.raises(DecodeError, match="expected 'N' tuple") as caught:
        PgOutputDecoder().decode(message)
    assert caught.value.offset == 5


def test_text_value_that_is_not_valid_utf8_is_an_error_naming_its_column_offset():
    with pytest.raises(DecodeError, match="not valid utf-8") as caught:
        PgOutputDecoder().decode(insert(1, b"n", text(b"\xff\xfe")))
    assert caught.value.offset == 9


def test_binary_and_unchanged_toast_columns_decode_to_bytes_and_the_marker():
    message = b"U" + struct.pack("!I", 7) + b"N" + tuple_data(b"b" + struct.pack("!i", 3) + b"\x00\x01\x02", b"u", b"n")
    update = PgOutputDecoder().decode(message)
    assert update == Update(7, (b"\x00\x01\x02", UNCHANGED_TOAST, None))


def test_decoder_accepts_bytearray_and_memoryview():
    message = insert(5, text("é".encode()))
    for buffer in (bytearray(message), memoryview(message), memoryview(b"pad" + message)[3:]):
        assert PgOutputDecoder().decode(buffer) == Insert(5, ("é",))


def test_unchanged_toast_marker_survives_copy_and_pickle_as_the_same_object():
    assert copy.deepcopy(UNCHANGED_TOAST) is UNCHANGED_TOAST
    assert pickle.loads(pickle.dumps(UNCHANGED_TOAST)) is UNCHANGED_TOAST
    assert repr(UNCHANGED_TOAST) == "UNCHANGED_TOAST"
    assert UNCHANGED_TOAST != "" and UNCHANGED_TOAST is not None


def test_messages_are_frozen():
    message = PgOutputDecoder().decode(insert(5, text(b"1")))
    with pytest.raises(AttributeError):
        message.relation_id = 6


# --- stream block state ----------------------------------------------------------------


def stream_start(xid: int, first: bool = True) -> bytes:
    return b"S" + struct.pack("!IB", xid, int(first))


def test_messages_inside_a_stream_block_are_read_with_their_xid_and_outside_without():
    decoder = PgOutputDecoder(2)
    assert decoder.decode(stream_start(700)) == StreamStart(700, True)
    assert decoder.in_stream and decoder.stream_xid == 700
    assert decoder.decode(insert(5, text(b"1"), xid=701)) == Insert(5, ("1",), xid=701)
    truncate = b"T" + struct.pack("!I", 700) + struct.pack("!IB", 2, 1) + struct.pack("!II", 10, 11)
    assert decoder.decode(truncate) == Truncate(1, (10, 11), xid=700)
    assert decoder.decode(b"E") == StreamStop()
    assert not decoder.in_stream and decoder.stream_xid is None
    assert decoder.decode(insert(5, text(b"2"))) == Insert(5, ("2",))


def test_stream_stop_without_a_stream_start_is_rejected():
    with pytest.raises(DecodeError, match="stream stop without a stream start"):
        PgOutputDecoder(2).decode(b"E")


def test_nested_stream_start_is_rejected():
    decoder = PgOutputDecoder(2)
    decoder.decode(stream_start(700))
    with pytest.raises(DecodeError, match="inside the open stream block of xid 700"):
        decoder.decode(stream_start(701))


@pytest.mark.parametrize("kind", [b"B", b"C", b"c", b"A"])
def test_transaction_framing_inside_a_stream_block_is_rejected(kind):
    decoder = PgOutputDecoder(2)
    decoder.decode(stream_start(700))
    with pytest.raises(DecodeError, match="not allowed inside the stream block of xid 700"):
        decoder.decode(kind + bytes(40))


@pytest.mark.parametrize("kind", [b"S", b"E", b"c", b"A"])
def test_stream_messages_need_protocol_version_2(kind):
    with pytest.raises(DecodeError, match="needs protocol version 2"):
        PgOutputDecoder(1).decode(kind + bytes(8))


def test_reset_forgets_an_open_stream_block():
    decoder = PgOutputDecoder(2)
    decoder.decode(stream_start(700))
    decoder.reset()
    assert not decoder.in_stream
    assert isinstance(decoder.decode(captured(2, "insert", b"B")), Begin)


@pytest.mark.parametrize("version", [0, 3, 4])
def test_unsupported_protocol_versions_are_refused(version):
    with pytest.raises(ValueError, match="unsupported pgoutput protocol version"):
        PgOutputDecoder(version)


def test_relation_cache_names_an_unknown_relation_id():
    cache = RelationCache()
    with pytest.raises(KeyError, match="no Relation message received for relation id 99"):
        cache[99]
    assert cache.get(99) is None and 99 not in cache and len(cache) == 0


def test_negative_column_length_is_an_error_at_its_offset():
    message = insert(1, b"n", b"t" + struct.pack("!i", -3) + b"abc")
    with pytest.raises(DecodeError, match="column value truncated") as caught:
        PgOutputDecoder().decode(message)
    assert caught.value.offset == 9


def test_insert_fast_path_and_stream_path_agree_with_the_general_parser():
    plain = insert(5, text(b"1"), b"n", b"u")
    assert PgOutputDecoder(2).decode(plain) == Insert(5, ("1", None, UNCHANGED_TOAST))
    with pytest.raises(DecodeError, match="expected 'N' tuple, got byte 0x4b"):
        PgOutputDecoder(2).decode(b"I" + struct.pack("!I", 5) + b"K" + tuple_data(b"n"))
