"""Benchmark: rows/s written by the ERP sink and the reporting sink, from a backlog on Kafka.

On the stack `psmesh dev up` runs (or the one PSMESH_* points at): N
synthetic events are produced (Avro, Confluent wire format, schemas in the
registry) to topics of the bench's own, then the sink runs in this process
until it has settled every event (offsets committed after the database
commit) and the rows/s are printed:

* erp: billing triggers (one insert-once row each) and project requests (one
  project upsert + two milestone inserts each), into a scratch copy of the
  erp tables;
* reporting: resource_week view records (one upsert each), into a scratch
  reporting database.

    .venv/bin/python bench/sinks.py [--events 50000] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from psmesh.config import load_settings  # noqa: E402
from psmesh.sources import source_sql  # noqa: E402
from psmesh.stack import LocalStack  # noqa: E402
from sinks.erp import ErpSink  # noqa: E402
from sinks.records import load_contract  # noqa: E402
from sinks.reporting import ReportingSink  # noqa: E402
from sinks.runner import RunnerConfig, SinkRunner  # noqa: E402

AT = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)


class Rig:
    """Scratch database and topics (dropped by ``close``)."""

    def __init__(self) -> None:
        self.settings = load_settings()
        if not self.settings.kafka_bootstrap:
            LocalStack(self.settings).up()
        self.name = f"benchsink{uuid.uuid4().hex[:8]}"
        self.admin = AdminClient(self.settings.kafka_client_config())
        self.registry = SchemaRegistryClient({"url": self.settings.schema_registry_url})
        self.producer = Producer({**self.settings.kafka_client_config(), "linger.ms": 20, "batch.num.messages": 10000,
                                  "queue.buffering.max.messages": 500000})
        self.topics: list[str] = []
        self.databases: list[str] = []

    def database(self, sql: str | None = None) -> str:
        name = f"{self.name}_{len(self.databases)}"
        with psycopg.connect(self.settings.pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        self.databases.append(name)
        if sql:
            with psycopg.connect(self.settings.pg_dsn(name), autocommit=True) as conn:
                conn.execute(sql)
        return self.settings.pg_dsn(name)

    def topic(self, name: str, partitions: int = 6) -> str:
        topic = f"{self.name}.{name}"
        self.admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
        self.topics.append(topic)
        return topic

    def produce(self, topic: str, contract: str, events) -> int:
        key_ser = AvroSerializer(self.registry, json.dumps(load_contract(f"{contract}-key.avsc")))
        value_ser = AvroSerializer(self.registry, json.dumps(load_contract(f"{contract}-value.avsc")))
        n = 0
        for key, value in events:
            while True:
                try:
                    self.producer.produce(topic, key=key_ser(key, SerializationContext(topic, MessageField.KEY)),
                                          value=value_ser(value, SerializationContext(topic, MessageField.VALUE)))
                    break
                except BufferError:
                    self.producer.poll(0.1)
            n += 1
        self.producer.flush(120)
        return n

    def config(self, dsn: str, batch_size: int) -> RunnerConfig:
        return RunnerConfig(kafka=self.settings.kafka_client_config(), registry_url=self.settings.schema_registry_url,
                            dsn=dsn, group_id=f"bench-{self.name}-{uuid.uuid4().hex[:6]}",
                            dead_letter_topic=self.topic(f"dlq{len(self.topics)}", 1), batch_size=batch_size)

    def close(self) -> None:
        if self.topics:
            self.admin.delete_topics(self.topics)
        with psycopg.connect(self.settings.pg_dsn("postgres"), autocommit=True) as conn:
            for name in self.databases:
                conn.execute(f'drop database if exists "{name}" with (force)')


def _triggers(n: int):
    for i in range(n):
        code = f"PRJ-{i % 997}"
        yield {"billing_event_id": f"{code}-P{i}"}, {
            "billing_event_id": f"{code}-P{i}", "project_code": code, "trigger_type": "period_close", "period_id": i,
            "milestone_id": None, "amount": Decimal("1234.56"), "currency": "USD"}


def _requests(n: int):
    for i in range(n):
        code = f"PRJ-{i}"
        yield {"project_code": code}, {
            "event_id": f"{code}-1", "event_type": "request", "project_code": code, "opportunity_id": i, "account_id": i % 50,
            "name": "Data platform", "service_line": "data_analytics", "contract_type": "time_and_materials", "currency": "USD",
            "budget_amount": Decimal("250000.00"), "budget_hours": Decimal("1500.00"), "start_date": date(2026, 2, 2),
            "end_date": date(2026, 9, 30), "billing_frequency": "period", "revenue_method": "as_delivered",
            "cost_center": "CC-NA-data_analytics", "won_at": AT,
            "milestones": [{"milestone_id": i * 10 + m, "name": f"M{m}", "amount": Decimal("1000.00"), "planned_date": date(2026, 3, m)}
                           for m in (1, 2)],
            "staffing_lines": []}


def _resource_weeks(n: int):
    monday = date(2026, 1, 5)
    for i in range(n):
        key = {"resource_id": i % 500, "week_start": monday + timedelta(weeks=i // 500)}
        yield key, {**key, "capacity_hours": Decimal("40.00"), "assigned_hours": Decimal("32.00"),
                    "tentative_hours": Decimal("4.00"), "available_hours": Decimal("8.00"),
                    "billable_hours": Decimal("30.50"), "total_hours": Decimal("38.00"),
                    "utilization": Decimal("0.7625"), "updated_at": AT}


def _time(label: str, runner: SinkRunner, events: int) -> None:
    runner.start()
    started = time.perf_counter()
    runner.drain(timeout=1800)
    elapsed = time.perf_counter() - started
    rows = sum(runner.written.values())
    print(f"{label:34} {events:>8} events {rows:>8} rows in {elapsed:6.2f}s: {rows / elapsed:>9,.0f} rows/s "
          f"{events / elapsed:>9,.0f} events/s  ({dict(runner.written)})")
    runner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"batch size {args.batch_size}")
    rig = Rig()
    try:
        erp_sql = source_sql("erp")
        triggers = rig.topic("billing_triggers")
        n = rig.produce(triggers, "derived/billing_triggers", _triggers(args.events))
        _time("erp: billing triggers", SinkRunner(ErpSink(project_requests=rig.topic("project_requests"), billing_triggers=triggers),
                                                  rig.config(rig.database(erp_sql), args.batch_size)), n)

        requests = rig.topic("project_requests2")
        n = rig.produce(requests, "derived/project_requests", _requests(args.events // 5))
        _time("erp: project requests (+2 milestones)", SinkRunner(
            ErpSink(project_requests=requests, billing_triggers=rig.topic("billing_triggers2")),
            rig.config(rig.database(erp_sql), args.batch_size)), n)

        weeks = rig.topic("views.resource_week")
        n = rig.produce(weeks, "views/resource_week", _resource_weeks(args.events))
        _time("reporting: resource_week upserts", SinkRunner(
            ReportingSink(topics={"views.resource_week": weeks}, mirrors=False),
            rig.config(rig.database(), args.batch_size)), n)
    finally:
        rig.close()


if __name__ == "__main__":
    main()
