"""``psmesh cdc status`` when a database cannot be reached or a status file is cut short: one line per source."""

from __future__ import annotations

import json

import pytest

from click.testing import CliRunner

from psmesh.cli import main


@pytest.fixture
def unreachable(tmp_path, monkeypatch):
    """The local stack's settings with PostgreSQL on a port nothing listens on, and the runtime dir in tmp_path."""
    for var in ("PSMESH_PG_HOST", "PSMESH_KAFKA_BOOTSTRAP", "PSMESH_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PSMESH_HOME", str(tmp_path))
    monkeypatch.setenv("PSMESH_PG_PORT", "1")


def test_an_unreachable_database_says_why_and_a_cut_status_file_is_reported_not_raised(tmp_path, unreachable):
    (tmp_path / "cdc").mkdir()
    (tmp_path / "cdc" / "crm.status.json").write_text('{"last_event_at": "2026-11-')  # cut short

    result = CliRunner().invoke(main, ["cdc", "status", "--json"])
    assert result.exit_code == 1, result.output
    rows = {row["source"]: row for row in json.loads(result.output)}
    assert "crm.status.json unreadable" in rows["crm"]["state"]
    assert rows["psa"]["state"].startswith("database unreachable: connection failed: ")
    assert "port 1 failed" in rows["psa"]["state"]


def test_a_server_that_cannot_be_reached_is_one_line(tmp_path, unreachable):

    result = CliRunner().invoke(main, ["cdc", "status"])
    assert result.exit_code == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("PostgreSQL at 127.0.0.1:1: cannot connect: connection failed: ") and "port 1 failed" in line


def test_what_the_status_files_say_is_shown_when_the_server_cannot_be_reached(tmp_path, unreachable):
    (tmp_path / "cdc").mkdir()
    (tmp_path / "cdc" / "psa.status.json").write_text('{"last_event_at": "2026-11-28T06:51:02+00:00"}')

    result = CliRunner().invoke(main, ["cdc", "status"])
    assert result.exit_code == 1
    psa = next(line for line in result.stdout.splitlines() if line.startswith("psa "))
    assert "2026-11-28T06:51:02+00:00" in psa and "database unreachable" in psa


def test_the_table_keeps_its_columns_aligned_before_a_long_state(tmp_path, unreachable):
    (tmp_path / "cdc").mkdir()
    (tmp_path / "cdc" / "crm.status.json").write_text('{"last_event_at": "2026-11-')  # cut short: another state

    result = CliRunner().invoke(main, ["cdc", "status"])
    assert result.exit_code == 1
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["source", "slot", "confirmed", "lag", "bytes", "last", "event", "state"]
    state_at = header.index("state")
    assert len(rows) == 4
    assert {row[state_at:].split(":")[0] for row in rows} == {"errored", "database unreachable"}
