"""Capture pgoutput test vectors from a real PostgreSQL server.

Regenerates ``tests/unit/streams/vectors/v1/*.json`` and ``.../v2/*.json``:
the exact bytes ``pgoutput`` produces for each scenario below, so that the
decoder's unit tests run on real server output with no server at test time.

Usage::

    .venv/bin/python tools/capture_pgoutput_vectors.py \\
        --dsn "host=127.0.0.1 port=5433 user=psmesh dbname=postgres"

The server needs ``wal_level=logical`` and a superuser (replication origins
and CREATE PUBLICATION ... FOR TABLES IN SCHEMA). The script owns the
scratch database ``psmesh_vectors``, its two slots and one replication
origin: it drops any leftovers of an earlier run at the start and drops all
three at the end, even on failure (a forgotten slot would pin WAL). Nothing
else is touched.

How it reads the changes: two logical slots on the same database, one read
with ``proto_version '1'`` and one with ``proto_version '2', streaming 'on'``,
both with ``messages 'true'``. After each scenario both slots are read with
``pg_logical_slot_get_binary_changes`` (the consuming twin of ``..._peek_...``;
the bytes are identical, and consuming gives one self-contained file per
scenario, because every call starts a fresh pgoutput session that re-sends
the Relation messages it needs).

Observed on PostgreSQL 15 (and relied on here): the SQL-function interface
*does* stream in-progress transactions with protocol 2 (Stream Start / Stop /
Commit / Abort appear), but only when ``logical_decoding_work_mem`` is lowered
in the *decoding* session, the one calling the function. Setting it in the
session that writes has no effect: the limit applies to the reorder buffer of
the process that decodes. The writer sets it anyway, as harmless
documentation of intent; the reader's setting is what makes blocks appear.

The two reading sessions also use different TimeZone settings
(Asia/Kolkata for v2, America/Sao_Paulo for v1), because pgoutput renders
timestamptz text in the decoding session's TimeZone: the vectors carry
'+05:30' and '-03' offsets (and the historical local-mean-time offsets
with seconds for 1900) straight from the server.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from psycopg import sql

logger = logging.getLogger("capture_pgoutput_vectors")

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "tests" / "unit" / "streams" / "vectors"
DATABASE = "psmesh_vectors"
PUBLICATION = "psmesh_vectors_pub"
ORIGIN = "psmesh_vectors_origin"
SLOTS = {1: "psmesh_vectors_v1", 2: "psmesh_vectors_v2"}
OPTIONS = {
    1: ["proto_version", "1", "publication_names", PUBLICATION, "messages", "true"],
    2: ["proto_version", "2", "publication_names", PUBLICATION, "streaming", "on", "messages", "true"],
}
READER_SETTINGS = {
    1: {"TimeZone": "America/Sao_Paulo", "DateStyle": "ISO, MDY", "logical_decoding_work_mem": "64MB"},
    2: {"TimeZone": "Asia/Kolkata", "DateStyle": "ISO, MDY", "logical_decoding_work_mem": "64kB"},
}

# Every DOMAIN.md column type, plus the extras the decoder must meet (an
# enum, which makes pgoutput send a Type message; uuid; timestamp without
# time zone; varchar(n)), and a TOASTed text column stored out of line.
ORDER_COLUMNS = """
    order_id bigint primary key,
    account_id bigint,
    amount numeric(14,2),
    probability numeric(5,2),
    close_date date,
    updated_at timestamptz,
    skills text[],
    active boolean,
    currency char(3),
    attributes jsonb,
    notes text,
    qty int,
    status vec.order_status,
    ref uuid,
    local_ts timestamp,
    code varchar(12),
    scores int4[],
    rates numeric[]
