"""A change with a value that has no Avro form (NaN in a numeric(p,s), a date of infinity) is set aside on the source's
dead-letter topic and the capture goes on (DESIGN.md, "Bad input never vanishes"); the letter counts in its
transaction, so the slot is confirmed past the change only once Kafka has the letter."""

from __future__ import annotations

import io
import json
import struct
from decimal import Decimal
from decimal import Decimal as D

import fastavro
import pytest

from streams.envelope import ColumnSpec, value_schema
from streams.registration import LETTER_SCHEMAS
from streams.snapshot import TableRef
from streams.source import CaptureConfig, CaptureSource
from tests.unit.streams.stand_ins import MemoryRegistrar
from tests.unit.streams.test_capture_errors import NUMERIC_12_2, _relation, _text_tuple

INT8, DATE = 20, 1082


class _Publisher:
    """Keeps what was sent; acknowledges it only when told, as Kafka would later."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.acks: list = []

    def send(self, topic, key, value, on_delivery, headers=None) -> None:
        self.sent.append((topic, key, value))
        self.acks.append(on_delivery)

    def produce(self, topic, value, key, partition, on_delivery, headers=None) -> None:
        self.send(topic, key, value, on_delivery)

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def ack_all(self) -> None:
        for ack in self.acks:
            ack(None, None)
        self.acks.clear()


def _capture(tmp_path, fast: bool, dead_letter: str | None = "dlq.capture") -> tuple[CaptureSource, _Publisher]:
    config = CaptureConfig(name="psa", dsn="", database="psa", tables=("public.assignments",), slot="s",
                           publication="p", registry_url="http://unused", kafka={}, state_dir=tmp_path,
                           dead_letter_topic=dead_letter)
    publisher = _Publisher()
    return CaptureSource(config, registrar=MemoryRegistrar(), publisher=publisher, fast_path=fast), publisher


def _letter(data: bytes, part: str) -> dict:
    assert data[:5] == b"\x00" + struct.pack(">I", 21 if part == "key" else 22)
    schema = fastavro.parse_schema(json.loads((LETTER_SCHEMAS / f"capture-{part}.avsc").read_text()))
    return fastavro.schemaless_reader(io.BytesIO(data[5:]), schema)


_COLUMNS = [("assignment_id", INT8, -1, True), ("end_date", DATE, -1, False), ("hours", 1700, NUMERIC_12_2, False)]


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "reference path"])
def test_a_value_with_no_avro_form_is_set_aside_with_its_row_and_the_capture_goes_on(tmp_path, fast):
    capture, publisher = _capture(tmp_path, fast)
    messages = [
        b"B" + struct.pack("!QqI", 0x5000, 849_000_000_000_000, 77),
        _relation(16600, "assignments", _COLUMNS),
        b"I" + struct.pack("!I", 16600) + b"N" + _text_tuple(["1", "2026-03-31", "20.00"]),
        b"U" + struct.pack("!I", 16600) + b"N" + _text_tuple(["1", "infinity", "20.00"]),
        b"I" + struct.pack("!I", 16600) + b"N" + _text_tuple(["2", "2026-04-30", "NaN"]),
        b"I" + struct.pack("!I", 16600) + b"N" + _text_tuple(["3", "2026-05-31", "8.00"]),
        b"C" + struct.pack("!BQQq", 0, 0x5000, 0x5008, 849_000_000_000_000),
    ]
    lsns = [0x4F00 + 0x10 * n for n in range(len(messages))]
    for payload, lsn in zip(messages, lsns):
        capture._on_wal(payload, lsn, lsn + 8)
    topics = [topic for topic, _, _ in publisher.sent]
    assert topics == ["psa.public.assignments", "dlq.capture", "dlq.capture", "psa.public.assignments"]

    infinity, nan = publisher.sent[1], publisher.sent[2]
    assert _letter(infinity[1], "key") == {"topic": "psa.public.assignments", "partition": -1, "offset": lsns[3]}
    letter = _letter(infinity[2], "value")
    assert (letter["stage"], letter["offset"], letter["partition"]) == ("capture_psa", lsns[3], -1)
    assert letter["reason"].endswith("(table public.assignments, column end_date)")
    assert json.loads(letter["value"]) == {"table": "public.assignments", "op": "u", "before": None,
                                           "after": {"assignment_id": "1", "end_date": "infinity", "hours": "20.00"}}
    assert letter["key"] == b"\x00" + struct.pack(">I", 11) + b"\x02"  # the event's key: assignment_id 1
    letter = _letter(nan[2], "value")
    assert "column hours" in letter["reason"] and json.loads(letter["value"])["after"]["hours"] == "NaN"

    # the letters count in the transaction: nothing is confirmed until Kafka has every one of them
    assert capture.tracker.flushable == 0 and capture.tracker.in_flight == 4
    publisher.ack_all()
    assert capture.tracker.flushable == 0x5008


def test_without_a_dead_letter_topic_such_a_change_still_stops_the_capture(tmp_path):
    capture, publisher = _capture(tmp_path, fast=True, dead_letter=None)
    messages = [
        b"B" + struct.pack("!QqI", 0x5000, 849_000_000_000_000, 77),
        _relation(16600, "assignments", _COLUMNS),
        b"I" + struct.pack("!I", 16600) + b"N" + _text_tuple(["1", "infinity", "20.00"]),
    ]
    with pytest.raises(ValueError, match=r"column end_date"):
        for n, payload in enumerate(messages):
            capture._on_wal(payload, 0x4F00 + 0x10 * n, 0x4F08 + 0x10 * n)
    assert publisher.sent == []


def test_a_snapshot_row_with_no_avro_form_is_set_aside_and_the_rows_after_it_published(tmp_path):
    capture, publisher = _capture(tmp_path, fast=True)
    ref = TableRef("public", "assignments")
    columns = [ColumnSpec("assignment_id", INT8, -1, True), ColumnSpec("hours", 1700, NUMERIC_12_2)]
    info = capture._table(ref, columns, None)
    txn = capture.tracker.begin()
    source = capture._source_block(ref, 0, None, None, "last")
    try:
        capture._publish(info, txn, capture._acker(txn, None), "r", None, {"assignment_id": 9, "hours": Decimal("NaN")},
                         source, ())
    except ValueError as exc:
        capture._set_aside(info, txn, capture._acker(txn, None), exc, -1, "r",
                           {"after": {"assignment_id": 9, "hours": Decimal("NaN")}}, {"assignment_id": 9})
    (topic, key, value), = publisher.sent
    letter = _letter(value, "value")
    assert topic == "dlq.capture" and letter["offset"] == -1 and "in the snapshot" in letter["reason"]
    assert json.loads(letter["value"])["after"] == {"assignment_id": 9, "hours": "NaN"}


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "reference path"])
def test_under_full_identity_a_change_whose_old_row_holds_the_value_is_published_with_the_old_key(tmp_path, fast):
    """The correction of a NaN, and the deletion of a row that holds one, reach downstream (as under the default
    identity, with the old row's key alone); a key change whose new row cannot be encoded sends nothing of itself."""
    capture, publisher = _capture(tmp_path, fast)
    capture._pk_cache["public.assignments"] = frozenset({"assignment_id"})  # what the catalog would say
    relation = _relation(16600, "assignments", [(n, o, t, True) for n, o, t, _ in _COLUMNS])
    relation = relation.replace(b"assignments\x00d", b"assignments\x00f")  # REPLICA IDENTITY FULL
    old = _text_tuple(["1", "2026-03-31", "NaN"])
    messages = [
        b"B" + struct.pack("!QqI", 0x5000, 849_000_000_000_000, 77),
        relation,
        b"U" + struct.pack("!I", 16600) + b"O" + old + b"N" + _text_tuple(["1", "2026-03-31", "8.00"]),
        b"D" + struct.pack("!I", 16600) + b"O" + old,
        b"U" + struct.pack("!I", 16600) + b"O" + _text_tuple(["2", "2026-03-31", "1.00"])
        + b"N" + _text_tuple(["5", "2026-03-31", "NaN"]),
        b"C" + struct.pack("!BQQq", 0, 0x5000, 0x5008, 849_000_000_000_000),
    ]
    for n, payload in enumerate(messages):
        capture._on_wal(payload, 0x4F00 + 0x10 * n, 0x4F08 + 0x10 * n)
    info = capture._by_name["public.assignments"]
    schema = fastavro.parse_schema(value_schema(info.topic, info.columns))

    def event(value):
        if value is None:
            return None
        envelope = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
        return envelope["op"], envelope["before"], (envelope["after"] or {}).get("hours")

    assert [(topic, "letter" if topic == "dlq.capture" else event(value)) for topic, _, value in publisher.sent] == [
        ("psa.public.assignments", ("u", None, D("8.00"))),  # the correction, without the old row
        ("psa.public.assignments", ("d", {"assignment_id": 1, "end_date": None, "hours": None}, None)),
        ("psa.public.assignments", None),  # the deletion's tombstone
        ("dlq.capture", "letter")]  # the key change to a NaN: nothing of it but the letter


def test_a_snapshot_value_python_cannot_hold_inside_an_array_or_the_key_is_set_aside_without_a_key():
    from streams.snapshot import Unrepresentable
    from streams.source import _check_representable, _unrepresentable

    ref = TableRef("public", "assignments")
    with pytest.raises(ValueError, match=r"column weeks: a value Python cannot hold"):
        _check_representable(ref, [], {"assignment_id": 1, "weeks": [[None, Unrepresentable("infinity")]]})
    _check_representable(ref, [], {"assignment_id": 1, "weeks": [[None]]})  # nothing to say
    assert _unrepresentable(Unrepresentable("-infinity")) and not _unrepresentable("infinity")


def test_a_letter_whose_key_python_cannot_hold_goes_without_its_key(tmp_path):
    from streams.snapshot import Unrepresentable

    capture, publisher = _capture(tmp_path, fast=True)
    ref = TableRef("public", "assignments")
    info = capture._table(ref, [ColumnSpec("day", DATE, -1, True), ColumnSpec("hours", 1700, NUMERIC_12_2)], None)
    txn = capture.tracker.begin()
    row = {"day": Unrepresentable("infinity"), "hours": Decimal("1.00")}
    capture._set_aside(info, txn, capture._acker(txn, None), ValueError("a value Python cannot hold"), -1, "r",
                       {"after": row}, row)
    (_, _, value), = publisher.sent
    letter = _letter(value, "value")
    assert letter["key"] is None and json.loads(letter["value"])["after"]["day"] == "infinity"


def test_a_letter_keeps_its_key_when_only_another_column_python_cannot_hold(tmp_path):
    from streams.snapshot import Unrepresentable

    capture, publisher = _capture(tmp_path, fast=True)
    ref = TableRef("public", "assignments")
    info = capture._table(ref, [ColumnSpec("assignment_id", INT8, -1, True), ColumnSpec("end_date", DATE, -1)], None)
    txn = capture.tracker.begin()
    row = {"assignment_id": 1, "end_date": Unrepresentable("infinity")}
    capture._set_aside(info, txn, capture._acker(txn, None), ValueError("a value Python cannot hold"), -1, "r",
                       {"after": row}, row)
    (_, _, value), = publisher.sent
    assert _letter(value, "value")["key"] == b"\x00" + struct.pack(">I", 11) + b"\x02"  # assignment_id 1
