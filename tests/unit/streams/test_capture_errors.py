"""The capture's errors say where: a value with no Avro form names its table, column and LSN; a refused
delivery names its topic and partition."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from streams.envelope import ColumnSpec
from streams.exceptions import StreamsError, UnencodableValue
from streams.offsets import DeliveryFailed
from streams.snapshot import TableRef
from streams.source import CaptureConfig, CaptureSource
from tests.unit.streams.stand_ins import MemoryRegistrar

NUMERIC_12_2 = ((12 << 16) | 2) + 4


class _Publisher:
    def __init__(self) -> None:
        self.sent: list = []

    def send(self, topic, key, value, on_delivery, headers=None) -> None:
        self.sent.append((topic, key, value))

    def produce(self, topic, value, key, partition, on_delivery, headers=None) -> None:
        self.sent.append((topic, key, value))

    def poll(self, timeout: float = 0.0) -> int:
        return 0


def _capture(tmp_path, fast: bool = True) -> tuple[CaptureSource, _Publisher]:
    config = CaptureConfig(name="erp", dsn="", database="erp", tables=("public.invoices",), slot="s", publication="p",
                           registry_url="http://unused", kafka={}, state_dir=tmp_path)
    publisher = _Publisher()
    return CaptureSource(config, registrar=MemoryRegistrar(), publisher=publisher, fast_path=fast), publisher


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def _relation(relation_id: int, table: str, columns) -> bytes:
    """A pgoutput Relation message of public.<table>: (name, type oid, typmod, is key) per column."""
    return (b"R" + struct.pack("!I", relation_id) + _cstr("public") + _cstr(table) + b"d"
            + struct.pack("!H", len(columns))
            + b"".join(bytes((k,)) + _cstr(n) + struct.pack("!Ii", o, t) for n, o, t, k in columns))


def _text_tuple(values) -> bytes:
    return struct.pack("!H", len(values)) + b"".join(b"t" + struct.pack("!I", len(v.encode())) + v.encode() for v in values)


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "reference path"])
def test_a_nan_numeric_stops_the_capture_naming_table_column_and_lsn(tmp_path, fast):
    capture, publisher = _capture(tmp_path, fast)
    columns = [("invoice_id", 20, -1, True), ("amount", 1700, NUMERIC_12_2, False)]
    relation = _relation(16400, "invoices", columns)
    messages = [
        b"B" + struct.pack("!QqI", 0x16B3790, 849_000_000_000_000, 4242),
        relation,
        b"I" + struct.pack("!I", 16400) + b"N" + _text_tuple(["1", "10.00"]),
        b"I" + struct.pack("!I", 16400) + b"N" + _text_tuple(["2", "NaN"]),
    ]
    with pytest.raises(StreamsError) as caught:
        for n, payload in enumerate(messages):
            capture._on_wal(payload, 0x16B3700 + 0x10 * n, 0x16B3708 + 0x10 * n)
    error = caught.value
    assert isinstance(error, UnencodableValue) and (error.table, error.column) == ("public.invoices", "amount")
    assert "decimal(12,2) cannot hold NaN" in str(error)
    assert "LSN 0/16B3730" in str(error) and "transaction 4242" in str(error) and "0/16B3790" in str(error)
    assert len(publisher.sent) == 1  # the good row only; nothing of the bad one


def test_a_nan_numeric_in_the_snapshot_names_table_and_column(tmp_path):
    capture, publisher = _capture(tmp_path)
    ref = TableRef("public", "invoices")
    info = capture._table(ref, [ColumnSpec("invoice_id", 20, -1, True), ColumnSpec("amount", 1700, NUMERIC_12_2)], None)
    txn = capture.tracker.begin()
    source = capture._source_block(ref, 0, None, None, "last")
    with pytest.raises(UnencodableValue, match=r"table public\.invoices, column amount: .*NaN; in the snapshot"):
        capture._publish(info, txn, capture._acker(txn, None), "r", None, {"invoice_id": 1, "amount": Decimal("NaN")},
                         source, ())
    assert publisher.sent == []


class _Msg:
    def topic(self) -> str:
        return "erp.public.invoices"

    def partition(self) -> int:
        return 3


def test_a_refused_delivery_names_the_topic_and_partition(tmp_path):
    capture, _ = _capture(tmp_path)
    txn = capture.tracker.begin()
    capture.tracker.sent(txn)
    capture._acker(txn, None)("Broker: Message size too large", _Msg())
    with pytest.raises(DeliveryFailed, match=r"Message size too large \(topic erp\.public\.invoices, partition 3\)"):
        capture.tracker.flushable


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "reference path"])
def test_a_table_added_to_the_publication_by_hand_is_left_out_not_published_to_a_topic_nobody_made(
        tmp_path, fast, caplog):
    capture, publisher = _capture(tmp_path, fast)
    columns = [("contact_id", 20, -1, True), ("name", 25, -1, False)]
    relation = _relation(16500, "contacts", columns)
    messages = [
        b"B" + struct.pack("!QqI", 0x16B3790, 849_000_000_000_000, 4243),
        relation,
        b"I" + struct.pack("!I", 16500) + b"N" + _text_tuple(["1", "Ada"]),
        relation,
        b"I" + struct.pack("!I", 16500) + b"N" + _text_tuple(["2", "Grace"]),
    ]
    for n, payload in enumerate(messages):
        capture._on_wal(payload, 0x16B3700 + 0x10 * n, 0x16B3708 + 0x10 * n)
    assert publisher.sent == []
    warnings = [r.getMessage() for r in caplog.records if "not among source erp's tables" in r.getMessage()]
    assert warnings == ["table public.contacts is in publication p but not among source erp's tables; its changes are "
                        "not captured: add it to the topology's source, or drop it from the publication"]
