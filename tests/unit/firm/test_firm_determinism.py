"""The same seed gives the same row changes; the actors keep the firm's rules."""

from collections import Counter
from decimal import Decimal

from psmesh.firm.model import STAGE_TRANSITIONS, Stage
from psmesh.firm.params import FirmParams, preset
from psmesh.firm.simulator import simulate


def _changes(seed, open_loop=True):
    return [(day, change) for day, changes in simulate(preset("small"), seed, open_loop=open_loop) for change in changes]


def test_same_seed_gives_identical_changes_across_runs():
    first, second = _changes(42), _changes(42)
    assert first and first == second


def test_another_seed_gives_another_firm():
    assert _changes(42) != _changes(43)


def test_no_changes_on_weekends():
    assert all(day.isoweekday() <= 5 for day, _ in _changes(5))


def test_opportunities_move_only_by_allowed_transitions():
    stage: dict[int, Stage] = {}
    for _, c in _changes(7):
        if c.table != "opportunities":
            continue
        new = Stage(c.as_dict()["stage"])
        if c.op == "update":
            assert new in STAGE_TRANSITIONS[stage[c.key]]
        stage[c.key] = new
    assert Stage.CLOSED_WON in stage.values()


def test_money_is_decimal_with_cents_never_float():
    money_columns = {"amount", "bill_rate", "cost_rate", "est_cost_rate", "amount_delta", "hours", "written_off"}
    for _, c in _changes(11):
        for column, value in c.values:
            assert not isinstance(value, float), (c.table, column)
            if column in money_columns and value is not None:
                assert isinstance(value, Decimal) and value.as_tuple().exponent == -2, (c.table, column, value)


def test_open_loop_books_time_only_to_won_deals_and_closed_loop_waits_for_erp():
    won = {c.key for _, c in _changes(3) if c.table == "opportunities" and c.as_dict().get("stage") == "closed_won"}
    codes = {c.as_dict()["project_code"] for _, c in _changes(3) if c.table == "time_entries" and c.op == "insert"}
    assert codes and codes <= {f"PRJ-{o}" for o in won}
    counts = Counter(c.table for _, c in _changes(3, open_loop=False))
    assert counts["time_entries"] == 0 and counts["invoices"] == 0


def test_presets_have_the_sizes_the_issue_asks_for():
    small, load = preset("small"), preset("load")
    assert (small.resources, small.accounts, small.weeks) == (12, 6, 10)
    assert (load.resources, load.accounts, load.weeks) == (200, 60, 26)
    assert isinstance(FirmParams().rate_card["analyst"].bill, Decimal)


def test_the_firm_starts_with_a_book_of_business_and_keeps_its_people_busy():
    firm = [(day, c) for day, changes in simulate(preset("small"), 4, open_loop=True) for c in changes]
    first = firm[0][0]
    opened = [c.as_dict() for day, c in firm if day == first and c.table == "opportunities"]
    assert {o["stage"] for o in opened} == {"prospecting", "qualification", "proposal", "negotiation", "closed_won"}
    assert all(o["closed_at"].date() < first for o in opened if o["stage"] == "closed_won")
    assert any(c.table == "time_entries" for day, c in firm if day == first)


def test_some_time_goes_out_below_the_sold_rate_and_some_projects_overrun():
    changes = [c for _, c in _changes(4)]
    sold = {}
    for c in changes:
        if c.table == "opportunity_lines" and c.op == "insert":
            line = c.as_dict()
            sold[(line["opportunity_id"], line["role"])] = line["bill_rate"]
    entries = [c.as_dict() for c in changes if c.table == "time_entries" and c.op == "insert"]
    below = [e for e in entries if e["bill_rate"] < sold[(int(e["project_code"][4:]), e["role"])]]
    assert below and len(below) < len(entries) / 2
