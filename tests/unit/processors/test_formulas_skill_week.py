"""Demand, supply, booked and gap hours per (skill, week)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from processors.formulas import (
    Assignment,
    Opportunity,
    OpportunityLine,
    Resource,
    TimeOff,
    booked_hours,
    demand_hours,
    gap_hours,
    store,
    supply_hours,
)

MONDAY = date(2026, 3, 2)
NEXT_MONDAY = date(2026, 3, 9)


def opp(oid, stage, prob):
    return Opportunity(oid, stage, D(prob), D("1000.00"), "security", "time_and_materials", D("100.00"))


def line(lid, oid, hours, start, end, skill="aws"):
    return OpportunityLine(lid, oid, "consultant", skill, D(hours), D("100"), D("50"), start, end)


def test_demand_of_a_won_line_crossing_weeks_is_spread_over_its_weekdays():
    # Thursday 5 .. Wednesday 11 March: 2 weekdays in the first week, 3 in the next.
    opps = {1: opp(1, "closed_won", "100")}
    lines = [line(1, 1, "50.00", date(2026, 3, 5), date(2026, 3, 11))]
    assert demand_hours("aws", MONDAY, opps, lines) == D("20")
    assert demand_hours("aws", NEXT_MONDAY, opps, lines) == D("30")
    assert demand_hours("azure", MONDAY, opps, lines) == 0


def test_open_demand_is_weighted_by_probability_from_fifty_up():
    opps = {1: opp(1, "proposal", "50"), 2: opp(2, "negotiation", "49.99"), 3: opp(3, "closed_lost", "100"),
            4: opp(4, "negotiation", "75")}
    week = (MONDAY, date(2026, 3, 6))
    lines = [line(1, 1, "10.00", *week), line(2, 2, "10.00", *week), line(3, 3, "10.00", *week),
             line(4, 4, "8.00", *week)]
    assert demand_hours("aws", MONDAY, opps, lines) == D("11")  # 0.5 × 10 + 0.75 × 8


def test_demand_thirds_add_up_exactly_before_storage():
    # Three one-weekday-in-this-week lines of three weekdays each: 3 × (1/3 × 1.00) = 1.00 exactly.
    opps = {1: opp(1, "closed_won", "100")}
    lines = [line(i, 1, "1.00", date(2026, 3, 6), date(2026, 3, 10)) for i in range(3)]  # Fri, Mon, Tue
    assert store(demand_hours("aws", MONDAY, opps, lines), 2) == D("1.00")
    assert demand_hours("aws", MONDAY, opps, lines) == 1


def test_a_line_without_weekdays_or_opportunity_carries_no_demand():
    opps = {1: opp(1, "closed_won", "100")}
    lines = [line(1, 1, "8.00", date(2026, 3, 7), date(2026, 3, 8)), line(2, 99, "8.00", MONDAY, MONDAY)]
    assert demand_hours("aws", MONDAY, opps, lines) == 0


def test_supply_booked_and_gap_follow_primary_skill():
    resources = [Resource(1, "aws", D("40.00"), True, date(2025, 1, 1)),
                 Resource(2, "aws", D("32.00"), True, date(2025, 1, 1)),
                 Resource(3, "azure", D("40.00"), True, date(2025, 1, 1))]
    leave = [TimeOff(1, 2, MONDAY, MONDAY, D("8.00"), "approved")]
    assigns = [Assignment(1, 1, MONDAY, date(2026, 3, 6), D("30.00"), "confirmed"),
               Assignment(2, 2, MONDAY, date(2026, 3, 6), D("10.00"), "tentative"),
               Assignment(3, 3, MONDAY, date(2026, 3, 6), D("40.00"), "confirmed")]
    supply = supply_hours("aws", MONDAY, resources, leave)
    booked = booked_hours("aws", MONDAY, resources, assigns)
    assert supply == D("64.00")
    assert booked == D("40.00")
    assert gap_hours(D("50"), supply, booked) == D("26.00")
