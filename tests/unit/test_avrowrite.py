"""The generated output encoders write what fastavro writes, byte for byte, or refuse so that fastavro decides."""

from __future__ import annotations

import io
import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from processors.avrowrite import compile_writer

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
OUTPUT_SCHEMAS = sorted([*SCHEMAS.glob("views/*.avsc"), *SCHEMAS.glob("derived/*.avsc"), *SCHEMAS.glob("dlq/*.avsc")])


def _fastavro(schema: dict, record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def _value(schema, rng: random.Random):
    """A random value of ``schema``, with the edges: zero, negatives, long strings, big and tiny numbers."""
    if isinstance(schema, list):
        other = [b for b in schema if b != "null"][0]
        return None if rng.random() < 0.3 else _value(other, rng)
    if isinstance(schema, str):
        return {
            "null": lambda: None, "boolean": lambda: rng.random() < 0.5,
            "int": lambda: rng.choice([0, 1, -1, 63, 64, -65, 2**31 - 1, -(2**31), rng.randint(-10**6, 10**6)]),
            "long": lambda: rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randint(-10**15, 10**15)]),
            "string": lambda: rng.choice(["", "PRJ-7", "é" * rng.randint(0, 200), "x" * 300]),
            "bytes": lambda: bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))),
        }[schema]()
    logical = schema.get("logicalType")
    if schema["type"] == "record":
        return {f["name"]: _value(f["type"], rng) for f in schema["fields"]}
    if schema["type"] == "array":
        return [_value(schema["items"], rng) for _ in range(rng.choice([0, 1, 3]))]
    if logical == "decimal":
        scale, precision = schema.get("scale", 0), schema["precision"]
        digits = rng.randint(1, precision)
        unscaled = rng.choice([0, rng.randint(-(10**digits) + 1, 10**digits - 1)])
        return Decimal(unscaled).scaleb(-scale) if rng.random() < 0.8 else Decimal(unscaled)
    if logical == "date":
        return date(1970, 1, 1) + timedelta(days=rng.randint(-40000, 40000))
    if logical in ("timestamp-micros", "timestamp-millis"):
        zone = rng.choice([timezone.utc, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])
        return datetime(1970, 1, 1, tzinfo=timezone.utc).astimezone(zone) + timedelta(
            microseconds=rng.randint(-10**16, 10**16))
    return _value(schema["type"], rng)


@pytest.mark.parametrize("path", OUTPUT_SCHEMAS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_output_schema_gets_a_writer_that_matches_fastavro_on_random_records(path):
    schema = json.loads(path.read_text())
    write = compile_writer(schema)
    assert write is not None, f"{path} uses a type the generated writer lacks: outputs would be slow"
    rng = random.Random(path.name)
    for _ in range(300):
        record = _value(schema, rng)
        assert write(record) == _fastavro(schema, record), record


def test_what_fastavro_would_treat_differently_is_refused_not_guessed():
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "n", "type": "long"},
        {"name": "maybe", "type": ["null", "string"], "default": None},
    ]}
    write = compile_writer(schema)
    good = {"amount": Decimal("12.50"), "at": datetime(2026, 3, 2, 9, tzinfo=timezone.utc), "n": 3, "maybe": "x"}
    assert write(good) == _fastavro(schema, good)
    refused = [
        {**good, "amount": Decimal("1.005")},  # more places than the scale: fastavro refuses too
        {**good, "amount": Decimal("12345.00")},  # more digits than the precision
        {**good, "amount": Decimal("NaN")},
        {**good, "amount": 12},  # fastavro would write an int as it is
        {**good, "at": datetime(2026, 3, 2, 9)},  # naive: fastavro reads it as local time
        {**good, "n": 1.5},
        {**good, "n": 2**63},
        {k: v for k, v in good.items() if k != "maybe"},  # a missing field: fastavro applies the default
    ]
    for record in refused:
        with pytest.raises(Exception):
            write(record)


def test_a_schema_with_types_it_does_not_write_gets_no_writer():
    assert compile_writer({"type": "record", "name": "E", "fields": [
        {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["a", "b"]}}]}) is None
    assert compile_writer({"type": "record", "name": "U", "fields": [
        {"name": "either", "type": ["string", "long"]}]}) is None
