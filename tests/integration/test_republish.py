"""A billing event the ERP refused reaches it once the ERP is fixed: after a processors restart, or on request.

On a demo firm of its own (``psmesh demo --weeks 2``, every part running), as an operator meets it:
- a constraint in the ERP refuses one kind of billing event; finance closes a period (or a project manager
  completes a milestone), the processors derive the billing trigger and the ERP sink dead-letters it;
- the constraint is dropped: nothing comes on its own, since the trigger's cause does not change again;
- step 1, period closes: the processors are restarted (SIGTERM, start), and every refused trigger is written;
- step 2, a milestone: ``psmesh processors republish``, with the worker left running, and it is written (the
  command refuses an app id no worker has, and ``--stage`` asks only that stage's partitions);
- step 3, the letters acknowledged, another milestone: ``psmesh dlq list`` gives ``psmesh processors
  republish --project`` with its project, which writes it, with no other project's view row re-published;
each under the trigger's id and amount, with the billing events the ERP already had left as they were.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal

import psycopg
import pytest

from processors.batch import stage_partition
from psmesh.config import Settings
from psmesh.stack.services import processor_service
from tests.integration.capture_support import read_records

pytestmark = pytest.mark.integration

#: No other test stack uses these; all below Linux's ephemeral range.
PORTS = {
    "kafka_port": 24092, "kafka_controller_port": 24093, "pg_port": 24433, "registry_port": 24081,
    "processors_port": 24066, "erp_sink_metrics_port": 24401, "reporting_sink_metrics_port": 24402,
    "cdc_metrics_port_base": 24411, "page_port": 24090,
}
PERIOD = 999998
REFUSE = "ALTER TABLE billing_events ADD CONSTRAINT psmesh_test_refuses CHECK (trigger_type <> '{}') NOT VALID"
UNREFUSE = "ALTER TABLE billing_events DROP CONSTRAINT psmesh_test_refuses"


def _env(home) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSMESH_")}
    env.update({f"PSMESH_{k.upper()}": str(v) for k, v in PORTS.items()}, PSMESH_HOME=str(home))
    return env


def _psmesh(home, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "psmesh", *args], env=_env(home), capture_output=True, text=True,
                          timeout=timeout)


def _triggers(settings: Settings) -> dict[str, Decimal]:
    """billing_event_id → amount of the last record of each id on derived.billing_triggers."""
    records = read_records(settings, "derived.billing_triggers")
    return {value["billing_event_id"]: value["amount"] for _, value in records}


def _letters(home) -> set[str]:
    """The billing_event_ids of the ERP sink's dead letters waiting (psmesh dlq list --json)."""
    run = _psmesh(home, "dlq", "list", "--json", "--stage", "erp_sink")
    assert run.returncode == 0, run.stderr
    return {json.loads(line)["key"]["billing_event_id"] for line in run.stdout.splitlines() if line.strip()}


def _billing_events(settings: Settings) -> dict[str, Decimal]:
    with psycopg.connect(settings.pg_dsn("erp")) as conn:
        return dict(conn.execute("SELECT billing_event_id, amount FROM billing_events").fetchall())


def _erp(settings: Settings, statement: str) -> None:
    with psycopg.connect(settings.pg_dsn("erp"), autocommit=True) as conn:
        conn.execute(statement)


