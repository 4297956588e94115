"""Micro-benchmark: the capture's per-row CPU work with no I/O, stage by stage.

Runs Insert messages of ``time_entries`` (the rows captured from PostgreSQL 15
in tests/unit/streams/vectors/v2/domain_rows.json, each made distinct: its own
entry_id and its own submitted_at/updated_at microseconds, so no value cache
helps more than it would on real data) through what the capture does per row
and prints process CPU µs per row after each stage:

* the reference path: decode into message objects, text → Python conversion,
  envelope dicts and Avro encoding of key and value, ``Producer.produce``
  into librdkafka's local queue (no broker);
* the fast path (streams/rowcodec.py), as the capture runs it
  (``CaptureSource._on_wal``): pgoutput bytes → Avro bytes → the same local
  queue, with the same delivery callback per event.

The gap between this and ``bench/cdc_throughput.py``'s CPU per row is the loop
around it (replication reads, acknowledgements, librdkafka's own threads).

    .venv/bin/python bench/cdc_pipeline_cpu.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402

from streams.avrocodegen import compile_encoder  # noqa: E402
from streams.envelope import ColumnSpec, key_schema, value_schema  # noqa: E402
from streams.pgoutput import Insert, PgOutputDecoder, Relation  # noqa: E402
from streams.pgtypes import RowConverter  # noqa: E402
from streams.publisher import AvroEncoder, ChangePublisher  # noqa: E402
from streams.registration import TableSchemas  # noqa: E402
from streams.source import CaptureConfig, CaptureSource  # noqa: E402

VECTORS = ROOT / "tests" / "unit" / "streams" / "vectors" / "v2"
TOPIC = "bench.public.time_entries"


def _tuple(values) -> bytes:
    out = [struct.pack("!H", len(values))]
    for v in values:
        if v is None:
            out.append(b"n")
        else:
            b = v.encode()
            out.append(b"t" + struct.pack("!I", len(b)) + b)
    return b"".join(out)


def _distinct_inserts(relation: Relation, templates: list[tuple], rows: int) -> list[bytes]:
    """``rows`` Insert messages cycling over the captured rows, each with its own key and timestamps."""
    names = [c.name for c in relation.columns]
    stamps = [i for i, c in enumerate(relation.columns) if c.type_oid == 1184]
    key = names.index("entry_id")
    out = []
    for n in range(rows):
        values = list(templates[n % len(templates)])
        values[key] = str(n + 1)
        for i in stamps:
            if values[i] is not None:
                values[i] = f"2026-11-21 {n // 3_600_000_000 % 24:02d}:{n // 60_000_000 % 60:02d}:{n // 1_000_000 % 60:02d}.{n % 1_000_000:06d}+00"
        out.append(b"I" + struct.pack("!I", relation.relation_id) + b"N" + _tuple(values))
    return out


class _Registrar:
    def schemas_for(self, topic, table, columns):
        return TableSchemas(topic, columns, AvroEncoder(key_schema(topic, columns), 2), AvroEncoder(value_schema(topic, columns), 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; the best is printed (the machine is shared)")
    args = parser.parse_args()
    decoder = PgOutputDecoder(2)
    relations: dict[int, Relation] = {}
    relation_bytes: dict[int, bytes] = {}
    templates: list[tuple] = []
    for message in json.loads((VECTORS / "domain_rows.json").read_text())["messages"]:
        raw = bytes.fromhex(message["data"])
        decoded = decoder.decode(raw)
        if isinstance(decoded, Relation):
            relations[decoded.relation_id] = decoded
            relation_bytes[decoded.relation_id] = raw
        elif isinstance(decoded, Insert) and relations[decoded.relation_id].name == "time_entries":
            templates.append(decoded.new)
    relation = next(r for r in relations.values() if r.name == "time_entries")
    inserts = _distinct_inserts(relation, templates, args.rows)

    columns = [ColumnSpec(c.name, c.type_oid, c.type_modifier, c.is_key) for c in relation.columns]
    convert = RowConverter(relation.columns)
    names = [c.name for c in columns]
    encode_value = compile_encoder(value_schema(TOPIC, columns), b"\0\0\0\0\1")
    encode_key = compile_encoder(key_schema(TOPIC, columns), b"\0\0\0\0\2")
    source = {"version": "0.1.0", "connector": "psmesh-postgresql", "name": "timeexp", "ts_ms": 1795640017570,
              "snapshot": "false", "db": "timeexp", "schema": "public", "table": "time_entries", "txId": 757,
              "lsn": 53294256, "sequence": None}
    producer_config = {"bootstrap.servers": "127.0.0.1:1", "linger.ms": 60000, "log_level": 0,
                       "queue.buffering.max.messages": args.rows + 10, "queue.buffering.max.kbytes": 2097151}
    producer = Producer(producer_config)

    def envelope(raw: bytes) -> tuple[bytes, bytes]:
        after = dict(zip(names, convert(decoder.decode(raw).new)))
        return encode_key({"entry_id": after["entry_id"]}), encode_value(
            {"before": None, "after": after, "source": source, "op": "c", "ts_ms": int(time.time() * 1000),
             "unchanged_toasted": []})

    def produce(raw: bytes) -> None:
        key, value = envelope(raw)
        producer.produce(TOPIC, value, key, on_delivery=lambda err, msg: None)

    capture = _capture(relation_bytes[relation.relation_id], producer_config)
    on_wal = capture._on_wal

    def fast(raw: bytes) -> None:
        on_wal(raw, 53294256, 53294300)

    stages = [
        ("decode", decoder.decode),
        ("+ conversion", lambda raw: convert(decoder.decode(raw).new)),
        ("+ envelope and Avro", envelope),
        ("+ produce (local queue)", produce),
        ("fast path incl. produce", fast),
    ]
    print(f"{len(inserts):,} distinct time_entries rows per stage; process CPU time, best of {args.repeat}")
    for label, stage in stages:
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            for raw in inserts:
                stage(raw)
            best = min(best, time.process_time() - started)
            producer.purge()
            producer.poll(0)
            capture.publisher._producer.purge()
            capture.publisher.poll(0)
        micros = best / len(inserts) * 1e6
        print(f"{label:26} {micros:6.1f} µs/row  ({1e6 / micros:,.0f} rows/s)")


def _capture(relation: bytes, producer_config: dict) -> CaptureSource:
    """A CaptureSource with no servers: schemas from a stub registrar, events into a local queue."""
    state_dir = Path(tempfile.mkdtemp(prefix="psmesh-bench-cpu-"))
    config = CaptureConfig(name="timeexp", dsn="", database="timeexp", tables=("public.time_entries",), slot="s",
                           publication="p", registry_url="http://unused", kafka={}, state_dir=state_dir)
    capture = CaptureSource(config, registrar=_Registrar(), publisher=ChangePublisher(producer_config))
    capture._on_wal(relation, 53294000, 53294000)
    capture._on_wal(b"B" + struct.pack("!QqI", 53294400, 849_000_000_000_000, 757), 53294100, 53294100)
    return capture


if __name__ == "__main__":
    main()
