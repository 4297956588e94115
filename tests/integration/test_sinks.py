"""The ERP and reporting sinks against the real Kafka, PostgreSQL and schema registry.

Each test has topics of its own (``it_<uuid>.*``, deleted afterwards), a
consumer group of its own and a scratch database (dropped afterwards), so
tests do not leak into each other or into the shared stack. The PostgreSQL
fault test stops a private PostgreSQL server, never the shared one.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from psmesh.config import Settings
from psmesh.dlq import ack_consumer, spans
from psmesh.stack.postgres import PostgresServer
from sinks.dlq import DeadLetter, DeadLetterPublisher
from sinks.erp import ErpSink
from sinks.records import load_contract
from sinks.reporting import ReportingSink
from sinks.runner import RunnerConfig, SinkRunner

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WON_AT = datetime(2026, 1, 5, 15, 30, tzinfo=timezone.utc)


@contextmanager
def scratch_database(dsn_of, sql: str | None = None) -> Iterator[str]:
    """A database of its own (dropped afterwards); ``sql`` runs in it first. Yields its DSN."""
    name = f"sink_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn_of("postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        if sql:
            with psycopg.connect(dsn_of(name), autocommit=True) as conn:
                conn.execute(sql)
        yield dsn_of(name)
    finally:
        with psycopg.connect(dsn_of("postgres"), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


class Topics:
    """Topics under a prefix of this test (deleted afterwards) and Avro producing into them."""

    def __init__(self, bootstrap: str, registry_url: str) -> None:
        self.prefix = f"it_{uuid.uuid4().hex[:12]}"
        self.bootstrap = bootstrap
        self.registry = SchemaRegistryClient({"url": registry_url})
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self.created: list[str] = []
        self._serializers: dict[str, AvroSerializer] = {}

    def create(self, name: str, partitions: int = 1) -> str:
        topic = f"{self.prefix}.{name}"
        self.admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
        self.created.append(topic)
        return topic

    def _serializer(self, schema_file: str) -> AvroSerializer:
        if schema_file not in self._serializers:
            self._serializers[schema_file] = AvroSerializer(self.registry, json.dumps(load_contract(schema_file)))
        return self._serializers[schema_file]

    def produce(self, topic: str, contract: str, key: dict, value: dict | None) -> None:
        """``contract`` like ``derived/billing_triggers``: its -key and -value .avsc encode the record."""
        k = self._serializer(f"{contract}-key.avsc")(key, SerializationContext(topic, MessageField.KEY))
        v = None if value is None else self._serializer(f"{contract}-value.avsc")(value, SerializationContext(topic, MessageField.VALUE))
        self.producer.produce(topic, key=k, value=v)

    def produce_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self.producer.produce(topic, key=key, value=value)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def read_all(self, topic: str, deserialize: bool = True) -> list[tuple[Any, Any]]:
        """Every record of ``topic`` (Avro-decoded with the registry), in order."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"read-{uuid.uuid4().hex}", "enable.auto.commit": False})
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        consumer.assign([TopicPartition(topic, 0, 0)])
        out = []
        decode = AvroDeserializer(self.registry)
        while len(out) < high:
            msg = consumer.poll(5)
            if msg is None or msg.error():
                continue
            if deserialize:
                out.append((decode(msg.key(), SerializationContext(topic, MessageField.KEY)),
                            decode(msg.value(), SerializationContext(topic, MessageField.VALUE))))
            else:
                out.append((msg.key(), msg.value()))
        consumer.close()
        return out

    def delete(self) -> None:
        if self.created:
            for future in self.admin.delete_topics(self.created, operation_timeout=30).values():
                try:
                    future.result()
                except Exception:
                    pass


def runner_config(kafka_bootstrap: str, registry_url: str, dsn: str, dlq: str, **overrides) -> RunnerConfig:
    return RunnerConfig(
        kafka={"bootstrap.servers": kafka_bootstrap}, registry_url=registry_url, dsn=dsn,
        group_id=f"it-sink-{uuid.uuid4().hex[:10]}", dead_letter_topic=dlq, batch_timeout=0.2,
        backoff_initial=0.2, backoff_max=2.0, **overrides,
    )


