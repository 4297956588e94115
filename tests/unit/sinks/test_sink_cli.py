"""``psmesh sink run``: what it is given is checked before anything runs, each with an error that says which."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from psmesh.cli import main


@pytest.fixture(autouse=True)
def _nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("PSMESH_HOME", str(tmp_path / "home"))
    for var in ("PSMESH_KAFKA_PORT", "PSMESH_PG_PORT", "PSMESH_REGISTRY_PORT"):
        monkeypatch.setenv(var, "1")


def _run(*args: str):
    return CliRunner().invoke(main, ["sink", "run", "erp", "--metrics-port", "0", *args])


def test_an_invalid_topology_is_refused_not_replaced_by_the_defaults(tmp_path, monkeypatch):
    """Its dead-letter topic is where psmesh status and psmesh dlq look: a fallback would hide the letters."""
    bad = tmp_path / "topology.yaml"
    bad.write_text("version: 1\ntopics: 5\n")
    result = _run("--file", str(bad))
    assert result.exit_code == 1, result.output
    assert "the topology is invalid" in result.output and f"{bad}:2: topics: must be a list" in result.output
    monkeypatch.chdir(tmp_path)  # the same file found as ./topology.yaml
    result = _run()
    assert result.exit_code == 1 and "topology.yaml:2: topics: must be a list" in result.output


def test_a_registry_url_without_a_scheme_is_a_usage_error():
    result = _run("--registry-url", "127.0.0.1:8081")
    assert result.exit_code == 2
    assert "Invalid value for '--registry-url': must be an http:// or https:// URL" in result.output


@pytest.mark.parametrize("dsn, reason", [("nonsense=1", 'invalid connection option "nonsense"'),
                                         ("host=db password=top secret", "it does not parse")])
def test_a_dsn_that_does_not_parse_is_a_usage_error_that_never_shows_it(dsn, reason):
    result = _run("--dsn", dsn)
    assert result.exit_code == 2
    assert f"Invalid value for '--dsn': not a libpq connection string: {reason}" in result.output
    assert "secret" not in result.output


def test_the_target_database_is_the_topologys(tmp_path, monkeypatch):
    from psycopg.conninfo import conninfo_to_dict

    import sinks.runner

    seen = []
    monkeypatch.setattr(sinks.runner, "run_sink", lambda target, config: seen.append(config))
    text = (Path(__file__).resolve().parents[3] / "topology.yaml").read_text()
    mine = tmp_path / "topology.yaml"
    mine.write_text(text.replace("      database: erp\n", "      database: erp_eu\n", 1))
    (tmp_path / "schemas").symlink_to(Path(__file__).resolve().parents[3] / "schemas")
    result = _run("--file", str(mine))
    assert result.exit_code == 0, result.output
    [config] = seen
    assert conninfo_to_dict(config.dsn)["dbname"] == "erp_eu"
    assert config.dead_letter_topic == "dlq.sinks"
