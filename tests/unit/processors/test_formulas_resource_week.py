"""Capacity, assignments and worked hours per (resource, week)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from processors.formulas import (
    Assignment,
    Resource,
    TimeEntry,
    TimeOff,
    assigned_hours,
    available_hours,
    billable_hours,
    capacity_hours,
    tentative_hours,
    total_hours,
    utilization,
)

MONDAY = date(2026, 3, 2)  # week of Monday 2 .. Sunday 8 March 2026


def resource(hired_on=date(2025, 1, 1), active=True, capacity="40.00"):
    return Resource(7, "aws", D(capacity), active, hired_on)


def off(tid, start, end, per_day="8.00", status="approved", resource_id=7):
    return TimeOff(tid, resource_id, start, end, D(per_day), status)


def assignment(aid, start, end, per_week="20.00", status="confirmed"):
    return Assignment(aid, 7, start, end, D(per_week), status)


def entry(eid, day, hours, billable=True, status="approved", resource_id=7):
    return TimeEntry(eid, resource_id, "PRJ-1", "consultant", day, D(hours), billable, D("100"), D("50"), status)


def test_capacity_is_weekly_capacity_for_an_active_resource_without_time_off():
    assert capacity_hours(resource(), MONDAY, []) == D("40.00")


def test_inactive_resource_has_no_capacity():
    assert capacity_hours(resource(active=False), MONDAY, []) == 0


def test_resource_hired_on_the_weeks_saturday_or_sunday_counts_that_week():
    assert capacity_hours(resource(hired_on=date(2026, 3, 7)), MONDAY, []) == D("40.00")
    assert capacity_hours(resource(hired_on=date(2026, 3, 8)), MONDAY, []) == D("40.00")


def test_resource_hired_the_monday_after_does_not_count_that_week():
    assert capacity_hours(resource(hired_on=date(2026, 3, 9)), MONDAY, []) == 0


def test_time_off_crossing_a_week_boundary_counts_only_its_weekdays_inside_the_week():
    # Thursday 5 March .. Tuesday 10 March: Thu, Fri in this week; Mon, Tue in the next.
    leave = [off(1, date(2026, 3, 5), date(2026, 3, 10), per_day="7.50")]
    assert capacity_hours(resource(), MONDAY, leave) == D("25.00")
    assert capacity_hours(resource(), date(2026, 3, 9), leave) == D("25.00")


def test_only_approved_time_off_of_that_resource_reduces_capacity():
    leave = [off(1, MONDAY, MONDAY, status="requested"), off(2, MONDAY, MONDAY, status="cancelled"),
             off(3, MONDAY, MONDAY, resource_id=8)]
    assert capacity_hours(resource(), MONDAY, leave) == D("40.00")


def test_capacity_never_falls_below_zero():
    leave = [off(1, MONDAY, date(2026, 3, 6), per_day="8.00"), off(2, MONDAY, MONDAY, per_day="4.00")]
    assert capacity_hours(resource(), MONDAY, leave) == 0


def test_assignment_spanning_part_of_a_week_counts_its_weekdays_over_five():
    part = [assignment(1, date(2026, 3, 4), date(2026, 3, 20), per_week="20.00")]  # Wed..Fri here
    assert assigned_hours(7, MONDAY, part) == D("12")


def test_confirmed_and_tentative_assignments_are_kept_apart_and_cancelled_ignored():
    rows = [assignment(1, MONDAY, date(2026, 3, 6), "10.00", "confirmed"),
            assignment(2, MONDAY, date(2026, 3, 6), "15.00", "tentative"),
            assignment(3, MONDAY, date(2026, 3, 6), "99.00", "cancelled")]
    assert assigned_hours(7, MONDAY, rows) == D("10.00")
    assert tentative_hours(7, MONDAY, rows) == D("15.00")


def test_available_hours_goes_negative_when_overbooked():
    assert available_hours(D("32.00"), D("40.00")) == D("-8.00")


def test_worked_hours_count_submitted_and_approved_entries_dated_in_the_week_including_weekend():
    rows = [entry(1, MONDAY, "8.00"), entry(2, date(2026, 3, 8), "2.00"),  # Sunday counts
            entry(3, date(2026, 3, 3), "4.00", billable=False, status="submitted"),
            entry(4, date(2026, 3, 3), "5.00", status="draft"), entry(5, date(2026, 3, 3), "6.00", status="rejected"),
            entry(6, date(2026, 3, 9), "7.00"), entry(7, MONDAY, "3.00", resource_id=8)]
    assert billable_hours(7, MONDAY, rows) == D("10.00")
    assert total_hours(7, MONDAY, rows) == D("14.00")


def test_utilization_is_billable_over_capacity_and_null_without_capacity():
    assert utilization(D("30.00"), D("40.00")) == D("0.75")
    assert utilization(D("30.00"), D("0")) is None
