"""Stand-ins the capture's unit tests share."""

from __future__ import annotations

import json

from streams.envelope import key_schema, value_schema
from streams.publisher import AvroEncoder
from streams.registration import LETTER_SCHEMAS, TableSchemas


class MemoryRegistrar:
    """The schema registrar without a registry: every table's key and value schemas under fixed ids 11 and 12."""

    def schemas_for(self, topic, table, columns):
        return TableSchemas(topic, columns, AvroEncoder(key_schema(topic, columns), 11),
                            AvroEncoder(value_schema(topic, columns), 12))

    def letter_encoders(self, topic):
        """The contract of a capture's dead-letter topic, under fixed ids 21 and 22."""
        return tuple(AvroEncoder(json.loads((LETTER_SCHEMAS / f"capture-{part}.avsc").read_text()), schema_id)
                     for part, schema_id in (("key", 21), ("value", 22)))


class SilentPublisher:
    """Takes events and never reports a delivery, as when Kafka is down."""

    def send(self, topic, key, value, on_delivery, headers=None) -> None:
        pass

    def produce(self, topic, value, key, partition, on_delivery, headers=None) -> None:
        pass

    def poll(self, timeout: float = 0.0) -> int:
        return 0
