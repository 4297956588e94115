"""The root command turns bad settings and unreachable servers into one line and an exit code, never a traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from psmesh.cli import main


@pytest.fixture
def topology_file(doc, docs, tmp_path):
    path = tmp_path / "topology.yaml"
    path.write_text(docs.dump(doc))
    return path


def _run(args, **env):
    return CliRunner().invoke(main, args, env=env)


def _is_clean(result) -> bool:
    return "Traceback" not in result.output and isinstance(result.exception, SystemExit)


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("PSMESH_KAFKA_PORT", "abc", "PSMESH_KAFKA_PORT: must be an integer (got 'abc')"),
        ("PSMESH_KAFKA_SECURITY_PROTOCOL", "bogus",
         "PSMESH_KAFKA_SECURITY_PROTOCOL: must be one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL (got 'bogus')"),
        ("PSMESH_REGISTRY_URL", "localhost:8081",
         "PSMESH_REGISTRY_URL: must be an http:// or https:// URL (got 'localhost:8081')"),
        ("PSMESH_PG_SSLMODE", "on", "PSMESH_PG_SSLMODE: must be one of disable, allow, prefer, require"),
    ],
)
def test_a_bad_environment_variable_is_a_usage_error_naming_it(topology_file, variable, value, message):
    for args in (["topology", "plan", "--file", str(topology_file)], ["status", "--file", str(topology_file)]):
        result = _run(args, **{variable: value})
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert _is_clean(result)


def test_every_bad_variable_is_named_at_once():
    result = _run(["status"], PSMESH_KAFKA_PORT="x", PSMESH_PG_PORT="y")
    assert result.exit_code == 2
    assert "PSMESH_KAFKA_PORT: must be an integer (got 'x')" in result.output
    assert "PSMESH_PG_PORT: must be an integer (got 'y')" in result.output


def test_help_works_with_a_bad_variable():
    result = _run(["topology", "plan", "--help"], PSMESH_KAFKA_PORT="abc")
    assert result.exit_code == 0 and "--bootstrap-servers" in result.output


def test_postgresql_down_is_one_line_naming_the_server(topology_file, tmp_path):
    # port 1 on loopback: nothing listens, the connection is refused at once
    result = _run(["cdc", "schemas", "--check", "--file", str(topology_file), "--out", str(tmp_path)],
                  PSMESH_PG_PORT="1", PSMESH_PG_HOST="127.0.0.1", PSMESH_PG_SSLMODE="disable")
    assert result.exit_code == 1, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: PostgreSQL: connection failed:") and "port 1 failed" in line
    assert _is_clean(result)
