"""An unreachable or failing schema registry is an error of the infrastructure, not of the events: the batch is
handled again (processors/app.py), never dead-lettered and acknowledged. Only a schema id the registry does not know
makes an event undecodable."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.errors import KafkaError
from confluent_kafka.schema_registry.error import SchemaRegistryError

from processors.batch import Cause, Outbox
from processors.codec import ChangeEventDecoder, TopicEncoder
from processors.exceptions import RegistryUnavailable, UndecodableEvent
from tests.unit.processors.worker_fakes import FakeEvent, run_batch, worker


class FailingRegistry:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_schema(self, schema_id: int):
        raise self.error

    def register_schema(self, subject: str, schema) -> int:
        raise self.error


FRAME = b"\x00\x00\x00\x00\x07\x02"  # Confluent framing, schema id 7


@pytest.mark.parametrize("error", [ConnectionError("connection refused"),
                                   SchemaRegistryError(503, 50301, "service unavailable")])
def test_a_registry_that_does_not_answer_is_retried_not_bad_input(error):
    with pytest.raises(RegistryUnavailable, match="schema id 7") as raised:
        ChangeEventDecoder(FailingRegistry(error)).decode(FRAME)
    assert isinstance(raised.value, KafkaError)  # what the worker handles again after a rebuild


def test_a_schema_id_the_registry_does_not_know_is_bad_input():
    with pytest.raises(UndecodableEvent, match="schema id 7 not found"):
        ChangeEventDecoder(FailingRegistry(SchemaRegistryError(404, 40403, "Schema not found"))).decode(FRAME)


def test_an_output_schema_that_cannot_be_registered_fails_the_batch_instead_of_dead_lettering_its_rows(
        tmp_path: Path):
    processors = worker(tmp_path)
    registry = FailingRegistry(ConnectionError("connection refused"))
    processors.encoder = lambda topic: TopicEncoder(registry, topic)  # as the worker makes them, lazily
    out = Outbox()
    cause = Cause(FakeEvent("psmesh-processors-rollup-repartition"), None, None)
    out.events.append(("derived.project_risk_alerts", {"project_code": "PRJ-1"}, {"v": 1}, cause))

    with pytest.raises(RegistryUnavailable, match="derived.project_risk_alerts"):
        run_batch(processors, processors._flush, "rollup", out)
    assert processors.sender.produced() == []  # nothing dead-lettered
