"""Micro-benchmark: the capture's per-row CPU work with no I/O, stage by stage.

Runs the Insert messages of ``time_entries`` captured from PostgreSQL 15
(tests/unit/streams/vectors/v2/domain_rows.json) through what the capture
does per row — decode, text → Python conversion, envelope dict and Avro
encoding of key and value, and ``Producer.produce`` into librdkafka's local
queue (no broker) — and prints µs per row after each stage. The gap between
this and ``bench/cdc_throughput.py``'s CPU per row is the loop around it
(replication reads, acknowledgements, metrics, librdkafka's own threads).

    .venv/bin/python bench/cdc_pipeline_cpu.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confluent_kafka import Producer  # noqa: E402

from streams.avrocodegen import compile_encoder  # noqa: E402
from streams.envelope import ColumnSpec, key_schema, value_schema  # noqa: E402
from streams.pgoutput import Insert, PgOutputDecoder, Relation  # noqa: E402
from streams.pgtypes import RowConverter  # noqa: E402

VECTORS = ROOT / "tests" / "unit" / "streams" / "vectors" / "v2" / "domain_rows.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    decoder = PgOutputDecoder(2)
    relations: dict[int, Relation] = {}
    inserts: list[bytes] = []
    for message in json.loads(VECTORS.read_text())["messages"]:
        raw = bytes.fromhex(message["data"])
        decoded = decoder.decode(raw)
        if isinstance(decoded, Relation):
            relations[decoded.relation_id] = decoded
        elif isinstance(decoded, Insert) and relations[decoded.relation_id].name == "time_entries":
            inserts.append(raw)
    relation = next(r for r in relations.values() if r.name == "time_entries")
    columns = [ColumnSpec(c.name, c.type_oid, c.type_modifier, c.is_key) for c in relation.columns]
    convert = RowConverter(relation.columns)
    names = [c.name for c in columns]
    topic = "bench.public.time_entries"
    encode_value = compile_encoder(value_schema(topic, columns), b"\0\0\0\0\1")
    encode_key = compile_encoder(key_schema(topic, columns), b"\0\0\0\0\2")
    source = {"version": "0.1.0", "connector": "psmesh-postgresql", "name": "timeexp", "ts_ms": 1795640017570,
              "snapshot": "false", "db": "timeexp", "schema": "public", "table": "time_entries", "txId": 757,
              "lsn": 53294256, "sequence": None}
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "linger.ms": 60000, "log_level": 0,
                         "queue.buffering.max.messages": args.rows + 10})
    repeat = max(1, args.rows // len(inserts))

    def envelope(raw: bytes) -> tuple[bytes, bytes]:
        after = dict(zip(names, convert(decoder.decode(raw).new)))
        return encode_key({"entry_id": after["entry_id"]}), encode_value(
            {"before": None, "after": after, "source": source, "op": "c", "ts_ms": 1795640017646, "unchanged_toasted": []})

    def produce(raw: bytes) -> None:
        key, value = envelope(raw)
        producer.produce(topic, value, key)

    stages = [
        ("decode", decoder.decode),
        ("+ conversion", lambda raw: convert(decoder.decode(raw).new)),
        ("+ envelope and Avro", envelope),
        ("+ produce (local queue)", produce),
    ]
    print(f"{len(inserts) * repeat:,} time_entries rows per stage")
    for label, stage in stages:
        started = time.perf_counter()
        for _ in range(repeat):
            for raw in inserts:
                stage(raw)
        micros = (time.perf_counter() - started) / (len(inserts) * repeat) * 1e6
        print(f"{label:26} {micros:6.1f} µs/row  ({1e6 / micros:,.0f} rows/s)")
    producer.purge()


if __name__ == "__main__":
    main()
