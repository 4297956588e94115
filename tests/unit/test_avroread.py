"""The generated change-event decoders read what fastavro reads, or fail so that fastavro decides."""

from __future__ import annotations

import io
import json
import random
from decimal import Decimal
from pathlib import Path

import fastavro
import pytest

from processors.avroread import compile_reader
from processors.records import KINDS
from tests.unit.processors.test_output_encoding import _value

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
SOURCE_SCHEMAS = sorted({SCHEMAS / topic.split(".")[0] / f"{topic.split('.')[2]}-value.avsc"
                         for topic, _, _ in KINDS.values()})


def _resolve(schema):
    """The schema with named references expanded, for the random value generator."""
    named = {}

    def walk(t, space):
        if isinstance(t, str):
            return named.get(t) or named.get(f"{space}.{t}") or t
        if isinstance(t, list):
            return [walk(x, space) for x in t]
        if t.get("type") == "record":
            space = t.get("namespace", space)
            named[f"{space}.{t['name']}"] = t
            return {**t, "fields": [{**f, "type": walk(f["type"], space)} for f in t["fields"]]}
        if t.get("type") == "array":
            return {**t, "items": walk(t["items"], space)}
        return t

    return walk(schema, None)


def _encode(schema, record) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return buf.getvalue()


def _value_of(schema, rng):
    if isinstance(schema, dict) and schema.get("type") == "enum":
        return rng.choice(schema["symbols"])
    if isinstance(schema, dict) and schema.get("type") == "record":
        return {f["name"]: _value_of(f["type"], rng) for f in schema["fields"]}
    if isinstance(schema, list):
        other = [b for b in schema if b != "null"][0]
        return None if rng.random() < 0.3 else _value_of(other, rng)
    if isinstance(schema, dict) and schema.get("type") == "array":
        return [_value_of(schema["items"], rng) for _ in range(rng.choice([0, 1, 4]))]
    return _value(schema, rng)


@pytest.mark.parametrize("path", SOURCE_SCHEMAS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_source_schema_gets_a_reader_that_matches_fastavro_on_random_records(path):
    schema = json.loads(path.read_text())
    read = compile_reader(schema)
    assert read is not None, f"{path} uses a type the generated reader lacks: routing would be slow"
    parsed = fastavro.parse_schema(json.loads(path.read_text()))
    resolved = _resolve(json.loads(path.read_text()))
    rng = random.Random(path.name)
    records = [_encode(schema, _value_of(resolved, rng)) for _ in range(300)]
    for data in records + records:  # the second pass finds the decimals it has read before
        assert read(data) == fastavro.schemaless_reader(io.BytesIO(data), parsed, None)


def test_truncated_or_foreign_bytes_fail_rather_than_give_a_record():
    path = SCHEMAS / "timeexp" / "time_entries-value.avsc"
    schema = json.loads(path.read_text())
    read = compile_reader(schema)
    rng = random.Random(5)
    data = _encode(schema, _value_of(_resolve(json.loads(path.read_text())), rng))
    for cut in range(len(data)):
        with pytest.raises(Exception):
            read(data[:cut])
    with pytest.raises(Exception):
        read(b"\x07" + data[1:])  # union branch 3 (zig-zag -4) of a two-branch union
    # A union's index is read as its byte: only 0 and 2 (zig-zag 0 and 1) name a branch of ["null", X], whether
    # the field is read or skipped over (the router's projection); any other byte, a longer varint included, fails.
    projected = compile_reader(schema, {"Envelope": {"after"}})
    for first in range(256):
        if first not in (0, 2):
            with pytest.raises(Exception):
                read(bytes([first]) + data[1:])
            with pytest.raises(Exception):
                projected(bytes([first]) + data[1:])


def test_schemas_with_types_it_does_not_read_get_no_reader():
    assert compile_reader({"type": "record", "name": "F", "fields": [{"name": "x", "type": "double"}]}) is None
    assert compile_reader({"type": "record", "name": "U", "fields": [
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}}]}) is None
    assert compile_reader({"type": "record", "name": "M", "fields": [
        {"name": "m", "type": {"type": "map", "values": "long"}}]}) is None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_routers_projection_reads_its_columns_as_fastavro_does_and_skips_the_rest(kind):
    from processors.app import ROUTE_PROJECTIONS

    topic, _, columns = KINDS[kind]
    path = SCHEMAS / topic.split(".")[0] / f"{topic.split('.')[2]}-value.avsc"
    schema = json.loads(path.read_text())
    read = compile_reader(schema, ROUTE_PROJECTIONS[kind])
    text = compile_reader(schema, ROUTE_PROJECTIONS[kind], decimal_text=True)
    assert read is not None and text is not None
    parsed = fastavro.parse_schema(json.loads(path.read_text()))
    resolved = _resolve(json.loads(path.read_text()))
    rng = random.Random(kind)
    for _ in range(200):
        data = _encode(schema, _value_of(resolved, rng))
        full = fastavro.schemaless_reader(io.BytesIO(data), parsed, None)
        got = read(data)
        assert set(got) == {"before", "after", "source", "op"}
        assert got["op"] == full["op"]
        assert got["source"] == {"ts_ms": full["source"]["ts_ms"], "snapshot": full["source"]["snapshot"]}
        for image in ("before", "after"):
            expected = None if full[image] is None else {c: full[image][c] for c in columns}
            assert got[image] == expected
        # as the router reads them: each decimal as the text str() gives its Decimal, the rest the same
        as_text = text(data)
        for image in ("before", "after"):
            expected = None if full[image] is None else {
                c: str(full[image][c]) if isinstance(full[image][c], Decimal) else full[image][c] for c in columns}
            assert as_text[image] == expected