def project_request(opportunity_id: int, event_type: str = "request", budget: str = "120000.00",
                    milestones: tuple[int, ...] = (1, 2)) -> dict:
    code = f"PRJ-{opportunity_id}"
    return {
        "event_id": f"{code}-{event_type}-{budget}", "event_type": event_type, "project_code": code,
        "opportunity_id": opportunity_id, "account_id": 7, "name": "Cloud landing zone",
        "service_line": "cloud_migration", "contract_type": "fixed_fee", "currency": "EUR",
        "budget_amount": Decimal(budget), "budget_hours": Decimal("800.00"),
        "start_date": date(2026, 2, 2), "end_date": date(2026, 6, 26),
        "billing_frequency": "milestone", "revenue_method": "milestone", "cost_center": "CC-EMEA-cloud_migration",
        "won_at": WON_AT,
        "milestones": [
            {"milestone_id": opportunity_id * 100 + m, "name": f"Phase {m}", "amount": Decimal("60000.00"),
             "planned_date": date(2026, 3, m)} for m in milestones
        ],
        "staffing_lines": [
            {"line_id": opportunity_id * 10, "role": "architect", "skill": "aws", "hours": Decimal("400.00"),
             "bill_rate": Decimal("180.00"), "est_cost_rate": Decimal("95.00"), "start_date": date(2026, 2, 2),
             "end_date": date(2026, 6, 26)},
        ],
    }


def billing_trigger(project_code: str, n: int, amount: str = "60000.00", trigger_type: str = "milestone_completed") -> dict:
    return {
        "billing_event_id": f"{project_code}-M{n}", "project_code": project_code, "trigger_type": trigger_type,
        "period_id": None, "milestone_id": n, "amount": Decimal(amount), "currency": "EUR",
    }


# --- fixtures ----------------------------------------------------------------

ERP_SQL = (ROOT / "schemas" / "sources" / "erp.sql").read_text()


@pytest.fixture
def topics(kafka_bootstrap: str, registry_url: str):
    t = Topics(kafka_bootstrap, registry_url)
    yield t
    t.delete()


@pytest.fixture
def erp_dsn(pg_dsn):
    with scratch_database(pg_dsn, ERP_SQL) as dsn:
        yield dsn


@pytest.fixture
def reporting_dsn(pg_dsn):
    with scratch_database(pg_dsn) as dsn:
        yield dsn


def _rows(dsn: str, sql: str, *params) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params).fetchall()


def _erp_runner(topics: Topics, kafka_bootstrap: str, registry_url: str, dsn: str, **overrides):
    requests, triggers, dlq = topics.create("project_requests"), topics.create("billing_triggers"), topics.create("dlq")
    sink = ErpSink(project_requests=requests, billing_triggers=triggers)
    return SinkRunner(sink, runner_config(kafka_bootstrap, registry_url, dsn, dlq, **overrides)), requests, triggers, dlq


# --- ERP sink ------------------------------------------------------------------


