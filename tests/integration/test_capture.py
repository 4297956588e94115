"""Capture against the real PostgreSQL, Kafka and registry: envelopes, types, order, schema changes."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from datetime import date, datetime, timezone
from decimal import Decimal

import psycopg
import pytest
from confluent_kafka.serialization import MessageField, SerializationContext

from tests.integration.capture_support import RunningCapture, ScratchSource, TopicReader, wait_for
from streams.exceptions import RegistryUnavailable, SchemaNowAccepted, StreamsError
from streams.source import CaptureSource

pytestmark = pytest.mark.integration


@pytest.fixture
def source(stack_settings, tmp_path):
    scratch = ScratchSource.create(stack_settings, tmp_path / "cdc")
    yield scratch
    scratch.drop()


@pytest.fixture
def reader(stack_settings):
    return TopicReader(stack_settings)


def _account(source, account_id, name="Acme", region="EMEA", currency="EUR", ts="2026-03-01 09:30:00.123456+05:30"):
    source.execute(
        "insert into accounts values (%s, %s, 'software', %s, %s, 45, %s)", (account_id, name, region, currency, ts)
    )


def test_every_domain_column_type_round_trips_exactly_in_snapshot_and_stream(source, reader):
    _account(source, 1)
    source.execute(
        """insert into opportunities values (10, 1, 'Cloud move', 'proposal', 62.50, 1234567.89, 'EUR', 'cloud_migration',
           'fixed_fee', 1520.25, '2026-04-01', '2026-12-31', '2026-03-15', null, 'ana', '2026-02-28 23:59:59.999999-03')"""
    )
    source.execute(
        """insert into resources values (7, 'Bo', 'bo@x.example', 'architect', 'aws',
           array['aws', 'gcp', 'with,comma', 'with "quote"', '', 'back\\slash', null], 'EMEA', 'employee',
           95.50, 210.00, 40.00, true, '2024-01-08', now())"""
    )
    with RunningCapture(source.config()) as run:
        _account(source, 2, name="Émile & Co", region="APAC", currency="JPY", ts="2026-03-02 00:00:00+00")
        source.execute(
            """insert into opportunities values (11, 2, 'Data', 'closed_won', 100.00, 0.01, 'JPY', 'data_analytics',
               'time_and_materials', 0.00, null, null, '2026-03-20', '2026-03-21 10:00:00+01', null, now())"""
        )
        accounts = reader.read(source.topic("accounts"), 2)
        opportunities = reader.read(source.topic("opportunities"), 2)
        resources = reader.read(source.topic("resources"), 1)
    assert run.error is None

    assert [v["op"] for _, v in accounts] == ["r", "c"]
    assert [k for k, _ in accounts] == [{"account_id": 1}, {"account_id": 2}]
    snap, streamed = accounts[0][1], accounts[1][1]
    assert snap["source"]["snapshot"] in ("true", "last") and streamed["source"]["snapshot"] == "false"
    assert snap["after"]["currency"] == "EUR"
    assert snap["after"]["updated_at"] == datetime(2026, 3, 1, 4, 0, 0, 123456, tzinfo=timezone.utc)
    assert streamed["after"]["name"] == "Émile & Co"
    assert streamed["source"]["db"] == source.database and streamed["source"]["table"] == "accounts"
    assert streamed["source"]["lsn"] > 0 and streamed["source"]["txId"] > 0

    first = opportunities[0][1]["after"]
    assert first["probability"] == Decimal("62.50") and first["amount"] == Decimal("1234567.89")
    assert first["estimated_hours"] == Decimal("1520.25")
    assert first["target_start_date"] == date(2026, 4, 1) and first["closed_at"] is None
    assert first["updated_at"] == datetime(2026, 3, 1, 2, 59, 59, 999999, tzinfo=timezone.utc)
    second = opportunities[1][1]["after"]
    assert second["amount"] == Decimal("0.01") and second["estimated_hours"] == Decimal("0.00")
    assert second["closed_at"] == datetime(2026, 3, 21, 9, 0, tzinfo=timezone.utc)
    assert second["target_start_date"] is None

    person = resources[0][1]["after"]
    assert person["skills"] == ["aws", "gcp", "with,comma", 'with "quote"', "", "back\\slash", None]
    assert person["active"] is True and person["cost_rate"] == Decimal("95.50")
    assert person["hired_on"] == date(2024, 1, 8)


def test_changes_produce_debezium_envelopes_in_commit_order_and_rollbacks_produce_nothing(source, reader):
    with RunningCapture(source.config(snapshot=False)) as run:
        _account(source, 1)
        source.execute("update accounts set name = 'Acme 2' where account_id = 1")
        with psycopg.connect(source.dsn) as conn:
            conn.execute("insert into accounts values (99, 'ghost', null, 'NA', 'USD', 30, now())")
            conn.rollback()
        source.execute("update accounts set account_id = 5 where account_id = 1")
        source.execute("delete from accounts where account_id = 5")
        source.execute("alter table accounts replica identity full")
        _account(source, 6)
        source.execute("update accounts set payment_terms_days = 60 where account_id = 6")
        source.execute("delete from accounts where account_id = 6")
        records = reader.read(source.topic("accounts"), 11)
    assert run.error is None
    summary = [(k["account_id"] if k else None, v["op"] if v else None) for k, v in records]
    assert summary == [
        (1, "c"), (1, "u"),
        (1, "d"), (1, None), (5, "c"),  # primary-key change: delete + tombstone, then create
        (5, "d"), (5, None),
        (6, "c"), (6, "u"), (6, "d"), (6, None),
    ]
    values = [v for _, v in records]
    assert values[1]["before"] is None and values[1]["after"]["name"] == "Acme 2"
    assert values[2]["before"]["account_id"] == 1 and values[2]["after"] is None
    assert values[5]["before"] == {**values[5]["before"], "account_id": 5}
    # REPLICA IDENTITY FULL: the whole old row comes along
    assert values[8]["before"]["payment_terms_days"] == 45 and values[8]["after"]["payment_terms_days"] == 60
    assert values[9]["before"]["name"] == "Acme"
    assert all(v is None or v["after"] is None or v["after"]["account_id"] != 99 for v in values)
    lsns = [v["source"]["lsn"] for v in values if v]
    assert lsns == sorted(lsns)


def test_unchanged_toasted_value_is_marked_not_faked(source, reader):
    big = "x" * 200_000
    with RunningCapture(source.config(snapshot=False)) as run:
        _account(source, 1)
        source.execute(
            """insert into opportunities values (10, 1, 'o', 'proposal', 10, 1, 'EUR', 'security', 'fixed_fee', 1,
               null, null, null, null, %s, now())""", (big,)
        )
        source.execute("alter table opportunities alter column owner set storage external")
        source.execute("update opportunities set owner = %s where opportunity_id = 10", (big + "y",))
        source.execute("update opportunities set stage = 'negotiation' where opportunity_id = 10")
        records = reader.read(source.topic("opportunities"), 3)
    assert run.error is None
    last = records[-1][1]
    assert last["op"] == "u" and last["after"]["stage"] == "negotiation"
    assert last["unchanged_toasted"] == ["owner"] and last["after"]["owner"] is None
    assert records[1][1]["after"]["owner"] == big + "y"


def test_full_identity_carries_an_unchanged_toasted_value_into_the_update_and_the_new_keys_create(source, reader):
    # Random text does not compress: 5,000 characters are stored out of line, and an update that leaves
    # them alone sends 'u' for the column (repeated characters would compress to an inline value).
    long_text = "".join(random.Random(20261127).choices(string.ascii_letters + string.digits, k=5000))
    source.execute("alter table opportunities replica identity full")
    with RunningCapture(source.config(snapshot=False)) as run:
        _account(source, 1)
        source.execute(
            """insert into opportunities values (10, 1, 'o', 'proposal', 10, 1, 'EUR', 'security', 'fixed_fee', 1,
               null, null, null, null, %s, now())""", (long_text,)
        )
        source.execute("update opportunities set stage = 'negotiation' where opportunity_id = 10")
        source.execute("update opportunities set opportunity_id = 11 where opportunity_id = 10")
        records = reader.read(source.topic("opportunities"), 5)
        with psycopg.connect(source.dsn) as conn:
            toast = conn.execute("select reltoastrelid::regclass::text from pg_class where oid = 'opportunities'::regclass").fetchone()[0]
            toasted_chunks = conn.execute(f"select count(*) from {toast}").fetchone()[0]
    assert run.error is None
    assert toasted_chunks > 0  # the value really is out of line
    summary = [(k["opportunity_id"] if k else None, v["op"] if v else None) for k, v in records]
    assert summary == [(10, "c"), (10, "u"), (10, "d"), (10, None), (11, "c")]
    update, create = records[1][1], records[4][1]
    assert update["after"]["stage"] == "negotiation" and update["after"]["owner"] == long_text
    assert update["unchanged_toasted"] == []
    # the new key has no previous value downstream: its create carries the text
    assert create["after"]["opportunity_id"] == 11 and create["after"]["owner"] == long_text
    assert create["unchanged_toasted"] == []


def test_added_column_flows_on_with_a_new_schema_version(source, reader):
    with RunningCapture(source.config(snapshot=False)) as run:
        _account(source, 1)
        source.execute("alter table accounts add column tier text")
        source.execute("insert into accounts values (2, 'B', null, 'NA', 'USD', 30, now(), 'gold')")
        records = reader.read(source.topic("accounts"), 2)
    assert run.error is None
    assert "tier" not in records[0][1]["after"]
    assert records[1][1]["after"]["tier"] == "gold"
    versions = reader.registry.get_versions(f"{source.topic('accounts')}-value")
    assert len(versions) == 2


def test_a_refused_schema_change_stops_that_table_only_and_its_changes_follow_once_the_rule_allows(source, reader):
    """DESIGN.md: a change the rule refuses stops that table's capture, with an error naming table, column and rule,
    and loses nothing. The source's other tables go on; the table's changes wait in the slot."""
    subject = f"{source.topic('accounts')}-value"
    reader.registry.set_compatibility(subject, "BACKWARD")
    with RunningCapture(source.config(snapshot=False, held_retry_interval=1.0)) as run:
        _account(source, 1)
        assert len(reader.read(source.topic("accounts"), 1)) == 1
        source.execute("alter table accounts alter column payment_terms_days type text")
        refused_at = _current_lsn(source)  # the refused change's transaction starts past it
        source.execute("insert into accounts values (2, 'B', null, 'NA', 'USD', 'net 30', now())")
        source.execute("insert into resources values (1, 'A', 'a@x', 'analyst', 'aws', '{}', 'NA', 'employee', 1, 2, 40, "
                       "true, '2025-01-01', now())")
        assert len(reader.read(source.topic("resources"), 1)) == 1, "the other tables go on"
        assert wait_for(lambda: "public.accounts" in _status(run).get("held", ()), timeout=10)
        error = _status(run)["errors"]["public.accounts"]
        assert "payment_terms_days" in error and "BACKWARD" in error
        assert run.thread.is_alive() and run.error is None
        # Nothing of the refused shape was published, and the slot was not confirmed past it, while the other
        # table's later change was acknowledged (and a status update or more went out since: every 0.2 s)
        assert len(reader.read(source.topic("accounts"), 2, timeout=5)) == 1
        assert 0 < _confirmed_lsn(source) <= refused_at
        reader.registry.set_compatibility(subject, "NONE")
        assert wait_for(lambda: not run.thread.is_alive(), timeout=30)
    assert isinstance(run.error, SchemaNowAccepted), run.error
    run.capture.close()  # as psmesh cdc run does before it starts the next run
    with RunningCapture(source.config(snapshot=False)) as run:
        records = reader.read(source.topic("accounts"), 2)
        source.execute("insert into resources values (2, 'B', 'b@x', 'analyst', 'aws', '{}', 'NA', 'employee', 1, 2, "
                       "40, true, '2025-01-01', now())")
        resources = reader.read(source.topic("resources"), 3, timeout=10)
    assert run.error is None
    assert [r[1]["after"]["account_id"] for r in records] == [1, 2]
    assert records[1][1]["after"]["payment_terms_days"] == "net 30"
    # the other table's change since the refusal, published already, is not published again; the next one is
    assert [r[1]["after"]["resource_id"] for r in resources] == [1, 2]


def test_a_schema_refused_at_a_snapshot_stops_that_table_only_and_the_table_is_snapshotted_once_the_rule_allows(
        source, reader):
    """DESIGN.md: a refused change stops that table's capture and loses nothing, in a snapshot too. A slot made
    again after accounts changed shape meets the subject's earlier schema at the snapshot: the other tables'
    snapshot and stream go on, accounts is owed its snapshot and its changes wait in the slot, and once the rule
    accepts, the table is snapshotted and its changes published, the deletion of a row the topic has from the
    earlier slot among them."""
    subject = f"{source.topic('accounts')}-value"
    _account(source, 1)
    with RunningCapture(source.config()) as run:  # registers accounts' schema as it is (payment_terms_days an integer)
        assert len(reader.read(source.topic("accounts"), 1)) == 1
    assert run.error is None
    run.capture.close()
    source.execute("alter table accounts alter column payment_terms_days type text")
    source.execute("insert into resources values (1, 'A', 'a@x', 'analyst', 'aws', '{}', 'NA', 'employee', 1, 2, 40, "
                   "true, '2025-01-01', now())")
    reader.registry.set_compatibility(subject, "BACKWARD")
    # a new slot with the state file kept, as after the slot was lost: every table is snapshotted again
    again = source.config(slot=f"slot_{source.name}_again", held_retry_interval=1.0)
    with RunningCapture(again) as run:
        assert wait_for(lambda: "public.accounts" in _status(run).get("held", ()), timeout=10)
        assert "payment_terms_days" in _status(run)["errors"]["public.accounts"]
        _account(source, 2)
        source.execute("update accounts set name = 'Acme 2b' where account_id = 2")
        source.execute("delete from accounts where account_id = 1")
        source.execute("insert into resources values (2, 'B', 'b@x', 'analyst', 'aws', '{}', 'NA', 'employee', 1, 2, "
                       "40, true, '2025-01-01', now())")
        resources = reader.read(source.topic("resources"), 2, timeout=10)
        # the snapshot's resource, then the stream's: the other tables went on
        assert [(v["op"], v["after"]["resource_id"]) for _, v in resources] == [("r", 1), ("c", 2)]
        assert run.thread.is_alive() and run.error is None
        assert len(reader.read(source.topic("accounts"), 2, timeout=5)) == 1, "nothing of accounts' new shape"
        reader.registry.set_compatibility(subject, "NONE")
        assert wait_for(lambda: not run.thread.is_alive(), timeout=30)
    assert isinstance(run.error, SchemaNowAccepted) and "to snapshot the table" in str(run.error), run.error
    run.capture.close()
    with RunningCapture(again) as run:
        accounts = reader.read(source.topic("accounts"), 6)
        _account(source, 3)
        accounts += reader.read(source.topic("accounts"), 7)[6:]
        assert len(reader.read(source.topic("resources"), 3, timeout=5)) == 2, "the other tables' changes once"
    assert run.error is None

    def event(key, value) -> tuple:
        return (None, key["account_id"]) if value is None else (value["op"], (value["after"] or value["before"])[
            "account_id"])

    # the first slot's row; accounts' snapshot in its new shape; the changes the slot kept, from before that
    # snapshot (the row's older version for a moment, and the first slot's row deleted); then the stream
    assert [event(k, v) for k, v in accounts] == [("r", 1), ("r", 2), ("c", 2), ("u", 2), ("d", 1), (None, 1),
                                                  ("c", 3)]
    assert accounts[1][1]["after"]["name"] == "Acme 2b" and accounts[1][1]["after"]["payment_terms_days"] == "45"
    state = json.loads((source.state_dir / f"{source.name}.state.json").read_text())
    assert state["tables"]["public.accounts"] == "streaming" and not state.get("errors")
    assert not state.get("snapshot_refused")


def _status(run: RunningCapture) -> dict:
    try:
        return json.loads(run.capture.status_path.read_text())
    except (OSError, ValueError):
        return {}


def _current_lsn(source) -> int:
    with psycopg.connect(source.dsn) as conn:
        return conn.execute("select pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]


def _confirmed_lsn(source) -> int:
    with psycopg.connect(source.dsn) as conn:
        return conn.execute("select confirmed_flush_lsn - '0/0'::pg_lsn from pg_replication_slots where slot_name = %s",
                            (f"slot_{source.name}",)).fetchone()[0]


def test_a_registry_down_at_a_schema_change_stops_the_run_as_unavailable_and_the_next_run_resumes_from_the_slot(
        source, reader):
    """`psmesh cdc run` retries RegistryUnavailable from the slot (tests/unit/streams/test_registry_outage.py);
    here, on the real servers, that the slot still holds the change and a new run publishes it."""
    with RunningCapture(source.config(snapshot=False)) as run:
        _account(source, 1)
        assert len(reader.read(source.topic("accounts"), 1)) == 1
    assert run.error is None
    source.execute("alter table accounts add column tier text")
    source.execute("insert into accounts values (2, 'B', null, 'NA', 'USD', 30, now(), 'gold')")
    down = RunningCapture(source.config(snapshot=False, registry_url="http://127.0.0.1:1"))
    down.thread.start()
    assert wait_for(lambda: not down.thread.is_alive(), timeout=60)
    assert isinstance(down.error, RegistryUnavailable), down.error
    assert "schema registry unreachable" in str(down.error)
    with RunningCapture(source.config(snapshot=False)) as run:
        records = reader.read(source.topic("accounts"), 2)
    assert run.error is None
    assert [r[1]["after"]["account_id"] for r in records] == [1, 2] and records[1][1]["after"]["tier"] == "gold"


def test_truncate_emits_a_truncate_event_on_a_topic_that_accepts_keyless_records(source, reader, stack_settings):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": stack_settings.bootstrap_servers})
    admin.create_topics([NewTopic(source.topic("time_off"), 1, 1, config={"cleanup.policy": "delete"})])[source.topic("time_off")].result()
    with RunningCapture(source.config(snapshot=False)) as run:
        source.execute("insert into resources values (1, 'A', 'a@x', 'analyst', 'aws', '{}', 'NA', 'employee', 1, 2, 40, true, '2025-01-01', now())")
        source.execute("insert into time_off values (1, 1, '2026-01-05', '2026-01-06', 8, 'approved')")
        source.execute("truncate time_off")
        records = reader.read(source.topic("time_off"), 2)
    assert run.error is None
    assert [v["op"] for _, v in records] == ["c", "t"]
    assert records[1][0] is None


def test_idle_source_advances_its_slot(source):
    with RunningCapture(source.config(snapshot=False, heartbeat_interval=0.5)) as run:
        def confirmed():
            with psycopg.connect(source.dsn) as conn:
                return conn.execute(
                    "select confirmed_flush_lsn from pg_replication_slots where slot_name = %s", (f"slot_{source.name}",)
                ).fetchone()[0]

        assert wait_for(lambda: confirmed() is not None, timeout=10)
        start = confirmed()
        # WAL moves elsewhere (another database); our source has no change at all.
        with psycopg.connect(source.settings.pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute("create table if not exists wal_mover (x int)")
            conn.execute("insert into wal_mover select generate_series(1, 1000)")
        assert wait_for(lambda: confirmed() > start, timeout=20)
    assert run.error is None


def test_streamed_transaction_publishes_its_inserts_updates_and_deletes_at_commit(source, reader):
    from streams import metrics

    # pgoutput streams a transaction that outgrows logical_decoding_work_mem (64 kB here, per database,
    # which the walsender of this slot reads): the capture spills it and publishes it at Stream Commit.
    source.execute(f"alter database \"{source.database}\" set logical_decoding_work_mem = '64kB'")
    with RunningCapture(source.config(snapshot=False)) as run:
        with psycopg.connect(source.dsn) as conn:
            conn.execute("""insert into time_entries
                select g, g % 50, 'PRJ-' || (g % 97), 'consultant', date '2026-01-05' + (g % 60)::int,
                       7.50, g % 5 <> 0, 150.00, 90.00, 'submitted', 'design workshop', now(), null, now()
                from generate_series(1, 3000) g""")
            conn.execute("update time_entries set hours = 8.25, status = 'approved', approved_at = '2026-03-01 10:00:00.5+01' where entry_id <= 100")
            conn.execute("delete from time_entries where entry_id > 2990")
            conn.commit()
        records = reader.read(source.topic("time_entries"), 3000 + 100 + 2 * 10, timeout=120)
    assert run.error is None
    assert metrics.SPILLED_BYTES.labels(source.name)._value.get() > 0, "the transaction was not streamed"
    ops = [v["op"] if v else None for _, v in records]
    assert (ops.count("c"), ops.count("u"), ops.count("d"), ops.count(None)) == (3000, 100, 10, 10)
    assert len({v["source"]["txId"] for _, v in records if v}) == 1
    updated = next(v for _, v in records if v and v["op"] == "u" and v["after"]["entry_id"] == 7)["after"]
    assert updated["hours"] == Decimal("8.25") and updated["status"] == "approved"
    assert updated["approved_at"] == datetime(2026, 3, 1, 9, 0, 0, 500000, tzinfo=timezone.utc)
    assert updated["work_date"] == date(2026, 1, 12) and updated["bill_rate"] == Decimal("150.00")
    deleted = [k["entry_id"] for k, v in records if v and v["op"] == "d"]
    assert sorted(deleted) == list(range(2991, 3001))


def test_a_table_without_a_key_is_refused_before_the_publication_would_break_its_writers(source, stack_settings):
    """PostgreSQL refuses UPDATE and DELETE on a published table without a replica identity key: the capture must
    stop with the table's name before it publishes the table, and the firm's application keep working."""
    source.execute("alter table time_off drop constraint time_off_pkey")
    capture = CaptureSource(source.config(snapshot=False))
    try:
        with pytest.raises(StreamsError, match=r"table\(s\) public\.time_off without a primary key"):
            capture.run(until=lambda running: True)  # without the refusal: returns at once, and the test fails
    finally:
        capture.close()
    # the application's writes (PostgreSQL checks the table's identity before it looks for rows)
    source.execute("update time_off set status = 'cancelled' where time_off_id = 1")
    source.execute("delete from time_off where time_off_id = 1")
    with psycopg.connect(source.dsn) as conn:
        assert conn.execute("select count(*) from pg_publication where pubname = %s",
                            (f"pub_{source.name}",)).fetchone() == (0,)


def test_a_slot_postgres_invalidated_stops_the_capture_with_the_way_back_and_status_fails_it(stack_settings,
                                                                                               tmp_path):
    """A capture down while its slot passed max_slot_wal_keep_size: PostgreSQL invalidates the slot (its changes
    are gone). The capture must stop with that and the way to snapshot again, not retry forever as if PostgreSQL
    were away; `psmesh status` must fail the slot as invalidated, not as merely inactive."""
    import socket

    from psmesh.config import Settings
    from psmesh.stack.postgres import PostgresServer
    from psmesh.status import Check, Thresholds, _captures
    from psmesh.topology import load_topology

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(home=tmp_path / "pg", pg_port=port, kafka_bootstrap=stack_settings.bootstrap_servers,
                        registry_url=stack_settings.schema_registry_url)
    server = PostgresServer(settings)
    server.start()
    try:
        source = ScratchSource.create(settings, tmp_path / "cdc")
        slot = f"slot_{source.name}"
        with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute("alter system set max_slot_wal_keep_size = '1MB'")
            conn.execute("select pg_reload_conf()")
        with psycopg.connect(source.dsn, autocommit=True) as conn:
            conn.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
            for _ in range(4):  # WAL well past 1 MB, in segments a checkpoint may remove
                conn.execute("insert into accounts select g, 'x', null, 'NA', 'USD', 30, now() "
                             "from generate_series(1, 20000) g on conflict do nothing")
                conn.execute("delete from accounts")
                conn.execute("select pg_switch_wal()")
                conn.execute("checkpoint")
            assert wait_for(lambda: conn.execute("select wal_status from pg_replication_slots where slot_name = %s",
                                                 (slot,)).fetchone()[0] == "lost", timeout=30)
        capture = CaptureSource(source.config(snapshot=False))
        try:
            with pytest.raises(StreamsError, match=rf"slot {slot} was invalidated by PostgreSQL .* "
                                                   rf"pg_drop_replication_slot\('{slot}'\)"):
                capture.run(until=lambda running: True)
        finally:
            capture.close()

        topology = load_topology(Path(__file__).resolve().parents[2] / "topology.yaml")
        source_entry = next(s for s in topology.sources if s.name == "crm")
        fake = type("Topo", (), {"sources": [source_entry.model_copy(update={"database": source.database,
                                                                            "slot": slot})]})()
        checks: list[Check] = []
        _captures(settings, fake, Thresholds(), checks)
        [check] = checks
        assert check.state == "fail" and f"slot {slot} invalidated by PostgreSQL" in check.detail
    finally:
        server.stop()


def test_a_snapshot_value_python_cannot_hold_stops_the_capture_naming_table_and_columns_not_the_value(source):
    source.execute("insert into accounts values (1, 'Acme', null, 'NA', 'USD', 30, 'infinity')")
    capture = CaptureSource(source.config(snapshot=True))
    try:
        with pytest.raises(StreamsError) as caught:
            capture.run(until=lambda running: True)
    finally:
        capture.close()
    message = str(caught.value)
    assert message.startswith("snapshot of public.accounts: a value Python cannot hold (one of its columns updated_at)")
    assert "'infinity'" not in message and caught.value.__cause__ is None  # psycopg's message quotes the value


def test_rows_with_a_value_python_cannot_hold_are_set_aside_on_the_dead_letter_topic_and_the_capture_goes_on(
        source, reader):
    """DESIGN.md, "Bad input never vanishes": a date of infinity, in the snapshot and in the stream, goes to the
    source's dead-letter topic with the row as PostgreSQL holds it; the rows around it are published."""
    dlq = f"{source.name}.dlq"
    source.execute("insert into accounts values (1, 'Odd', null, 'NA', 'USD', 30, 'infinity')")
    source.execute("insert into accounts values (2, 'Fine', null, 'NA', 'USD', 30, now())")
    config = source.config(snapshot=True, dead_letter_topic=dlq, topic_configs={dlq: {"cleanup.policy": "delete"}})
    with RunningCapture(config) as run:
        source.execute("insert into accounts values (3, 'Odd too', null, 'NA', 'USD', 30, '-infinity')")
        source.execute("insert into accounts values (4, 'Fine too', null, 'NA', 'USD', 30, now())")
        accounts = reader.read(source.topic("accounts"), 2)
        letters = reader.read(dlq, 2)
    assert run.error is None
    assert [(v["op"], v["after"]["account_id"]) for _, v in accounts] == [("r", 2), ("c", 4)]
    assert [(k["topic"], k["partition"]) for k, _ in letters] == [(source.topic("accounts"), -1)] * 2
    snapshot, stream = (v for _, v in letters)
    assert snapshot["offset"] == -1 and stream["offset"] > 0  # the change's LSN
    assert {snapshot["stage"], stream["stage"]} == {f"capture_{source.name}"}
    assert "column updated_at" in snapshot["reason"] and "in the snapshot" in snapshot["reason"]
    assert "column updated_at" in stream["reason"]
    rows = [json.loads(v["value"]) for v in (snapshot, stream)]
    assert [(r["op"], r["after"]["account_id"], r["after"]["updated_at"]) for r in rows] == [
        ("r", 1, "infinity"), ("c", "3", "-infinity")]
    assert reader.deserializer(snapshot["key"], SerializationContext(source.topic("accounts"), MessageField.KEY)) == {
        "account_id": 1}
