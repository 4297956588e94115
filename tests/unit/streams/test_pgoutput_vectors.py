"""The decoder on real pgoutput bytes captured from PostgreSQL 15.

The vectors under ``vectors/`` come from tools/capture_pgoutput_vectors.py
(see its docstring for how and why). Each file holds one scenario, read once
with protocol 1 (decoding session TimeZone America/Sao_Paulo) and once with
protocol 2 + streaming (TimeZone Asia/Kolkata, logical_decoding_work_mem
64kB). Relation and type oids, xids and LSNs differ between captures, so the
tests compare them with the catalog the file records and with each other,
and compare values with what the scenario's SQL wrote.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest

from streams.lsn import Lsn
from streams.pgoutput import (
    PG_EPOCH,
    UNCHANGED_TOAST,
    Begin,
    Commit,
    Delete,
    Insert,
    LogicalMessage,
    Origin,
    PgOutputDecoder,
    Relation,
    RelationCache,
    ReplicaIdentity,
    StreamAbort,
    StreamCommit,
    StreamStart,
    StreamStop,
    Truncate,
    Type,
    Update,
)
from streams.pgtypes import RowConverter, char_length, numeric_precision_scale

VECTORS = Path(__file__).parent / "vectors"
VERSIONS = [1, 2]
FRAMING = (Begin, Commit, StreamStart, StreamStop, StreamCommit, StreamAbort)


@cache
def vector(version: int, scenario: str) -> dict:
    return json.loads((VECTORS / f"v{version}" / f"{scenario}.json").read_text())


def decode(version: int, scenario: str) -> list:
    document = vector(version, scenario)
    assert document["protocol_version"] == version
    decoder = PgOutputDecoder(version)
    messages = [decoder.decode(bytes.fromhex(row["data"])) for row in document["messages"]]
    assert not decoder.in_stream, "every captured session ends outside a stream block"
    return messages


def kinds(messages: list) -> str:
    return "".join(m.TYPE.decode() for m in messages)


def relation_oid(version: int, scenario: str, table: str) -> int:
    return vector(version, scenario)["catalog"]["relations"][table]


def md5_text(multiplier: int) -> str:
    """The TOASTed notes the capture writes: string_agg(md5((g * k)::text)) for g in 1..250."""
    return "".join(hashlib.md5(str(g * multiplier).encode()).hexdigest() for g in range(1, 251))


ORDER_COLUMNS = [
    "order_id", "account_id", "amount", "probability", "close_date", "updated_at", "skills", "active",
    "currency", "attributes", "notes", "qty", "status", "ref", "local_ts", "code", "scores", "rates",
]  # fmt: skip


def order_row(messages: list, order_id: str) -> tuple:
    return next(m.new for m in messages if isinstance(m, Insert) and m.new[0] == order_id)


# --- every file -----------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(VECTORS.glob("v*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_captured_message_decodes_and_transactions_are_well_framed(path):
    version = int(path.parent.name[1:])
    messages = decode(version, path.stem)
    open_xid = None
    for message, row in zip(messages, vector(version, path.stem)["messages"]):
        if isinstance(message, Begin):
            assert open_xid is None
            open_xid = message.xid
            assert message.xid == row["xid"]
        elif isinstance(message, Commit):
            assert open_xid is not None
            open_xid = None
    assert open_xid is None


@pytest.mark.parametrize("version", VERSIONS)
def test_begin_and_commit_agree_on_commit_lsn_and_timestamp(version):
    messages = decode(version, "insert")
    begin, commit = messages[0], messages[-1]
    assert isinstance(begin, Begin) and isinstance(commit, Commit)
    assert isinstance(begin.final_lsn, Lsn)
    assert begin.final_lsn == commit.commit_lsn
    assert commit.end_lsn > commit.commit_lsn
    assert commit.flags == 0
    assert begin.commit_ts == commit.commit_ts
    assert begin.commit_time.tzinfo is timezone.utc
    assert begin.commit_time == PG_EPOCH + (begin.commit_time - PG_EPOCH)
    captured = datetime.fromisoformat(vector(version, "insert")["captured_at"])
    assert abs((captured - commit.commit_time).total_seconds()) < 120
    assert (commit.commit_time - PG_EPOCH).total_seconds() * 1_000_000 == pytest.approx(commit.commit_ts, abs=1)


# --- relations and types ------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_insert_transaction_sends_type_and_relation_before_its_rows(version):
    messages = decode(version, "insert")
    assert kinds(messages) == "BYRIIIC"
    type_, relation = messages[1], messages[2]
    assert type_ == Type(vector(version, "insert")["catalog"]["types"]["vec.order_status"], "vec", "order_status")
    assert relation.relation_id == relation_oid(version, "insert", "vec.orders")
    assert all(m.relation_id == relation.relation_id for m in messages if isinstance(m, Insert))


@pytest.mark.parametrize("version", VERSIONS)
def test_relation_carries_names_type_oids_typmods_key_flags_and_replica_identity(version):
    messages = decode(version, "insert")
    relation = next(m for m in messages if isinstance(m, Relation))
    enum_oid = next(m for m in messages if isinstance(m, Type)).type_oid
    assert (relation.namespace, relation.name) == ("vec", "orders")
    assert relation.replica_identity is ReplicaIdentity.DEFAULT
    assert relation.xid is None
    assert [c.name for c in relation.columns] == ORDER_COLUMNS
    assert [c.type_oid for c in relation.columns] == [
        20, 20, 1700, 1700, 1082, 1184, 1009, 16, 1042, 3802, 25, 23, enum_oid, 2950, 1114, 1043, 1007, 1231,
    ]  # fmt: skip
    columns = {c.name: c for c in relation.columns}
    assert numeric_precision_scale(columns["amount"].type_modifier) == (14, 2)
    assert numeric_precision_scale(columns["probability"].type_modifier) == (5, 2)
    assert numeric_precision_scale(columns["rates"].type_modifier) is None
    assert char_length(columns["currency"].type_modifier) == 3
    assert char_length(columns["code"].type_modifier) == 12
    assert columns["notes"].type_modifier == -1
    assert [c.name for c in relation.key_columns] == ["order_id"]
    assert columns["order_id"].is_key and columns["order_id"].flags == 1
    assert not columns["amount"].is_key


@pytest.mark.parametrize("version", VERSIONS)
def test_relation_of_every_replica_identity_kind_is_decoded(version):
    seen = {}
    for scenario in ("insert", "update_replica_identity_full", "replica_identity_index_and_nothing"):
        for message in decode(version, scenario):
            if isinstance(message, Relation):
                seen[message.name] = message
    assert seen["orders"].replica_identity is ReplicaIdentity.DEFAULT
    assert seen["orders_full"].replica_identity is ReplicaIdentity.FULL
    assert all(c.is_key for c in seen["orders_full"].columns), "identity FULL flags every column as key"
    assert seen["by_index"].replica_identity is ReplicaIdentity.INDEX
    assert [c.name for c in seen["by_index"].key_columns] == ["email"]
    assert seen["nothing"].replica_identity is ReplicaIdentity.NOTHING
    assert seen["nothing"].key_columns == ()


@pytest.mark.parametrize("version", VERSIONS)
def test_schema_change_resends_the_relation_with_the_new_column(version):
    messages = decode(version, "schema_change")
    assert kinds(messages) == "BRICBRIC"
    before, after = [m for m in messages if isinstance(m, Relation)]
    assert before.relation_id == after.relation_id
    assert [c.name for c in before.columns] == ["id", "email", "name"]
    assert [c.name for c in after.columns] == ["id", "email", "name", "note"]
    inserts = [m for m in messages if isinstance(m, Insert)]
    assert inserts[0].new == ("2", "bob@example.com", "Bob")
    assert inserts[1].new == ("3", "cy@example.com", "Cy", "new column")
    cache = RelationCache()
    assert cache.add(before) is None
    assert cache.add(after) == before
    assert cache[after.relation_id] == after


# --- inserts and values --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_inserted_values_are_the_text_postgresql_sent(version):
    messages = decode(version, "insert")
    first = dict(zip(ORDER_COLUMNS, order_row(messages, "1")))
    assert first["amount"] == "1234567.89"
    assert first["probability"] == "12.50"
    assert first["currency"] == "EU ", "char(3) arrives blank-padded"
    assert first["active"] == "t"
    assert first["skills"] == (
        '{aws,"data engineering","a,b","x\\"y","back\\\\slash",NULL,"NULL","{braces}",""," lead"}'
    )
    assert first["notes"] == md5_text(1), "a TOASTed value is sent whole on insert"
    assert first["status"] == "won"
    # timestamptz text follows the decoding session's TimeZone.
    expected = {1: "2026-11-25 07:11:12.123456-03", 2: "2026-11-25 15:41:12.123456+05:30"}
    assert first["updated_at"] == expected[version]
    third = dict(zip(ORDER_COLUMNS, order_row(messages, "3")))
    assert third["close_date"] is None and third["skills"] is None
    assert third["probability"] == "NaN"


@pytest.mark.parametrize("version", VERSIONS)
def test_inserted_rows_convert_to_exact_python_values(version):
    messages = decode(version, "insert")
    convert = RowConverter(next(m for m in messages if isinstance(m, Relation)).columns)
    rows = {row[0]: dict(zip(ORDER_COLUMNS, row)) for row in (convert(m.new) for m in messages if isinstance(m, Insert))}
    one, two, three = rows[1], rows[2], rows[3]
    assert one["amount"] == Decimal("1234567.89") and one["amount"].as_tuple().exponent == -2
    assert two["amount"] == Decimal("0.10") and str(two["amount"]) == "0.10"
    assert three["amount"] == Decimal("-0.01")
    assert three["probability"].is_nan()
    assert one["close_date"] == date(2026, 11, 30)
    assert two["close_date"] == date(2000, 2, 29)
    # The same instants, whatever offset the session printed them with.
    assert one["updated_at"] == datetime(2026, 11, 25, 10, 11, 12, 123456, tzinfo=timezone.utc)
    assert two["updated_at"] == datetime(1900, 1, 1, tzinfo=timezone.utc)
    assert three["updated_at"] == datetime(2026, 7, 1, 23, 59, 59, 500000, tzinfo=timezone.utc)
    assert one["skills"] == ["aws", "data engineering", "a,b", 'x"y', "back\\slash", None, "NULL", "{braces}", "", " lead"]
    assert two["skills"] == []
    assert (one["active"], two["active"], three["active"]) == (True, False, None)
    assert one["currency"] == "EU " and two["currency"] == "USD"
    assert json.loads(one["attributes"]) == {"k": [1, 2], "nested": {"a": None}, "s": "é"}
    assert three["attributes"] == "[]"
    assert (one["qty"], three["qty"]) == (3, -7)
    assert one["status"] == "won", "an enum (unknown oid) passes through as text"
    assert one["ref"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert one["local_ts"] == datetime(2026, 11, 25, 10, 11, 12)
    assert three["local_ts"] == datetime(2026, 12, 31, 23, 59, 59, 999999)
    assert (one["code"], three["code"]) == ("ab", "x y")
    assert one["scores"] == [1, -2, None]
    assert one["rates"][0] == Decimal("1.50") and one["rates"][1].is_nan() and one["rates"][2] == Decimal("-0.001")
    assert one["notes"] == md5_text(1) and two["notes"] == md5_text(7)


# --- updates ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_update_with_changed_primary_key_carries_old_key_tuple(version):
    messages = decode(version, "update_changed_primary_key")
    assert kinds(messages) == "BYRUC"
    update = messages[3]
    assert update.relation_id == relation_oid(version, "update_changed_primary_key", "vec.orders")
    assert update.old is None
    assert update.key == ("1",) + (None,) * 17, "a 'K' tuple holds the old key; other columns are null"
    new = dict(zip(ORDER_COLUMNS, update.new))
    assert (new["order_id"], new["amount"]) == ("1001", "99.99")
    assert new["notes"] is UNCHANGED_TOAST


@pytest.mark.parametrize("version", VERSIONS)
def test_update_that_leaves_a_toasted_column_alone_marks_it_unchanged_not_faked(version):
    messages = decode(version, "update_toast_unchanged")
    assert kinds(messages) == "BYRUC"
    update = messages[3]
    assert update.key is None and update.old is None, "key unchanged under identity DEFAULT: no old tuple"
    new = dict(zip(ORDER_COLUMNS, update.new))
    assert new["notes"] is UNCHANGED_TOAST
    assert (new["order_id"], new["active"], new["qty"]) == ("2", "t", "5")
    converted = dict(zip(ORDER_COLUMNS, RowConverter(messages[2].columns)(update.new)))
    assert converted["notes"] is UNCHANGED_TOAST and converted["qty"] == 5


@pytest.mark.parametrize("version", VERSIONS)
def test_update_under_replica_identity_full_carries_the_whole_old_row(version):
    messages = decode(version, "update_replica_identity_full")
    assert kinds(messages) == "BYRIIICBUCBUC"
    first, second = [m for m in messages if isinstance(m, Update)]
    assert first.key is None and first.old is not None
    old, new = dict(zip(ORDER_COLUMNS, first.old)), dict(zip(ORDER_COLUMNS, first.new))
    assert (old["amount"], old["probability"]) == ("1234567.89", "12.50")
    assert (new["amount"], new["probability"]) == ("1234568.89", "50.00")
    assert old["notes"] == md5_text(1), "identity FULL logs the old TOASTed value in full"
    assert new["notes"] is UNCHANGED_TOAST
    old, new = dict(zip(ORDER_COLUMNS, second.old)), dict(zip(ORDER_COLUMNS, second.new))
    assert (old["notes"], new["notes"]) == (md5_text(7), "replaced")


@pytest.mark.parametrize("version", VERSIONS)
def test_replica_identity_index_sends_the_index_key_only_when_it_changes(version):
    messages = decode(version, "replica_identity_index_and_nothing")
    assert kinds(messages) == "BRICBUCBUCBRIC"
    email_change, name_change = [m for m in messages if isinstance(m, Update)]
    assert email_change.key == (None, "ann@example.com", None)
    assert email_change.new == ("1", "ann.lee@example.com", "Ann")
    assert name_change.key is None and name_change.old is None
    assert name_change.new == ("1", "ann.lee@example.com", "Ann Lee")


# --- deletes and truncates ---------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_delete_under_default_identity_carries_the_key_only(version):
    messages = decode(version, "delete_replica_identity_default")
    assert kinds(messages) == "BYRDDC"
    deletes = [m for m in messages if isinstance(m, Delete)]
    # Rows are deleted in heap order: the updated row 1001 sits after row 3.
    assert sorted(d.key for d in deletes) == [("1001",) + (None,) * 17, ("3",) + (None,) * 17]
    assert all(d.old is None for d in deletes)


@pytest.mark.parametrize("version", VERSIONS)
def test_delete_under_full_identity_carries_the_whole_old_row(version):
    messages = decode(version, "delete_replica_identity_full")
    assert kinds(messages) == "BYRDC"
    delete = messages[3]
    assert delete.key is None
    old = dict(zip(ORDER_COLUMNS, delete.old))
    assert (old["order_id"], old["amount"], old["notes"], old["qty"]) == ("3", "-0.01", "short", "-7")


@pytest.mark.parametrize("version", VERSIONS)
def test_truncate_reports_its_options_and_every_relation_id(version):
    messages = decode(version, "truncate")
    assert kinds(messages) == "BYRRTCBRTC"
    both, plain = [m for m in messages if isinstance(m, Truncate)]
    assert both.relation_ids == (
        relation_oid(version, "truncate", "vec.orders_full"),
        relation_oid(version, "truncate", "vec.by_index"),
    )
    assert both.options == 3 and both.cascade and both.restart_identity
    assert plain.relation_ids == (relation_oid(version, "truncate", "vec.nothing"),)
    assert plain.options == 0 and not plain.cascade and not plain.restart_identity


# --- transactions without rows, messages, origins ---------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_rolled_back_transaction_sends_nothing(version):
    assert decode(version, "rolled_back_transaction") == []


@pytest.mark.parametrize("version", VERSIONS)
def test_logical_messages_carry_prefix_content_and_transactional_flag(version):
    messages = decode(version, "logical_message")
    assert kinds(messages) == "BRIMMCM"
    marker, binary, heartbeat = [m for m in messages if isinstance(m, LogicalMessage)]
    assert (marker.prefix, marker.content, marker.transactional) == ("psmesh.marker", b"snapshot-done", True)
    assert (binary.prefix, binary.content, binary.transactional) == ("psmesh.binary", b"\x00\xff\x10", True)
    assert (heartbeat.prefix, heartbeat.content, heartbeat.transactional) == ("psmesh.heartbeat", b"tick", False)
    assert heartbeat.flags == 0 and marker.flags == 1
    commit = messages[5]
    assert marker.lsn < binary.lsn <= commit.commit_lsn < heartbeat.lsn


@pytest.mark.parametrize("version", VERSIONS)
def test_origin_message_follows_begin_with_the_origin_name_and_its_commit_lsn(version):
    messages = decode(version, "origin")
    assert kinds(messages) == "BORIC"
    assert messages[1] == Origin(Lsn.parse("0/1234ABCD"), "psmesh_vectors_origin")
    # pg_replication_origin_xact_setup's timestamp becomes the commit timestamp.
    assert messages[0].commit_time == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    assert messages[-1].commit_ts == messages[0].commit_ts == 820638245678901


# --- protocol 2: streamed transactions ------------------------------------------------------


def test_large_transaction_streams_in_blocks_that_carry_its_xid():
    messages = decode(2, "large_streamed_transaction")
    starts = [m for m in messages if isinstance(m, StreamStart)]
    assert len(starts) >= 2, "1,000 rows exceed logical_decoding_work_mem=64kB more than once"
    assert [s.first_segment for s in starts] == [True] + [False] * (len(starts) - 1)
    xid = starts[0].xid
    assert all(s.xid == xid for s in starts)
    inside = [m for m in messages if not isinstance(m, FRAMING)]
    assert all(m.xid == xid for m in inside)
    inserts = [m for m in inside if isinstance(m, Insert)]
    assert [m.new for m in inserts] == [(str(i), f"row {i}") for i in range(1, 1001)]
    commit = messages[-1]
    assert isinstance(commit, StreamCommit) and commit.xid == xid
    assert commit.flags == 0 and commit.end_lsn > commit.commit_lsn
    assert commit.commit_time.tzinfo is timezone.utc
    assert isinstance(messages[-2], StreamStop)


def test_protocol_1_receives_the_same_large_transaction_whole_at_commit():
    v1 = decode(1, "large_streamed_transaction")
    assert kinds(v1) == "BR" + "I" * 1000 + "C"
    assert all(m.xid is None for m in v1 if isinstance(m, (Relation, Insert)))
    v2_changes = [dataclasses.replace(m, xid=None) for m in decode(2, "large_streamed_transaction")
                  if isinstance(m, (Relation, Insert))]  # fmt: skip
    assert [m for m in v1 if isinstance(m, (Relation, Insert))] == v2_changes
    assert v1[0].xid == decode(2, "large_streamed_transaction")[0].xid
    assert v1[-1].end_lsn == decode(2, "large_streamed_transaction")[-1].end_lsn


def test_every_streamable_message_kind_carries_the_xid_inside_a_stream_block():
    v2 = decode(2, "streamed_mixed_changes")
    top = v2[0].xid
    inside = [m for m in v2 if not isinstance(m, FRAMING)]
    assert {type(m) for m in inside} == {Relation, Type, Insert, Update, Delete, LogicalMessage, Truncate}
    assert all(m.xid == top for m in inside)
    # The same changes as protocol 1 sends them, but for the xid.
    v1 = [m for m in decode(1, "streamed_mixed_changes") if not isinstance(m, FRAMING)]
    assert [dataclasses.replace(m, xid=None) for m in inside] == v1
    plain, key_change = [m for m in inside if isinstance(m, Update)]
    assert plain.key is None and plain.new == ("2001", "updated")
    assert key_change.key == ("2002", None) and key_change.new == ("3002", "mixed 2002")
    assert next(m for m in inside if isinstance(m, Delete)).key == ("2003", None)
    message = next(m for m in inside if isinstance(m, LogicalMessage))
    assert (message.prefix, message.content, message.transactional) == ("psmesh.marker", b"in a stream", True)


def test_streamed_changes_carry_their_subtransaction_xid_and_stream_abort_drops_them():
    messages = decode(2, "streamed_subtransaction_abort")
    top = messages[0].xid
    abort = next(m for m in messages if isinstance(m, StreamAbort))
    assert abort.xid == top and abort.subxid != top and not abort.is_whole_transaction
    inserts = [m for m in messages if isinstance(m, Insert)]
    dropped = [m for m in inserts if m.xid == abort.subxid]
    assert dropped and all(m.new[1].startswith("drop ") for m in dropped)
    assert all(m.new[1].startswith("keep ") for m in inserts if m.xid == top)
    # A consumer that discards the aborted subtransaction's changes ends with
    # exactly the rows protocol 1 delivers for the committed transaction.
    survivors = [m.new for m in inserts if m.xid != abort.subxid]
    assert survivors == [m.new for m in decode(1, "streamed_subtransaction_abort") if isinstance(m, Insert)]
    assert isinstance(messages[-1], StreamCommit) and messages[-1].xid == top


def test_streamed_transaction_abort_of_the_whole_transaction_has_equal_xid_and_subxid():
    messages = decode(2, "streamed_transaction_abort")
    assert kinds(messages) == "SEA"
    start, _, abort = messages
    assert start.first_segment
    assert abort == StreamAbort(start.xid, start.xid) and abort.is_whole_transaction
    assert decode(1, "streamed_transaction_abort") == []


# --- rows shaped like DOMAIN.md ------------------------------------------------------------


def converted_rows(version: int, scenario: str) -> dict[str, list[tuple]]:
    converters, rows = {}, {}
    for message in decode(version, scenario):
        if isinstance(message, Relation):
            converters[message.relation_id] = (message.name, RowConverter(message.columns))
        elif isinstance(message, Insert):
            name, convert = converters[message.relation_id]
            rows.setdefault(name, []).append(convert(message.new))
    return rows


def test_domain_rows_convert_to_the_same_python_values_whatever_the_session_time_zone():
    v1, v2 = converted_rows(1, "domain_rows"), converted_rows(2, "domain_rows")
    assert v1 == v2, "Sao Paulo (-03) and Kolkata (+05:30) sessions must give the same instants"
    assert (len(v1["resources"]), len(v1["time_entries"])) == (50, 100)
    resource = v1["resources"][0]
    assert resource == (
        1, "Consultant 1", "c1@example.com", "architect", "azure", ["gcp"], "EMEA", "employee",
        Decimal("61.25"), Decimal("151.50"), Decimal("40.00"), True, date(2020, 1, 17),
        datetime(2026, 11, 2, 9, 37, 1, 500000, tzinfo=timezone.utc),
    )  # fmt: skip
    assert [r[5] for r in v1["resources"][:5]] == [
        ["gcp"], ["sap", "salesforce", "data_engineering"], [], ["security", "aws"], ["aws", "azure"],
    ]  # fmt: skip
    entry = v1["time_entries"][1]
    assert entry == (
        2, 3, "PRJ-1002", "senior_consultant", date(2026, 11, 4), Decimal("3.50"), True, Decimal("152.50"),
        Decimal("62.25"), "approved", "Worked on item 2", datetime(2026, 11, 20, 17, 2, tzinfo=timezone.utc),
        datetime(2026, 11, 21, 9, 32, 0, 250000, tzinfo=timezone.utc),
        datetime(2026, 11, 21, 10, 0, 2, 123456, tzinfo=timezone.utc),
    )  # fmt: skip
    # Sums of money are exact: no float on the way.
    earned = sum(e[5] * e[7] for e in v1["time_entries"] if e[9] == "approved" and e[6])
    entries = relation_oid(1, "domain_rows", "vec.time_entries")
    texts = [m.new for m in decode(1, "domain_rows") if isinstance(m, Insert) and m.relation_id == entries]
    assert earned.as_tuple().exponent == -4
    assert earned == sum(Decimal(t[5]) * Decimal(t[7]) for t in texts if t[9] == "approved" and t[6] == "t")
