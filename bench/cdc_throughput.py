"""Benchmark: PostgreSQL → Kafka change capture from one slot, with Avro and acknowledgements.

Two figures, on the stack `psmesh dev up` runs (or the one PSMESH_* points at):

1. **Sustained throughput**: ROWS inserts into timeexp-shaped ``time_entries``
   (14 columns: bigint, text, date, numeric, boolean, timestamptz) are
   committed while the capture is stopped, so the slot holds a backlog; the
   capture (one process, i.e. one core for decode + convert + Avro + produce)
   is then started and timed until PostgreSQL reports the whole backlog
   confirmed, which by construction means Kafka acknowledged every event.
   Printed: row changes per second.
2. **Latency at a fixed offered rate**: with the capture running, RATE rows/s
   are committed (transactions of BATCH rows) for SECONDS; for each event,
   latency = Kafka's LogAppendTime of the record − the source commit time in
   its envelope (``source.ts_ms``). Printed: p50, p99, max (milliseconds).

    .venv/bin/python bench/cdc_throughput.py [--rows 200000] [--rate 2000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

from psmesh.config import load_settings  # noqa: E402
from psmesh.sources import source_sql  # noqa: E402
from psmesh.stack import LocalStack  # noqa: E402
from streams.source import CaptureConfig, CaptureSource  # noqa: E402

INSERT = """insert into time_entries
  select g, g %% 50, 'PRJ-' || (g %% 97), 'consultant', date '2026-01-05' + (g %% 60)::int,
         7.50, g %% 5 <> 0, 150.00, 90.00, 'submitted', 'design workshop', now(), null, now()
  from generate_series(%s::bigint, %s::bigint) g"""


def _capture(config: CaptureConfig) -> None:
    capture = CaptureSource(config)
    capture.install_signal_handlers()
    capture.run()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _confirmed(dsn: str, slot: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint from pg_replication_slots where slot_name = %s", (slot,)
        ).fetchone()
    return row[0] if row and row[0] is not None else 0


def _current_lsn(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint").fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=2_000, help="offered rows/s for the latency run")
    parser.add_argument("--batch", type=int, default=100, help="rows per transaction in the latency run")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()

    settings = load_settings()
    if not settings.kafka_bootstrap:
        LocalStack(settings).up()
    name = f"bench{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    dsn = settings.pg_dsn(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(source_sql("timeexp"))
    topic = f"{name}.public.time_entries"
    admin = AdminClient(settings.kafka_client_config())
    # LogAppendTime: the broker stamps each record when it appends it, i.e. at acknowledgement.
    admin.create_topics([NewTopic(topic, 6, 1, config={"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"})])[topic].result()
    state_dir = Path(tempfile.mkdtemp(prefix="psmesh-bench-"))
    config = CaptureConfig(
        name=name, dsn=dsn, database=name, tables=("public.time_entries",), slot=f"slot_{name}",
        publication=f"pub_{name}", registry_url=settings.schema_registry_url, kafka=settings.kafka_client_config(),
        state_dir=state_dir, snapshot=False, heartbeat_interval=0, status_interval=0.2, create_topics=False,
    )
    ctx = mp.get_context("spawn")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")

    # 1. throughput from a backlog
    proc = ctx.Process(target=_capture, args=(config,))
    proc.start()
    status = state_dir / f"{name}.status.json"
    while not status.exists():
        time.sleep(0.1)
    proc.terminate()
    proc.join(60)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for first in range(1, args.rows + 1, 5000):
            conn.execute(INSERT, (first, min(first + 4999, args.rows)))
    end = _current_lsn(dsn)
    started = time.perf_counter()
    proc = ctx.Process(target=_capture, args=(config,))
    proc.start()
    while _confirmed(dsn, config.slot) < end:
        if not proc.is_alive():
            raise SystemExit(f"the capture process died (exit code {proc.exitcode}); see its traceback above")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds(proc.pid)
    print(f"throughput: {args.rows} row changes in {elapsed:.2f} s = {args.rows / elapsed:,.0f} row changes/s "
          "(one slot, one capture process, Avro + idempotent producer, acks=all; includes process start)")
    print(f"capture process CPU: {cpu:.1f} s in {elapsed:.1f} s wall ({100 * cpu / elapsed:.0f}% of one core; "
          f"{cpu / args.rows * 1e6:.0f} µs CPU per row change); the rest of the machine runs PostgreSQL's walsender and the broker")

    # 2. latency at a fixed offered rate
    first = args.rows + 1
    interval = args.batch / args.rate
    deadline = time.monotonic() + args.seconds
    sent = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            conn.execute(INSERT, (first, first + args.batch - 1))
            first += args.batch
            sent += args.batch
            next_at += interval
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    end = _current_lsn(dsn)
    while _confirmed(dsn, config.slot) < end:
        if not proc.is_alive():
            raise SystemExit(f"the capture process died (exit code {proc.exitcode}); see its traceback above")
        time.sleep(0.05)
    proc.terminate()
    proc.join(60)

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": settings.schema_registry_url}))
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"bench-{name}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    parts = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p))[1] for p in parts}
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    latencies = []
    done = {p for p, e in ends.items() if e == 0}
    while len(done) < len(parts):
        for msg in consumer.consume(10000, 1.0):
            if msg.error():
                continue
            if msg.offset() + 1 >= ends[msg.partition()]:
                done.add(msg.partition())
            value = deserializer(msg.value(), SerializationContext(topic, MessageField.VALUE))
            if value["after"]["entry_id"] > args.rows:
                latencies.append(msg.timestamp()[1] - value["source"]["ts_ms"])
    consumer.close()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    achieved = sent / args.seconds
    print(f"latency at {achieved:,.0f} rows/s offered ({args.batch} rows per transaction, {len(latencies)} events): "
          f"p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms, max {latencies[-1]} ms (source commit → Kafka LogAppendTime)")

    with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
        conn.execute("select pg_drop_replication_slot(%s)", (config.slot,))
        conn.execute(f'drop database "{name}" with (force)')
    admin.delete_topics([topic])


if __name__ == "__main__":
    main()
