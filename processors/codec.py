"""Avro in and out of the processors, in Confluent wire format.

Change events are read with the writer schema named by their 4-byte schema id
(fetched once per id from the registry), so a source table that gained a
column keeps flowing. They are read by a decoder generated for that schema
(processors/avroread.py), with fastavro for anything it does not take. View and derived events are written with the schemas
kept in ``schemas/`` (the repository's contracts), registered under
``<topic>-key`` / ``<topic>-value`` before the first record is produced, and
written by the encoder the capture also compiles per schema
(streams/avrocodegen.py), with fastavro for anything that encoder does not
take.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from processors.avroread import compile_reader
from confluent_kafka.schema_registry.error import SchemaRegistryError

from processors.exceptions import RegistryUnavailable, UndecodableEvent
from streams.avrocodegen import UnsupportedSchema, compile_encoder

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
_MAGIC = 0
_HEADER = struct.Struct(">bI")


class ChangeEventDecoder:
    """Decodes Confluent-framed Avro with the writer schema its id names."""

    def __init__(self, registry: SchemaRegistryClient, projections: dict[str, dict[str, Any]] | None = None,
                 decimal_text: bool = False) -> None:
        self._registry = registry
        #: a projection's decimals as text (``str(Decimal)``) rather than ``Decimal``, where the generated reader
        #: reads the record (fastavro's fallback still gives ``Decimal``)
        self._decimal_text = decimal_text
        self._schemas: dict[int, Any] = {}
        self._raw: dict[int, Any] = {}
        self._fast: dict[tuple[int, str | None], Any] = {}
        #: name → {record name → fields to read}: what a caller that needs only some fields asks for
        self._projections = projections or {}

    def known(self, data: bytes) -> bool:
        """Whether ``data`` is framed as a record this decoder has read before: Confluent's magic byte and a schema
        id already fetched. Says nothing of the bytes after the header."""
        return len(data) >= _HEADER.size and data[0] == _MAGIC and _HEADER.unpack_from(data)[1] in self._schemas

    def decode(self, data: bytes | None, projection: str | None = None) -> dict[str, Any] | None:
        """The record, or None for a tombstone; :class:`UndecodableEvent` for anything else.

        With a ``projection`` (a name given at construction), the records it names may hold only the fields it
        lists (they hold more when the record is read by fastavro).
        """
        if data is None:
            return None
        if len(data) < _HEADER.size:
            raise UndecodableEvent(f"{len(data)} bytes is shorter than the Confluent header")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise UndecodableEvent(f"magic byte {magic} is not Confluent's 0")
        schema = self._schemas.get(schema_id)
        if schema is None:
            try:
                registered = self._registry.get_schema(schema_id)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:  # the event names a schema the registry does not have: bad input
                    raise UndecodableEvent(f"schema id {schema_id} not found in the registry: {exc}") from exc
                raise RegistryUnavailable(f"reading schema id {schema_id} from the registry: {exc}") from exc
            except Exception as exc:  # transport errors: the registry is down or unreachable
                raise RegistryUnavailable(f"reading schema id {schema_id} from the registry: {exc}") from exc
            raw = json.loads(registered.schema_str)
            schema = fastavro.parse_schema(raw)
            self._schemas[schema_id] = schema
            self._raw[schema_id] = raw
        fast = self._fast.get((schema_id, projection), False)
        if fast is False:
            fast = self._fast[(schema_id, projection)] = compile_reader(
                self._raw[schema_id], self._projections.get(projection) if projection else None,
                decimal_text=self._decimal_text and projection is not None)
        if fast is not None:
            try:
                return fast(data[_HEADER.size:])
            except Exception:  # truncated or foreign bytes, or a value it does not read: fastavro decides
                pass
        try:
            return fastavro.schemaless_reader(io.BytesIO(memoryview(data)[_HEADER.size:]), schema, None)
        except Exception as exc:  # fastavro raises many types on truncated or foreign bytes
            raise UndecodableEvent(f"bytes do not match schema id {schema_id}: {exc}") from exc


class TopicEncoder:
    """Encodes keys and values of one output topic with its repository schemas."""

    def __init__(self, registry: SchemaRegistryClient, topic: str) -> None:
        domain, name = topic.split(".", 1)
        self.topic = topic
        self._key_schema, self._key_id = _register(registry, f"{topic}-key", SCHEMAS_DIR / domain / f"{name}-key.avsc")
        self._value_schema, self._value_id = _register(
            registry, f"{topic}-value", SCHEMAS_DIR / domain / f"{name}-value.avsc"
        )

    def key(self, record: dict[str, Any]) -> bytes:
        return _frame(self._key_schema, self._key_id, record)

    def value(self, record: dict[str, Any]) -> bytes:
        return _frame(self._value_schema, self._value_id, record)


class _Schema:
    """A repository schema: fastavro's parsed form, and the generated writer when there is one."""

    def __init__(self, text: str) -> None:
        raw = json.loads(text)
        self.parsed = fastavro.parse_schema(raw)
        try:
            self.fast = compile_encoder(raw)
        except UnsupportedSchema:
            self.fast = None


def _register(registry: SchemaRegistryClient, subject: str, path: Path) -> tuple[_Schema, int]:
    """Register an output topic's schema; :class:`RegistryUnavailable` when that fails, whatever the registry
    said: the rows being published are not at fault (a refused schema is a deployment's error, and the worker
    stops on it after its retries rather than dead-letter every row of the topic)."""
    text = path.read_text()
    try:
        schema_id = registry.register_schema(subject, Schema(text, "AVRO"))
    except Exception as exc:
        raise RegistryUnavailable(f"registering {path.name} under subject {subject}: {exc}") from exc
    return _Schema(text), schema_id


def _frame(schema: _Schema, schema_id: int, record: dict[str, Any]) -> bytes:
    if schema.fast is not None:
        try:
            return _HEADER.pack(_MAGIC, schema_id) + schema.fast(record)
        except Exception:  # anything the generated writer does not take as fastavro would: fastavro decides
            pass
    buf = io.BytesIO()
    buf.write(_HEADER.pack(_MAGIC, schema_id))
    fastavro.schemaless_writer(buf, schema.parsed, record)
    return buf.getvalue()
