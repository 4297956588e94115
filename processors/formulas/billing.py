"""Billing triggers (DOMAIN.md section 3) with their deterministic ids.

Ids are '<project_code>-M<milestone_id>' and '<project_code>-P<period_id>', so
re-deriving a trigger (a replay, a restart) yields the same event and an
upsert on billing_event_id keeps it once. A milestone billed and then changed
(moved back from completed, deleted, its amount changed) is adjusted by
'<project_code>-M<milestone_id>-<n>', numbered 1, 2, ... in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from .project import APPROVED, FIXED_FEE, TIME_AND_MATERIALS
from .rounding import MONEY_SCALE, ZERO, store
from .rows import BillingEvent, BillingMilestone, BillingPeriod, Expense, TimeEntry

MILESTONE_COMPLETED = "milestone_completed"
PERIOD_CLOSE = "period_close"


@dataclass(frozen=True)
class BillingTrigger:
    """A billing event to write (erp.billing_events without currency and created_at)."""

    billing_event_id: str
    project_code: str
    trigger_type: str
    amount: Decimal
    period_id: int | None = None
    milestone_id: int | None = None


def milestone_event_id(project_code: str, milestone_id: int) -> str:
    return f"{project_code}-M{milestone_id}"


def period_event_id(project_code: str, period_id: int) -> str:
    return f"{project_code}-P{period_id}"


def milestone_adjustment_id(project_code: str, milestone_id: int, n: int) -> str:
    return f"{milestone_event_id(project_code, milestone_id)}-{n}"


_TRIGGER_ID = re.compile(r"-(?:M(?P<milestone>\d+)(?:-\d+)?|P(?P<period>\d+))$")


def parse_trigger_id(event_id: str) -> tuple[str, int]:
    """(trigger type, milestone or period id) of a billing event id of this module; ValueError for another."""
    found = _TRIGGER_ID.search(event_id)
    if found is None:
        raise ValueError(f"not a billing trigger id: {event_id!r}")
    if found["milestone"] is not None:
        return MILESTONE_COMPLETED, int(found["milestone"])
    return PERIOD_CLOSE, int(found["period"])


def milestone_adjustment(milestone: BillingMilestone | None, billed: Decimal) -> Decimal:
    """What a milestone the mesh billed needs billed now: its amount while it is 'completed' or 'invoiced' (0 once it
    is planned again or deleted, ``milestone`` None) less what its events billed so far. DOMAIN.md section 2 counts
    such milestones in milestones_done, so after this the project's events still sum to its delivered value
    (section 5). Negative: a credit."""
    target = milestone.amount if milestone is not None and milestone.status in ("completed", "invoiced") else ZERO
    return target - billed


def milestone_billing(milestone: BillingMilestone, previous_status: str | None) -> BillingTrigger | None:
    """Bills the milestone's amount when it moves to 'completed'.

    A milestone first seen as 'completed' (previous_status None) bills too; one
    that was already 'completed' or 'invoiced' does not bill again, nor does a
    zero amount. On a time_and_materials project the closes then bill only
    the time beyond it (:func:`close_counts`).
    """
    if milestone.status != "completed" or previous_status in ("completed", "invoiced"):
        return None
    if milestone.amount == 0:
        return None
    return BillingTrigger(
        milestone_event_id(milestone.project_code, milestone.milestone_id), milestone.project_code,
        MILESTONE_COMPLETED, milestone.amount, milestone_id=milestone.milestone_id,
    )


def close_counts(contract_type: str) -> frozenset[str]:
    """The trigger types a period close subtracts as already billed.

    fixed_fee: period closes only (a close bills expenses; milestones bill the
    revenue). time_and_materials: milestones too. Its revenue is its time,
    which the closes bill, so a milestone's amount is an advance on that time
    and is not billed a second time by the next close. If the milestone is
    larger than the time delivered, the close credits the difference. Either
    way the project's billing events sum to its delivered value after a final
    close (DOMAIN.md section 5).
    """
    return frozenset({PERIOD_CLOSE}) if contract_type == FIXED_FEE else frozenset({PERIOD_CLOSE, MILESTONE_COMPLETED})


def period_billable_value(
    contract_type: str, period_end: date, entries: Iterable[TimeEntry], expenses: Iterable[Expense]
) -> Decimal:
    """Value a period close bills for, dated on or before ``period_end``, cumulative since the start.

    time_and_materials: approved billable time (hours × bill_rate) + approved
    billable expenses; fixed_fee: approved billable expenses only (its revenue
    is billed by milestones).
    """
    value = sum((x.amount for x in expenses
                 if x.status == APPROVED and x.billable and x.expense_date <= period_end), ZERO)
    if contract_type == TIME_AND_MATERIALS:
        value += sum((e.hours * e.bill_rate for e in entries
                      if e.status == APPROVED and e.billable and e.work_date <= period_end), ZERO)
    elif contract_type != FIXED_FEE:
        raise ValueError(f"unknown contract_type {contract_type!r}")
    return value


def period_close_billing(
    project_code: str,
    contract_type: str,
    period: BillingPeriod,
    entries: Iterable[TimeEntry],
    expenses: Iterable[Expense],
    events: Iterable[BillingEvent],
    billed_through: date | None = None,
) -> BillingTrigger | None:
    """What closing ``period`` bills for ``project_code``: value dated on or before its end_date not yet billed.

    Rows of other projects are ignored.

    The amount is :func:`period_billable_value` rounded to the cent (a billing
    event is money, numeric(14,2)) less the project's events already billed
    of the types :func:`close_counts` names, other than this period's own
    (left out, so deriving again gives the same amount). A late approval of work
    dated in an earlier period is thus caught by the next close, and nothing
    is billed twice.

    A negative amount is a credit: value a close billed that is no longer
    delivered (its time moved to another project, deleted or no longer
    approved) is given back at the next close, so that once a period
    covering every date has closed, the project's period-close events sum to
    its billable value (DOMAIN.md section 5). Nothing (None) when the amount
    is zero.

    ``billed_through`` is the latest date the project's earlier period-close
    events billed through. A period closed after a later one (or after a
    later one was reopened or deleted) bills through that date instead of its
    own end, so that it takes back nothing the later close billed for being
    dated after its own end; what it bills then may be dated up to that date.
    """
    own_id = period_event_id(project_code, period.period_id)
    counted = close_counts(contract_type)
    already = sum((b.amount for b in events
                   if b.project_code == project_code and b.trigger_type in counted
                   and b.billing_event_id != own_id), ZERO)
    entries = [e for e in entries if e.project_code == project_code]
    expenses = [x for x in expenses if x.project_code == project_code]
    through = period.end_date if billed_through is None else max(period.end_date, billed_through)
    amount = store(period_billable_value(contract_type, through, entries, expenses), MONEY_SCALE) - already
    if amount == 0:
        return None
    return BillingTrigger(own_id, project_code, PERIOD_CLOSE, amount, period_id=period.period_id)
