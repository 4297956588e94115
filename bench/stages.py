"""Benchmark: the processor worker's own CPU per change event, stage by stage, without Kafka.

bench/processors.py measures a worker on a real broker. This one takes the
same backlog (bench/backlog.py), encoded as the capture encodes it (Avro,
Confluent wire format), and hands it to a worker's batch handlers in
process, as its agents would: the router in batches of ROUTE_BATCH change
events, then what the router sent each stage in batches of STAGE_BATCH
messages, then the rollup; the tables are on RocksDB as in normal runs, the
view and derived records are Avro-encoded with the repository's schemas.
What is left out is Kafka: records the worker would produce are kept in a
list (the stages' input is taken from it), schema ids come from a registry
in memory, and no consumer, fetcher, acknowledgement or delivery report
runs. The figure is the CPU time of each stage's handler per change event
of the backlog, and their sum: what a worker would need per change event if
reading and writing Kafka cost nothing, and so a bound on what more
efficient Kafka clients can bring.

It is not a test of correctness (tests/ are), but it prints the number of
rows of each view at the end, which is the same as bench/processors.py's
worker serves for the same backlog.

    .venv/bin/python bench/stages.py [--entries 30000] [--inserts-only] [--runs 3]

For a profile of the stages alone: ``py-spy record -o prof.svg -- .venv/bin/python bench/stages.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # ahead of bench/, whose processors.py is not the package

import fastavro  # noqa: E402
from confluent_kafka.schema_registry import Schema  # noqa: E402

from backlog import SCHEMAS, TABLES, Positions, envelope, produce, value_columns  # noqa: E402  (bench/backlog.py)
from processors.app import (  # noqa: E402
    _TICKET, ROUTE_BATCH, ROUTE_PROJECTIONS, STAGE_BATCH, Processors, _rocksdb, tune_gc)
from processors.app import TABLES as TABLE_PARTITIONS  # noqa: E402  (bench/backlog.py has a TABLES of its own)
from processors.codec import ChangeEventDecoder, TopicEncoder  # noqa: E402
from psmesh.config import Settings  # noqa: E402

STAGES = ("route", "project", "resource", "rollup")


class MemoryRegistry:
    """Schema ids as a registry gives them (one per distinct schema), for the decoder and the encoders."""

    def __init__(self) -> None:
        self.schemas: dict[int, Schema] = {}
        self._ids: dict[str, int] = {}

    def register_schema(self, subject: str, schema: Schema) -> int:
        schema_id = self._ids.setdefault(schema.schema_str, len(self._ids) + 1)
        self.schemas[schema_id] = schema
        return schema_id

    def get_schema(self, schema_id: int) -> Schema:
        return self.schemas[schema_id]


class EncodedBacklog:
    """The backlog's change events as the capture writes them (Confluent-framed Avro), kept in memory."""

    def __init__(self, registry: MemoryRegistry) -> None:
        self.registry = registry
        self.events: list[tuple[str, bytes, bytes, list]] = []  # (topic, key, value, headers)
        self.positions = Positions()
        self._schemas: dict[str, tuple[Any, bytes, list[str]]] = {}

    def send(self, table: str, op: str, **row: Any) -> None:
        topic, stem, pk = TABLES[table]
        found = self._schemas.get(stem)
        if found is None:
            text = (SCHEMAS / f"{stem}-value.avsc").read_text()
            schema_id = self.registry.register_schema(f"{topic}-value", Schema(text, "AVRO"))
            header = b"\0" + schema_id.to_bytes(4, "big")  # Confluent framing: magic byte, schema id
            found = self._schemas[stem] = (fastavro.parse_schema(json.loads(text)), header, value_columns(text))
        parsed, header, columns = found
        body = io.BytesIO()
        body.write(header)
        fastavro.schemaless_writer(body, parsed, envelope(table, op, columns, row))
        self.events.append((topic, str(row[pk]).encode(), body.getvalue(), self.positions.next()))

    def flush(self) -> None:
        pass


