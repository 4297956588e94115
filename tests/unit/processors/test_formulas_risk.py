"""The four risk rules at their thresholds (≥ raises, < does not; 'below' is strict where written)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D
from fractions import Fraction as F

from processors.formulas import (
    BillingMilestone,
    ChangeOrder,
    Opportunity,
    OpportunityLine,
    TimeEntry,
    burn_rule,
    margin_rule,
    non_billable_rule,
    raised_risks,
    rate_leakage_rule,
)


def entry(eid, hours, billable=True, bill_rate="100.00", role="consultant", status="approved", cost_rate="50.00"):
    return TimeEntry(eid, 7, "PRJ-1", role, date(2026, 3, 2), D(hours), billable, D(bill_rate), D(cost_rate), status)


def line(lid, role, bill_rate, hours="10.00", est_cost_rate="50.00"):
    return OpportunityLine(lid, 1, role, "aws", D(hours), D(bill_rate), D(est_cost_rate),
                           date(2026, 3, 2), date(2026, 3, 6))


def test_burn_raises_at_eighty_percent_of_hours_while_revenue_under_sixty_percent():
    assert burn_rule(F(8, 10), D("599.99"), D("1000.00"))
    assert not burn_rule(F(8, 10), D("600.00"), D("1000.00"))
    assert not burn_rule(F(7999, 10000), D("0"), D("1000.00"))


def test_burn_is_not_raised_with_a_zero_denominator():
    assert not burn_rule(None, D("0"), D("1000.00"))
    assert not burn_rule(F(9, 10), D("0"), D("0"))


def test_margin_raises_ten_points_below_plan_once_ten_percent_is_delivered():
    assert margin_rule(F(4, 10), F(5, 10), D("100.00"), D("1000.00"))
    assert not margin_rule(F(4001, 10000), F(5, 10), D("100.00"), D("1000.00"))
    assert not margin_rule(F(0), F(5, 10), D("99.99"), D("1000.00"))
    assert not margin_rule(None, F(5, 10), D("0"), D("1000.00"))


def test_non_billable_raises_at_twenty_percent_of_approved_hours():
    assert non_billable_rule([entry(1, "80.00"), entry(2, "20.00", billable=False)])
    assert not non_billable_rule([entry(1, "80.01"), entry(2, "19.99", billable=False)])
    assert not non_billable_rule([entry(1, "80.00"), entry(2, "20.00", billable=False, status="submitted")])
    assert not non_billable_rule([])


def test_rate_leakage_compares_with_the_lowest_sold_rate_for_the_role():
    lines = [line(1, "consultant", "100.00"), line(2, "consultant", "90.00")]
    assert not rate_leakage_rule([entry(1, "1.00", bill_rate="90.00")], lines)
    assert rate_leakage_rule([entry(1, "1.00", bill_rate="89.99")], lines)
    assert not rate_leakage_rule([entry(1, "1.00", bill_rate="1.00", role="architect")], lines)
    assert not rate_leakage_rule([entry(1, "1.00", bill_rate="1.00", status="submitted")], lines)


def test_raised_risks_evaluates_all_rules_from_rows():
    o = Opportunity(1, "closed_won", D("100"), D("1000.00"), "security", "time_and_materials", D("10.00"))
    lines = [line(1, "consultant", "100.00", hours="10.00", est_cost_rate="50.00")]  # planned margin 0.5
    # 8 hours approved of 10 (burn 0.8); earned 5 × 100 = 500 < 600; non-billable 3/8 ≥ 20 %;
    # cost 8 × 80 = 640 on delivered 500: margin −0.28, far below plan; one entry under the sold rate.
    entries = [entry(1, "4.00", cost_rate="80.00"), entry(2, "1.00", bill_rate="95.00", cost_rate="80.00"),
               entry(3, "3.00", billable=False, cost_rate="80.00")]
    ms = [BillingMilestone(1, "PRJ-1", D("1.00"), "completed")]
    assert raised_risks(o, lines, [], entries, [], ms) == {"burn", "margin", "non_billable", "rate_leakage"}
    bigger = [ChangeOrder(1, 1, D("0"), D("10.00"), "approved")]  # contract hours 20: burn 0.4
    assert "burn" not in raised_risks(o, lines, bigger, entries, [], ms)
