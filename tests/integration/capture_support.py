"""Helpers for capture tests: a scratch source database, a capture, readers of a topic."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from psmesh.config import Settings
from psmesh.sources import source_sql
from streams.source import CaptureConfig, CaptureSource

TABLES = (
    "public.accounts", "public.opportunities", "public.opportunity_lines", "public.opportunity_milestones",
    "public.change_orders", "public.resources", "public.assignments", "public.time_off",
    "public.time_entries", "public.expenses",
)


@dataclass
class ScratchSource:
    """A source database of its own (crm + psa + timeexp tables) with unique slot and topics."""

    name: str
    database: str
    settings: Settings
    state_dir: Path

    @classmethod
    def create(cls, settings: Settings, state_dir: Path) -> "ScratchSource":
        name = f"t{uuid.uuid4().hex[:10]}"
        with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        with psycopg.connect(settings.pg_dsn(name), autocommit=True) as conn:
            for source in ("crm", "psa", "timeexp"):
                conn.execute(source_sql(source))
        return cls(name, name, settings, state_dir)

    @property
    def dsn(self) -> str:
        return self.settings.pg_dsn(self.database)

    def execute(self, sql: str, params: Any = None) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql, params)

    def config(self, **overrides) -> CaptureConfig:
        base = CaptureConfig(
            name=self.name,
            dsn=self.dsn,
            database=self.database,
            tables=TABLES,
            slot=f"slot_{self.name}",
            publication=f"pub_{self.name}",
            registry_url=self.settings.schema_registry_url,
            kafka={"bootstrap.servers": self.settings.bootstrap_servers},
            state_dir=self.state_dir,
            status_interval=0.2,
        )
        return replace(base, **overrides)

    def topic(self, table: str) -> str:
        return f"{self.name}.public.{table}"

    def drop(self) -> None:
        """Drop the scratch database and its slots. A capture that is still letting go of its slot (its
        walsender ends a moment after the test stopped it; a CI run on a busy machine caught one) is ended."""
        with psycopg.connect(self.settings.pg_dsn("postgres"), autocommit=True) as conn:
            deadline = time.monotonic() + 15
            while True:
                conn.execute("select pg_terminate_backend(active_pid) from pg_replication_slots "
                             "where database = %s and active", (self.database,))
                conn.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                             "where database = %s and not active", (self.database,))
                try:
                    conn.execute(f'drop database if exists "{self.database}" with (force)')
                    return
                except psycopg.errors.ObjectInUse:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)


class RunningCapture:
    """A CaptureSource on a thread; ``stop()`` flushes and confirms like SIGTERM does."""

    def __init__(self, config: CaptureConfig) -> None:
        self.capture = CaptureSource(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.capture.run()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc

    def __enter__(self) -> "RunningCapture":
        self.thread.start()
        # Streaming has begun once the capture wrote its first status.
        if not wait_for(lambda: self.capture.status_path.exists() or not self.thread.is_alive(), timeout=60):
            raise TimeoutError("capture did not start streaming within 60 s")
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        self.capture.stop()
        self.thread.join(60)

    def __exit__(self, *exc) -> None:
        self.stop()


class TopicReader:
    """Reads a topic from the beginning with confluent-kafka's own AvroDeserializer."""

    def __init__(self, settings: Settings) -> None:
        self.registry = SchemaRegistryClient({"url": settings.schema_registry_url})
        self.deserializer = AvroDeserializer(self.registry)
        self.bootstrap = settings.bootstrap_servers

    def read(self, topic: str, count: int, timeout: float = 60.0) -> list[tuple[Any, Any]]:
        """(key, value) records, decoded; value None for a tombstone. Waits for ``count`` records."""
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        })
        deadline = time.monotonic() + timeout
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            found = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if found is not None and found.error is None:
                partitions = list(found.partitions)
            else:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[tuple[Any, Any]] = []
        try:
            while len(out) < count and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                key = self.deserializer(msg.key(), SerializationContext(topic, MessageField.KEY)) if msg.key() else None
                value = self.deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE)) if msg.value() is not None else None
                out.append((key, value))
        finally:
            consumer.close()
        return out


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def read_final_states(settings: Settings, topic: str, keep: Callable[[Any], bool] | None = None
                      ) -> tuple[dict[Any, Any], int]:
    """Every record of ``topic`` up to its current end, folded to the last value per key; and the count read.
    ``keep``: given each record (confluent-kafka's Message, each partition's in order), whether to fold it."""
    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer({
        "bootstrap.servers": settings.bootstrap_servers,
        "group.id": f"fold-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    try:
        parts = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        done = {p for p, end in ends.items() if end == 0}
        state: dict[Any, Any] = {}
        count = 0
        while len(done) < len(parts):
            batch = consumer.consume(10000, 1.0)
            for msg in batch:
                if msg.error():
                    continue
                count += 1
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
                if keep is not None and not keep(msg):
                    continue
                key = deserializer(msg.key(), SerializationContext(topic, MessageField.KEY))
                key = tuple(sorted(key.items()))
                if msg.value() is None:
                    state.pop(key, None)
                else:
                    value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
                    if value["after"] is None:
                        state.pop(key, None)
                    else:
                        state[key] = value["after"]
        return state, count
    finally:
        consumer.close()


def read_records(settings: Settings, topic: str) -> list[tuple[Any, Any]]:
    """Every record of ``topic`` up to its current end, each partition's in order: (key, value), both decoded with
    confluent-kafka's AvroDeserializer (a tombstone's value is None)."""
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": settings.schema_registry_url}))
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"read-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    records: list[tuple[Any, Any]] = []
    try:
        for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, p, low)])
            while True:
                msg = consumer.poll(10)
                assert msg is not None and not msg.error(), f"{topic}[{p}] unreadable"
                records.append((deserialize(msg.key(), SerializationContext(topic, MessageField.KEY)),
                                deserialize(msg.value(), SerializationContext(topic, MessageField.VALUE))))
                if msg.offset() + 1 >= high:
                    break
    finally:
        consumer.close()
    return records
