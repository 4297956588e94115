"""The README's main command, `psmesh demo`, end to end on a stack of its own."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration

PORTS = {"PSMESH_KAFKA_PORT": "21092", "PSMESH_KAFKA_CONTROLLER_PORT": "21093", "PSMESH_PG_PORT": "21433",
         "PSMESH_REGISTRY_PORT": "21081", "PSMESH_PROCESSORS_PORT": "21066", "PSMESH_ERP_SINK_METRICS_PORT": "21401",
         "PSMESH_REPORTING_SINK_METRICS_PORT": "21402", "PSMESH_CDC_METRICS_PORT_BASE": "21411",
         "PSMESH_PAGE_PORT": "21090"}


def _psmesh(home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **PORTS, "PSMESH_HOME": str(home)}
    for var in ("PSMESH_KAFKA_BOOTSTRAP", "PSMESH_REGISTRY_URL", "PSMESH_PG_HOST"):
        env.pop(var, None)
    return subprocess.run([sys.executable, "-m", "psmesh", *args], env=env, capture_output=True, text=True, timeout=300)


def test_demo_runs_the_firm_through_capture_and_every_row_change_reaches_kafka(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo")
    try:
        first = _psmesh(home, "demo", "--weeks", "3")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        wrote = int(re.search(r"the firm wrote ([\d,]+) row changes", first.stdout).group(1).replace(",", ""))
        published = int(re.search(r"change events on Kafka: ([\d,]+)", first.stdout).group(1).replace(",", ""))
        assert wrote > 50
        # Inserts and updates are one event each and the firm deletes nothing; the rest are the
        # mesh's own writes into erp (projects, milestones, billing events), captured like any other.
        assert published >= wrote
        # The summary is read from the reporting store the sinks keep.
        assert re.search(r"from the reporting store: bookings \d+ won deals worth [\d,.]+", first.stdout), first.stdout[-3000:]
        assert "DSO:" in first.stdout and "billable utilization to date:" in first.stdout
        # the demo's figure is the executive page's (exec_kpis), not one of its own
        shown = re.search(r"billable utilization to date: ([\d.]+)%", first.stdout).group(1)
        with psycopg.connect(f"host=127.0.0.1 port={PORTS['PSMESH_PG_PORT']} user=psmesh dbname=reporting") as conn:
            kpi = conn.execute("SELECT utilization FROM exec_kpis").fetchone()[0]
        assert shown == f"{kpi * 100:.1f}"
        # the next steps it prints work as printed: the views' index answers, and the CLI it names exists
        views = re.search(r"curl (http://\S+/views/)", first.stdout).group(1)
        with urllib.request.urlopen(views, timeout=10) as response:
            assert {"project_financials", "resource_week", "skill_week"} <= set(json.load(response)["views"])
        cli = re.search(r"^    (\S+) status ", first.stdout, re.MULTILINE).group(1)
        assert cli == "psmesh" and shutil.which("psmesh") or Path(cli).is_file(), cli

        again = _psmesh(home, "demo", "--weeks", "3")
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert "continuing with what is there" in again.stdout
        assert f"change events on Kafka: {published:,}" in again.stdout
    finally:
        down = _psmesh(home, "dev", "down")
    assert down.returncode == 0
    assert "cdc-crm       stopped" in down.stdout
