"""Source rows as they travel between the processors' stages, and back into formula rows.

The router forwards only the columns a stage needs, as compact JSON with
money and hours as decimal strings (never float), dates and instants in ISO
8601. JSON is written and read with orjson: the stages' mirrors and the
messages between stages are JSON, and the standard library's encoder was a
visible share of a batch's time (20 times slower on these rows; the bytes
are the same). ``parse`` turns them into the immutable rows of :mod:`processors.formulas`.
"""

from __future__ import annotations

import orjson
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable

from processors.exceptions import BadChangeEvent
from processors.formulas import (
    Assignment,
    BillingEvent,
    BillingMilestone,
    BillingPeriod,
    ChangeOrder,
    Expense,
    Opportunity,
    OpportunityLine,
    Resource,
    TimeEntry,
    TimeOff,
)
from processors.formulas.project import FIXED_FEE, TIME_AND_MATERIALS
from processors.formulas.rounding import ZERO

#: kind → (source topic, primary key column, columns forwarded)
KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "account": ("crm.public.accounts", "account_id", ("account_id", "region")),
    "opportunity": ("crm.public.opportunities", "opportunity_id", (
        "opportunity_id", "account_id", "name", "stage", "probability", "amount", "currency", "service_line",
        "contract_type", "estimated_hours", "target_start_date", "target_end_date", "expected_close_date",
        "closed_at")),
    "line": ("crm.public.opportunity_lines", "line_id", (
        "line_id", "opportunity_id", "role", "skill", "hours", "bill_rate", "est_cost_rate", "start_date",
        "end_date")),
    "opp_milestone": ("crm.public.opportunity_milestones", "milestone_id", (
        "milestone_id", "opportunity_id", "name", "amount", "planned_date")),
    "change_order": ("crm.public.change_orders", "change_order_id", (
        "change_order_id", "opportunity_id", "amount_delta", "hours_delta", "status")),
    "resource": ("psa.public.resources", "resource_id", (
        "resource_id", "primary_skill", "weekly_capacity_hours", "active", "hired_on")),
    "assignment": ("psa.public.assignments", "assignment_id", (
        "assignment_id", "resource_id", "start_date", "end_date", "hours_per_week", "status")),
    "time_off": ("psa.public.time_off", "time_off_id", (
        "time_off_id", "resource_id", "start_date", "end_date", "hours_per_day", "status")),
    "entry": ("timeexp.public.time_entries", "entry_id", (
        "entry_id", "resource_id", "project_code", "role", "work_date", "hours", "billable", "bill_rate",
        "cost_rate", "status")),
    "expense": ("timeexp.public.expenses", "expense_id", (
        "expense_id", "project_code", "expense_date", "amount", "billable", "status")),
    "billing_milestone": ("erp.public.billing_milestones", "milestone_id", (
        "milestone_id", "project_code", "amount", "status")),
    "billing_event": ("erp.public.billing_events", "billing_event_id", (
        "billing_event_id", "project_code", "trigger_type", "amount", "period_id", "milestone_id")),
    "period": ("erp.public.billing_periods", "period_id", ("period_id", "start_date", "end_date", "status")),
}
KIND_OF_TOPIC = {topic: kind for kind, (topic, _, _) in KINDS.items()}
SOURCE_TOPICS = tuple(KIND_OF_TOPIC)


def _default(value: Any) -> str:
    if isinstance(value, (Decimal, date, datetime)):
        return value.isoformat() if not isinstance(value, Decimal) else str(value)
    raise TypeError(f"cannot forward a {type(value).__name__}")


def dumps(obj: Any) -> bytes:
    """``obj`` as JSON; dict keys that are not strings written as ``json.dumps`` writes them.

    orjson is asked to take such keys only when a dict has one: checking every key of every dict cost up to
    twice as much per row (0.54 against 0.29 µs for a time entry) and the rows and messages have none."""
    try:
        return orjson.dumps(obj, default=_default)
    except orjson.JSONEncodeError:
        return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes) -> Any:
    return orjson.loads(data)


#: kind → its forwarded columns, as a set
_FORWARDED = {kind: frozenset(columns) for kind, (_, _, columns) in KINDS.items()}


#: kind → the date columns the stages count weeks and spread hours with. DOMAIN.md section 1 marks none of them null.
WEEK_DATES = {"line": ("start_date", "end_date"), "assignment": ("start_date", "end_date"),
              "time_off": ("start_date", "end_date"), "entry": ("work_date",), "expense": ("expense_date",),
              "period": ("start_date", "end_date"), "resource": ("hired_on",)}
#: Dates after this one have no whole ISO week left in the calendar (9999-12-31 is a Friday): a typing error.
LAST_DATE = date.max - timedelta(days=7)
_LAST_ISO = LAST_DATE.isoformat()


#: The contract types DOMAIN.md section 1 allows: the billing formulas know no other.
CONTRACT_TYPES = frozenset({TIME_AND_MATERIALS, FIXED_FEE})


