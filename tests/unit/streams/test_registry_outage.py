"""A schema registry that is down or failing while the capture registers a table's schema: the capture resumes from
its slot once it answers, as after a lost PostgreSQL; a registry that refuses the schema still stops it."""

from __future__ import annotations

import logging

import pytest
from click.testing import CliRunner
from confluent_kafka.schema_registry.error import SchemaRegistryError

from psmesh.cli import main
from streams.exceptions import RegistryUnavailable, SchemaRefused, StreamsError
from streams.registration import SchemaRegistrar
from streams.snapshot import ColumnSpec


class _Client:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def register_schema(self, subject, schema):
        raise self.error

    def get_compatibility(self, subject=None):
        return "BACKWARD"

    def get_latest_version(self, subject):
        raise SchemaRegistryError(404, 40401, "not found")


COLUMNS = [ColumnSpec("account_id", 20, -1, True), ColumnSpec("region", 25, -1, False)]


@pytest.mark.parametrize("error, kind", [
    (ConnectionError("connection refused"), RegistryUnavailable),
    (SchemaRegistryError(503, 50301, "unavailable"), RegistryUnavailable),
    (SchemaRegistryError(409, 409, "incompatible"), SchemaRefused),
    (SchemaRegistryError(422, 42201, "invalid schema"), StreamsError),
])
def test_a_registry_down_or_failing_is_unavailable_and_a_refusal_is_not(error, kind):
    registrar = SchemaRegistrar("http://127.0.0.1:1")
    registrar.client = _Client(error)
    with pytest.raises(StreamsError) as caught:
        registrar.schemas_for("crm.public.accounts", "public.accounts", COLUMNS)
    assert type(caught.value) is kind


def test_the_capture_resumes_from_its_slot_once_the_registry_answers(monkeypatch, tmp_path, caplog):
    import streams.source

    runs: list[str] = []

    class _Capture:
        stopping = False

        def __init__(self, config) -> None:
            self.config = config

        def install_signal_handlers(self) -> None:
            pass

        def run(self) -> None:
            runs.append("run")
            if len(runs) == 1:
                raise RegistryUnavailable("cannot register subject crm.public.accounts-value: schema registry "
                                          "unreachable (connection refused)")

        def close(self) -> None:
            pass

        def wait_stop(self, seconds: float) -> bool:
            return False

    monkeypatch.setattr(streams.source, "CaptureSource", _Capture)
    monkeypatch.setenv("PSMESH_HOME", str(tmp_path))
    caplog.set_level(logging.WARNING, logger="streams.cli")
    result = CliRunner().invoke(main, ["cdc", "run", "crm", "--metrics-port", "0"])
    assert result.exit_code == 0, result.output
    assert runs == ["run", "run"]
    assert "lost the schema registry for crm" in caplog.text and "resuming from slot psmesh_crm" in caplog.text
