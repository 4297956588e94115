"""The sinks' pure pieces: record preparation, batch folding, fault classification, decoding."""

from __future__ import annotations

import io
import json
import struct
from datetime import date, datetime, timezone
from decimal import Decimal

import fastavro
import psycopg
import pytest
from sqlalchemy import exc as sa_exc

from sinks.base import Action, Write
from sinks.erp import ErpSink
from sinks.exceptions import RecordRejected, TargetUnavailable
from sinks.faults import Fault, classify, describe
from sinks.records import RecordDecoder, SinkRecord, load_contract
from sinks.reporting import ReportingSink
from sinks.statements import fold

AT = datetime(2026, 1, 5, tzinfo=timezone.utc)


def _record(topic: str, value: dict | None, key: dict | None = None, offset: int = 0) -> SinkRecord:
    return SinkRecord(topic, 0, offset, b"k", None if value is None else b"v", key, value)


def _request(**changes) -> dict:
    value = {
        "event_id": "e", "event_type": "request", "project_code": "PRJ-1", "opportunity_id": 1, "account_id": 2,
        "name": "n", "service_line": "security", "contract_type": "fixed_fee", "currency": "EUR",
        "budget_amount": Decimal("10.00"), "budget_hours": Decimal("1.00"), "start_date": None, "end_date": None,
        "billing_frequency": "milestone", "revenue_method": "milestone", "cost_center": "CC-NA-security", "won_at": AT,
        "milestones": [{"milestone_id": 5, "name": "m", "amount": Decimal("10.00"), "planned_date": date(2026, 2, 1)}],
        "staffing_lines": [],
    }
    return {**value, **changes}


def test_project_request_becomes_an_upsert_of_an_active_project_and_planned_milestones():
    writes = ErpSink().prepare(_record("derived.project_requests", _request()))
    assert [(w.table, w.action) for w in writes] == [("projects", Action.UPSERT_IF_CHANGED), ("billing_milestones", Action.INSERT_ONCE)]
    assert writes[0].row["status"] == "active" and writes[0].key == ("PRJ-1",)
    assert writes[1].row["status"] == "planned" and writes[1].row["project_code"] == "PRJ-1"


def test_unknown_event_type_and_tombstones_of_derived_topics():
    with pytest.raises(RecordRejected, match="event_type"):
        ErpSink().prepare(_record("derived.project_requests", _request(event_type="cancel")))
    assert ErpSink().prepare(_record("derived.billing_triggers", None)) == []


def test_view_tombstone_deletes_by_key_and_record_upserts():
    sink = ReportingSink(mirrors=False)
    key = {"project_code": "PRJ-1", "rule": "burn"}
    [delete] = sink.prepare(_record("views.project_risks", None, key))
    assert (delete.action, delete.key) == (Action.DELETE, ("PRJ-1", "burn"))
    [upsert] = sink.prepare(_record("views.project_risks", {**key, "raised_at": AT, "detail": "d", "updated_at": AT}, key))
    assert upsert.action is Action.UPSERT and upsert.row["detail"] == "d"
    with pytest.raises(RecordRejected, match="lacks"):
        sink.prepare(_record("views.project_risks", {**key, "detail": "d"}, key))


def test_change_event_leaves_unchanged_toasted_columns_out_and_delete_uses_before():
    sink = ReportingSink()
    after = {"entry_id": 1, "narrative": None, "hours": Decimal("1.00")}
    [w] = sink.prepare(_record("timeexp.public.time_entries", {"op": "u", "before": None, "after": after, "unchanged_toasted": ["narrative"]}))
    assert "narrative" not in w.row and w.row["hours"] == Decimal("1.00")
    [d] = sink.prepare(_record("timeexp.public.time_entries", {"op": "d", "before": {"entry_id": 1}, "after": None}))
    assert (d.action, d.key, d.table) == (Action.DELETE, (1,), "source.time_entries")


