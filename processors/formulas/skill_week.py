"""Per (skill, week) figures of DOMAIN.md section 2 (reporting.skill_week).

Demand spreads each weighted opportunity line evenly over its weekdays; the
sum is kept as an exact rational and converted once (see ``rounding``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from decimal import Decimal
from fractions import Fraction

from .resource_week import assigned_hours, capacity_hours, tentative_hours
from .rounding import ZERO, to_decimal
from .rows import CLOSED_WON, Assignment, Opportunity, OpportunityLine, Resource, TimeOff
from .weeks import weekdays_between, weekdays_in

DEMAND_PROBABILITY_FLOOR = Decimal(50)


def demand_weight(o: Opportunity) -> Fraction:
    """1 for closed_won; probability/100 for an open stage with probability ≥ 50; else 0."""
    if o.stage == CLOSED_WON:
        return Fraction(1)
    if o.is_open and o.probability >= DEMAND_PROBABILITY_FLOOR:
        return Fraction(o.probability) / 100
    return Fraction(0)


def line_demand_in_week(o: Opportunity, line: OpportunityLine, week_start: date) -> Fraction:
    """weight × line.hours × (weekdays of the line inside the week) / (weekdays of the whole line).

    A line with no weekday at all (end before start, or a weekend only) carries no demand.
    """
    whole = weekdays_between(line.start_date, line.end_date)
    if whole == 0:
        return Fraction(0)
    return demand_weight(o) * Fraction(line.hours) * weekdays_in(line.start_date, line.end_date, week_start) / whole


def demand_hours(
    skill: str, week_start: date, opportunities: Mapping[int, Opportunity], lines: Iterable[OpportunityLine]
) -> Decimal:
    """Σ over lines of that skill of :func:`line_demand_in_week`; ``opportunities`` by opportunity_id.

    Lines whose opportunity is unknown (deleted) carry no demand.
    """
    total = Fraction(0)
    for line in lines:
        o = opportunities.get(line.opportunity_id)
        if line.skill == skill and o is not None:
            total += line_demand_in_week(o, line, week_start)
    result = to_decimal(total)
    assert result is not None
    return result


def supply_hours(skill: str, week_start: date, resources: Iterable[Resource], time_off: Iterable[TimeOff]) -> Decimal:
    """Σ capacity_hours of the resources whose primary_skill is ``skill``."""
    time_off = list(time_off)
    return sum((capacity_hours(r, week_start, time_off) for r in resources if r.primary_skill == skill), ZERO)


def booked_hours(
    skill: str, week_start: date, resources: Iterable[Resource], assignments: Iterable[Assignment]
) -> Decimal:
    """Σ assigned_hours + tentative_hours of the resources whose primary_skill is ``skill``."""
    assignments = list(assignments)
    return sum(
        (assigned_hours(r.resource_id, week_start, assignments) + tentative_hours(r.resource_id, week_start, assignments)
         for r in resources if r.primary_skill == skill),
        ZERO,
    )


def gap_hours(demand_hours_: Decimal, supply_hours_: Decimal, booked_hours_: Decimal) -> Decimal:
    """demand_hours − (supply_hours − booked_hours); positive means unmet demand."""
    return demand_hours_ - (supply_hours_ - booked_hours_)
