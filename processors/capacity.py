"""The resource stage: everything keyed by resource_id.

One :class:`ResourceState` folds a resource's PSA rows (the resource, its
assignments and time off) and its time entries. It keeps the
``resource_week`` rows (DOMAIN.md sections 2 and 4): one per week from the
earlier of the hire week and the first activity week through the last
activity week, where activity is an assignment, a time-off request or a time
entry of any status. It also sends the rollup stage the resource's supply
profile (skill, capacity, time off and bookings per week, activity range),
from which skill_week is computed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from decimal import Decimal
from typing import Any

from processors.effects import Effects
from processors.formulas import (
    HOURS_SCALE,
    Assignment,
    Resource,
    TimeEntry,
    TimeOff,
    assigned_hours,
    capacity_hours,
    store,
    tentative_hours,
    week_start_of,
)
from processors.formulas.rounding import quotient, store_ratio
from processors.formulas.resource_week import WORKED_STATUSES, time_off_hours

ZERO = Decimal(0)
WEEK = timedelta(days=7)


def weeks_between(first: date, last: date) -> list[date]:
    """The Mondays from the week of ``first`` through the week of ``last``."""
    out, week, end = [], week_start_of(first), week_start_of(last)
    while week <= end:
        out.append(week)
        week += WEEK
    return out


def _weeks_outside(span: tuple[date, date] | None, other: tuple[date, date] | None) -> list[date]:
    """The weeks of ``span`` (first and last week) that ``other`` does not cover, in order; both are ranges of
    whole weeks, so this is what lies beyond ``other``'s two ends (the range of a resource that gains a week of
    activity grows by that week, and listing both ranges' weeks to compare them was most of such a change)."""
    if span is None:
        return []
    first, last = span
    if other is None:
        return weeks_between(first, last)
    return weeks_between(first, min(last, other[0] - WEEK)) + weeks_between(max(first, other[1] + WEEK), last)


def _span(row: Assignment | TimeOff | None) -> set[date]:
    if row is None or row.start_date is None or row.end_date is None:
        return set()
    return set(weeks_between(row.start_date, row.end_date))


@dataclass
class ResourceState:
    resource_id: int
    resource: Resource | None = None
    assignments: dict[int, Assignment] = field(default_factory=dict)
    time_off: dict[int, TimeOff] = field(default_factory=dict)
    entries: dict[int, TimeEntry] = field(default_factory=dict)
    entry_weeks: Counter = field(default_factory=Counter)
    billable: dict[date, Decimal] = field(default_factory=dict)
    total: dict[date, Decimal] = field(default_factory=dict)
    sent_profile: Any = None
    #: activity_range() as last computed; dropped by any change that can move it
    _range: Any = field(default=False, repr=False, compare=False)
    #: week → what its row takes from the resource, its assignments and its time off (_plan), as last computed;
    #: emptied by any change of those. A time entry changes none of it, and most rows are published for one.
    _plans: dict[date, tuple[Decimal, dict[str, Decimal]]] = field(default_factory=dict, repr=False, compare=False)

    def apply(self, kind: str, key: int, row: Any) -> set[date]:
        """Fold one row; returns the weeks whose figures it may change (empty set = all weeks)."""
        if kind != "entry":
            self._range = False
            self._plans.clear()
        if kind == "resource":
            self.resource = row
            return set()
        if kind == "entry":
            previous = self.entries.pop(key, None)
            if row is not None:
                self.entries[key] = row
            touched = set()
            for e, step in ((previous, -1), (row, 1)):
                if e is None:
                    continue
                week = week_start_of(e.work_date)
                touched.add(week)
                count = self.entry_weeks[week] + step
                if count == 0:
                    del self.entry_weeks[week]
                    self._range = False
                else:
                    if count == 1:
                        self._range = False
                    self.entry_weeks[week] = count
                if e.status in WORKED_STATUSES:
                    self.total[week] = self.total.get(week, ZERO) + step * e.hours
                    if e.billable:
                        self.billable[week] = self.billable.get(week, ZERO) + step * e.hours
            return touched
        rows = self.assignments if kind == "assignment" else self.time_off
        previous = rows.pop(key, None)
        if row is not None:
            rows[key] = row
        return _span(previous) | _span(row)

    def activity_range(self) -> tuple[date, date] | None:
        """First and last week of resource_week rows; None without activity or without the resource itself."""
        if self._range is False:
            self._range = self._activity_range()
        return self._range

    def _activity_range(self) -> tuple[date, date] | None:
        if self.resource is None:
            return None  # a resource unknown to (or deleted from) psa has no rows
        weeks = set(self.entry_weeks)
        for row in (*self.assignments.values(), *self.time_off.values()):
            span = _span(row)
            if span:
                weeks.add(min(span))
                weeks.add(max(span))
        if not weeks:
            return None
        first, last = min(weeks), max(weeks)
        if self.resource is not None and self.resource.hired_on is not None:
            first = min(first, week_start_of(self.resource.hired_on))
        return first, last

    def week_row(self, week: date) -> dict[str, Any]:
        """The stored ``resource_week`` row of one week."""
        plan = self._plans.get(week)
        if plan is None:
            plan = self._plans[week] = self._plan(week)
        capacity, planned = plan
        billable = self.billable.get(week, ZERO)
        return {
            "resource_id": self.resource_id, "week_start": week, **planned,
            "billable_hours": store(billable, HOURS_SCALE),
            "total_hours": store(self.total.get(week, ZERO), HOURS_SCALE),
            # formulas.utilization as a 60-digit quotient rather than a Fraction, a third of this row's time:
            # stored to 4 places it is the same (processors/formulas/rounding.py; the tests compare the two)
            "utilization": store_ratio(quotient(billable, capacity)),
        }

    def _plan(self, week: date) -> tuple[Decimal, dict[str, Decimal]]:
        """A week's capacity, and its row's columns that the resource, its assignments and its time off make."""
        if self.resource is not None:
            capacity = capacity_hours(self.resource, week, self.time_off.values())
        else:
            capacity = ZERO  # activity seen before the resource itself: no capacity yet
        assignments = self.assignments.values()
        assigned = assigned_hours(self.resource_id, week, assignments)
        tentative = tentative_hours(self.resource_id, week, assignments)
        return capacity, {
            "capacity_hours": store(capacity, HOURS_SCALE), "assigned_hours": store(assigned, HOURS_SCALE),
            "tentative_hours": store(tentative, HOURS_SCALE),
            "available_hours": store(capacity - assigned, HOURS_SCALE),
        }

    def profile(self) -> dict[str, Any] | None:
        """What skill_week needs of this resource: exact, as strings."""
        span = self.activity_range()
        r = self.resource
        if r is None and span is None:
            return None
        off: dict[str, str] = {}
        booked: dict[str, str] = {}
        for t in self.time_off.values():
            for week in _span(t):
                hours = time_off_hours(self.resource_id, week, self.time_off.values())
                if hours:
                    off[week.isoformat()] = str(hours)
        for a in self.assignments.values():
            for week in _span(a):
                hours = assigned_hours(self.resource_id, week, self.assignments.values()) + tentative_hours(
                    self.resource_id, week, self.assignments.values())
                if hours:
                    booked[week.isoformat()] = str(hours)
        return {
            "skill": r.primary_skill if r else None,
            "capacity": str(r.weekly_capacity_hours) if r else "0",
            "active": bool(r.active) if r else False,
            "hired_on": r.hired_on.isoformat() if r and r.hired_on else None,
            "off": dict(sorted(off.items())), "booked": dict(sorted(booked.items())),
            "first": span[0].isoformat() if span else None, "last": span[1].isoformat() if span else None,
        }