def test_a_batch_keeps_an_unchanged_toasted_column_from_the_rows_earlier_change():
    # A long narrative (TOASTed) inserted, then the entry approved: the update leaves the narrative out. Folded
    # into one write per key, the batch must write what the two writes one after the other would have.
    sink = ReportingSink()
    entry = {"entry_id": 1, "hours": Decimal("1.00"), "status": "submitted", "narrative": "x" * 3000}
    inserted = sink.prepare(_record("timeexp.public.time_entries", {"op": "c", "before": None, "after": entry}))
    approved = sink.prepare(_record("timeexp.public.time_entries", {
        "op": "u", "before": None, "after": {**entry, "status": "approved", "narrative": None},
        "unchanged_toasted": ["narrative"]}, offset=1))
    [(_, (_, by_key))] = fold(inserted + approved).items()
    assert by_key[(1,)].row["narrative"] == "x" * 3000 and by_key[(1,)].row["status"] == "approved"
    # A change of the narrative, then an update that leaves it as it is: the changed one is kept.
    changed = sink.prepare(_record("timeexp.public.time_entries", {
        "op": "u", "before": None, "after": {**entry, "narrative": "y" * 3000}}, offset=2))
    [(_, (_, by_key))] = fold(changed + approved).items()
    assert by_key[(1,)].row["narrative"] == "y" * 3000
    # Without an earlier write in the batch the column stays out (the database keeps its value), and a delete in
    # between is not filled from: the row is inserted anew, without the column, as one by one.
    [(_, (_, by_key))] = fold(approved).items()
    assert "narrative" not in by_key[(1,)].row
    deleted = sink.prepare(_record("timeexp.public.time_entries", {"op": "d", "before": {"entry_id": 1}, "after": None}))
    [(_, (_, by_key))] = fold(inserted + deleted + approved).items()
    assert "narrative" not in by_key[(1,)].row


def test_fold_keeps_the_last_write_per_key_the_first_insert_once_and_truncate_forgets_earlier_writes():
    r = _record("t", {})
    writes = [
        Write(r, "a", Action.UPSERT, (1,), {"v": 1}), Write(r, "a", Action.UPSERT, (1,), {"v": 2}),
        Write(r, "a", Action.DELETE, (2,)),
        Write(r, "b", Action.INSERT_ONCE, (1,), {"v": 1}), Write(r, "b", Action.INSERT_ONCE, (1,), {"v": 2}),
        Write(r, "c", Action.UPSERT, (1,), {"v": 1}), Write(r, "c", Action.TRUNCATE), Write(r, "c", Action.UPSERT, (2,), {"v": 3}),
    ]
    folded = fold(writes)
    assert folded["a"][0] is False and {k: w.row for k, w in folded["a"][1].items()} == {(1,): {"v": 2}, (2,): None}
    assert folded["b"][1][(1,)].row == {"v": 1}
    assert folded["c"][0] is True and list(folded["c"][1]) == [(2,)]


def _dbapi(sqlstate: str | None, cls=sa_exc.DBAPIError) -> sa_exc.DBAPIError:
    orig = psycopg.errors.lookup(sqlstate)("x") if sqlstate else psycopg.OperationalError("connection refused")
    return cls("stmt", {}, orig)


@pytest.mark.parametrize(("state", "cls", "fault"), [
    (None, sa_exc.OperationalError, Fault.TRANSIENT),   # connection refused: no SQLSTATE
    ("57P01", sa_exc.OperationalError, Fault.TRANSIENT),  # admin_shutdown
    ("40001", sa_exc.OperationalError, Fault.TRANSIENT),  # serialization_failure
    ("23505", sa_exc.IntegrityError, Fault.RECORD),      # unique_violation
    ("22001", sa_exc.DataError, Fault.RECORD),           # string_data_right_truncation
    ("42P01", sa_exc.ProgrammingError, Fault.FATAL),     # undefined_table
    ("54000", sa_exc.OperationalError, Fault.RECORD),    # program_limit_exceeded: a key too long for its index
    ("P0001", sa_exc.InternalError, Fault.RECORD),       # raise_exception: the target's trigger refused the row
    ("55P03", sa_exc.OperationalError, Fault.TRANSIENT),  # lock_not_available: lock_timeout while a user holds it
    ("57014", sa_exc.OperationalError, Fault.TRANSIENT),  # query_canceled: statement_timeout
])
def test_faults_are_classified_by_sqlstate(state, cls, fault):
    assert classify(_dbapi(state, cls)) is fault


class _Registry:
    """The registry's get_schema for one id (the decoder's only call)."""

    def __init__(self, schema: dict) -> None:
        self.schema = schema

    def get_schema(self, schema_id: int):
        if schema_id != 7:
            from confluent_kafka.schema_registry.error import SchemaRegistryError
            raise SchemaRegistryError(404, 40403, "not found")
        return type("S", (), {"schema_str": json.dumps(self.schema)})()


def _framed(schema: dict, record: dict, schema_id: int = 7) -> bytes:
    buf = io.BytesIO()
    buf.write(struct.pack(">bI", 0, schema_id))
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def test_decoder_reads_confluent_framing_and_rejects_what_it_cannot_read():
    key_schema = load_contract("derived/billing_triggers-key.avsc")
    sink = ErpSink()
    decoder = RecordDecoder(_Registry(key_schema), sink.contracts())
    record = decoder.decode("derived.billing_triggers", 0, 3, _framed(key_schema, {"billing_event_id": "X"}), None)
    assert record.key == {"billing_event_id": "X"} and record.value is None
    with pytest.raises(RecordRejected, match="magic byte"):
        decoder.decode("derived.billing_triggers", 0, 3, b"\x01\x00\x00\x00\x07abc", None)
    with pytest.raises(RecordRejected, match="unknown to the registry"):
        decoder.decode("derived.billing_triggers", 0, 3, _framed(key_schema, {"billing_event_id": "X"}, schema_id=8), None)
    with pytest.raises(RecordRejected, match="shorter"):
        decoder.decode("derived.billing_triggers", 0, 3, b"\x00", None)