"""

SETUP = [
    "create schema vec",
    "create type vec.order_status as enum ('open', 'won', 'lost')",
    f"create table vec.orders ({ORDER_COLUMNS})",
    # EXTERNAL: out of line without compression, so 8,000 characters are TOASTed for sure.
    "alter table vec.orders alter column notes set storage external",
    f"create table vec.orders_full ({ORDER_COLUMNS})",
    "alter table vec.orders_full alter column notes set storage external",
    "alter table vec.orders_full replica identity full",
    "create table vec.by_index (id bigint primary key, email text not null unique, name text)",
    "alter table vec.by_index replica identity using index by_index_email_key",
    "create table vec.nothing (id bigint primary key, v text)",
    "alter table vec.nothing replica identity nothing",
    "create table vec.bulk (id bigint primary key, payload text)",
    "create table vec.unpublished (id bigint primary key)",
    # Shaped like DOMAIN.md's timeexp.time_entries and psa.resources: the rows
    # the capture will mostly see (and the decode benchmark's realistic set).
    "create table vec.time_entries (entry_id bigint primary key, resource_id bigint, project_code text,"
    " role text, work_date date, hours numeric(5,2), billable boolean, bill_rate numeric(10,2),"
    " cost_rate numeric(10,2), status text, narrative text, submitted_at timestamptz,"
    " approved_at timestamptz, updated_at timestamptz)",
    "create table vec.resources (resource_id bigint primary key, name text, email text unique, role text,"
    " primary_skill text, skills text[], region text, employment_type text, cost_rate numeric(10,2),"
    " bill_rate numeric(10,2), weekly_capacity_hours numeric(5,2), active boolean, hired_on date,"
    " updated_at timestamptz)",
    f"create publication {PUBLICATION} for table vec.orders, vec.orders_full, vec.by_index,"
    " vec.nothing, vec.bulk, vec.time_entries, vec.resources",
]

BIG = "(select string_agg(md5(g::text), '') from generate_series(1, 250) g)"  # 8,000 chars
BIG2 = "(select string_agg(md5((g * 7)::text), '') from generate_series(1, 250) g)"

INSERT_ORDERS = """
insert into vec.{table} (order_id, account_id, amount, probability, close_date, updated_at, skills,
    active, currency, attributes, notes, qty, status, ref, local_ts, code, scores, rates) values
(1, 10, 1234567.89, 12.50, '2026-11-30', '2026-11-25 10:11:12.123456+00',
    '{{aws,"data engineering","a,b","x\\"y","back\\\\slash",NULL,"NULL","{{braces}}",""," lead"}}',
    true, 'EU', '{{"k": [1, 2], "nested": {{"a": null}}, "s": "é"}}', {big}, 3, 'won',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-11-25 10:11:12', 'ab', '{{1,-2,NULL}}',
    '{{1.50,NaN,-0.001}}'),
(2, null, 0.10, 100.00, '2000-02-29', '1900-01-01 00:00:00+00', '{{}}', false, 'USD', null,
    {big2}, null, 'open', null, null, null, '{{}}', null),
(3, 30, -0.01, 'NaN', null, '2026-07-01 23:59:59.5+00', null, null, null, '[]', 'short', -7, null,
    null, '2026-12-31 23:59:59.999999', 'x y', null, null)