def test_replayed_request_and_trigger_make_one_project_one_billing_event_and_keep_completed_milestones(
    topics, erp_dsn, kafka_bootstrap, registry_url
):
    runner, requests, triggers, _ = _erp_runner(topics, kafka_bootstrap, registry_url, erp_dsn)
    try:
        request = project_request(4711)
        topics.produce(requests, "derived/project_requests", {"project_code": "PRJ-4711"}, request)
        topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": "PRJ-4711-M471101"},
                       billing_trigger("PRJ-4711", 471101))
        topics.flush()
        runner.drain()
        [(status, created, updated, budget)] = _rows(erp_dsn, "select status, created_at, updated_at, budget_amount from projects")
        assert (status, budget) == ("active", Decimal("120000.00"))
        assert created == updated

        # A project manager completes a milestone; finance puts the project on hold.
        with psycopg.connect(erp_dsn) as conn:
            conn.execute("update billing_milestones set status = 'completed', completed_at = now() where milestone_id = 471101")
            conn.execute("update projects set status = 'on_hold'")

        # Replay everything, then an update with a new budget and a new milestone.
        topics.produce(requests, "derived/project_requests", {"project_code": "PRJ-4711"}, request)
        topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": "PRJ-4711-M471101"},
                       billing_trigger("PRJ-4711", 471101))
        topics.produce(requests, "derived/project_requests", {"project_code": "PRJ-4711"}, request)
        topics.flush()
        runner.drain()
        [(_, _, updated_after_replay, _)] = _rows(erp_dsn, "select status, created_at, updated_at, budget_amount from projects")
        assert updated_after_replay == updated, "a pure replay must not touch the project"

        topics.produce(requests, "derived/project_requests", {"project_code": "PRJ-4711"},
                       project_request(4711, "update", budget="150000.00", milestones=(1, 2, 3)))
        topics.flush()
        runner.drain()

        [(status, created2, updated2, budget)] = _rows(erp_dsn, "select status, created_at, updated_at, budget_amount from projects")
        assert (status, created2, budget) == ("on_hold", created, Decimal("150000.00"))
        assert updated2 > updated
        milestones = _rows(erp_dsn, "select milestone_id, status from billing_milestones order by milestone_id")
        assert milestones == [(471101, "completed"), (471102, "planned"), (471103, "planned")]
        assert _rows(erp_dsn, "select billing_event_id, amount, trigger_type from billing_events") == [
            ("PRJ-4711-M471101", Decimal("60000.00"), "milestone_completed")
        ]
        assert runner.dead_letters == 0
    finally:
        runner.close()


def test_malformed_and_refused_records_are_dead_lettered_while_the_following_ones_are_written(
    topics, erp_dsn, kafka_bootstrap, registry_url
):
    runner, requests, triggers, dlq = _erp_runner(topics, kafka_bootstrap, registry_url, erp_dsn)
    try:
        junk = os.urandom(64)
        topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": "PRJ-1-M1"}, billing_trigger("PRJ-1", 1))
        topics.produce_raw(triggers, b"not avro", junk)                                   # offset 1: undecodable
        topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": "PRJ-1-M2"},
                       billing_trigger("PRJ-1", 2, trigger_type="bonus"))                  # offset 2: check constraint
        topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": "PRJ-1-M3"},
                       {**billing_trigger("PRJ-1", 3), "currency": "EURO"})                # offset 3: longer than char(3)
        for n in range(4, 8):
            topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": f"PRJ-1-M{n}"}, billing_trigger("PRJ-1", n))
        topics.flush()
        runner.drain()

        written = [r[0] for r in _rows(erp_dsn, "select billing_event_id from billing_events order by 1")]
        assert written == ["PRJ-1-M1", "PRJ-1-M4", "PRJ-1-M5", "PRJ-1-M6", "PRJ-1-M7"]
        letters = topics.read_all(dlq)
        assert [(k["topic"], k["partition"], k["offset"]) for k, _ in letters] == [(triggers, 0, 1), (triggers, 0, 2), (triggers, 0, 3)]
        by_offset = {v["offset"]: v for _, v in letters}
        assert by_offset[1]["value"] == junk and by_offset[1]["key"] == b"not avro"
        assert "magic byte" in by_offset[1]["reason"]
        assert "23514" in by_offset[2]["reason"]      # check_violation
        assert "22001" in by_offset[3]["reason"]      # string_data_right_truncation
        assert all(v["stage"] == "erp_sink" for v in by_offset.values())
        raw = topics.read_all(triggers, deserialize=False)
        assert by_offset[2]["value"] == raw[2][1] and by_offset[2]["key"] == raw[2][0]
    finally:
        runner.close()


