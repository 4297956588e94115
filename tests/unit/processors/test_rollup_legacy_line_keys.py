"""A rollup state written before 3ab4465 keyed a line's contribution ``line|<id>``; the project stage now sends
``line|<project_code>|<id>``. The first new contribution of a line replaces the old one (processors/app.py
``_rollup``): kept beside it, the line's demand counted twice in skill_week, for good (seen on a demo upgraded
across that change: ``psmesh reconcile`` found skill_week demand 212 hours where the sources give 160)."""

from __future__ import annotations

from pathlib import Path

from processors.records import dumps, loads
from processors.rollup import legacy_line_key
from tests.unit.processors.worker_fakes import FakeEvent, run_batch, worker

LINE = {"skill": "aws", "start": "2026-03-02", "end": "2026-03-06", "hours": "40.00", "weight": "1/1"}


def _demand(processors, week: str = "2026-03-02") -> str | None:
    rows = [r for topic, r in processors.encoder.records
            if topic == "views.skill_week" and r["skill"] == "aws" and str(r["week_start"]) == week]
    return str(rows[-1]["demand_hours"]) if rows else None


def test_the_legacy_key_of_a_line_contribution():
    assert legacy_line_key("line|PRJ-3|37") == "line|37"
    assert legacy_line_key("line|37") is None
    assert legacy_line_key("opp|37") is None and legacy_line_key("res|9") is None


def test_a_line_s_new_contribution_replaces_its_legacy_one_and_tombstones_it(tmp_path: Path):
    processors = worker(tmp_path)
    processors.rollup_rows.data[b"line|37"] = dumps(LINE)  # a mirror an older version wrote
    processors.rollup_stage.load("line|37", LINE)  # and the stage rebuilt from it
    changelog = processors.rollup_rows.changelog_topic.get_topic_name()
    message = FakeEvent("psmesh-processors-to_rollup-repartition", 0, 0, b"rollup",
                        dumps([["line|PRJ-3|37", LINE, None]]))
    run_batch(processors, processors._rollup_batch, [message])

    assert set(processors.rollup_stage.contributions) == {"line|PRJ-3|37"}
    assert _demand(processors) == "40.00"  # once, not 80.00
    written = [loads(v) if v is not None else None for topic, _, v in processors.sender.records if topic == changelog]
    assert None in written and LINE in written  # the legacy key's tombstone, and the new key's row
    assert b"line|37" not in processors.rollup_rows.data and b"line|PRJ-3|37" in processors.rollup_rows.data


def test_without_a_legacy_contribution_nothing_more_is_written(tmp_path: Path):
    processors = worker(tmp_path)
    changelog = processors.rollup_rows.changelog_topic.get_topic_name()
    message = FakeEvent("psmesh-processors-to_rollup-repartition", 0, 0, b"rollup",
                        dumps([["line|PRJ-3|37", LINE, None]]))
    run_batch(processors, processors._rollup_batch, [message])
    assert [v for topic, _, v in processors.sender.records if topic == changelog] == [dumps(LINE)]
    assert _demand(processors) == "40.00"
