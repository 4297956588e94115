"""Section-3 rules: project request fields, resource-demand state and billing triggers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from processors.formulas import (
    BillingEvent,
    BillingMilestone,
    BillingPeriod,
    Expense,
    Opportunity,
    TimeEntry,
    billed,
    billing_frequency,
    cost_center,
    demand_change,
    milestone_billing,
    period_close_billing,
    project_code,
    resource_demand_state,
    revenue_method,
)

P1 = BillingPeriod(1, date(2026, 3, 1), date(2026, 3, 31), "closed")
P2 = BillingPeriod(2, date(2026, 4, 1), date(2026, 4, 30), "closed")
P3 = BillingPeriod(3, date(2026, 5, 1), date(2026, 5, 31), "closed")


def entry(eid, day, hours, status="approved", billable=True):
    return TimeEntry(eid, 7, "PRJ-1", "consultant", day, D(hours), billable, D("100.00"), D("50.00"), status)


def expense(xid, day, amount, billable=True, status="approved"):
    return Expense(xid, "PRJ-1", day, D(amount), billable, status)


def opp(stage, prob):
    return Opportunity(1, stage, D(prob), D("1000.00"), "security", "fixed_fee", D("10.00"))


def as_event(trigger):
    return BillingEvent(trigger.billing_event_id, trigger.project_code, trigger.trigger_type, trigger.amount,
                        trigger.period_id, trigger.milestone_id)


def test_project_request_fields_follow_the_contract_type_and_region():
    assert project_code(42) == "PRJ-42"
    assert (billing_frequency("time_and_materials"), revenue_method("time_and_materials")) == ("period", "as_delivered")
    assert (billing_frequency("fixed_fee"), revenue_method("fixed_fee")) == ("milestone", "milestone")
    assert cost_center("EMEA", "cloud_migration") == "CC-EMEA-cloud_migration"
    with pytest.raises(ValueError):
        billing_frequency("retainer")


def test_resource_demand_is_soft_from_fifty_hard_when_won_and_cancelled_when_it_falls_away():
    assert resource_demand_state(opp("proposal", "49.99")) is None
    assert resource_demand_state(opp("proposal", "50")) == "soft"
    assert resource_demand_state(opp("closed_won", "100"), "soft") == "hard"
    assert resource_demand_state(opp("negotiation", "40"), "soft") == "cancelled"
    assert resource_demand_state(opp("closed_lost", "0"), "soft") == "cancelled"
    assert resource_demand_state(None, "soft") == "cancelled"
    assert resource_demand_state(opp("closed_lost", "0")) is None
    assert resource_demand_state(opp("proposal", "60"), "cancelled") == "soft"


def test_resource_demand_is_emitted_only_on_change():
    assert demand_change("soft", "soft") is None
    assert demand_change(None, "soft") == "soft"
    assert demand_change("soft", "hard") == "hard"


def test_completed_milestone_bills_its_amount_once_with_a_deterministic_id():
    done = BillingMilestone(5, "PRJ-1", D("300.00"), "completed")
    trigger = milestone_billing(done, "planned")
    assert (trigger.billing_event_id, trigger.trigger_type, trigger.amount, trigger.milestone_id) == (
        "PRJ-1-M5", "milestone_completed", D("300.00"), 5)
    assert milestone_billing(done, "completed") is None
    assert milestone_billing(BillingMilestone(5, "PRJ-1", D("300.00"), "invoiced"), "completed") is None
    assert milestone_billing(BillingMilestone(5, "PRJ-1", D("300.00"), "planned"), None) is None


def test_period_close_never_bills_the_same_value_twice_across_closes_with_a_late_approval():
    late = entry(2, date(2026, 3, 20), "3.00", status="submitted")
    entries = [entry(1, date(2026, 3, 10), "2.00"), late, entry(3, date(2026, 4, 5), "1.00"),
               entry(4, date(2026, 3, 11), "9.00", billable=False)]
    expenses = [expense(1, date(2026, 3, 15), "50.00"), expense(2, date(2026, 3, 16), "20.00", billable=False)]

    first = period_close_billing("PRJ-1", "time_and_materials", P1, entries, expenses, [])
    assert (first.billing_event_id, first.amount, first.period_id) == ("PRJ-1-P1", D("250.00"), 1)
    events = [as_event(first)]
    assert period_close_billing("PRJ-1", "time_and_materials", P1, entries, expenses, events) == first  # replay

    entries[1] = late._replace(status="approved")  # approved after P1 closed
    second = period_close_billing("PRJ-1", "time_and_materials", P2, entries, expenses, events)
    assert (second.billing_event_id, second.amount) == ("PRJ-1-P2", D("400.00"))  # 300 late + 100 April
    events.append(as_event(second))
    assert period_close_billing("PRJ-1", "time_and_materials", P2, entries, expenses, events) == second
    assert period_close_billing("PRJ-1", "time_and_materials", P3, entries, expenses, events) is None
    assert billed(events) == D("650.00")  # = delivered value: 600 time + 50 billable expenses


def test_value_billed_then_moved_away_or_unapproved_is_credited_at_the_next_close():
    entries = [entry(1, date(2026, 3, 10), "2.00"), entry(2, date(2026, 3, 11), "3.00")]
    expenses = [expense(1, date(2026, 3, 15), "50.00")]
    first = period_close_billing("PRJ-1", "time_and_materials", P1, entries, expenses, [])
    assert first.amount == D("550.00")
    events = [as_event(first)]

    # entry 1 moved to another project, entry 2 sent back to draft, the expense deleted
    entries = [entry(1, date(2026, 3, 10), "2.00")._replace(project_code="PRJ-2"),
               entry(2, date(2026, 3, 11), "3.00", status="draft")]
    credit = period_close_billing("PRJ-1", "time_and_materials", P2, entries, [], events)
    assert (credit.billing_event_id, credit.trigger_type, credit.amount) == ("PRJ-1-P2", "period_close", D("-550.00"))
    events.append(as_event(credit))
    assert billed(events) == D("0.00")  # = what PRJ-1 delivered now
    assert period_close_billing("PRJ-1", "time_and_materials", P3, entries, [], events) is None


def test_a_period_closed_after_a_later_one_bills_through_the_later_end_and_takes_nothing_back():
    entries = [entry(1, date(2026, 3, 10), "2.00"), entry(2, date(2026, 4, 10), "3.00")]
    april = period_close_billing("PRJ-1", "time_and_materials", P2, entries, [], [])
    assert april.amount == D("500.00")
    events = [as_event(april)]
    # March closes late: its end alone would bill 200 − 500 = −300, which nothing was taken away to justify
    assert period_close_billing("PRJ-1", "time_and_materials", P1, entries, [], events,
                                billed_through=P2.end_date) is None
    entries.append(entry(3, date(2026, 4, 20), "1.00"))  # approved after April closed, dated in April
    late = period_close_billing("PRJ-1", "time_and_materials", P1, entries, [], events, billed_through=P2.end_date)
    assert late.amount == D("100.00")


def test_a_time_and_materials_close_takes_its_milestones_as_billed_time():
    """Its revenue is its time: a milestone billed is an advance the closes net, crediting it back if it is more
    than the time delivered, so that the project's billing events end at its delivered value."""
    entries = [entry(1, date(2026, 3, 10), "15.00")]  # 1,500.00 of time
    advance = BillingEvent("PRJ-1-M5", "PRJ-1", "milestone_completed", D("1000.00"), milestone_id=5)
    first = period_close_billing("PRJ-1", "time_and_materials", P1, entries, [], [advance])
    assert first.amount == D("500.00")
    assert billed([advance, as_event(first)]) == D("1500.00")
    big = BillingEvent("PRJ-1-M6", "PRJ-1", "milestone_completed", D("2000.00"), milestone_id=6)
    assert period_close_billing("PRJ-1", "time_and_materials", P1, entries, [], [big]).amount == D("-500.00")


