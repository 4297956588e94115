"""``psmesh cdc status`` when a database cannot be reached or a status file is cut short: one line per source."""

from __future__ import annotations

import json

from click.testing import CliRunner

from psmesh.cli import main


def test_an_unreachable_database_says_why_and_a_cut_status_file_is_reported_not_raised(tmp_path, monkeypatch):
    for var in ("PSMESH_PG_HOST", "PSMESH_KAFKA_BOOTSTRAP", "PSMESH_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PSMESH_HOME", str(tmp_path))
    monkeypatch.setenv("PSMESH_PG_PORT", "1")
    (tmp_path / "cdc").mkdir()
    (tmp_path / "cdc" / "crm.status.json").write_text('{"last_event_at": "2026-11-')  # cut short

    result = CliRunner().invoke(main, ["cdc", "status", "--json"])
    assert result.exit_code == 1, result.output
    rows = {row["source"]: row for row in json.loads(result.output)}
    assert "crm.status.json unreadable" in rows["crm"]["state"]
    assert rows["psa"]["state"].startswith("database unreachable: connection failed: ")
    assert "port 1 failed" in rows["psa"]["state"]