def test_unreachable_registry_is_transient_not_poison():
    class Down:
        def get_schema(self, schema_id):
            raise ConnectionError("refused")

    decoder = RecordDecoder(Down(), ErpSink().contracts())
    with pytest.raises(TargetUnavailable):
        decoder.decode("derived.billing_triggers", 0, 0, b"\x00\x00\x00\x00\x07\x02X", None)


def test_the_sink_s_engine_bounds_its_waits_and_hides_row_values_from_error_messages():
    from psmesh.db import connect_args
    from sinks.runner import LOCK_TIMEOUT, STATEMENT_TIMEOUT, make_engine

    args = connect_args("host=db.example port=5432 dbname=erp user=psmesh options='-c search_path=erp'", "psmesh-sink",
                        lock_timeout=LOCK_TIMEOUT, statement_timeout=STATEMENT_TIMEOUT)
    assert args["options"] == "-c search_path=erp -c lock_timeout=10s -c statement_timeout=120s"
    assert (args["keepalives"], args["keepalives_idle"], args["tcp_user_timeout"]) == (1, 30, 60_000)
    assert args["host"] == "db.example" and args["dbname"] == "erp"
    assert "options" not in connect_args("host=db.example dbname=erp", "psmesh-page")  # the page waits as it did
    assert make_engine("host=db.example dbname=erp").hide_parameters


def test_a_connection_failure_is_described_with_libpqs_reason_and_never_the_password():
    """A wrong host, port, password or database name must not read like a bare transient outage."""
    try:
        psycopg.connect("host=127.0.0.1 port=1 dbname=erp user=ops password=s3cret-pw connect_timeout=2")
    except psycopg.OperationalError as exc:
        reason = describe(sa_exc.OperationalError("connect", {}, exc))
    assert reason.startswith("OperationalError: connection failed: ")
    assert '"127.0.0.1", port 1 failed' in reason and "s3cret-pw" not in reason


def test_a_column_the_source_no_longer_sends_is_left_alone_in_the_mirror_not_overwritten_with_null():
    """`ALTER TABLE invoices RENAME COLUMN paid_on TO settled_on` (or DROP COLUMN): the contract still has paid_on,
    the new events do not; read with the contract it is null, and writing that null would unpay every invoice."""
    contract = load_contract("erp/invoices-value.avsc")
    writer = json.loads(json.dumps(contract))
    row = next(t for t in next(f for f in writer["fields"] if f["name"] == "before")["type"] if isinstance(t, dict))
    row["fields"] = [f for f in row["fields"] if f["name"] != "paid_on"]
    after = {"invoice_id": 5, "project_code": "PRJ-1", "billing_event_id": "PRJ-1-P1", "amount": Decimal("10.00"),
             "currency": "EUR", "status": "paid", "issued_on": date(2026, 3, 2), "due_on": date(2026, 4, 1),
             "written_off": Decimal("0.00"), "updated_at": datetime(2026, 4, 2, tzinfo=timezone.utc)}
    source = {"version": "1", "connector": "postgresql", "name": "erp", "ts_ms": 1, "snapshot": "false", "db": "erp",
              "schema": "public", "table": "invoices", "txId": 1, "lsn": 1, "sequence": None}
    event = {"op": "u", "before": None, "after": after, "source": source, "ts_ms": 1, "unchanged_toasted": []}
    event = {f["name"]: event.get(f["name"]) for f in writer["fields"]}

    sink = ReportingSink()
    decoder = RecordDecoder(_Registry(writer), sink.contracts())
    record = decoder.decode("erp.public.invoices", 0, 9, None, _framed(writer, event))
    assert record.absent == frozenset({"paid_on"})
    [write] = sink.prepare(record)
    assert write.action is Action.UPSERT and "paid_on" not in write.row and write.row["status"] == "paid"

    decoder = RecordDecoder(_Registry(contract), sink.contracts())  # the contract's own shape: every column written
    record = decoder.decode("erp.public.invoices", 0, 10, None, _framed(contract, {
        f["name"]: event.get(f["name"]) for f in contract["fields"]} | {"after": {**after, "paid_on": None}}))
    assert record.absent == frozenset() and "paid_on" in sink.prepare(record)[0].row
