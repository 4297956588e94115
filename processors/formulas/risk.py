"""Project risk rules (DOMAIN.md section 3), evaluated on exact values.

Each rule is a pure predicate over the project's figures; :func:`raised_risks`
evaluates all four from rows. A rule with a null input (a zero denominator)
is not raised. Thresholds are inclusive where DOMAIN.md says ≥ and strict
where it says below / <.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction

from .project import (
    APPROVED,
    billable_expenses,
    contract_hours,
    contract_value,
    cost,
    delivered_value,
    earned_revenue,
    expense_cost,
    hours_burn_fraction,
    margin_fraction,
    planned_margin_fraction,
    time_cost,
)
from .rounding import exact_ratio, wide
from .rows import BillingMilestone, ChangeOrder, Expense, Opportunity, OpportunityLine, TimeEntry

BURN = "burn"
MARGIN = "margin"
NON_BILLABLE = "non_billable"
RATE_LEAKAGE = "rate_leakage"
RULES = (BURN, MARGIN, NON_BILLABLE, RATE_LEAKAGE)

# Decimal thresholds compare exactly with a Fraction (the pure formulas) and with the stages' 60-digit quotients.
BURN_HOURS_THRESHOLD = Decimal("0.8")
BURN_REVENUE_THRESHOLD = Decimal("0.6")
MARGIN_SHORTFALL = Decimal("0.10")
MARGIN_DELIVERED_SHARE = Decimal("0.10")
NON_BILLABLE_THRESHOLD = Decimal("0.20")


def burn_rule(hours_burn: Fraction | Decimal | None, earned_revenue_: Decimal, contract_value_: Decimal) -> bool:
    """hours_burn ≥ 0.8 while earned_revenue / contract_value < 0.6."""
    if hours_burn is None or contract_value_ == 0 or hours_burn < BURN_HOURS_THRESHOLD:
        return False
    # earned / contract < 0.6, without dividing: exact for amounts of either sign
    bound = wide("multiply", BURN_REVENUE_THRESHOLD, contract_value_)
    return earned_revenue_ < bound if contract_value_ > 0 else earned_revenue_ > bound


def margin_rule(
    margin: Fraction | Decimal | None, planned_margin: Fraction | Decimal | None, delivered_value_: Decimal,
    contract_value_: Decimal
) -> bool:
    """margin_pct at least 10 points below planned_margin_pct, once delivered_value ≥ 10 % of contract_value."""
    if margin is None or planned_margin is None:
        return False
    if delivered_value_ < wide("multiply", MARGIN_DELIVERED_SHARE, contract_value_):
        return False
    if isinstance(planned_margin, Decimal) and isinstance(margin, Decimal):
        return wide("subtract", planned_margin, margin) >= MARGIN_SHORTFALL
    return planned_margin - margin >= MARGIN_SHORTFALL


def non_billable_rule(entries: Iterable[TimeEntry]) -> bool:
    """Non-billable hours / all hours, over approved entries, ≥ 20 %; not raised without approved hours."""
    approved = [e for e in entries if e.status == APPROVED]
    share = exact_ratio(sum((e.hours for e in approved if not e.billable), Decimal(0)),
                        sum((e.hours for e in approved), Decimal(0)))
    return share is not None and share >= NON_BILLABLE_THRESHOLD


def lowest_sold_rates(lines: Iterable[OpportunityLine]) -> dict[str, Decimal]:
    """The lowest bill_rate of the opportunity's lines, per role."""
    rates: dict[str, Decimal] = {}
    for ln in lines:
        rates[ln.role] = min(rates.get(ln.role, ln.bill_rate), ln.bill_rate)
    return rates


def rate_leakage_rule(entries: Iterable[TimeEntry], lines: Iterable[OpportunityLine]) -> bool:
    """Any approved entry (billable or not) whose bill_rate is below the lowest sold bill_rate for its role.

    Entries of a role no line of the opportunity sells do not count.
    """
    sold = lowest_sold_rates(lines)
    return any(e.status == APPROVED and e.role in sold and e.bill_rate < sold[e.role] for e in entries)


def raised_risks(
    o: Opportunity,
    lines: Iterable[OpportunityLine],
    change_orders: Iterable[ChangeOrder],
    entries: Iterable[TimeEntry],
    expenses: Iterable[Expense],
    milestones: Iterable[BillingMilestone],
) -> frozenset[str]:
    """The rules raised for o's project, given the rows of o and of its project."""
    lines, change_orders, entries = list(lines), list(change_orders), list(entries)
    expenses, milestones = list(expenses), list(milestones)
    cv = contract_value(o, change_orders)
    revenue = earned_revenue(o.contract_type, entries, milestones)
    delivered = delivered_value(revenue, billable_expenses(expenses))
    margin = margin_fraction(delivered, cost(time_cost(entries), expense_cost(expenses)))
    raised = set()
    if burn_rule(hours_burn_fraction(entries, contract_hours(o, change_orders)), revenue, cv):
        raised.add(BURN)
    if margin_rule(margin, planned_margin_fraction(o, lines), delivered, cv):
        raised.add(MARGIN)
    if non_billable_rule(entries):
        raised.add(NON_BILLABLE)
    if rate_leakage_rule(entries, lines):
        raised.add(RATE_LEAKAGE)
    return frozenset(raised)
