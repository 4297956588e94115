"""The rollup's weekly demands of a line equal DOMAIN.md's formula for every week, whatever weekday the line's
span starts and ends on (processors/rollup.py ``_line_demands`` counts a whole week's five weekdays without
looking, and computes each distinct week's value once)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from processors.capacity import weeks_between
from processors.formulas.rows import Opportunity, OpportunityLine
from processors.formulas.skill_week import demand_weight, line_demand_in_week
from processors.rollup import _line_demands

MONDAY = date(2026, 3, 2)
SPANS = [(MONDAY + timedelta(days=s), MONDAY + timedelta(days=s + length))
         for s in range(7) for length in (-1, 0, 1, 3, 4, 5, 6, 7, 12, 30, 181)]


def _opportunity(stage: str, probability: str) -> Opportunity:
    return Opportunity(7, stage, Decimal(probability), Decimal("1000.00"), "cloud", "fixed_fee", Decimal("100.00"),
                       None, None)


@pytest.mark.parametrize("start,end", SPANS)
@pytest.mark.parametrize("stage,probability", [("closed_won", "100"), ("negotiation", "65")])
def test_each_week_of_a_line_demands_what_the_formula_gives(start: date, end: date, stage: str, probability: str):
    o = _opportunity(stage, probability)
    line = OpportunityLine(3, 7, "consultant", "aws", Decimal("37.50"), Decimal("150.00"), Decimal("90.00"),
                           start, end)
    weight = demand_weight(o)
    value = {"skill": "aws", "start": start.isoformat(), "end": end.isoformat(), "hours": str(line.hours),
             "weight": f"{weight.numerator}/{weight.denominator}"}
    demands = _line_demands(value)
    assert [week for week, _ in demands] == weeks_between(start, end)
    for week, demand in demands:
        assert isinstance(demand, Fraction)
        assert demand == line_demand_in_week(o, line, week), week
    if demands and weight:
        whole_span = sum(demand for _, demand in demands)
        assert whole_span in (weight * Fraction(line.hours), 0)  # the line's hours, spread without loss