def test_psmesh_dlq_list_gives_each_letter_s_origin_stage_and_reason_and_its_original_record(
    topics, erp_dsn, kafka_bootstrap, registry_url
):
    """The operator's way to read dead letters (psmesh/dlq.py), on letters the ERP sink itself set aside."""
    from click.testing import CliRunner

    from psmesh.cli import main

    runner, _, triggers, dlq = _erp_runner(topics, kafka_bootstrap, registry_url, erp_dsn)
    try:
        junk = b"\xff\xfe not avro, not json"
        topics.produce_raw(triggers, b"not avro", junk)                                   # offset 0: undecodable
        topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": "PRJ-2-M1"},
                       billing_trigger("PRJ-2", 1, trigger_type="bonus"))                  # offset 1: check constraint
        topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": "PRJ-2-M2"}, billing_trigger("PRJ-2", 2))
        topics.flush()
        runner.drain()
    finally:
        runner.close()

    env = {"PSMESH_KAFKA_BOOTSTRAP": kafka_bootstrap, "PSMESH_REGISTRY_URL": registry_url}
    cli = CliRunner()
    text = cli.invoke(main, ["dlq", "list", dlq], env=env)
    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert len(lines) == 2 and "2 dead letter(s)" in text.stderr
    # a sink's letters: the command that sends the view rows and derived events again (the first letter names no
    # project, so the whole of it)
    assert "once the sink's target is fixed, `psmesh processors republish` sends the refused" in text.stderr
    assert lines[0].split("  ")[2:4] == ["erp_sink", f"{triggers}[0]@0"] and "magic byte" in lines[0]
    assert lines[1].split("  ")[2:4] == ["erp_sink", f"{triggers}[0]@1"] and "23514" in lines[1]

    as_json = cli.invoke(main, ["dlq", "list", dlq, "--json", "--origin", triggers, "--stage", "erp_sink"], env=env)
    assert as_json.exit_code == 0, as_json.output
    letters = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(x["dlq"], x["topic"], x["offset"]) for x in letters] == [(dlq, triggers, 0), (dlq, triggers, 1)]
    assert letters[0]["key"] == {"base64": "bm90IGF2cm8="} and letters[0]["value"] == {"base64": "//4gbm90IGF2cm8sIG5vdCBqc29u"}
    assert letters[1]["key"] == {"billing_event_id": "PRJ-2-M1"}  # decoded through the registry
    assert letters[1]["value"]["trigger_type"] == "bonus" and letters[1]["value"]["project_code"] == "PRJ-2"
    assert letters[1]["failed_at"] and "23514" in letters[1]["reason"]

    assert cli.invoke(main, ["dlq", "list", dlq, "--stage", "reporting_sink"], env=env).stdout == ""
    assert len(cli.invoke(main, ["dlq", "list", dlq, "--limit", "1"], env=env).stdout.splitlines()) == 1
    missing = cli.invoke(main, ["dlq", "list", f"{dlq}-nope"], env=env)
    assert missing.exit_code == 1 and f"no such topic: {dlq}-nope" in missing.output

    # acknowledged: no longer waiting (what psmesh status counts), still kept
    acked = cli.invoke(main, ["dlq", "ack", dlq], env=env)
    assert acked.exit_code == 0 and f"{dlq}: 2 dead letter(s) acknowledged, up to [0]@2" in acked.stdout, acked.output
    settings = Settings(kafka_bootstrap=kafka_bootstrap, registry_url=registry_url)
    consumer = ack_consumer(settings)
    try:
        assert [(s.waiting, s.high) for s in spans(consumer, dlq, [0])] == [(0, 2)]
    finally:
        consumer.close()
    assert cli.invoke(main, ["dlq", "list", dlq], env=env).stdout == ""
    assert len(cli.invoke(main, ["dlq", "list", dlq, "--all"], env=env).stdout.splitlines()) == 2

    # a letter after the acknowledgement waits, alone
    publisher = DeadLetterPublisher({"bootstrap.servers": kafka_bootstrap}, topics.registry, dlq, "erp_sink")
    try:
        publisher.publish([DeadLetter(triggers, 0, 9, b"k", b"{}", "a later refusal")])
    finally:
        publisher.close()
    later = cli.invoke(main, ["dlq", "list", dlq], env=env).stdout.splitlines()
    assert len(later) == 1 and later[0].endswith(f"erp_sink  {triggers}[0]@9  a later refusal")
    as_json = cli.invoke(main, ["dlq", "list", dlq, "--json"], env=env).stdout.splitlines()
    assert [(x["key"], x["value"]) for x in map(json.loads, as_json)] == [({"base64": "aw=="}, {})]  # JSON (a forwarded row)