class KeptRecords:
    """The worker's sender (processors/sender.py), keeping each record instead of producing it."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int | None, bytes | None]] = []  # (topic, partition, value)

    def ticket(self) -> object:
        return object()

    def produce(self, ticket: object, topic: str, key: bytes | None, value: bytes | None, *,
                partition: int | None = None, headers: Any = None, table: Any = None) -> None:
        self.records.append((topic, partition, value))

    async def wait(self, ticket: object) -> dict:
        return {}


class _Message:
    __slots__ = ("topic", "partition", "offset", "headers")

    def __init__(self, topic: str, partition: int, offset: int, headers: list | None = None) -> None:
        self.topic, self.partition, self.offset, self.headers = topic, partition, offset, headers


class _Event:
    """What the handlers read of a Faust event."""

    __slots__ = ("message", "key", "value", "__weakref__")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
                 headers: list | None = None) -> None:
        self.message, self.key, self.value = _Message(topic, partition, offset, headers), key, value


def run(events: list[tuple[str, bytes, bytes, list]], registry: MemoryRegistry,
        home: Path) -> tuple[dict[str, float], dict, Counter]:
    """One worker through the backlog: CPU seconds per stage, the number of rows of each view, and the view and
    derived records it published per topic."""
    worker = Processors(Settings(home=home), web_port=6999, datadir=home / "data")
    sender = worker.sender = KeptRecords()
    worker._decoder = ChangeEventDecoder(registry, ROUTE_PROJECTIONS, decimal_text=True)  # as the worker makes it
    encoders: dict[str, TopicEncoder] = {}

    def encoder(topic: str) -> TopicEncoder:
        if topic not in encoders:
            encoders[topic] = TopicEncoder(registry, topic)
        return encoders[topic]

    worker.encoder = encoder
    stage_of = {worker.by_project.get_topic_name(): "project", worker.by_resource.get_topic_name(): "resource",
                worker.to_rollup.get_topic_name(): "rollup"}
    handlers = {"route": worker._route_batch, "project": worker._project_batch,
                "resource": worker._resource_batch, "rollup": worker._rollup_batch}
    queued: dict[str, list[_Event]] = {stage: [] for stage in STAGES}
    offsets: dict[tuple[str, int], int] = {}
    cpu = dict.fromkeys(STAGES, 0.0)
    published: Counter[str] = Counter()  # view and derived records, per topic

    def event(topic: str, partition: int, key: bytes | None, value: bytes | None, headers: list | None = None
              ) -> _Event:
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
        return _Event(topic, partition, offset, key, value, headers)

    async def handle(stage: str, batch: list[_Event]) -> None:
        token = _TICKET.set(sender.ticket())
        try:
            await handlers[stage](batch)
        finally:
            _TICKET.reset(token)

    def drain(stage: str, size: int) -> None:
        while queued[stage]:
            batch, queued[stage] = queued[stage][:size], queued[stage][size:]
            started = time.process_time()
            loop.run_until_complete(handle(stage, batch))
            cpu[stage] += time.process_time() - started
            for topic, partition, value in sender.records:  # what the stage sent the next ones
                if topic in stage_of:
                    queued[stage_of[topic]].append(event(topic, partition or 0, None, value))
                elif topic.startswith(("views.", "derived.")):
                    published[topic] += 1
            sender.records.clear()

    # A worker opens its tables' RocksDB partitions when they are assigned to it, before it reads an event; here
    # the first write would open them, inside the figure (19 databases: about 2 % of a run's CPU).
    for name, table in worker.tables.items():
        if _rocksdb(table.data):
            for partition in range(TABLE_PARTITIONS[name]):
                table.data._db_for_partition(partition)
    loop = asyncio.new_event_loop()
    tune_gc()
    try:
        queued["route"] = [event(topic, 0, key, value, headers) for topic, key, value, headers in events]
        while any(queued.values()):
            drain("route", ROUTE_BATCH)
            drain("project", STAGE_BATCH)
            drain("resource", STAGE_BATCH)
            drain("rollup", STAGE_BATCH)
    finally:
        loop.close()
    return cpu, {view: len(rows) for view, rows in worker.published.items()}, published


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=30000,
                        help="time entries (2 change events each; 1 with --inserts-only)")
    parser.add_argument("--inserts-only", action="store_true",
                        help="time entries inserted once, as approved (as bench/processors.py --inserts-only)")
    parser.add_argument("--runs", type=int, default=3, help="workers one after the other through the backlog")
    args = parser.parse_args()

    registry = MemoryRegistry()
    backlog = EncodedBacklog(registry)
    produce(backlog, args.entries, args.inserts_only)
    count = len(backlog.events)
    print(f"backlog: {count:,} change events (Avro, Confluent wire format), in memory")
    totals = []
    home = Path(tempfile.mkdtemp(prefix="psmesh-bench-stages-"))
    # Each run in a new process, forked from this one, which has run no worker: a worker's
    # module-level caches (processors/batch.py) start empty, as in a new worker.
    fork = multiprocessing.get_context("fork")
    try:
        for number in range(1, args.runs + 1):
            with fork.Pool(1) as pool:
                cpu, views, published = pool.apply(run, (backlog.events, registry, home / f"run{number}"))
            total = sum(cpu.values())
            totals.append(total / count * 1e6)
            print(f"run {number}: " + ", ".join(f"{stage} {cpu[stage] / count * 1e6:.1f}" for stage in STAGES)
                  + f" µs per change event; in all {total / count * 1e6:.1f} µs = {count / total:,.0f} change "
                    f"events per CPU second")
    finally:
        shutil.rmtree(home, ignore_errors=True)  # each run's RocksDB data
    print(f"views: {', '.join(f'{view} {n:,}' for view, n in views.items())} rows")
    print(f"published (last run): {sum(published.values()):,} view and derived records "
          f"({sum(published.values()) / count:.2f} per change event): "
          + ", ".join(f"{topic} {n:,}" for topic, n in published.most_common()))
    if args.runs > 1:
        print(f"in all, median of {args.runs} runs: {statistics.median(totals):.1f} µs per change event "
              f"({', '.join(f'{t:.1f}' for t in totals)})")
    print(f"machine: Python {platform.python_version()}; no Kafka in this figure (bench/processors.py has it)")


if __name__ == "__main__":
    main()
