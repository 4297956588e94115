"""Project financials on small hand-computed tables."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from processors.formulas import (
    BillingEvent,
    BillingMilestone,
    ChangeOrder,
    Expense,
    Opportunity,
    OpportunityLine,
    TimeEntry,
    backlog,
    billable_expenses,
    billed,
    contract_hours,
    contract_value,
    cost,
    delivered_value,
    earned_revenue,
    earned_time,
    expense_cost,
    hours_burn,
    margin_pct,
    milestones_done,
    planned_margin_pct,
    store,
    time_cost,
    wip,
)


def opp(amount="1000.00", hours="10.00", contract_type="time_and_materials"):
    return Opportunity(1, "closed_won", D("100"), D(amount), "security", contract_type, D(hours))


def entry(eid, hours, bill_rate="100.00", cost_rate="60.00", billable=True, status="approved", day=date(2026, 3, 2)):
    return TimeEntry(eid, 7, "PRJ-1", "consultant", day, D(hours), billable, D(bill_rate), D(cost_rate), status)


def expense(xid, amount, billable=True, status="approved", day=date(2026, 3, 2)):
    return Expense(xid, "PRJ-1", day, D(amount), billable, status)


def line(lid, hours, est_cost_rate, role="consultant", bill_rate="100.00"):
    return OpportunityLine(lid, 1, role, "aws", D(hours), D(bill_rate), D(est_cost_rate),
                           date(2026, 3, 2), date(2026, 3, 27))


def test_contract_value_counts_approved_change_orders_but_not_draft_or_rejected():
    orders = [ChangeOrder(1, 1, D("200.00"), D("2.00"), "approved"),
              ChangeOrder(2, 1, D("-50.00"), D("-1.00"), "approved"),
              ChangeOrder(3, 1, D("999.00"), D("9.00"), "draft"),
              ChangeOrder(4, 1, D("888.00"), D("8.00"), "rejected")]
    assert contract_value(opp(), orders) == D("1150.00")
    assert contract_hours(opp(), orders) == D("11.00")


def test_earned_time_counts_only_approved_billable_entries():
    entries = [entry(1, "2.00"), entry(2, "3.00", status="submitted"), entry(3, "4.00", status="draft"),
               entry(4, "5.00", status="rejected"), entry(5, "1.00", billable=False)]
    assert earned_time(entries) == D("200.00")


def test_time_cost_counts_all_approved_entries_billable_or_not():
    entries = [entry(1, "2.00"), entry(2, "1.00", billable=False), entry(3, "9.00", status="submitted")]
    assert time_cost(entries) == D("180.00")


def test_sums_stay_exact_and_round_only_when_stored():
    entries = [entry(i, "0.33", bill_rate="100.01") for i in range(3)]
    value = earned_time(entries)
    assert value == D("99.0099")
    assert store(value, 2) == D("99.01")
    assert sum(store(e.hours * e.bill_rate, 2) for e in entries) == D("99.00")


def test_expenses_split_billable_from_cost():
    xs = [expense(1, "10.00"), expense(2, "5.00", billable=False), expense(3, "7.00", status="submitted"),
          expense(4, "3.00", status="rejected")]
    assert billable_expenses(xs) == D("10.00")
    assert expense_cost(xs) == D("15.00")


def test_milestones_done_counts_completed_and_invoiced_only():
    ms = [BillingMilestone(1, "PRJ-1", D("100.00"), "completed"),
          BillingMilestone(2, "PRJ-1", D("50.00"), "invoiced"),
          BillingMilestone(3, "PRJ-1", D("25.00"), "planned")]
    assert milestones_done(ms) == D("150.00")


def test_earned_revenue_follows_the_contract_type():
    entries = [entry(1, "2.00")]
    ms = [BillingMilestone(1, "PRJ-1", D("500.00"), "completed")]
    assert earned_revenue("time_and_materials", entries, ms) == D("200.00")
    assert earned_revenue("fixed_fee", entries, ms) == D("500.00")


def test_delivered_billed_wip_cost_and_margin_chain():
    dv = delivered_value(D("200.00"), D("50.00"))
    assert dv == D("250.00")
    assert billed([BillingEvent("PRJ-1-P1", "PRJ-1", "period_close", D("100.00"), period_id=1)]) == D("100.00")
    assert wip(dv, D("100.00")) == D("150.00")
    c = cost(D("120.00"), D("30.00"))
    assert c == D("150.00")
    assert margin_pct(dv, c) == D("0.4")


def test_margin_pct_is_null_when_nothing_is_delivered():
    assert margin_pct(D("0"), D("10.00")) is None
    assert store(margin_pct(D("0"), D("10.00")), 4) is None


def test_margin_pct_is_negative_when_cost_exceeds_delivered_value():
    assert margin_pct(D("100.00"), D("150.00")) == D("-0.5")


def test_negative_backlog_is_an_overrun_and_stays_negative():
    assert backlog(D("1000.00"), D("1200.50")) == D("-200.50")


def test_planned_margin_uses_lines_and_original_amount():
    lines = [line(1, "5.00", "60.00"), line(2, "2.50", "80.00")]
    assert planned_margin_pct(opp(amount="1000.00"), lines) == D("0.5")


def test_planned_margin_is_null_when_amount_is_zero():
    assert planned_margin_pct(opp(amount="0.00"), [line(1, "5.00", "60.00")]) is None


def test_hours_burn_counts_all_approved_hours_over_contract_hours():
    entries = [entry(1, "3.00"), entry(2, "1.00", billable=False), entry(3, "5.00", status="submitted")]
    assert hours_burn(entries, D("10.00")) == D("0.4")
    assert hours_burn(entries, D("0")) is None


def test_a_repeating_ratio_rounds_half_up_at_store():
    assert store(hours_burn([entry(1, "2.00")], D("3.00")), 4) == D("0.6667")