def test_postgres_down_mid_run_loses_nothing_and_duplicates_nothing(topics, kafka_bootstrap, registry_url, tmp_path):
    """A private PostgreSQL (own port and directory), stopped for a few seconds while the sink runs."""
    settings = Settings(home=tmp_path / "pg", pg_port=_free_port(), kafka_bootstrap=kafka_bootstrap, registry_url=registry_url)
    server = PostgresServer(settings)
    server.start()
    try:
        dsn = settings.pg_dsn("erp")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(ERP_SQL)
        runner, _, triggers, _ = _erp_runner(topics, kafka_bootstrap, registry_url, dsn, batch_size=20)
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        try:
            for n in range(100):
                topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": f"PRJ-9-M{n}"}, billing_trigger("PRJ-9", n))
            topics.flush()
            _wait_for(lambda: _count(dsn) == 100, 60)

            server.stop()
            for n in range(100, 300):
                topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": f"PRJ-9-M{n}"}, billing_trigger("PRJ-9", n))
            # Some replays too: the same triggers again must not make second billing events.
            for n in range(50, 150):
                topics.produce(triggers, "derived/billing_triggers", {"billing_event_id": f"PRJ-9-M{n}"}, billing_trigger("PRJ-9", n))
            topics.flush()
            time.sleep(4)
            assert thread.is_alive(), "the sink must wait for the database, not die"
            assert runner._paused, "consumption must be paused while the database is down"
            server.start()

            _wait_for(lambda: runner.positions.get((triggers, 0), 0) == 400, 90)
            rows = _rows(dsn, "select billing_event_id from billing_events")
            assert len(rows) == 300 and {r[0] for r in rows} == {f"PRJ-9-M{n}" for n in range(300)}
            assert runner.dead_letters == 0
        finally:
            runner.stop()
            thread.join(30)
            runner.close()
        committed = _committed(kafka_bootstrap, runner.config.group_id, triggers)
        assert committed == 400
    finally:
        server.stop()


def test_a_row_an_erp_user_keeps_locked_is_retried_not_waited_on_and_written_once_released(
    topics, erp_dsn, kafka_bootstrap, registry_url, monkeypatch
):
    """An ERP user's open transaction holds the project's row: the sink's update fails on its lock_timeout
    (55P03), is retried with backoff while the sink is paused, and goes through once the lock is released."""
    import sinks.runner as sink_runner
    from sinks import metrics

    monkeypatch.setattr(sink_runner, "LOCK_TIMEOUT", "500ms")  # the default 10 s, shortened for the test
    runner, requests, _, _ = _erp_runner(topics, kafka_bootstrap, registry_url, erp_dsn)
    retries = metrics.TARGET_RETRIES.labels(runner.sink.name)
    try:
        topics.produce(requests, "derived/project_requests", {"project_code": "PRJ-4712"}, project_request(4712))
        topics.flush()
        runner.drain()
        before = retries._value.get()
        with psycopg.connect(erp_dsn) as user:  # a transaction left open on the project's row
            user.execute("select * from projects where project_code = 'PRJ-4712' for update")
            topics.produce(requests, "derived/project_requests", {"project_code": "PRJ-4712"},
                           project_request(4712, "update", budget="130000.00"))
            topics.flush()
            thread = threading.Thread(target=runner.drain, daemon=True)
            thread.start()
            _wait_for(lambda: retries._value.get() >= before + 2, 30)  # retried, not waiting on the lock
            assert runner._paused and thread.is_alive()
            assert _rows(erp_dsn, "select budget_amount from projects") == [(Decimal("120000.00"),)]
            user.rollback()  # the user's transaction ends
        thread.join(60)
        assert not thread.is_alive()
        assert _rows(erp_dsn, "select budget_amount from projects") == [(Decimal("130000.00"),)]
        assert not runner._paused and runner.dead_letters == 0
    finally:
        runner.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _count(dsn: str) -> int:
    try:
        return _rows(dsn, "select count(*) from billing_events")[0][0]
    except psycopg.OperationalError:
        return -1


