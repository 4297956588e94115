"""``psmesh sources create`` (the compose ``init`` service): its error names the database and server."""

import socket

import psycopg
import pytest
from click.testing import CliRunner

from psmesh.cli import main
from psmesh.config import Settings
from psmesh.exceptions import SourceTablesError
from psmesh.sources import create_source_tables, source_sql


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_source_database_has_its_sql():
    for source in ("crm", "psa", "timeexp", "erp"):
        assert "CREATE TABLE IF NOT EXISTS" in source_sql(source)
    with pytest.raises(ValueError, match="reporting"):
        source_sql("reporting")


def test_an_unreachable_server_is_an_error_naming_database_and_server(tmp_path):
    port = _closed_port()
    settings = Settings(home=tmp_path, pg_host="127.0.0.1", pg_port=port)
    with pytest.raises(SourceTablesError, match=rf"database 'psa' on 127\.0\.0\.1:{port}") as caught:
        create_source_tables(settings, ("psa",))
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)


def test_the_cli_reports_the_error_and_exits_1(tmp_path, monkeypatch):
    port = _closed_port()
    monkeypatch.setenv("PSMESH_HOME", str(tmp_path))
    monkeypatch.setenv("PSMESH_PG_HOST", "127.0.0.1")
    monkeypatch.setenv("PSMESH_PG_PORT", str(port))
    result = CliRunner().invoke(main, ["sources", "create", "--source", "crm"])
    assert result.exit_code == 1
    assert f"cannot create the crm tables in database 'crm' on 127.0.0.1:{port}" in result.output


def test_the_cli_refuses_a_database_that_is_not_a_source():
    result = CliRunner().invoke(main, ["sources", "create", "--source", "reporting"])
    assert result.exit_code == 2 and "reporting" in result.output
