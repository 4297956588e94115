"""``psmesh status`` against the running demo: real lag figures, and a failure when a capture dies."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from psmesh.stack.services import CaptureService

pytestmark = pytest.mark.integration

SOURCES = ("crm", "psa", "timeexp", "erp")


def _report(demo, *args: str) -> tuple[int, dict]:
    run = demo.psmesh("status", "--json", *args, timeout=120)
    assert run.stdout.strip(), run.stderr[-3000:]
    return run.returncode, json.loads(run.stdout)


def _checks(report: dict, area: str) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"] if c["area"] == area}


def test_status_shows_every_part_of_the_running_demo_with_real_lag_figures(running_demo):
    code, report = _report(running_demo)
    assert code == 0 and report["healthy"], json.dumps(report, indent=2)

    captures = _checks(report, "capture")
    assert set(captures) == set(SOURCES)
    for name, check in captures.items():
        figures = check["figures"]
        assert check["state"] == "ok", check
        assert figures["active"] is True and isinstance(figures["lag_bytes"], int) and figures["lag_bytes"] >= 0
        # scraped from the capture's own /metrics: it produced the firm's changes
        assert figures["lag_seconds"] is not None and figures["events_produced"] > 0, check

    groups = _checks(report, "consumer group")
    assert set(groups) == {"psmesh-processors", "psmesh-erp_sink", "psmesh-reporting_sink"}
    processors = groups["psmesh-processors"]["figures"]
    assert processors["members"] >= 1
    assert "crm.public.opportunities" in processors["lag_by_topic"]
    assert "views.project_financials" in groups["psmesh-reporting_sink"]["figures"]["lag_by_topic"]
    assert all(isinstance(lag, int) and lag >= 0 for g in groups.values() for lag in g["figures"]["lag_by_topic"].values())

    assert set(_checks(report, "dead letters")) == {"dlq.capture", "dlq.processors", "dlq.sinks"}
    services = _checks(report, "service")
    assert {"processors", "sink-erp", "sink-reporting", "page"} <= set(services)
    assert all(s["state"] == "ok" for s in services.values()), services
    # End-to-end latency, source commit -> reporting row, observed by the reporting sink.
    reporting = services["sink-reporting"]["figures"]
    assert reporting["rows_written"] > 0
    assert reporting["e2e_latency_p50_seconds"] is not None and reporting["e2e_latency_p50_seconds"] <= 600

    text = running_demo.psmesh("status", timeout=120)
    assert text.returncode == 0, text.stdout + text.stderr
    assert "healthy" in text.stdout and "slot psmesh_crm active, slot lag" in text.stdout
    assert "psmesh-processors" in text.stdout and "crm.public.opportunities" in text.stdout


def test_status_turns_non_zero_when_a_capture_process_is_killed(running_demo):
    capture = CaptureService(running_demo.settings, "crm")
    pid = capture.process.pid()
    assert pid is not None and capture.process.running()
    os.kill(pid, signal.SIGKILL)
    try:
        deadline = time.monotonic() + 60
        while True:
            code, report = _report(running_demo)
            crm = _checks(report, "capture")["crm"]
            if code != 0 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert code == 1 and not report["healthy"], json.dumps(report, indent=2)
        assert crm["state"] == "fail" and "inactive" in crm["detail"], crm
        others = _checks(report, "capture")
        assert all(others[s]["state"] == "ok" for s in SOURCES if s != "crm"), others

        text = running_demo.psmesh("status", timeout=120)
        assert text.returncode == 1
        assert "UNHEALTHY" in text.stdout and "FAIL" in text.stdout and "slot psmesh_crm inactive" in text.stdout
    finally:
        assert capture.start() == "started"
    deadline = time.monotonic() + 60
    while (code := _report(running_demo)[0]) != 0 and time.monotonic() < deadline:
        time.sleep(1)
    assert code == 0, "status did not turn healthy again after the capture was restarted"