def _wait_for(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        return consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    finally:
        consumer.close()


# --- reporting sink --------------------------------------------------------------


def _reporting_runner(topics: Topics, kafka_bootstrap: str, registry_url: str, dsn: str):
    rename = {f"views.{v}": topics.create(f"views.{v}") for v in ("project_financials", "resource_week", "skill_week",
                                                                 "pipeline", "bookings", "project_risks")}
    rename |= {f"erp.public.{t}": topics.create(f"erp.public.{t}") for t in ("invoices", "billing_periods", "projects", "billing_events")}
    rename["timeexp.public.time_entries"] = topics.create("timeexp.public.time_entries")
    sink = ReportingSink(topics=rename)
    return SinkRunner(sink, runner_config(kafka_bootstrap, registry_url, dsn, topics.create("dlq"))), rename


def test_reporting_upserts_by_key_and_deletes_on_tombstone(topics, reporting_dsn, kafka_bootstrap, registry_url):
    runner, t = _reporting_runner(topics, kafka_bootstrap, registry_url, reporting_dsn)
    try:
        key = {"service_line": "security", "won_month": date(2026, 1, 1)}
        at = datetime(2026, 1, 20, tzinfo=timezone.utc)
        topics.produce(t["views.bookings"], "views/bookings", key, {**key, "won_count": 1, "contract_value": Decimal("50000.00"), "updated_at": at})
        topics.produce(t["views.bookings"], "views/bookings", key, {**key, "won_count": 2, "contract_value": Decimal("80000.10"), "updated_at": at})
        risk = {"project_code": "PRJ-3", "rule": "burn"}
        topics.produce(t["views.project_risks"], "views/project_risks", risk, {**risk, "raised_at": at, "detail": "80% burnt", "updated_at": at})
        other = {"project_code": "PRJ-3", "rule": "margin"}
        topics.produce(t["views.project_risks"], "views/project_risks", other, {**other, "raised_at": at, "detail": "-12 pts", "updated_at": at})
        topics.flush()
        runner.drain()
        assert _rows(reporting_dsn, "select service_line, won_month, won_count, contract_value from bookings") == [
            ("security", date(2026, 1, 1), 2, Decimal("80000.10"))
        ]
        assert len(_rows(reporting_dsn, "select * from project_risks")) == 2

        topics.produce(t["views.project_risks"], "views/project_risks", risk, None)  # the burn alert clears
        topics.flush()
        runner.drain()
        assert _rows(reporting_dsn, "select project_code, rule from project_risks") == [("PRJ-3", "margin")]
        assert _rows(reporting_dsn, "select won_month, won_count, contract_value from exec_bookings") == [
            (date(2026, 1, 1), 2, Decimal("80000.10"))
        ]
    finally:
        runner.close()


def _financials(code: str, currency: str, contract_value: str) -> dict:
    money = dict.fromkeys(("earned_revenue", "billable_expenses", "delivered_value", "billed", "wip", "cost"),
                          Decimal("0.00"))
    return {"project_code": code, "opportunity_id": int(code[4:]), "account_id": 1, "service_line": "security",
            "contract_type": "fixed_fee", "currency": currency, "contract_value": Decimal(contract_value),
            "contract_hours": Decimal("100.00"), **money, "backlog": Decimal(contract_value), "margin_pct": None,
            "planned_margin_pct": None, "hours_burn": None, "updated_at": datetime(2026, 1, 20, tzinfo=timezone.utc)}


def test_executive_figures_are_not_summed_across_currencies(topics, reporting_dsn, kafka_bootstrap, registry_url):
    """exec_kpis: bookings, backlog, wip and billed with one currency; null (never a sum) with two."""
    runner, t = _reporting_runner(topics, kafka_bootstrap, registry_url, reporting_dsn)
    try:
        key = {"service_line": "security", "won_month": date(2026, 1, 1)}
        topics.produce(t["views.bookings"], "views/bookings", key, {
            **key, "won_count": 2, "contract_value": Decimal("1500.00"),
            "updated_at": datetime(2026, 1, 20, tzinfo=timezone.utc)})
        topics.produce(t["views.project_financials"], "views/project_financials", {"project_code": "PRJ-1"},
                       _financials("PRJ-1", "EUR", "1000.00"))
        topics.flush()
        runner.drain()
        assert _rows(reporting_dsn, "select currency, bookings, backlog from exec_kpis") == [
            ("EUR", Decimal("1500.00"), Decimal("1000.00"))]

        topics.produce(t["views.project_financials"], "views/project_financials", {"project_code": "PRJ-2"},
                       _financials("PRJ-2", "USD", "500.00"))
        topics.flush()
        runner.drain()
        assert _rows(reporting_dsn, "select currency, bookings, backlog from exec_kpis") == [(None, None, None)]
    finally:
        runner.close()


def _change(table: str, op: str, before: dict | None, after: dict | None) -> dict:
    return {
        "before": before, "after": after, "op": op, "ts_ms": 0, "unchanged_toasted": [],
        "source": {"version": "test", "connector": "psmesh", "name": "erp", "ts_ms": 0, "snapshot": "false",
                   "db": "erp", "schema": "public", "table": table, "txId": None, "lsn": None, "sequence": None},
    }


def _invoice(invoice_id: int, amount: str, issued_on: date, paid_on: date | None = None, status: str = "issued") -> dict:
    return {"invoice_id": invoice_id, "project_code": "PRJ-1", "billing_event_id": f"PRJ-1-M{invoice_id}",
            "amount": Decimal(amount), "currency": "EUR", "status": status, "issued_on": issued_on,
            "due_on": None, "paid_on": paid_on, "written_off": Decimal("0.00"), "updated_at": None}


def test_dso_view_follows_the_mirrored_invoices_and_periods(topics, reporting_dsn, kafka_bootstrap, registry_url):
    """DSO as of the latest closed period: receivables / issued in the 90 days up to it × 90."""
    runner, t = _reporting_runner(topics, kafka_bootstrap, registry_url, reporting_dsn)
    try:
        inv, per = t["erp.public.invoices"], t["erp.public.billing_periods"]
        invoices = [
            _invoice(1, "1000.00", date(2026, 1, 10)),                                 # open
            _invoice(2, "3000.00", date(2026, 2, 10), paid_on=date(2026, 3, 1)),       # paid before as-of
            _invoice(3, "500.00", date(2026, 3, 20), status="void"),                   # never counts
            _invoice(4, "2000.00", date(2025, 12, 1)),                                 # open, outside the window (as-of − 120)
        ]
        for i in invoices:
            topics.produce(inv, "erp/invoices", {"invoice_id": i["invoice_id"]}, _change("invoices", "c", None, i))
        for pid, end, status in ((1, date(2026, 2, 28), "closed"), (2, date(2026, 3, 31), "closed"), (3, date(2026, 4, 30), "open")):
            row = {"period_id": pid, "start_date": end.replace(day=1), "end_date": end, "status": status, "closed_at": None}
            topics.produce(per, "erp/billing_periods", {"period_id": pid}, _change("billing_periods", "c", None, row))
        # Invoice 1 is paid after the as-of date: still receivable at it. Then invoice 4 is deleted.
        topics.produce(inv, "erp/invoices", {"invoice_id": 1},
                       _change("invoices", "u", None, _invoice(1, "1000.00", date(2026, 1, 10), paid_on=date(2026, 4, 2))))
        topics.produce(inv, "erp/invoices", {"invoice_id": 4}, _change("invoices", "d", invoices[3], None))
        topics.produce(inv, "erp/invoices", {"invoice_id": 4}, None)
        topics.flush()
        runner.drain()
        # as-of 2026-03-31, window 2026-01-01..2026-03-31: issued 1000 + 3000; receivable 1000 → 22.50 days.
        assert _rows(reporting_dsn, "select as_of, receivables, issued_90d, dso_days from exec_dso") == [
            (date(2026, 3, 31), Decimal("1000.00"), Decimal("4000.00"), Decimal("22.50"))
        ]
        assert _rows(reporting_dsn, "select count(*) from source.invoices") == [(3,)]
    finally:
        runner.close()


def test_sink_cli_group_runs_and_offers_both_sinks():
    from click.testing import CliRunner

    from sinks.cli import sink

    result = CliRunner().invoke(sink, ["run", "--help"])
    assert result.exit_code == 0 and "{erp|reporting}" in result.output and "--metrics-port" in result.output
    assert CliRunner().invoke(sink, ["run", "ledger"]).exit_code == 2
