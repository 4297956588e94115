"""Registering a table's change-event schemas before anything is published with them.

Subjects are ``<topic>-key`` and ``<topic>-value`` (TopicNameStrategy), so any
Confluent-compatible consumer finds them. A new Relation message (DDL on the
source) registers a new version under the subject's compatibility rule; a
refusal raises :class:`SchemaRefused` naming table, column(s) and rule.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.envelope import ColumnSpec, key_schema, value_schema
from streams.exceptions import RegistryUnavailable, SchemaRefused, StreamsError
from streams.publisher import AvroEncoder

logger = logging.getLogger(__name__)


class TableSchemas:
    """The encoders of one table shape: key and value, with their registry ids."""

    __slots__ = ("topic", "columns", "key", "value", "key_names")

    def __init__(self, topic: str, columns: Sequence[ColumnSpec], key: AvroEncoder, value: AvroEncoder) -> None:
        self.topic = topic
        self.columns = tuple(columns)
        self.key = key
        self.value = value
        self.key_names = tuple(c.name for c in columns if c.key)


#: The contract of a capture's dead-letter topic (topology.yaml ``sources[].dead_letter``).
LETTER_SCHEMAS = Path(__file__).resolve().parent.parent / "schemas" / "dlq"


class SchemaRegistrar:
    """Registers (and caches) schemas per table shape."""

    def __init__(self, registry_url: str) -> None:
        self.client = SchemaRegistryClient({"url": registry_url})
        self._cache: dict[tuple[str, tuple[ColumnSpec, ...]], TableSchemas] = {}
        self._current: dict[str, tuple[ColumnSpec, ...]] = {}

    def schemas_for(self, topic: str, table: str, columns: Sequence[ColumnSpec]) -> TableSchemas:
        shape = (topic, tuple(columns))
        cached = self._cache.get(shape)
        if cached is not None:
            return cached
        key = key_schema(topic, columns)
        value = value_schema(topic, columns)
        key_id = self._register(f"{topic}-key", key, table, columns)
        value_id = self._register(f"{topic}-value", value, table, columns)
        schemas = TableSchemas(topic, columns, AvroEncoder(key, key_id), AvroEncoder(value, value_id))
        self._cache[shape] = schemas
        if self._current.get(topic) not in (None, shape[1]):
            logger.info("table %s changed shape; registered value schema id %d", table, value_id)
        self._current[topic] = shape[1]
        return schemas

    def letter_encoders(self, topic: str) -> tuple[AvroEncoder, AvroEncoder]:
        """The key and value encoders of dead-letter topic ``topic`` (schemas/dlq/capture-*.avsc), registered under
        ``<topic>-key`` and ``<topic>-value`` as ``psmesh topology apply`` registers them."""
        encoders = []
        for part in ("key", "value"):
            schema = json.loads((LETTER_SCHEMAS / f"capture-{part}.avsc").read_text())
            subject = f"{topic}-{part}"
            try:
                schema_id = self.client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
            except SchemaRegistryError as exc:
                if exc.http_status_code is None or exc.http_status_code >= 500:
                    raise RegistryUnavailable(f"cannot register subject {subject}: the schema registry failed ({exc})") from exc
                raise StreamsError(f"the schema registry refused subject {subject} of dead-letter topic {topic}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - transport errors of the registry client
                raise RegistryUnavailable(f"cannot register subject {subject}: schema registry unreachable ({exc})") from exc
            encoders.append(AvroEncoder(schema, schema_id))
        return encoders[0], encoders[1]

    def _register(self, subject: str, schema: dict, table: str, columns: Sequence[ColumnSpec]) -> int:
        try:
            return self.client.register_schema(subject, Schema(json.dumps(schema), "AVRO"))
        except SchemaRegistryError as exc:
            if exc.http_status_code == 409:
                rule = self._rule(subject)
                changed = self._changed_columns(subject, columns)
                raise SchemaRefused(table, subject, changed, rule, exc.error_message) from exc
            if exc.http_status_code is None or exc.http_status_code >= 500:
                raise RegistryUnavailable(f"cannot register subject {subject} of table {table}: the schema registry "
                                          f"failed ({exc})") from exc
            raise StreamsError(f"the schema registry refused subject {subject} of table {table}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - transport errors of the registry client
            raise RegistryUnavailable(f"cannot register subject {subject} of table {table}: schema registry "
                                      f"unreachable ({exc})") from exc

    def _rule(self, subject: str) -> str:
        try:
            return self.client.get_compatibility(subject)
        except SchemaRegistryError:
            try:
                return self.client.get_compatibility()
            except SchemaRegistryError:
                return "BACKWARD"

    def _changed_columns(self, subject: str, columns: Sequence[ColumnSpec]) -> list[str]:
        """Columns whose presence or type differs from the latest registered version."""
        try:
            latest = json.loads(self.client.get_latest_version(subject).schema.schema_str)
        except SchemaRegistryError:
            return []
        if subject.endswith("-key"):
            old, new = latest, key_schema("x", columns)
        else:
            old, new = _value_record(latest), _value_record(value_schema("x", columns))
        old_fields = {f["name"]: json.dumps(f["type"], sort_keys=True) for f in old["fields"]}
        new_fields = {f["name"]: json.dumps(f["type"], sort_keys=True) for f in new["fields"]}
        return sorted(n for n in old_fields.keys() | new_fields.keys() if old_fields.get(n) != new_fields.get(n))


def _value_record(envelope: dict) -> dict:
    """The row record inside an envelope schema (the non-null branch of ``before``)."""
    before = next(f for f in envelope["fields"] if f["name"] == "before")
    return next(t for t in before["type"] if isinstance(t, dict))
