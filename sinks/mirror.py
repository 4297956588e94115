"""Mirror tables: source tables the reporting store needs but the views do not carry.

Some executive measures (DSO, invoice cycle time, closed-won to project
ready, timesheet timeliness) are computed from source rows: invoices,
billing periods, projects, billing events, time entries. The reporting sink
consumes their change topics and keeps one mirror table each in the schema
``source`` of the reporting database, with the source's table name, columns
and primary key.

Each mirror table is built from the change topic's contract
(schemas/<source>/<table>-{key,value}.avsc), so it has exactly the columns
the capture publishes: decimal(p,s) → numeric(p,s), date → date,
timestamp-micros → timestamptz, long → bigint, int → integer, boolean,
string → text.

Change events (Debezium envelope) become writes: ``c``/``u``/``r`` upsert the
``after`` image (columns listed in ``unchanged_toasted`` are left as they
are: PostgreSQL did not send them), ``d`` deletes by the ``before`` image's
key, a tombstone deletes by the message key, ``t`` empties the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Integer, MetaData, Numeric, Table, Text

from sinks.base import Action, Write
from sinks.exceptions import RecordRejected
from sinks.records import Contract, SinkRecord, load_contract

MIRROR_SCHEMA = "source"

#: (source database, table) pairs mirrored, for the measures of :mod:`sinks.measures`.
MIRRORED = (
    ("erp", "invoices"),
    ("erp", "billing_periods"),
    ("erp", "projects"),
    ("erp", "billing_events"),
    ("timeexp", "time_entries"),
)


def _column_type(avro: Any):
    if isinstance(avro, list):
        (avro,) = [t for t in avro if t != "null"]
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        if logical == "decimal":
            return Numeric(avro["precision"], avro.get("scale", 0), asdecimal=True)
        if logical == "date":
            return Date
        if logical in ("timestamp-micros", "timestamp-millis"):
            return DateTime(timezone=True)
        avro = avro["type"]
    return {"long": BigInteger, "int": Integer, "boolean": Boolean, "string": Text}.get(avro, Text)


def mirror_table(metadata: MetaData, database: str, table: str) -> Table:
    """The mirror of ``database.table`` from its change topic's contract."""
    key_fields = [f["name"] for f in load_contract(f"{database}/{table}-key.avsc")["fields"]]
    envelope = load_contract(f"{database}/{table}-value.avsc")
    before = next(f for f in envelope["fields"] if f["name"] == "before")
    row = next(t for t in before["type"] if isinstance(t, dict))
    columns = [
        Column(f["name"], _column_type(f["type"]), primary_key=f["name"] in key_fields, nullable=f["name"] not in key_fields)
        for f in row["fields"]
    ]
    return Table(table, metadata, *columns, schema=MIRROR_SCHEMA)


@dataclass(frozen=True)
class Mirror:
    """One mirrored table: its change topic and table."""

    topic: str
    table: Table

    @property
    def name(self) -> str:
        return f"{MIRROR_SCHEMA}.{self.table.name}"

    def contract(self, database: str) -> Contract:
        return Contract.from_files(f"{database}/{self.table.name}-key.avsc", f"{database}/{self.table.name}-value.avsc")

    def writes(self, record: SinkRecord) -> list[Write]:
        key_columns = [c.name for c in self.table.primary_key.columns]
        if record.value is None:
            if record.key is None:
                return []
            return [Write(record, self.name, Action.DELETE, _key(record.key, key_columns, "tombstone key"))]
        op = record.value.get("op")
        if op == "t":
            return [Write(record, self.name, Action.TRUNCATE)]
        if op == "d":
            image = record.value.get("before") or record.key
            if image is None:
                raise RecordRejected("delete event without before image or key")
            return [Write(record, self.name, Action.DELETE, _key(image, key_columns, "delete"))]
        if op in ("c", "u", "r"):
            after = record.value.get("after")
            if after is None:
                raise RecordRejected(f"change event op {op!r} without an after image")
            # a TOASTed value left unchanged, or a column the source no longer sends (dropped or renamed since the
            # contract): neither is in the event, so the mirror keeps what it has rather than write a null
            unchanged = set(record.value.get("unchanged_toasted") or ()) | record.absent
            row = {c.name: after.get(c.name) for c in self.table.columns if c.name not in unchanged}
            return [Write(record, self.name, Action.UPSERT, _key(after, key_columns, "after image"), row)]
        raise RecordRejected(f"change event with unknown op {op!r}")


def _key(image: dict[str, Any], columns: list[str], what: str) -> tuple[Any, ...]:
    key = tuple(image.get(c) for c in columns)
    if any(v is None for v in key):
        raise RecordRejected(f"{what} lacks primary key column(s) {', '.join(c for c, v in zip(columns, key) if v is None)}")
    return key
