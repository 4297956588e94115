"""Project financials (DOMAIN.md section 2) for opportunity o and its project p.

Every function takes the rows *of* o or p (the caller selects them by
opportunity_id / project_code) and returns an exact ``Decimal``: no rounding
happens here; :func:`processors.formulas.rounding.store` rounds when a value
is written. Ratios are None when their denominator is zero.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

from .rounding import ZERO, exact_ratio, to_decimal
from .rows import (
    BillingEvent,
    BillingMilestone,
    ChangeOrder,
    Expense,
    Opportunity,
    OpportunityLine,
    TimeEntry,
)

APPROVED = "approved"
TIME_AND_MATERIALS = "time_and_materials"
FIXED_FEE = "fixed_fee"
DONE_MILESTONE_STATUSES = frozenset({"completed", "invoiced"})


def _approved(rows: Iterable[TimeEntry]) -> list[TimeEntry]:
    return [e for e in rows if e.status == APPROVED]


def contract_value(o: Opportunity, change_orders: Iterable[ChangeOrder]) -> Decimal:
    """o.amount + Σ amount_delta of o's approved change orders (draft and rejected do not count)."""
    return o.amount + sum((c.amount_delta for c in change_orders if c.status == APPROVED), ZERO)


def contract_hours(o: Opportunity, change_orders: Iterable[ChangeOrder]) -> Decimal:
    """o.estimated_hours + Σ hours_delta of o's approved change orders."""
    return o.estimated_hours + sum((c.hours_delta for c in change_orders if c.status == APPROVED), ZERO)


def earned_time(entries: Iterable[TimeEntry]) -> Decimal:
    """Σ hours × bill_rate of p's approved billable time entries."""
    return sum((e.hours * e.bill_rate for e in _approved(entries) if e.billable), ZERO)


def time_cost(entries: Iterable[TimeEntry]) -> Decimal:
    """Σ hours × cost_rate of all of p's approved time entries, billable or not."""
    return sum((e.hours * e.cost_rate for e in _approved(entries)), ZERO)


def approved_hours(entries: Iterable[TimeEntry]) -> Decimal:
    """Σ hours of p's approved time entries, billable or not."""
    return sum((e.hours for e in _approved(entries)), ZERO)


def billable_expenses(expenses: Iterable[Expense]) -> Decimal:
    """Σ amount of p's approved billable expenses."""
    return sum((x.amount for x in expenses if x.status == APPROVED and x.billable), ZERO)


def expense_cost(expenses: Iterable[Expense]) -> Decimal:
    """Σ amount of all of p's approved expenses."""
    return sum((x.amount for x in expenses if x.status == APPROVED), ZERO)


def milestones_done(milestones: Iterable[BillingMilestone]) -> Decimal:
    """Σ amount of p's billing milestones with status 'completed' or 'invoiced'."""
    return sum((m.amount for m in milestones if m.status in DONE_MILESTONE_STATUSES), ZERO)


def earned_revenue(
    contract_type: str, entries: Iterable[TimeEntry], milestones: Iterable[BillingMilestone]
) -> Decimal:
    """earned_time(p) for time_and_materials; milestones_done(p) for fixed_fee."""
    if contract_type == TIME_AND_MATERIALS:
        return earned_time(entries)
    if contract_type == FIXED_FEE:
        return milestones_done(milestones)
    raise ValueError(f"unknown contract_type {contract_type!r}")


def delivered_value(earned_revenue_: Decimal, billable_expenses_: Decimal) -> Decimal:
    """earned_revenue(p) + billable_expenses(p)."""
    return earned_revenue_ + billable_expenses_


def billed(events: Iterable[BillingEvent]) -> Decimal:
    """Σ amount of p's billing events, of either trigger type."""
    return sum((b.amount for b in events), ZERO)


def wip(delivered_value_: Decimal, billed_: Decimal) -> Decimal:
    """delivered_value(p) − billed(p)."""
    return delivered_value_ - billed_


def backlog(contract_value_: Decimal, earned_revenue_: Decimal) -> Decimal:
    """contract_value(o) − earned_revenue(p); negative is an overrun and stays negative."""
    return contract_value_ - earned_revenue_


def cost(time_cost_: Decimal, expense_cost_: Decimal) -> Decimal:
    """time_cost(p) + expense_cost(p)."""
    return time_cost_ + expense_cost_


def margin_fraction(delivered_value_: Decimal, cost_: Decimal) -> Fraction | None:
    """Exact (delivered_value − cost) / delivered_value; None when delivered_value = 0."""
    return exact_ratio(delivered_value_ - cost_, delivered_value_)


def margin_pct(delivered_value_: Decimal, cost_: Decimal) -> Decimal | None:
    """(delivered_value − cost) / delivered_value as a fraction (0.25 = 25 %); None when delivered_value = 0."""
    return to_decimal(margin_fraction(delivered_value_, cost_))


def planned_margin_fraction(o: Opportunity, lines: Iterable[OpportunityLine]) -> Fraction | None:
    """Exact 1 − Σ(line.hours × line.est_cost_rate) / o.amount; None when o.amount = 0."""
    planned_cost = exact_ratio(sum((ln.hours * ln.est_cost_rate for ln in lines), ZERO), o.amount)
    return None if planned_cost is None else 1 - planned_cost


def planned_margin_pct(o: Opportunity, lines: Iterable[OpportunityLine]) -> Decimal | None:
    """1 − Σ(line.hours × line.est_cost_rate) / o.amount (o.amount, not contract_value); None when o.amount = 0."""
    return to_decimal(planned_margin_fraction(o, lines))


def hours_burn_fraction(entries: Iterable[TimeEntry], contract_hours_: Decimal) -> Fraction | None:
    """Exact Σ hours of approved entries / contract_hours(o); None when contract_hours = 0."""
    return exact_ratio(approved_hours(entries), contract_hours_)


def hours_burn(entries: Iterable[TimeEntry], contract_hours_: Decimal) -> Decimal | None:
    """Σ hours of p's approved entries (billable or not) / contract_hours(o); None when contract_hours = 0."""
    return to_decimal(hours_burn_fraction(entries, contract_hours_))
