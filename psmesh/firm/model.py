"""The firm's calendar, its status state machines, and the in-memory mirror of its rows.

Nothing here does I/O or reads the wall clock: an instant is always a simulated
day plus a time of day, in UTC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator

from psmesh.firm.exceptions import IllegalTransition

CENT = Decimal("0.01")


def money(value: Decimal | int) -> Decimal:
    """Round half away from zero to the cent, as a stored numeric(…,2) would."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# --- calendar ---------------------------------------------------------------


def is_weekday(day: date) -> bool:
    """Monday to Friday (DOMAIN.md: "weekdays")."""
    return day.isoweekday() <= 5


def week_start(day: date) -> date:
    """The Monday of the ISO week holding ``day``."""
    return day - timedelta(days=day.isoweekday() - 1)


def iso_week(day: date) -> tuple[int, int]:
    """(ISO year, ISO week number): 2027-01-01 is in week 53 of 2026."""
    year, week, _ = day.isocalendar()
    return year, week


def weekdays_between(start: date, end: date) -> int:
    """Weekdays from ``start`` to ``end``, both included; 0 when end < start."""
    if end < start:
        return 0
    days = (end - start).days + 1
    full, rest = divmod(days, 7)
    count = full * 5
    for offset in range(rest):
        if is_weekday(start + timedelta(days=full * 7 + offset)):
            count += 1
    return count


def add_weekdays(day: date, n: int) -> date:
    """The n-th weekday after ``day`` (n ≥ 0; n = 0 gives the next weekday on or after it)."""
    while not is_weekday(day):
        day += timedelta(days=1)
    while n > 0:
        day += timedelta(days=1)
        if is_weekday(day):
            n -= 1
    return day


def simulated_days(start: date, weeks: int) -> Iterator[date]:
    """Every calendar day of ``weeks`` ISO weeks, from the Monday of ``start``'s week."""
    first = week_start(start)
    for offset in range(weeks * 7):
        yield first + timedelta(days=offset)


def instant(day: date, hour: int, minute: int = 0) -> datetime:
    """A simulated instant: never the wall clock, so the same seed gives the same rows."""
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


# --- state machines ---------------------------------------------------------


class Stage(enum.StrEnum):
    PROSPECTING = "prospecting"
    QUALIFICATION = "qualification"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    CLOSED_WON = "closed_won"
    CLOSED_LOST = "closed_lost"

    @property
    def closed(self) -> bool:
        return self in (Stage.CLOSED_WON, Stage.CLOSED_LOST)


#: Forward only; any open stage may be lost; only negotiation may be won;
#: closed stages are final (a won opportunity is never reopened, DOMAIN.md §2).
STAGE_TRANSITIONS: dict[Stage, frozenset[Stage]] = {
    Stage.PROSPECTING: frozenset({Stage.QUALIFICATION, Stage.CLOSED_LOST}),
    Stage.QUALIFICATION: frozenset({Stage.PROPOSAL, Stage.CLOSED_LOST}),
    Stage.PROPOSAL: frozenset({Stage.NEGOTIATION, Stage.CLOSED_LOST}),
    Stage.NEGOTIATION: frozenset({Stage.CLOSED_WON, Stage.CLOSED_LOST}),
    Stage.CLOSED_WON: frozenset(),
    Stage.CLOSED_LOST: frozenset(),
}

STAGE_PROBABILITY: dict[Stage, Decimal] = {
    Stage.PROSPECTING: Decimal("10.00"),
    Stage.QUALIFICATION: Decimal("25.00"),
    Stage.PROPOSAL: Decimal("50.00"),
    Stage.NEGOTIATION: Decimal("75.00"),
    Stage.CLOSED_WON: Decimal("100.00"),
    Stage.CLOSED_LOST: Decimal("0.00"),
}


def next_open_stage(stage: Stage) -> Stage:
    """The stage a deal that progresses moves to (closed_won after negotiation)."""
    return next(s for s in STAGE_TRANSITIONS[stage] if s is not Stage.CLOSED_LOST)


class TimeStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"


#: A rejected entry is final; the consultant corrects it with a new entry.
TIME_TRANSITIONS: dict[TimeStatus, frozenset[TimeStatus]] = {
    TimeStatus.DRAFT: frozenset({TimeStatus.SUBMITTED}),
    TimeStatus.SUBMITTED: frozenset({TimeStatus.APPROVED, TimeStatus.REJECTED}),
    TimeStatus.APPROVED: frozenset(),
    TimeStatus.REJECTED: frozenset(),
}