def check_row(kind: str, row: dict[str, Any]) -> None:
    """A row the stages cannot fold is bad input (dead-lettered by the router, before any stage holds it): a week
    date that is null (a resource's hire date may be null: hired all along) or past LAST_DATE, or an opportunity
    whose contract_type is not one of DOMAIN.md's (every period close of its partition would fail on it)."""
    if kind == "opportunity" and row.get("contract_type") not in CONTRACT_TYPES:
        raise BadChangeEvent(f"{KINDS[kind][0]}: contract_type {row.get('contract_type')!r} is none of "
                             f"{', '.join(sorted(CONTRACT_TYPES))} (DOMAIN.md section 1)")
    columns = WEEK_DATES.get(kind)
    if columns is None:
        return
    for column in columns:
        value = row.get(column)
        if value is None:
            if kind == "resource":
                continue
            raise BadChangeEvent(f"{KINDS[kind][0]}: {column} is null; the views count weeks with it (DOMAIN.md "
                                 "section 1 has it required)")
        if value > LAST_DATE if isinstance(value, date) else str(value) > _LAST_ISO:  # an ISO text, as forwarded
            raise BadChangeEvent(f"{KINDS[kind][0]}: {column} {value} is past {_LAST_ISO}, "
                                 "the last date with a whole ISO week in the calendar")


def pick(kind: str, after: dict[str, Any]) -> dict[str, Any]:
    """The forwarded columns of a change event's ``after`` image; a missing column is a bad event.

    An image of exactly those columns is returned as it is: the router's reader reads no others
    (processors/avroread.py), and copying it cost a microsecond per change event."""
    if after.keys() == _FORWARDED[kind]:
        return after
    _, _, columns = KINDS[kind]
    try:
        return {c: after[c] for c in columns}
    except KeyError as exc:
        raise BadChangeEvent(f"{KINDS[kind][0]}: column {exc.args[0]} missing from the change event") from exc


@lru_cache(maxsize=4096, typed=True)
def _decimal(text: str) -> Decimal:
    """Remembered per string: hours and rates repeat row after row, and a lookup costs a fifth of
    ``Decimal(str)`` (a Decimal is immutable, so rows can share one)."""
    return Decimal(text)


def _d(v: str | None) -> Decimal:
    return _decimal(v) if v is not None else ZERO


def _date(v: str | None) -> date | None:
    return date.fromisoformat(v) if v else None


def _ts(v: str | None) -> datetime | None:
    return datetime.fromisoformat(v) if v else None


PARSERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "opportunity": lambda r: Opportunity(
        r["opportunity_id"], r["stage"], _d(r["probability"]), _d(r["amount"]), r["service_line"],
        r["contract_type"], _d(r["estimated_hours"]), _date(r["expected_close_date"]), _ts(r["closed_at"])),
    "line": lambda r: OpportunityLine(
        r["line_id"], r["opportunity_id"], r["role"], r["skill"], _d(r["hours"]), _d(r["bill_rate"]),
        _d(r["est_cost_rate"]), _date(r["start_date"]), _date(r["end_date"])),
    "change_order": lambda r: ChangeOrder(
        r["change_order_id"], r["opportunity_id"], _d(r["amount_delta"]), _d(r["hours_delta"]), r["status"]),
    "entry": lambda r: TimeEntry(
        r["entry_id"], r["resource_id"], r["project_code"], r["role"], _date(r["work_date"]), _d(r["hours"]),
        bool(r["billable"]), _d(r["bill_rate"]), _d(r["cost_rate"]), r["status"]),
    "expense": lambda r: Expense(
        r["expense_id"], r["project_code"], _date(r["expense_date"]), _d(r["amount"]), bool(r["billable"]),
        r["status"]),
    "billing_milestone": lambda r: BillingMilestone(r["milestone_id"], r["project_code"], _d(r["amount"]), r["status"]),
    "billing_event": lambda r: BillingEvent(
        r["billing_event_id"], r["project_code"], r["trigger_type"], _d(r["amount"]), r["period_id"],
        r["milestone_id"]),
    "period": lambda r: BillingPeriod(r["period_id"], _date(r["start_date"]), _date(r["end_date"]), r["status"]),
    "resource": lambda r: Resource(
        r["resource_id"], r["primary_skill"], _d(r["weekly_capacity_hours"]), bool(r["active"]),
        _date(r["hired_on"])),
    "assignment": lambda r: Assignment(
        r["assignment_id"], r["resource_id"], _date(r["start_date"]), _date(r["end_date"]), _d(r["hours_per_week"]),
        r["status"]),
    "time_off": lambda r: TimeOff(
        r["time_off_id"], r["resource_id"], _date(r["start_date"]), _date(r["end_date"]), _d(r["hours_per_day"]),
        r["status"]),
}


def parse(kind: str, row: dict[str, Any]) -> Any:
    """The formula row of a forwarded row (kinds without a formula row stay dicts)."""
    parser = PARSERS.get(kind)
    return row if parser is None else parser(row)
