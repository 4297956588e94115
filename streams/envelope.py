"""Avro schemas and Debezium-compatible envelopes for change events.

A change event on topic ``<source>.<schema>.<table>`` has

* a **key**: record ``<topic>.Key`` of the primary-key (replica identity)
  columns, never null;
* a **value**: record ``<topic>.Envelope`` with ``before`` and ``after``
  (both ``<topic>.Value`` or null), ``op`` (c, u, d, r, t), ``ts_ms``, the
  ``source`` block (``db``, ``schema``, ``table``, ``lsn``, ``txId``,
  ``ts_ms``, ``snapshot`` ...) as Debezium's PostgreSQL connector writes it,
  and ``unchanged_toasted``: the columns whose new value PostgreSQL did not
  send because it was TOASTed and unchanged. Those columns are null in
  ``after`` and named there, never faked.

Every ``Value`` field is nullable with a null default: pgoutput's Relation
message carries no NOT NULL information, and an optional field keeps the
usual DDL changes (add column, drop column) BACKWARD compatible.

Type mapping (DESIGN.md "Change events"): numeric(p,s) → bytes/decimal(p,s),
date → int/date, timestamptz → long/timestamp-micros, timestamp →
long/local-timestamp-micros, time → long/time-micros, text[] and other
arrays → array, json/jsonb → string, bytea → bytes, boolean, int2/int4 →
int, int8 → long, everything else (uuid, enums, intervals ...) → string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

# Type oids and typmod decoding are the value converter's, so schema and values agree.
from streams.pgtypes import (
    BOOL, BYTEA, DATE, FLOAT4, FLOAT8, INT2, INT4, INT8, JSON, JSONB, NUMERIC, TIME, TIMESTAMP, TIMESTAMPTZ,
    array_element, numeric_precision_scale,
)

CONNECTOR = "psmesh-postgresql"
SOURCE_NAMESPACE = "io.psmesh.connector.postgresql"

@dataclass(frozen=True)
class ColumnSpec:
    """What the schema needs of a column: from a Relation message or the catalog."""

    name: str
    type_oid: int
    typmod: int = -1
    key: bool = False


def avro_type(type_oid: int, typmod: int = -1) -> Any:
    """The Avro type of one PostgreSQL column type (not nullable)."""
    element = array_element(type_oid)
    if element is not None:
        return {"type": "array", "items": ["null", avro_type(element)]}
    if type_oid == BOOL:
        return "boolean"
    if type_oid in (INT2, INT4):
        return "int"
    if type_oid == INT8:
        return "long"
    if type_oid == FLOAT4:
        return "float"
    if type_oid == FLOAT8:
        return "double"
    if type_oid == NUMERIC:
        ps = numeric_precision_scale(typmod)
        if ps is None or not 0 <= ps[1] <= ps[0]:
            # Unconstrained numeric (or a PostgreSQL 15 negative / oversized scale) has no
            # Avro decimal form: carried exactly as its text.
            return {"type": "string", "connect.name": "psmesh.VariableScaleDecimal"}
        precision, scale = ps
        return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    if type_oid == DATE:
        return {"type": "int", "logicalType": "date"}
    if type_oid == TIMESTAMPTZ:
        return {"type": "long", "logicalType": "timestamp-micros"}
    if type_oid == TIMESTAMP:
        return {"type": "long", "logicalType": "local-timestamp-micros"}
    if type_oid in (JSON, JSONB):
        return {"type": "string", "connect.name": "io.debezium.data.Json"}
    if type_oid == BYTEA:
        return "bytes"
    if type_oid == TIME:
        return {"type": "long", "logicalType": "time-micros"}
    return "string"


def source_schema() -> dict:
    return {
        "type": "record",
        "name": "Source",
        "namespace": SOURCE_NAMESPACE,
        "fields": [
            {"name": "version", "type": "string"},
            {"name": "connector", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "ts_ms", "type": "long"},
            {"name": "snapshot", "type": {"type": "enum", "name": "SnapshotRecord", "symbols": ["true", "last", "false", "incremental"]}, "default": "false"},
            {"name": "db", "type": "string"},
            {"name": "schema", "type": "string"},
            {"name": "table", "type": "string"},
            {"name": "txId", "type": ["null", "long"], "default": None},
            {"name": "lsn", "type": ["null", "long"], "default": None},
            {"name": "sequence", "type": ["null", "string"], "default": None},
        ],
    }


def key_schema(topic: str, columns: Sequence[ColumnSpec]) -> dict:
    keys = [c for c in columns if c.key]
    if not keys:
        raise ValueError(f"{topic}: no key column (the table needs a primary key or a replica identity index)")
    return {
        "type": "record",
        "name": "Key",
        "namespace": topic,
        "fields": [{"name": c.name, "type": avro_type(c.type_oid, c.typmod)} for c in keys],
    }


def value_schema(topic: str, columns: Sequence[ColumnSpec]) -> dict:
    value = {
        "type": "record",
        "name": "Value",
        "namespace": topic,
        "fields": [{"name": c.name, "type": ["null", avro_type(c.type_oid, c.typmod)], "default": None} for c in columns],
    }
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": topic,
        "connect.name": f"{topic}.Envelope",
        "fields": [
            {"name": "before", "type": ["null", value], "default": None},
            {"name": "after", "type": ["null", "Value"], "default": None},
            {"name": "source", "type": source_schema()},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", "type": ["null", "long"], "default": None},
            {"name": "unchanged_toasted", "type": {"type": "array", "items": "string"}, "default": []},
        ],
    }