def _wait(what: str, check, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(2)


def _refused_after_fix(settings: Settings, home, suffix: str) -> dict[str, Decimal]:
    """Once the ERP sink has dead-lettered the triggers whose id ends with ``suffix``, the constraint is dropped;
    returns those triggers (id → amount), checked absent from the ERP a while later."""
    def dead_lettered() -> dict[str, Decimal]:
        derived = {i: a for i, a in _triggers(settings).items() if i.endswith(suffix)}
        return derived if derived and set(derived) <= _letters(home) else {}

    refused = _wait(f"the ERP sink to dead-letter the *{suffix} triggers", dead_lettered)
    _erp(settings, UNREFUSE)
    time.sleep(10)
    assert not set(refused) & set(_billing_events(settings)), "a refused trigger came back on its own"
    return refused


def test_refused_billing_events_reach_the_fixed_erp_after_a_restart_and_on_request(tmp_path_factory):
    home = tmp_path_factory.mktemp("republish")
    settings = Settings(home=home, **PORTS)
    try:
        demo = _psmesh(home, "demo", "--weeks", "2", "--seed", "5", timeout=900)
        assert demo.returncode == 0, demo.stdout[-4000:] + demo.stderr[-4000:]
        before = _billing_events(settings)

        # Step 1: period-close billing events refused, then the processors restarted.
        _erp(settings, REFUSE.format("period_close"))
        _erp(settings, "INSERT INTO billing_periods (period_id, start_date, end_date, status, closed_at) "
                       f"VALUES ({PERIOD}, '2000-01-01', '2100-12-31', 'closed', now())")
        refused = _refused_after_fix(settings, home, f"-P{PERIOD}")
        pid = int((home / "run" / "processors.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        _wait("the processor worker to stop", lambda: not os.path.exists(f"/proc/{pid}"), timeout=60)
        assert processor_service(settings).start() == "started"
        _wait("the restarted worker's triggers in the ERP",
              lambda: set(refused) <= set(_billing_events(settings)))
        after_restart = _billing_events(settings)
        assert {i: after_restart[i] for i in refused} == refused
        assert {i: after_restart[i] for i in before} == before  # what the ERP had is untouched

        # Step 2: a milestone's billing event refused, then re-published on request, the worker left running.
        with psycopg.connect(settings.pg_dsn("erp")) as conn:
            planned = conn.execute("SELECT milestone_id, project_code, amount FROM billing_milestones "
                                   "WHERE status = 'planned' ORDER BY milestone_id LIMIT 1").fetchone()
        assert planned is not None, "the demo left no planned milestone to complete"
        milestone_id, code, amount = planned
        _erp(settings, REFUSE.format("milestone_completed"))
        _erp(settings, f"UPDATE billing_milestones SET status = 'completed', completed_at = now() "
                       f"WHERE milestone_id = {milestone_id}")
        refused = _refused_after_fix(settings, home, f"{code}-M{milestone_id}")
        assert refused == {f"{code}-M{milestone_id}": amount}
        wrong = _psmesh(home, "processors", "republish", "--app-id", "psmesh-nowhere")
        assert wrong.returncode == 1 and "psmesh-nowhere-by_project-repartition does not exist" in wrong.stderr, (
            wrong.stdout + wrong.stderr)
        run = _psmesh(home, "processors", "republish")
        assert run.returncode == 0, run.stderr
        assert "asked psmesh-processors-by_project-repartition partitions [0, 1, 2, 3, 4, 5]" in run.stdout
        _wait("the re-published milestone trigger in the ERP",
              lambda: f"{code}-M{milestone_id}" in _billing_events(settings))
        final = _billing_events(settings)
        rollup = _psmesh(home, "processors", "republish", "--stage", "rollup")
        assert rollup.returncode == 0 and rollup.stdout.splitlines()[0] == (
            "asked psmesh-processors-rollup-repartition partitions [0]"), rollup.stdout + rollup.stderr
        assert final[f"{code}-M{milestone_id}"] == amount
        assert {i: final[i] for i in after_restart} == after_restart
        acked = _psmesh(home, "dlq", "ack")
        assert acked.returncode == 0, acked.stderr

        # Step 3: another milestone refused, then re-published for its project alone, by the command that
        # psmesh dlq list gives.
        with psycopg.connect(settings.pg_dsn("erp")) as conn:
            milestone_id, code, amount = conn.execute(
                "SELECT milestone_id, project_code, amount FROM billing_milestones WHERE status = 'planned' "
                "ORDER BY milestone_id LIMIT 1").fetchone()
        _erp(settings, REFUSE.format("milestone_completed"))
        _erp(settings, f"UPDATE billing_milestones SET status = 'completed', completed_at = now() "
                       f"WHERE milestone_id = {milestone_id}")
        assert _refused_after_fix(settings, home, f"{code}-M{milestone_id}") == {f"{code}-M{milestone_id}": amount}
        listed = _psmesh(home, "dlq", "list", "--stage", "erp_sink")
        assert listed.returncode == 0 and "1 dead letter(s)" in listed.stderr, listed.stdout + listed.stderr
        command = re.search(r"`(psmesh processors republish[^`]*)`", listed.stderr)
        assert command and command.group(1) == f"psmesh processors republish --project {code}", listed.stderr
        published = Counter(key["project_code"] for key, _ in read_records(settings, "views.project_financials"))
        run = _psmesh(home, *command.group(1).split()[1:])
        assert run.returncode == 0, run.stderr
        partition = stage_partition(code.encode(), 6)
        assert f"asked psmesh-processors-by_project-repartition partition {partition} for {code}" in run.stdout
        _wait("the milestone trigger re-published for its project",
              lambda: f"{code}-M{milestone_id}" in _billing_events(settings))
        assert _billing_events(settings)[f"{code}-M{milestone_id}"] == amount
        now = Counter(key["project_code"] for key, _ in read_records(settings, "views.project_financials"))
        assert now[code] > published[code]
        assert {c: n for c, n in now.items() if c != code} == {c: n for c, n in published.items() if c != code}
        final = _billing_events(settings)
        assert {i: final[i] for i in after_restart} == after_restart
        assert set(final) == set(_triggers(settings))  # one billing event per trigger, no other
    finally:
        if os.environ.get("PSMESH_TEST_REPUBLISH_KEEP") != "1":  # keep it up to look at a failure
            down = _psmesh(home, "dev", "down")
            assert down.returncode == 0, down.stderr