def test_fixed_fee_period_close_bills_billable_expenses_only_beside_milestone_events():
    entries = [entry(1, date(2026, 3, 10), "2.00")]
    expenses = [expense(1, date(2026, 3, 15), "50.00"), expense(2, date(2026, 4, 2), "70.00")]
    milestone_event = BillingEvent("PRJ-1-M5", "PRJ-1", "milestone_completed", D("300.00"), milestone_id=5)
    trigger = period_close_billing("PRJ-1", "fixed_fee", P1, entries, expenses, [milestone_event])
    assert trigger.amount == D("50.00")


def test_period_close_bills_nothing_when_nothing_is_delivered():
    assert period_close_billing("PRJ-1", "time_and_materials", P1, [], [], []) is None


def test_a_billed_milestone_is_adjusted_to_its_amount_while_done_and_to_nothing_once_not():
    from processors.formulas.billing import BillingMilestone, milestone_adjustment

    code = "PRJ-4"
    assert milestone_adjustment(BillingMilestone(1, code, D("900.00"), "planned"), D("900.00")) == D("-900.00")
    assert milestone_adjustment(None, D("900.00")) == D("-900.00")  # deleted
    assert milestone_adjustment(BillingMilestone(1, code, D("950.00"), "invoiced"), D("900.00")) == D("50.00")
    assert milestone_adjustment(BillingMilestone(1, code, D("900.00"), "completed"), D("900.00")) == 0


@pytest.mark.parametrize("event_id, parsed", [
    ("PRJ-4-M12", ("milestone_completed", 12)), ("PRJ-4-M12-3", ("milestone_completed", 12)),
    ("PRJ-4-P7", ("period_close", 7)),
])
def test_billing_event_ids_read_back_as_their_trigger_type_and_source_id(event_id, parsed):
    from processors.formulas.billing import parse_trigger_id

    assert parse_trigger_id(event_id) == parsed


def test_an_id_that_is_no_billing_trigger_is_refused():
    from processors.formulas.billing import parse_trigger_id

    with pytest.raises(ValueError, match="not a billing trigger id"):
        parse_trigger_id("PRJ-4-X1")
