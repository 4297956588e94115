"""The reporting sink's KPI snapshots: after a change, at most once per interval, and never lost at the end."""

from __future__ import annotations

import pytest

import sinks.reporting as reporting
from sinks.reporting import ReportingSink, kpi_snapshots


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Counting(ReportingSink):
    def __init__(self, **kwargs) -> None:
        super().__init__(mirrors=False, **kwargs)
        self.taken = 0

    def snapshot(self, engine) -> None:
        self.taken += 1
        self._unsnapshotted = False


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(reporting.time, "monotonic", clock)
    return clock


def test_a_changing_store_is_snapshotted_at_most_once_per_interval(clock):
    sink = _Counting(snapshot_every=10)
    sink.after_batch(None, changed=True)
    assert sink.taken == 1
    clock.now += 3
    sink.after_batch(None, changed=True)
    assert sink.taken == 1
    clock.now += 7
    sink.after_batch(None, changed=False)
    assert sink.taken == 2, "the change 3 s in is snapshotted once the interval has passed, even when idle"
    clock.now += 60
    sink.after_batch(None, changed=False)
    assert sink.taken == 2, "a quiet store adds no snapshot"


def test_no_snapshot_without_a_change_or_when_disabled(clock):
    sink = _Counting(snapshot_every=10)
    sink.after_batch(None, changed=False)
    assert sink.taken == 0
    off = _Counting(snapshot_every=None)
    off.after_batch(None, changed=True)
    assert off.taken == 0


def test_kpi_snapshots_is_keyed_by_time_and_holds_the_eight_figures():
    assert [c.name for c in kpi_snapshots.primary_key.columns] == ["taken_at"]
    assert {"bookings", "backlog", "wip", "billed", "margin_pct", "utilization", "dso_days",
            "staffing_gap_hours"} <= set(kpi_snapshots.columns.keys())
