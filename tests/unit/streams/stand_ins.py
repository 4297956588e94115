"""Stand-ins the capture's unit tests share."""

from __future__ import annotations

from streams.envelope import key_schema, value_schema
from streams.publisher import AvroEncoder
from streams.registration import TableSchemas


class MemoryRegistrar:
    """The schema registrar without a registry: every table's key and value schemas under fixed ids 11 and 12."""

    def schemas_for(self, topic, table, columns):
        return TableSchemas(topic, columns, AvroEncoder(key_schema(topic, columns), 11),
                            AvroEncoder(value_schema(topic, columns), 12))