class ResourceStage:
    """The resource states of one partition."""

    def __init__(self) -> None:
        self.resources: dict[int, ResourceState] = {}

    def state(self, resource_id: int) -> ResourceState:
        st = self.resources.get(resource_id)
        if st is None:
            st = self.resources[resource_id] = ResourceState(resource_id)
        return st

    def load(self, resource_id: int, kind: str, key: int, row: Any) -> None:
        self.state(resource_id).apply(kind, key, row)

    def on_row(self, resource_id: int, kind: str, key: int, row: Any) -> Effects:
        st = self.state(resource_id)
        before = st.activity_range()
        touched = st.apply(kind, key, row)
        after = st.activity_range()
        fx = Effects()
        if touched and kind != "resource" and before == after:
            # the common case, an entry within the resource's weeks: only its weeks change
            if after is not None:
                first, last = after
                for week in sorted(touched):
                    if first <= week <= last:
                        fx.views.append(("resource_week", (resource_id, week), partial(st.week_row, week)))
            if kind != "entry":
                self._profile(st, fx)
            return fx
        for week in _weeks_outside(before, after):
            fx.views.append(("resource_week", (resource_id, week), None))
        if not after:
            redo = []
        elif not touched or kind == "resource":
            redo = weeks_between(*after)
        else:  # the weeks the row touched, and those the range gained
            first, last = after
            redo = sorted({week for week in touched if first <= week <= last}.union(_weeks_outside(after, before)))
        for week in redo:
            fx.views.append(("resource_week", (resource_id, week), partial(st.week_row, week)))
        if kind != "entry" or before != after:
            self._profile(st, fx)
        return fx

    def refresh_all(self) -> Effects:
        """Every resource_week row and rollup contribution of the partition, after a rebuild."""
        fx = Effects()
        for st in self.resources.values():
            self._resend(st, fx)
        return fx

    def refresh(self, resource_id: int) -> Effects | None:
        """What :meth:`refresh_all` gives for one resource (``psmesh processors republish --resource``); None
        when the partition holds no such resource."""
        st = self.resources.get(resource_id)
        if st is None:
            return None
        fx = Effects()
        self._resend(st, fx)
        return fx

    def _resend(self, st: ResourceState, fx: Effects) -> None:
        span = st.activity_range()
        for week in weeks_between(*span) if span else ():
            fx.views.append(("resource_week", (st.resource_id, week), partial(st.week_row, week)))
        st.sent_profile = None
        self._profile(st, fx, force=True)

    def view_rows(self):
        """The resource_week rows of the partition as its state gives them (queries after a rebuild)."""
        for st in self.resources.values():
            span = st.activity_range()
            for week in weeks_between(*span) if span else ():
                yield "resource_week", (st.resource_id, week), st.week_row(week)

    def _profile(self, st: ResourceState, fx: Effects, force: bool = False) -> None:
        profile = st.profile()
        if profile != st.sent_profile or force:
            st.sent_profile = profile
            fx.rollup.append((f"res|{st.resource_id}", profile))
