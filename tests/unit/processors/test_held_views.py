"""A stage holds back the rows of ``resource_week`` and ``skill_week`` while its input keeps coming, and publishes
each once, as the state gives it then, when the input pauses (processors/app.py ``_flush``, HELD_VIEWS); a
deletion is published at once. The broker is left out: the sender records, the agents' waits are given."""

from __future__ import annotations

import time
from datetime import date

from processors import app as app_module
from processors.app import HELD_VIEWS, VIEW_STAGE
from processors.records import dumps
from tests.unit.processors.worker_fakes import FakeEvent, run_batch, worker

MON = date(2026, 3, 2)  # a Monday: the resource is hired that week


def _running(tmp_path):
    """A worker whose resource stage runs as in a worker: its agent hands it an empty batch when its input pauses."""
    w = worker(tmp_path)
    w._holding.add("resource")
    return w


def _resource(rid: int = 7) -> list:
    return [str(rid), "resource", rid, {"resource_id": rid, "primary_skill": "aws", "weekly_capacity_hours": "40.00",
                                        "active": True, "hired_on": MON.isoformat()}, None]


def _entry(eid: int, day: date, hours: str, rid: int = 7) -> list:
    return [str(rid), "entry", eid, {"entry_id": eid, "resource_id": rid, "project_code": "PRJ-1",
                                     "role": "consultant", "work_date": day.isoformat(), "hours": hours,
                                     "billable": True, "bill_rate": "150.00", "cost_rate": "90.00",
                                     "status": "approved"}, None]


def _gone(eid: int, rid: int = 7) -> list:
    return [str(rid), "entry", eid, None, None]


def _batch(w, offset: int, *rows: list) -> None:
    topic = w.by_resource.get_topic_name()
    run_batch(w, w._resource_batch, [FakeEvent(topic, partition=3, offset=offset, key=b"r", value=dumps(list(rows)))])


def _paused(w) -> None:
    """The empty batch the stage's agent is handed when no input came for a while (faust_fixes.take_batches)."""
    run_batch(w, w._resource_batch, [])


def _weeks(w) -> list[tuple[date, str]]:
    return [(r["week_start"], str(r["total_hours"])) for t, r in w.encoder.records if t == "views.resource_week"]


def _held_rows(w) -> float:
    return w.metrics.registry.get_sample_value("psmesh_processor_held_view_rows", {"stage": "resource"})


def test_rows_are_held_while_input_keeps_coming_and_published_once_with_their_last_figures_when_it_pauses(tmp_path):
    w = _running(tmp_path)
    _batch(w, 0, _resource(), _entry(1, date(2026, 3, 10), "8.00"))
    _batch(w, 1, _entry(2, date(2026, 3, 11), "6.00"))
    _batch(w, 2, _entry(3, date(2026, 3, 12), "2.50"))
    assert _weeks(w) == []
    assert _held_rows(w) == 2  # the weeks of 03-02 and 03-09, on /metrics
    # a query answers with the row as the state gives it now, held or not
    assert str(w._view_value("resource_week", f"7|{date(2026, 3, 9)}")["total_hours"]) == "16.50"
    _paused(w)
    assert sorted(_weeks(w)) == [(MON, "0.00"), (date(2026, 3, 9), "16.50")]  # each once, three changes in
    assert _held_rows(w) == 0
    w.encoder.records.clear()
    _paused(w)
    assert _weeks(w) == []  # nothing held any more


def test_a_deletion_is_published_at_once_and_what_was_held_of_the_row_is_not_published_after_it(tmp_path):
    w = _running(tmp_path)
    _batch(w, 0, _resource(), _entry(1, date(2026, 3, 17), "8.00"))
    _paused(w)
    assert sorted(_weeks(w)) == [(MON, "0.00"), (date(2026, 3, 9), "0.00"), (date(2026, 3, 16), "8.00")]
    w.encoder.records.clear()
    _batch(w, 1, _entry(2, date(2026, 3, 18), "4.00"))
    assert _weeks(w) == []  # held
    w.sender.records.clear()
    _batch(w, 2, _gone(1), _gone(2))  # the resource has no time left: its weeks' rows are deleted
    deleted = [value for topic, _, value in w.sender.records if topic == "views.resource_week"]
    assert deleted == [None, None, None]  # its three weeks, at once, not waiting for the pause
    assert not w._held["resource"]
    assert _held_rows(w) == 0 and "resource" not in w._held_since  # nothing held, and no empty batch asked for
    w.encoder.records.clear()
    _paused(w)
    assert _weeks(w) == []  # the week of 03-16, held before its deletion, is not brought back


def test_held_rows_go_out_hold_seconds_after_the_first_though_the_input_never_pauses(tmp_path, monkeypatch):
    w = _running(tmp_path)
    _batch(w, 0, _resource(), _entry(1, date(2026, 3, 10), "8.00"))
    assert _weeks(w) == []
    monkeypatch.setattr(app_module, "HOLD_SECONDS", 0.0)
    _batch(w, 1, _entry(2, date(2026, 3, 11), "1.00"))
    assert sorted(_weeks(w)) == [(MON, "0.00"), (date(2026, 3, 9), "9.00")]
    monkeypatch.setattr(app_module, "HOLD_SECONDS", 3600.0)
    w.encoder.records.clear()
    _batch(w, 2, _entry(3, date(2026, 3, 12), "1.00"))
    assert _weeks(w) == []
    monkeypatch.setattr(app_module, "HOLD_ROWS", 1)  # or once it holds HOLD_ROWS
    _batch(w, 3, _entry(4, date(2026, 3, 13), "1.00"))
    assert _weeks(w) == [(date(2026, 3, 9), "11.00")]


def test_a_rebuild_drops_what_was_held_and_publishes_every_row_again(tmp_path):
    w = _running(tmp_path)
    _batch(w, 0, _resource(), _entry(1, date(2026, 3, 10), "8.00"))
    assert w._held["resource"] and w._held_since["resource"] <= time.monotonic()
    w._republish_later("resource", range(6), w.resource_stages.values())
    assert not w._held.get("resource") and "resource" not in w._held_since
    assert w._view_value("resource_week", f"7|{date(2026, 3, 9)}") is not None  # served from the rebuild on


def test_outside_a_running_worker_nothing_is_held(tmp_path):
    w = worker(tmp_path)  # bench/stages.py, the other unit tests: no agent, every batch publishes at its end
    _batch(w, 0, _resource(), _entry(1, date(2026, 3, 10), "8.00"))
    assert sorted(_weeks(w)) == [(MON, "0.00"), (date(2026, 3, 9), "8.00")]


def test_only_views_whose_rows_the_state_always_gives_are_held():
    # a callable of project_financials, pipeline or bookings may give None (a deletion): lost with what is held in a
    # crash, no re-publication could bring it back
    assert HELD_VIEWS == {"resource_week", "skill_week"}
    assert {VIEW_STAGE[v] for v in HELD_VIEWS} == {"resource", "rollup"}
