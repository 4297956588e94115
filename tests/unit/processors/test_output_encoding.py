"""The processors' output records: the capture's generated encoders (streams/avrocodegen.py) framed as fastavro
would frame them, byte for byte, and fastavro deciding whatever those encoders refuse (processors/codec.py)."""

from __future__ import annotations

import io
import json
import random
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from processors.codec import _HEADER, _MAGIC, _frame, _Schema

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
OUTPUT_SCHEMAS = sorted([*SCHEMAS.glob("views/*.avsc"), *SCHEMAS.glob("derived/*.avsc"), *SCHEMAS.glob("dlq/*.avsc")])
assert len(OUTPUT_SCHEMAS) >= 10, SCHEMAS  # the views, derived and dead-letter contracts: not an empty parameter set


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


def _expected(schema: dict, record: dict, schema_id: int = 7) -> bytes:
    return _HEADER.pack(_MAGIC, schema_id) + _fastavro(schema, record)


@pytest.mark.parametrize("path", OUTPUT_SCHEMAS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_output_schema_gets_a_generated_encoder_that_frames_what_fastavro_writes(path):
    schema = json.loads(path.read_text())
    compiled = _Schema(path.read_text())
    assert compiled.fast is not None, f"{path} uses a type the generated encoder lacks: outputs would be slow"
    rng = random.Random(path.name)
    for _ in range(300):
        record = _value(schema, rng)
        assert _frame(compiled, 7, record) == _expected(schema, record), record


def test_what_the_generated_encoder_refuses_is_written_or_refused_by_fastavro():
    schema = {"type": "record", "name": "R", "fields": [
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "n", "type": "long"},
        {"name": "maybe", "type": ["null", "string"], "default": None},
    ]}
    compiled = _Schema(json.dumps(schema))
    good = {"amount": Decimal("12.50"), "at": datetime(2026, 3, 2, 9, tzinfo=timezone.utc), "n": 3, "maybe": "x"}
    assert _frame(compiled, 7, good) == _expected(schema, good)
    for record in [
        {**good, "amount": Decimal("1.005")},  # more places than the scale
        {**good, "amount": Decimal("12345.00")},  # more digits than the precision
        {**good, "amount": Decimal("NaN")},
        {**good, "n": 1.5},
        {**good, "n": 2**63},
        {k: v for k, v in good.items() if k != "maybe"},  # a missing field with a default
    ]:
        try:
            expected = _expected(schema, record)
        except Exception as exc:  # fastavro refuses: so must the processors, with fastavro's error
            with pytest.raises(type(exc)):
                _frame(compiled, 7, record)
        else:
            assert _frame(compiled, 7, record) == expected, record
