"""psmesh/dlq.py's decoder: a record that is not a dead letter is shown as unreadable, but a registry that cannot
answer stops the command (an outage must not make every letter look bad)."""

from __future__ import annotations

import click
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from psmesh.dlq import Unreadable, _Decoder

FRAMED = b"\x00\x00\x00\x00\x07payload"


class _Registry:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_schema(self, schema_id: int):
        raise self.error


def _decoder(error: Exception = RuntimeError("unused")) -> _Decoder:
    return _Decoder(_Registry(error), "http://registry.example:8081")


@pytest.mark.parametrize("data", [None, b"", b"\x00\x00", b"not avro at all"])
def test_bytes_not_in_the_confluent_frame_are_unreadable(data):
    with pytest.raises(Unreadable, match="not Avro in the Confluent wire format"):
        _decoder().letter(data)


def test_a_schema_id_the_registry_does_not_have_is_unreadable():
    with pytest.raises(Unreadable, match="schema id 7 is not in the registry"):
        _decoder(SchemaRegistryError(404, 40403, "Schema not found")).letter(FRAMED)


@pytest.mark.parametrize("error, message", [
    (SchemaRegistryError(500, 50001, "store failed"), "schema registry at http://registry.example:8081: "),
    (ConnectionError("connection refused"), "schema registry at http://registry.example:8081 unreachable"),
])
def test_a_registry_that_cannot_answer_stops_the_command(error, message):
    with pytest.raises(click.ClickException, match=message):
        _decoder(error).letter(FRAMED)


def test_an_original_is_json_where_it_is_json_else_base64():
    decoder = _decoder()
    assert decoder.original(None) is None
    assert decoder.original(b'["p", "entry", 5, {"hours": "7.50"}]') == ["p", "entry", 5, {"hours": "7.50"}]
    assert decoder.original(b"\xff\xfe") == {"base64": "//4="}
