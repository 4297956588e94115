"""Kafka messages as records a sink can write: Confluent wire format decoded against the contracts.

A message is decoded with the schema it was written with (looked up in the
registry by the id in its 5-byte header) and resolved to the reader schema
of the repository's contract (``schemas/``), as Avro schema resolution
specifies: a producer that added an optional field does not break the sink,
and the sink always sees the fields it was written for.

Decoding is pure apart from the registry lookup, which is cached per id: a
message that cannot be decoded raises :class:`RecordRejected` (its bytes go
to the dead-letter topic); a registry that cannot be reached raises
:class:`TargetUnavailable` (the batch is retried).
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from sinks.exceptions import RecordRejected, TargetUnavailable

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
_HEADER = struct.Struct(">bI")


def load_contract(relative: str) -> dict:
    """A schema file of ``schemas/`` (e.g. ``views/bookings-value.avsc``) as a dict."""
    return json.loads((SCHEMAS_DIR / relative).read_text())


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One consumed message: where it came from, its original bytes, and its decoded key and value.

    ``value`` is None for a tombstone. The original bytes travel with the
    record so that a dead letter carries exactly what was consumed.
    """

    topic: str
    partition: int
    offset: int
    key_bytes: bytes | None
    value_bytes: bytes | None
    key: dict[str, Any] | None
    value: dict[str, Any] | None
    #: Columns of the contract's row image (``after``) that the writer's schema does not have: a column dropped or
    #: renamed in the source since the contract was written. Their value in ``value`` is the reader's default
    #: (null), not the source's, so a mirror must leave them as they are rather than write that null.
    absent: frozenset[str] = frozenset()

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


@dataclass(frozen=True, slots=True)
class Contract:
    """The reader schemas of one input topic (key and value), parsed once."""

    key: Any
    value: Any

    @classmethod
    def from_files(cls, key_file: str, value_file: str) -> Contract:
        return cls(fastavro.parse_schema(load_contract(key_file)), fastavro.parse_schema(load_contract(value_file)))


class RecordDecoder:
    """Decodes Confluent-framed Avro keys and values of the sink's input topics.

    ``contracts`` maps each input topic to its reader schemas. Writer schemas
    come from the registry by id and are cached for the life of the decoder
    (a schema id never changes meaning).
    """

    def __init__(self, registry: SchemaRegistryClient, contracts: dict[str, Contract]) -> None:
        self._registry = registry
        self._contracts = contracts
        self._writers: dict[int, Any] = {}
        self._absent: dict[tuple[str, int], frozenset[str]] = {}

    def decode(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> SinkRecord:
        contract = self._contracts.get(topic)
        if contract is None:
            raise RecordRejected(f"no contract for topic {topic}")
        decoded_key = None if key is None else self._read(key, contract.key, "key")
        decoded_value = None if value is None else self._read(value, contract.value, "value")
        absent = frozenset() if value is None else self._absent_columns(topic, value, contract.value)
        return SinkRecord(topic, partition, offset, key, value, decoded_key, decoded_value, absent)

    def _absent_columns(self, topic: str, value: bytes, reader: Any) -> frozenset[str]:
        """The contract's ``after`` fields the writer schema of ``value`` lacks (none for a schema without one)."""
        schema_id = _HEADER.unpack_from(value)[1]
        found = self._absent.get((topic, schema_id))
        if found is None:
            wanted, written = _row_fields(reader), _row_fields(self._writers[schema_id])
            found = self._absent[(topic, schema_id)] = (
                frozenset() if wanted is None or written is None else frozenset(wanted - written))
        return found

    def _read(self, data: bytes, reader: Any, field: str) -> dict[str, Any]:
        if len(data) < _HEADER.size:
            raise RecordRejected(f"{field}: {len(data)} bytes, shorter than the 5-byte Confluent header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != 0:
            raise RecordRejected(f"{field}: magic byte {magic}, not 0: not Confluent wire format")
        writer = self._writer(schema_id, field)
        buf = io.BytesIO(data)
        buf.seek(_HEADER.size)
        try:
            record = fastavro.schemaless_reader(buf, writer, reader)
        except Exception as exc:  # fastavro raises many types (EOFError, ValueError, SchemaResolutionError, ...)
            raise RecordRejected(f"{field}: cannot decode with writer schema id {schema_id}: {type(exc).__name__}") from exc
        if buf.tell() != len(data):
            raise RecordRejected(f"{field}: {len(data) - buf.tell()} trailing bytes after the record (schema id {schema_id})")
        if not isinstance(record, dict):
            raise RecordRejected(f"{field}: schema id {schema_id} does not decode to a record")
        return record

    def _writer(self, schema_id: int, field: str) -> Any:
        parsed = self._writers.get(schema_id)
        if parsed is not None:
            return parsed
        try:
            schema = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code is not None and 400 <= exc.http_status_code < 500:
                raise RecordRejected(f"{field}: schema id {schema_id} unknown to the registry ({exc.http_status_code})") from exc
            raise TargetUnavailable(f"schema registry failed looking up id {schema_id}: {exc.http_status_code}") from exc
        except Exception as exc:  # the client raises its HTTP library's errors for connection failures
            raise TargetUnavailable(f"schema registry unreachable looking up id {schema_id}: {type(exc).__name__}") from exc
        try:
            parsed = fastavro.parse_schema(json.loads(schema.schema_str))
        except Exception as exc:
            raise RecordRejected(f"{field}: schema id {schema_id} is not an Avro schema: {type(exc).__name__}") from exc
        self._writers[schema_id] = parsed
        return parsed


def _row_fields(schema: Any) -> set[str] | None:
    """The field names of a change event's row image (its ``after`` record), None when ``schema`` has none."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    named = schema.get("__named_schemas", {})
    for field in schema.get("fields", ()):
        if field.get("name") != "after":
            continue
        branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
        for branch in branches:
            record = named.get(branch) if isinstance(branch, str) else branch
            if isinstance(record, dict) and record.get("type") == "record":
                return {f["name"] for f in record.get("fields", ())}
    return None
