"""Benchmark: PostgreSQL → Kafka change capture from one slot, with Avro and acknowledgements.

Two figures, on the benches' own local stack (bench/rig.py: runtime directory
``$TMPDIR/psmesh-bench``, Kafka 26092/26093, PostgreSQL 26433, registry 26081;
started if needed, left running: stop it with ``PSMESH_HOME=... psmesh dev down``
and the same ports), or on the servers the PSMESH_* variables point at:

1. **Sustained throughput**: ROWS inserts into timeexp-shaped ``time_entries``
   (14 columns: bigint, text, date, numeric, boolean, timestamptz) are
   committed while the capture is stopped, so the slot holds a backlog; the
   capture (one process: decode + convert + Avro + produce, and librdkafka's
   threads) is then started and timed until PostgreSQL reports the whole
   backlog confirmed, which by construction means Kafka acknowledged every
   event. Printed: row changes per second, and the capture's CPU per row.
2. **Latency at a fixed offered rate**: with the capture running, RATE rows/s
   are committed (transactions of BATCH rows) for SECONDS; for each event,
   latency = Kafka's LogAppendTime of the record − the source commit time in
   its envelope (``source.ts_ms``). Printed: p50, p99, max (milliseconds).

    .venv/bin/python bench/cdc_throughput.py [--rows 200000] [--rate 2000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from rig import INSERT_TIME_ENTRIES, CaptureRig, cpu_seconds

import psycopg  # noqa: E402  (rig puts the project on sys.path)
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402


def _records(rig: CaptureRig, group: str):
    """Every record in the bench topic up to its end offsets at the call."""
    consumer = Consumer({**rig.settings.kafka_client_config(), "group.id": f"{group}-{rig.name}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    parts = list(consumer.list_topics(rig.topic, timeout=10).topics[rig.topic].partitions)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(rig.topic, p))[1] for p in parts}
    consumer.assign([TopicPartition(rig.topic, p, 0) for p in parts])
    done = {p for p, end in ends.items() if end == 0}
    try:
        while len(done) < len(parts):
            for msg in consumer.consume(10000, 1.0):
                if msg.error():
                    continue
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
                yield msg
    finally:
        consumer.close()


def _latencies(rig: CaptureRig, first_id: int) -> list[int]:
    """LogAppendTime − source commit time, in ms, of every event with entry_id ≥ first_id."""
    deserializer = AvroDeserializer(SchemaRegistryClient({"url": rig.settings.schema_registry_url}))
    latencies = []
    for msg in _records(rig, "bench"):
        value = deserializer(msg.value(), SerializationContext(rig.topic, MessageField.VALUE))
        if value["after"]["entry_id"] >= first_id:
            latencies.append(msg.timestamp()[1] - value["source"]["ts_ms"])
    return sorted(latencies)


def _append_span(rig: CaptureRig) -> tuple[int, int, int]:
    """(records, first LogAppendTime, last LogAppendTime) of everything in the topic, in ms."""
    stamps = [msg.timestamp()[1] for msg in _records(rig, "bench-span")]
    return len(stamps), min(stamps, default=0), max(stamps, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=2_000, help="offered rows/s for the latency run")
    parser.add_argument("--batch", type=int, default=100, help="rows per transaction in the latency run")
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}")
    # LogAppendTime: the broker stamps each record when it appends it, i.e. at acknowledgement.
    rig = CaptureRig(partitions=6, topic_config={"cleanup.policy": "compact", "message.timestamp.type": "LogAppendTime"})
    try:
        # 1. throughput from a backlog: the first start creates the slot, then the load waits in it.
        rig.start()
        rig.stop()
        with psycopg.connect(rig.dsn, autocommit=True) as conn:
            for first in range(1, args.rows + 1, 5000):
                conn.execute(INSERT_TIME_ENTRIES, (first, min(first + 4999, args.rows)))
        end = rig.current_lsn()
        started = time.perf_counter()
        proc = rig.start()
        rig.wait_confirmed(end)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(proc.pid)
        print(f"throughput: {args.rows} row changes in {elapsed:.2f} s = {args.rows / elapsed:,.0f} row changes/s "
              "(one slot, one capture process, Avro + idempotent producer, acks=all; includes process start)")
        records, first_ms, last_ms = _append_span(rig)
        span = max(last_ms - first_ms, 1) / 1000
        print(f"streaming: {records:,} records (the backlog's inserts) appended, from the first to "
              f"the last in {span:.2f} s = {records / span:,.0f} row changes/s (broker LogAppendTime; without process "
              "start, connection and slot setup)")
        print(f"capture process CPU: {cpu:.1f} s in {elapsed:.1f} s wall ({100 * cpu / elapsed:.0f}% of one core; "
              f"{cpu / args.rows * 1e6:.0f} µs CPU per row change); the rest of the machine runs PostgreSQL's walsender and the broker")

        # 2. latency at a fixed offered rate
        first = args.rows + 1
        interval = args.batch / args.rate
        deadline = time.monotonic() + args.seconds
        sent = 0
        with psycopg.connect(rig.dsn, autocommit=True) as conn:
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                conn.execute(INSERT_TIME_ENTRIES, (first + sent, first + sent + args.batch - 1))
                sent += args.batch
                next_at += interval
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        rig.wait_confirmed(rig.current_lsn())
        rig.stop()
        latencies = _latencies(rig, first)
        q = statistics.quantiles(latencies, n=100)
        print(f"latency at {sent / args.seconds:,.0f} rows/s offered ({args.batch} rows per transaction, {len(latencies)} events): "
              f"p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms, max {latencies[-1]} ms (source commit → Kafka LogAppendTime)")
    finally:
        rig.close()


if __name__ == "__main__":
    main()
