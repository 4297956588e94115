"""Publishing change events to Kafka in the Confluent wire format.

* Producer: idempotent (``enable.idempotence``, ``acks=all``), so retries
  never duplicate or reorder within a partition.
* Partitioner: ``murmur2_random``, the Java client's default, so a key lands
  on the same partition whatever client (Java, Connect, Flink, librdkafka)
  produces it; key = the primary key columns, hence per-key commit order.
* Encoding: Avro binary (compiled encoder, fastavro as fallback), prefixed by magic byte 0 and the 4-byte
  schema id from the registry: readable by confluent-kafka's
  ``AvroDeserializer`` with no psmesh code.
"""

from __future__ import annotations

import io
import logging
import struct
from typing import Any, Callable

import fastavro
from confluent_kafka import KafkaException, Producer

from streams.avrocodegen import UnsupportedSchema, compile_encoder

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">bI")


class AvroEncoder:
    """One schema and its registry id; encodes a record to the Confluent wire format.

    Uses an encoder compiled from the schema (:mod:`streams.avrocodegen`,
    byte-identical to fastavro and several times faster); a schema it does
    not support falls back to fastavro.
    """

    __slots__ = ("schema_id", "encode")

    def __init__(self, schema: dict, schema_id: int) -> None:
        self.schema_id = schema_id
        prefix = _HEADER.pack(0, schema_id)
        try:
            self.encode: Callable[[dict[str, Any]], bytes] = compile_encoder(schema, prefix)
        except UnsupportedSchema as exc:
            logger.info("schema %s: using fastavro (%s)", schema.get("name"), exc)
            parsed = fastavro.parse_schema(schema)

            def encode(record: dict[str, Any]) -> bytes:
                buf = io.BytesIO()
                buf.write(prefix)
                fastavro.schemaless_writer(buf, parsed, record)
                return buf.getvalue()

            self.encode = encode


def producer_config(base: dict[str, str], client_id: str) -> dict[str, Any]:
    return {
        **base,
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "max.in.flight.requests.per.connection": 5,
        "linger.ms": 10,
        "batch.num.messages": 10000,
        "batch.size": 1048576,
        "compression.type": "lz4",
        "partitioner": "murmur2_random",
        "queue.buffering.max.messages": 500000,
        "queue.buffering.max.kbytes": 524288,
        # A message not acknowledged in 5 minutes fails the capture instead of hanging it.
        "message.timeout.ms": 300000,
    }


class ChangePublisher:
    """Sends encoded events; every send reports its outcome to ``on_delivery``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._producer = Producer(config)
        #: ``produce(topic, value, key, partition, on_delivery)`` without the retry of :meth:`send`: the
        #: capture's hot path calls it directly and falls back to :meth:`send` on BufferError.
        self.produce = self._producer.produce

    def send(self, topic: str, key: bytes, value: bytes | None, on_delivery: Callable[[Any, Any], None],
             headers: list[tuple[str, bytes]] | None = None) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=on_delivery, headers=headers)
                return
            except BufferError:
                # Local queue full: let librdkafka deliver (and call back) before retrying.
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise RuntimeError(f"cannot produce to {topic}: {exc}") from exc

    def poll(self, timeout: float = 0.0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        return self._producer.flush(timeout)

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is queued within ``timeout``, then drop the rest; the number dropped.

        A capture that lost PostgreSQL is replaced by a new one, which resends from the slot whatever was not
        confirmed, and only acknowledged events are confirmed: dropping loses nothing. Left queued, the old
        producer would go on retrying beside the new one, and an old version of a row could land after a newer
        one (docs/capture.md, "Order per key").
        """
        left = self._producer.flush(timeout)
        if left:
            self._producer.purge(in_queue=True, in_flight=True, blocking=True)
            self._producer.flush(0)  # the purged events' delivery reports
        return left

    def __len__(self) -> int:
        return len(self._producer)
