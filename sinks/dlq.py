"""Dead letters: what a sink could not write, kept with its reason and original bytes.

Records go to the dead-letter topic (``dlq.sinks``) in the contract of
schemas/dlq/sinks-{key,value}.avsc, Avro in the Confluent wire format with
the registry, key = (topic, partition, offset) so a redelivered record makes
the same key. :meth:`DeadLetterPublisher.flush` returns only once Kafka has
acknowledged every letter; the runner commits a batch's offsets after that,
so a dead letter is never lost (it may be written twice after a crash).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from confluent_kafka import KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from sinks.exceptions import TargetUnavailable
from sinks.records import load_contract

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


class DeadLetterPublisher:
    """Publishes dead letters of one sink (``stage``) to ``topic``."""

    def __init__(self, kafka: dict[str, str], registry: SchemaRegistryClient, topic: str, stage: str) -> None:
        self.topic = topic
        self.stage = stage
        conf = {"auto.register.schemas": True}
        self._key = AvroSerializer(registry, _schema_str("dlq/sinks-key.avsc"), conf=conf)
        self._value = AvroSerializer(registry, _schema_str("dlq/sinks-value.avsc"), conf=conf)
        self._producer = Producer({**kafka, "client.id": f"psmesh-{stage}-dlq", "enable.idempotence": True, "acks": "all",
                                   "linger.ms": 5})
        self._failures: list[KafkaError] = []

    def publish(self, letters: list[DeadLetter]) -> None:
        """Send and wait for Kafka's acknowledgement of every letter; raise TargetUnavailable otherwise."""
        if not letters:
            return
        self._failures.clear()
        now = datetime.now(timezone.utc)
        try:
            for letter in letters:
                key = {"topic": letter.topic, "partition": letter.partition, "offset": letter.offset}
                value = {**key, "stage": self.stage, "reason": letter.reason, "key": letter.key, "value": letter.value,
                         "failed_at": now}
                self._producer.produce(
                    self.topic,
                    key=self._key(key, SerializationContext(self.topic, MessageField.KEY)),
                    value=self._value(value, SerializationContext(self.topic, MessageField.VALUE)),
                    on_delivery=self._delivered,
                )
        except Exception as exc:  # registry or Kafka client errors: the letters were not all sent
            raise TargetUnavailable(f"cannot send dead letters to {self.topic}: {type(exc).__name__}: {exc}") from exc
        deadline = time.monotonic() + 60
        while len(self._producer) and time.monotonic() < deadline:
            self._producer.flush(1.0)
        if len(self._producer) or self._failures:
            raise TargetUnavailable(
                f"dead letters to {self.topic} not acknowledged: "
                f"{len(self._producer)} pending, {len(self._failures)} failed"
                + (f" ({self._failures[0]})" if self._failures else "")
            )
        for letter in letters:
            logger.warning("dead letter %s[%d]@%d to %s: %s", letter.topic, letter.partition, letter.offset, self.topic, letter.reason)

    def _delivered(self, err: KafkaError | None, _msg) -> None:
        if err is not None:
            self._failures.append(err)

    def close(self) -> None:
        self._producer.flush(10)


def _schema_str(relative: str) -> str:
    import json

    return json.dumps(load_contract(relative))
