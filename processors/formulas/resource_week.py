"""Per (resource, week) figures of DOMAIN.md section 2 (reporting.resource_week).

``week_start`` is always a Monday (ISO week); the week runs to its Sunday and
its weekdays are Monday to Friday. Functions are given the rows of any
resources and keep those of ``resource_id`` only. Results are exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date as date_type
from decimal import Decimal

from .rounding import ZERO, ratio
from .rows import Assignment, Resource, TimeEntry, TimeOff
from .weeks import in_week, week_end_of, weekdays_in

APPROVED = "approved"
CONFIRMED = "confirmed"
TENTATIVE = "tentative"
WORKED_STATUSES = frozenset({"submitted", "approved"})


def is_employed_in_week(resource: Resource, week_start: date_type) -> bool:
    """Active and hired on or before the week's Sunday (a resource without hired_on counts as hired)."""
    if not resource.active:
        return False
    return resource.hired_on is None or resource.hired_on <= week_end_of(week_start)


def time_off_hours(resource_id: int, week_start: date_type, time_off: Iterable[TimeOff]) -> Decimal:
    """Σ hours_per_day × weekdays inside the week of the resource's approved time off."""
    return sum(
        (t.hours_per_day * weekdays_in(t.start_date, t.end_date, week_start)
         for t in time_off if t.resource_id == resource_id and t.status == APPROVED),
        ZERO,
    )


def capacity_hours(resource: Resource, week_start: date_type, time_off: Iterable[TimeOff]) -> Decimal:
    """weekly_capacity_hours of an active resource hired on or before the week's Sunday,
    less hours_per_day × weekdays of approved time off inside the week; never below 0.

    Requested and cancelled time off do not reduce capacity.
    """
    if not is_employed_in_week(resource, week_start):
        return ZERO
    left = resource.weekly_capacity_hours - time_off_hours(resource.resource_id, week_start, time_off)
    return max(left, ZERO)


def _assignment_hours(resource_id: int, week_start: date_type, assignments: Iterable[Assignment], status: str) -> Decimal:
    return sum(
        (a.hours_per_week * weekdays_in(a.start_date, a.end_date, week_start) / 5
         for a in assignments if a.resource_id == resource_id and a.status == status),
        ZERO,
    )


def assigned_hours(resource_id: int, week_start: date_type, assignments: Iterable[Assignment]) -> Decimal:
    """Σ over confirmed assignments of hours_per_week × (weekdays of the assignment inside the week) / 5."""
    return _assignment_hours(resource_id, week_start, assignments, CONFIRMED)


def tentative_hours(resource_id: int, week_start: date_type, assignments: Iterable[Assignment]) -> Decimal:
    """As :func:`assigned_hours`, over tentative assignments."""
    return _assignment_hours(resource_id, week_start, assignments, TENTATIVE)


def available_hours(capacity_hours_: Decimal, assigned_hours_: Decimal) -> Decimal:
    """capacity_hours − assigned_hours; negative means overbooked and stays negative."""
    return capacity_hours_ - assigned_hours_


def _worked(resource_id: int, week_start: date_type, entries: Iterable[TimeEntry]) -> list[TimeEntry]:
    return [e for e in entries
            if e.resource_id == resource_id and e.status in WORKED_STATUSES and in_week(e.work_date, week_start)]


def billable_hours(resource_id: int, week_start: date_type, entries: Iterable[TimeEntry]) -> Decimal:
    """Σ hours of the resource's submitted or approved billable entries dated Monday..Sunday of the week."""
    return sum((e.hours for e in _worked(resource_id, week_start, entries) if e.billable), ZERO)


def total_hours(resource_id: int, week_start: date_type, entries: Iterable[TimeEntry]) -> Decimal:
    """Σ hours of the resource's submitted or approved entries dated Monday..Sunday of the week."""
    return sum((e.hours for e in _worked(resource_id, week_start, entries)), ZERO)


def utilization(billable_hours_: Decimal, capacity_hours_: Decimal) -> Decimal | None:
    """billable_hours / capacity_hours; None when capacity is 0."""
    return ratio(billable_hours_, capacity_hours_)
