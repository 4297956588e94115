"""A schema change the registry refuses stops that table's capture only (DESIGN.md, "Schema evolution"): its
changes are left in the slot, which is confirmed no further, while the source's other tables go on; once the
registry accepts the schema the run ends so that the next one publishes them from the slot."""

from __future__ import annotations

import json
import logging
import struct

import pytest

from streams import metrics
from streams.exceptions import SchemaNowAccepted, SchemaRefused
from streams.source import CaptureConfig, CaptureSource
from tests.unit.streams.stand_ins import MemoryRegistrar
from tests.unit.streams.test_capture_errors import _relation, _text_tuple

INT8, TEXT, NUMERIC_12_2 = 20, 25, ((12 << 16) | 2) + 4
INVOICES, PAYMENTS = 16400, 16401


class _Registrar(MemoryRegistrar):
    """Refuses any shape of public.invoices whose ``amount`` is text, until ``accept`` is set."""

    def __init__(self) -> None:
        self.accept = False
        self.offered: list[str] = []

    def schemas_for(self, topic, table, columns):
        self.offered.append(table)
        if not self.accept and any(c.name == "amount" and c.type_oid == TEXT for c in columns):
            raise SchemaRefused(table, f"{topic}-value", ["amount"], "BACKWARD", "incompatible")
        return super().schemas_for(topic, table, columns)


class _Publisher:
    """Acknowledges every event at once, as Kafka would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None]] = []

    def send(self, topic, key, value, on_delivery, headers=None) -> None:
        self.sent.append((topic, key))
        on_delivery(None, None)

    def produce(self, topic, value, key, partition, on_delivery, headers=None) -> None:
        self.send(topic, key, value, on_delivery)

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def close(self, timeout: float = 10.0) -> int:
        return 0


def _begin(final_lsn: int, xid: int) -> bytes:
    return b"B" + struct.pack("!QqI", final_lsn, 849_000_000_000_000, xid)


def _commit(lsn: int) -> bytes:
    return b"C" + struct.pack("!BQQq", 0, lsn, lsn + 8, 849_000_000_000_000)


def _insert(relation_id: int, *values: str) -> bytes:
    return b"I" + struct.pack("!I", relation_id) + b"N" + _text_tuple(list(values))


def _invoices(amount_type: int, typmod: int) -> bytes:
    return _relation(INVOICES, "invoices", [("invoice_id", INT8, -1, True), ("amount", amount_type, typmod, False)])


_PAYMENTS = _relation(PAYMENTS, "payments", [("payment_id", INT8, -1, True), ("amount", 1700, NUMERIC_12_2, False)])


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "reference path"])
def test_a_refused_schema_stops_its_table_only_and_the_slot_is_confirmed_no_further(tmp_path, fast, caplog):
    config = CaptureConfig(name="erp", dsn="", database="erp", tables=("public.invoices", "public.payments"), slot="s",
                           publication="p", registry_url="http://unused", kafka={}, state_dir=tmp_path)
    registrar, publisher = _Registrar(), _Publisher()
    capture = CaptureSource(config, registrar=registrar, publisher=publisher, fast_path=fast)
    lsn = iter(range(0x1000, 0x100000, 0x10))

    def feed(target: CaptureSource, *payloads: bytes) -> None:
        for payload in payloads:
            at = next(lsn)
            target._on_wal(payload, at, at + 8)

    # the column became text in transaction 2: refused; the payments of that transaction and the next go on
    refused = (_begin(0x3000, 2), _PAYMENTS, _insert(PAYMENTS, "1", "5.00"), _invoices(TEXT, -1),
               _insert(INVOICES, "2", "net 30"), _insert(PAYMENTS, "2", "6.00"), _commit(0x3000))
    after = (_begin(0x4000, 3), _insert(INVOICES, "3", "net 60"), _insert(PAYMENTS, "3", "7.00"), _commit(0x4000))
    # another DDL on the held table in this run: not registered, its changes since the refusal are in the slot
    altered = (_begin(0x5000, 4), _invoices(INT8, -1), _insert(INVOICES, "4", "8"), _commit(0x5000))

    caplog.set_level(logging.ERROR, logger="streams.source")
    feed(capture, _begin(0x2000, 1), _invoices(1700, NUMERIC_12_2), _insert(INVOICES, "1", "10.00"), _commit(0x2000))
    assert capture.tracker.flushable == 0x2008
    feed(capture, *refused, *after)
    assert [topic for topic, _ in publisher.sent] == ["erp.public.invoices"] + ["erp.public.payments"] * 3
    assert capture.tracker.flushable == 0x2008, "nothing from the refused transaction on is confirmed"
    assert capture.tracker.in_flight == 0

    assert metrics.TABLES_HELD.labels("erp")._value.get() == 1
    capture._write_status()
    status = json.loads(capture.status_path.read_text())
    assert status["held"] == ["public.invoices"]
    assert "amount" in status["errors"]["public.invoices"] and "BACKWARD" in status["errors"]["public.invoices"]
    assert status["tables"]["public.payments"] != "errored"
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 1 and "public.invoices" in logged[0] and "slot s" in logged[0]

    offered = len(registrar.offered)
    feed(capture, *altered)
    assert len(registrar.offered) == offered and len(publisher.sent) == 4
    assert capture.tracker.flushable == 0x2008

    capture._retry_held()  # still refused: nothing happens
    registrar.accept = True
    with pytest.raises(SchemaNowAccepted, match=r"public\.invoices.*slot s"):
        capture._retry_held()

    # The run stops (psmesh cdc run closes it, then starts the next from the slot's confirmed position): what the
    # other tables published is remembered, and the next run publishes only the held table's changes again.
    capture.close()
    assert capture.state.published_lsn == {"public.payments": 0x5008}
    again = _Publisher()
    resumed = CaptureSource(config, registrar=registrar, publisher=again, fast_path=fast)
    assert metrics.TABLES_HELD.labels("erp")._value.get() == 0
    resumed._skip_before = resumed.state.skip_points()  # as _open_stream sets it
    feed(resumed, *refused, *after, *altered)
    feed(resumed, _begin(0x6000, 5), _insert(PAYMENTS, "4", "9.00"), _commit(0x6000))  # new since: published
    assert [topic for topic, _ in again.sent] == ["erp.public.invoices"] * 3 + ["erp.public.payments"]
    assert resumed.tracker.flushable == 0x6008


def test_a_new_slot_forgets_the_positions_saved_for_the_old_one(tmp_path):
    """A slot invalidated and dropped (or a rebuilt server) starts a WAL history whose positions have nothing to do
    with the ones a held run saved: kept, they would skip changes the new slot never published."""
    from streams.state import CaptureState

    state = CaptureState.load(tmp_path / "erp.state.json", ["public.invoices", "public.payments"])
    state.published_lsn = {"public.payments": 0x900000}
    state.save()
    state = CaptureState.load(tmp_path / "erp.state.json", ["public.invoices", "public.payments"])
    assert state.skip_points() == {"public.payments": 0x900000}
    state.new_slot(0x1000, ["public.invoices", "public.payments"])
    assert state.published_lsn == {} and state.skip_points() == {"public.invoices": 0x1000, "public.payments": 0x1000}