"""


def insert_orders(table: str) -> str:
    return INSERT_ORDERS.format(table=table, big=BIG, big2=BIG2).strip()


# pg_logical_slot_get_binary_changes decodes only WAL that is flushed, and
# neither a ROLLBACK nor a non-transactional pg_logical_emit_message flushes
# it (PostgreSQL 15 has no `flush` argument; 17 adds one). A committed write
# to an unpublished table flushes it and adds no message (pgoutput skips
# empty transactions since 15), so every scenario ends with one: otherwise a
# scenario's last records would show up in the next scenario's file.
FLUSH_WAL = "insert into vec.unpublished select coalesce(max(id), 0) + 1 from vec.unpublished"

Scenario = tuple[str, str, Callable[[], list[str]]]

SCENARIOS: list[Scenario] = [
    (
        "insert",
        "three rows covering every column type, nulls, tricky arrays, NaN, a TOASTed text; an enum column "
        "makes pgoutput send a Type message before the Relation",
        lambda: ["begin", insert_orders("orders"), "commit"],
    ),
    (
        "update_changed_primary_key",
        "REPLICA IDENTITY DEFAULT: an update that changes the primary key carries a 'K' tuple with the old "
        "key (other columns null); the untouched TOASTed notes column is 'u' in the new tuple",
        lambda: ["update vec.orders set order_id = 1001, amount = 99.99 where order_id = 1"],
    ),
    (
        "update_toast_unchanged",
        "REPLICA IDENTITY DEFAULT, key unchanged: no old tuple; notes (TOASTed, untouched) is 'u'",
        lambda: ["update vec.orders set active = true, qty = 5 where order_id = 2"],
    ),
    (
        "update_replica_identity_full",
        "REPLICA IDENTITY FULL: updates carry the whole old row as an 'O' tuple (TOASTed value in full "
        "in the old tuple, 'u' in the new one)",
        lambda: [
            "begin",
            insert_orders("orders_full"),
            "commit",
            "update vec.orders_full set amount = amount + 1, probability = 50.00 where order_id = 1",
            "update vec.orders_full set notes = 'replaced' where order_id = 2",
        ],
    ),
    (
        "replica_identity_index_and_nothing",
        "REPLICA IDENTITY USING INDEX ('i': changing the indexed email sends a 'K' tuple) and NOTHING ('n')",
        lambda: [
            "insert into vec.by_index values (1, 'ann@example.com', 'Ann')",
            "update vec.by_index set email = 'ann.lee@example.com' where id = 1",
            "update vec.by_index set name = 'Ann Lee' where id = 1",
            "insert into vec.nothing values (1, 'only inserts are published for identity nothing')",
        ],
    ),
    (
        "delete_replica_identity_default",
        "delete under REPLICA IDENTITY DEFAULT: a 'K' tuple with the key only",
        lambda: ["delete from vec.orders where order_id in (1001, 3)"],
    ),
    (
        "delete_replica_identity_full",
        "delete under REPLICA IDENTITY FULL: an 'O' tuple with the whole old row",
        lambda: ["delete from vec.orders_full where order_id = 3"],
    ),
    (
        "truncate",
        "TRUNCATE ... RESTART IDENTITY CASCADE of two tables (options 3), then a plain one (options 0)",
        lambda: [
            "truncate vec.orders_full, vec.by_index restart identity cascade",
            "truncate vec.nothing",
        ],
    ),
    (
        "rolled_back_transaction",
        "a small transaction that rolls back: pgoutput sends nothing for it",
        lambda: ["begin", "insert into vec.orders (order_id) values (99)", "rollback"],
    ),
    (
        "logical_message",
        "pg_logical_emit_message: transactional (inside Begin/Commit, with an insert) and non-transactional "
        "(alone, outside any transaction), text and binary content",
        lambda: [
            "begin",
            "insert into vec.nothing values (2, 'with a message')",
            "select pg_logical_emit_message(true, 'psmesh.marker', 'snapshot-done')",
            "select pg_logical_emit_message(true, 'psmesh.binary', '\\x00ff10'::bytea)",
            "commit",
            "select pg_logical_emit_message(false, 'psmesh.heartbeat', 'tick')",
        ],
    ),
    (
        "origin",
        "a transaction replayed under a replication origin: pgoutput sends an Origin message after Begin; "
        "the commit timestamp is the one given to pg_replication_origin_xact_setup",
        lambda: [
            f"select pg_replication_origin_session_setup('{ORIGIN}')",
            "begin",
            "select pg_replication_origin_xact_setup('0/1234ABCD', '2026-01-02 03:04:05.678901+00')",
            "insert into vec.nothing values (3, 'from another node')",
            "commit",
            "select pg_replication_origin_session_reset()",
        ],
    ),
    (
        "schema_change",
        "DDL between two inserts: pgoutput re-sends the Relation with the new column",
        lambda: [
            "insert into vec.by_index values (2, 'bob@example.com', 'Bob')",
            "alter table vec.by_index add column note text",
            "insert into vec.by_index values (3, 'cy@example.com', 'Cy', 'new column')",
        ],
    ),
    (
        "domain_rows",
        "rows shaped like DOMAIN.md's psa.resources (with skills text[]) and timeexp.time_entries, "
        "deterministic values; the realistic set of bench/decode_pgoutput.py",
        lambda: [
            "begin",
            "insert into vec.resources select g, 'Consultant ' || g, 'c' || g || '@example.com',"
            " (array['project_manager','architect','senior_consultant','consultant','analyst'])[1 + g % 5],"
            " (array['aws','azure','gcp','sap','salesforce','data_engineering','security'])[1 + g % 7],"
            " (array['{aws,azure}','{gcp}','{sap,salesforce,data_engineering}','{}','{security,aws}'])[1 + g % 5]::text[],"
            " (array['NA','EMEA','APAC','LATAM'])[1 + g % 4], case when g % 6 = 0 then 'subcontractor' else 'employee' end,"
            " 60 + g % 40 + 0.25, 150 + g % 90 + 0.50, 40.00, g % 13 <> 0, date '2020-01-06' + g * 11,"
            " timestamptz '2026-11-02 09:00:00+00' + g * interval '37 minutes 1.5 seconds'"
            " from generate_series(1, 50) g",
            "insert into vec.time_entries select g, 1 + g % 50, 'PRJ-' || (1000 + g % 17),"
            " (array['project_manager','architect','senior_consultant','consultant','analyst'])[1 + g % 5],"
            " date '2026-11-02' + g % 19, (1 + g % 8) + 0.25 * (g % 4), g % 5 <> 0,"
            " 150 + g % 90 + 0.50, 60 + g % 40 + 0.25,"
            " (array['draft','submitted','approved','rejected'])[1 + g % 4], 'Worked on item ' || g,"
            " case when g % 4 > 0 then timestamptz '2026-11-20 17:00:00+00' + g * interval '1 minute' end,"
            " case when g % 4 = 2 then timestamptz '2026-11-21 09:30:00.25+00' + g * interval '1 minute' end,"
            " timestamptz '2026-11-21 10:00:00.123456+00' + g * interval '1 second'"
            " from generate_series(1, 100) g",
            "commit",
        ],
    ),
    (
        "large_streamed_transaction",
        "1,000 inserts in one transaction: with logical_decoding_work_mem 64kB in the decoding session, "
        "protocol 2 streams it in blocks (Stream Start/Stop) and ends with Stream Commit; protocol 1 "
        "sends it whole at commit",
        lambda: [
            "set logical_decoding_work_mem = '64kB'",
            "begin",
            "insert into vec.bulk select g, 'row ' || g from generate_series(1, 1000) g",
            "commit",
        ],
    ),
    (
        "streamed_mixed_changes",
        "a streamed transaction whose later blocks hold every streamable message with its xid: Type and "
        "Relation, Insert, Update (plain and with a changed key), Delete, a transactional Message, Truncate",
        lambda: [
            "begin",
            "insert into vec.bulk select g, 'mixed ' || g from generate_series(2001, 2800) g",
            "update vec.bulk set payload = 'updated' where id = 2001",
            "update vec.bulk set id = 3002 where id = 2002",
            "delete from vec.bulk where id = 2003",
            "select pg_logical_emit_message(true, 'psmesh.marker', 'in a stream')",
            "insert into vec.orders (order_id, status) values (50, 'lost')",
            "truncate vec.nothing",
            "commit",
        ],
    ),
    (
        "streamed_subtransaction_abort",
        "a streamed transaction whose savepoint rolls back after its rows were streamed: Stream Abort "
        "with subxid != xid, then the rest commits",
        lambda: [
            "begin",
            "insert into vec.bulk select g, 'keep ' || g from generate_series(1001, 1100) g",
            "savepoint s1",
            "insert into vec.bulk select g, 'drop ' || g from generate_series(1101, 1900) g",
            "rollback to savepoint s1",
            "insert into vec.bulk select g, 'after ' || g from generate_series(1901, 1905) g",
            "commit",
        ],
    ),
    (
        "streamed_transaction_abort",
        "a large transaction that rolls back. Through the SQL function the abort record is already in "
        "the WAL when decoding starts, so the reorder buffer starts the stream at the first change, meets "
        "the abort on its first catalog lookup (concurrent abort) and sends Stream Start, Stream Stop and "
        "Stream Abort (subxid == xid) with no change in between; a walsender that decodes while the "
        "transaction runs would have streamed changes before the abort",
        lambda: [
            "begin",
            "insert into vec.bulk select g, 'doomed ' || g from generate_series(5001, 5800) g",
            "rollback",
        ],
    ),
]


def _connect(dsn: str, dbname: str | None = None) -> psycopg.Connection:
    kwargs = {"autocommit": True}
    if dbname is not None:
        kwargs["dbname"] = dbname
    return psycopg.connect(dsn, **kwargs)


def _drop_leftovers(admin: psycopg.Connection) -> None:
    for slot in SLOTS.values():
        admin.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s", (slot,)
        )
    admin.execute("select pg_replication_origin_drop(roname) from pg_replication_origin where roname = %s", (ORIGIN,))
    admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(DATABASE)))


def _drain(reader: psycopg.Connection, version: int) -> list[dict]:
    placeholders = sql.SQL(", ").join(sql.Placeholder() * len(OPTIONS[version]))
    query = sql.SQL(
        "select lsn::text, xid::text::bigint, data from pg_logical_slot_get_binary_changes(%s, NULL, NULL, {})"
    ).format(placeholders)
    rows = reader.execute(query, [SLOTS[version], *OPTIONS[version]]).fetchall()
    return [{"lsn": lsn, "xid": xid, "data": bytes(data).hex()} for lsn, xid, data in rows]


def capture(dsn: str, out: Path) -> None:
    with _connect(dsn) as admin:
        server_version = admin.execute("show server_version").fetchone()[0]
        _drop_leftovers(admin)
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(DATABASE)))
    try:
        with _connect(dsn, DATABASE) as writer:
            for statement in SETUP:
                writer.execute(statement)
            writer.execute("select pg_replication_origin_create(%s)", (ORIGIN,))
            for slot in SLOTS.values():
                writer.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            catalog = {
                "relations": dict(
                    writer.execute(
                        "select n.nspname || '.' || c.relname, c.oid::bigint from pg_class c"
                        " join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'vec' and c.relkind = 'r'"
                    ).fetchall()
                ),
                "types": dict(
                    writer.execute(
                        "select n.nspname || '.' || t.typname, t.oid::bigint from pg_type t"
                        " join pg_namespace n on n.oid = t.typnamespace where n.nspname = 'vec' and t.typtype = 'e'"
                    ).fetchall()
                ),
            }
            readers = {}
            for version, settings in READER_SETTINGS.items():
                readers[version] = _connect(dsn, DATABASE)
                for name, value in settings.items():
                    readers[version].execute(sql.SQL("set {} = {}").format(sql.Identifier(name), sql.Literal(value)))
            try:
                for name, description, statements in SCENARIOS:
                    executed = [*statements(), FLUSH_WAL]
                    for statement in executed:
                        writer.execute(statement)
                    for version, reader in readers.items():
                        messages = _drain(reader, version)
                        _write(out / f"v{version}" / f"{name}.json", {
                            "scenario": name,
                            "description": description,
                            "protocol_version": version,
                            "server_version": server_version,
                            "captured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "options": OPTIONS[version],
                            "decoding_session": READER_SETTINGS[version],
                            "catalog": catalog,
                            "sql": executed,
                            "messages": messages,
                        })  # fmt: skip
                        logger.info("%s v%d: %d messages", name, version, len(messages))
            finally:
                for reader in readers.values():
                    reader.close()
    finally:
        with _connect(dsn) as admin:
            _drop_leftovers(admin)


def _write(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # One message per line keeps diffs of regenerated vectors readable.
    head = {k: v for k, v in document.items() if k != "messages"}
    lines = json.dumps(head, indent=2, ensure_ascii=False)[:-2]
    body = ",\n".join("    " + json.dumps(m) for m in document["messages"])
    path.write_text(f'{lines},\n  "messages": [\n{body}\n  ]\n}}\n' if body else f'{lines},\n  "messages": []\n}}\n')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5433 user=psmesh dbname=postgres")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    capture(args.dsn, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