#: Statuses of the other tables the firm changes, as (from → allowed to).
SIMPLE_TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    "change_orders": {"draft": frozenset({"approved", "rejected"})},
    "assignments": {"tentative": frozenset({"confirmed", "cancelled"}), "confirmed": frozenset({"cancelled"})},
    "time_off": {"requested": frozenset({"approved", "cancelled"}), "approved": frozenset({"cancelled"})},
    "expenses": {"submitted": frozenset({"approved", "rejected"})},
    "billing_milestones": {"planned": frozenset({"completed"})},
    "billing_periods": {"open": frozenset({"closed"})},
    "invoices": {"draft": frozenset({"issued", "void"}), "issued": frozenset({"paid"})},
}


def check_stage(current: str, new: str) -> Stage:
    """The new stage, or :class:`IllegalTransition` when the pipeline does not allow it."""
    cur, nxt = Stage(current), Stage(new)
    if nxt not in STAGE_TRANSITIONS[cur]:
        raise IllegalTransition(f"opportunity stage {cur} cannot move to {nxt}")
    return nxt


def check_time_status(current: str, new: str) -> TimeStatus:
    cur, nxt = TimeStatus(current), TimeStatus(new)
    if nxt not in TIME_TRANSITIONS[cur]:
        raise IllegalTransition(f"time entry status {cur} cannot move to {nxt}")
    return nxt


def check_status(table: str, current: str, new: str) -> str:
    if new not in SIMPLE_TRANSITIONS[table].get(current, frozenset()):
        raise IllegalTransition(f"{table} status {current} cannot move to {new}")
    return new


# --- row changes and the mirror ---------------------------------------------

#: Primary key column of every table the firm writes, by (database, table).
PRIMARY_KEYS: dict[tuple[str, str], str] = {
    ("crm", "accounts"): "account_id",
    ("crm", "opportunities"): "opportunity_id",
    ("crm", "opportunity_lines"): "line_id",
    ("crm", "opportunity_milestones"): "milestone_id",
    ("crm", "change_orders"): "change_order_id",
    ("psa", "resources"): "resource_id",
    ("psa", "assignments"): "assignment_id",
    ("psa", "time_off"): "time_off_id",
    ("timeexp", "time_entries"): "entry_id",
    ("timeexp", "expenses"): "expense_id",
    ("erp", "billing_milestones"): "milestone_id",
    ("erp", "billing_periods"): "period_id",
    ("erp", "invoices"): "invoice_id",
}

#: Tables the simulator owns (inserts into, and truncates on a fresh start).
#: erp.billing_milestones is the mesh's: the firm only completes milestones there.
OWNED_TABLES: tuple[tuple[str, str], ...] = tuple(k for k in PRIMARY_KEYS if k != ("erp", "billing_milestones"))


@dataclass(frozen=True, slots=True)
class RowChange:
    """One insert, or one update by primary key, of one row of one source table."""

    source: str
    table: str
    op: str  # "insert" | "update"
    key: Any
    values: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


@dataclass
class Mirror:
    """The firm's own rows as it last wrote them, so actors need not read them back.

    Rows are plain dicts keyed by primary key, in insertion order (which is
    deterministic), never iterated as sets.
    """

    rows: dict[tuple[str, str], dict[Any, dict[str, Any]]] = field(
        default_factory=lambda: {k: {} for k in PRIMARY_KEYS}
    )
    next_ids: dict[tuple[str, str], int] = field(default_factory=dict)

    def new_id(self, source: str, table: str) -> int:
        n = self.next_ids.get((source, table), 1)
        self.next_ids[(source, table)] = n + 1
        return n

    def table(self, source: str, table: str) -> dict[Any, dict[str, Any]]:
        return self.rows[(source, table)]

    def apply(self, change: RowChange) -> None:
        rows = self.rows[(change.source, change.table)]
        if change.op == "insert":
            rows[change.key] = change.as_dict()
        else:
            rows.setdefault(change.key, {}).update(change.as_dict())


@dataclass(frozen=True)
class ErpView:
    """What the firm sees of the rows the mesh writes into erp, read at the start of a day."""

    projects: frozenset[str] = frozenset()
    #: milestone_id → (project_code, status, planned_date)
    milestones: dict[int, tuple[str, str, date]] = field(default_factory=dict)
    #: billing_event_id → (project_code, amount, currency, created_at)
    billing_events: dict[str, tuple[str, Decimal, str, datetime]] = field(default_factory=dict)
