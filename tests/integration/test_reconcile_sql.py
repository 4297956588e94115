"""The reconciliation's SQL against the pure formulas, on the demo firm's data.

The small firm runs in open loop into scratch source databases of this test
(other tests use the real crm/psa/timeexp/erp concurrently); the test then
stands in for the mesh in erp (projects, billing milestones, billing events)
and adds a few hand-made rows for the edge cases the firm never produces.
Every view is computed twice, independently: by one SQL query per view
through postgres_fdw (psmesh.reconcile) and in Python with
processors.formulas over the same rows. The two must agree exactly.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import psycopg
import pytest

from processors import formulas as f
from processors.formulas.risk import raised_risks
from processors.formulas.weeks import week_start_of
from psmesh.config import SOURCE_DATABASES, Settings
from psmesh.firm.params import preset
from psmesh.firm.simulator import run
from psmesh.reconcile import SKILLS, Views, compare, expected_views, prepare_reconcile_database
from psmesh.sources import source_sql

pytestmark = pytest.mark.integration

SEED = 7305
WEEKS = 10
EDGE = 900_000  # ids of the hand-made rows, far above the firm's (which start at 1)
MONEY, HOURS, RATIO = f.MONEY_SCALE, f.HOURS_SCALE, f.RATIO_SCALE
WEEK = timedelta(days=7)


@contextmanager
def scratch_databases(settings: Settings) -> Iterator[tuple[dict[str, str], str]]:
    """Fresh source databases and a reconciliation database of this test; dropped at the end."""
    tag = uuid.uuid4().hex[:8]
    names = {source: f"rec_{tag}_{source}" for source in SOURCE_DATABASES}
    reconcile_db = f"rec_{tag}_reconcile"
    with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'create database "{name}"')
    try:
        for source, name in names.items():
            with psycopg.connect(settings.pg_dsn(name), autocommit=True) as conn:
                conn.execute(source_sql(source))
        yield names, reconcile_db
    finally:
        with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
            for name in (*names.values(), reconcile_db):
                conn.execute(f'drop database if exists "{name}" with (force)')


# --- standing in for the mesh, and edge cases ----------------------------------

def stand_in_for_the_mesh(settings: Settings, names: dict[str, str]) -> None:
    """erp rows the mesh would write: projects (all won deals but one), milestones with mixed statuses, billing."""
    with psycopg.connect(settings.pg_dsn(names["crm"])) as crm:
        won = crm.execute(
            "select opportunity_id, account_id, name, service_line, contract_type, currency, amount, estimated_hours"
            " from opportunities where stage = 'closed_won' order by opportunity_id").fetchall()
        milestones = crm.execute(
            "select m.milestone_id, m.opportunity_id, m.name, m.amount, m.planned_date from opportunity_milestones m"
            " join opportunities o using (opportunity_id) where o.stage = 'closed_won' order by m.milestone_id").fetchall()
    with psycopg.connect(settings.pg_dsn(names["timeexp"])) as te:
        earned = dict(te.execute(
            "select project_code, sum(hours * bill_rate) from time_entries"
            " where status = 'approved' and billable group by project_code").fetchall())
    statuses = ("completed", "invoiced", "planned")
    with psycopg.connect(settings.pg_dsn(names["erp"])) as erp:
        for oid, account, name, line, ctype, currency, amount, hours in won[1:]:  # the first has no project yet
            erp.execute(
                "insert into projects (project_code, opportunity_id, account_id, name, service_line, contract_type,"
                " currency, budget_amount, budget_hours, billing_frequency, revenue_method, cost_center, status)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'period', 'as_delivered', 'CC', 'active')",
                (f"PRJ-{oid}", oid, account, name, line, ctype, currency, amount, hours))
        for i, (mid, oid, name, amount, planned) in enumerate(milestones):
            code, status = f"PRJ-{oid}", statuses[i % 3]
            erp.execute("insert into billing_milestones values (%s, %s, %s, %s, %s, %s, null)",
                        (mid, code, name, amount, planned, status))
            if status != "planned":
                erp.execute("insert into billing_events values (%s, %s, 'milestone_completed', null, %s, %s, 'USD', now())",
                            (f"{code}-M{mid}", code, mid, amount))
        for i, (code, value) in enumerate(sorted(earned.items())):
            if i % 2 == 0:  # half the time projects billed part of their time at a period close
                erp.execute("insert into billing_events values (%s, %s, 'period_close', 1, null, %s, 'USD', now())",
                            (f"{code}-P1", code, (value / 3).quantize(Decimal("0.01"))))


def add_edge_cases(settings: Settings, names: dict[str, str], start: date) -> None:
    """Rows for what the firm does not produce: zero denominators, thresholds, risks, odd weeks."""
    monday = week_start_of(start) + 2 * WEEK
    won_at = datetime(2026, 2, 28, 22, 0, tzinfo=timezone(timedelta(hours=-5)))  # March in UTC
    opp = ("insert into opportunities (opportunity_id, account_id, name, stage, probability, amount, currency, service_line,"
           " contract_type, estimated_hours, expected_close_date, closed_at)"
           " values (%s, 1, %s, %s, %s, %s, 'USD', %s, %s, %s, %s, %s)")
    line = "insert into opportunity_lines values (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
    with psycopg.connect(settings.pg_dsn(names["crm"])) as crm:
        # Amount and hours 0: planned_margin_pct, hours_burn and margin_pct are null.
        crm.execute(opp, (EDGE + 1, "zero", "closed_won", 100, 0, "security", "time_and_materials", 0, None, won_at))
        # Fixed fee, nothing completed, hours over 80 % of a small estimate: burn; weekend-only line carries no demand.
        crm.execute(opp, (EDGE + 2, "burn", "closed_won", 100, "10000.00", "cloud_migration", "fixed_fee", "10.00", None, won_at))
        crm.execute(line, (EDGE + 1, EDGE + 2, "consultant", "aws", "7.00", "150.00", "90.00",
                           monday + timedelta(days=5), monday + timedelta(days=6)))
        # Time and materials sold with a cheap plan, delivered at a high cost: margin; plus a cheap entry: rate leakage.
        crm.execute(opp, (EDGE + 3, "margin", "closed_won", 100, "3000.00", "data_analytics", "time_and_materials",
                          "20.00", None, won_at))
        crm.execute(line, (EDGE + 2, EDGE + 3, "analyst", "gcp", "20.00", "150.00", "30.00", monday, monday + timedelta(days=9)))
        crm.execute("insert into change_orders (change_order_id, opportunity_id, amount_delta, hours_delta, status)"
                    " values (%s, %s, 1.00, 0.50, 'approved'), (%s, %s, 999.00, 99.00, 'rejected')",
                    (EDGE + 1, EDGE + 3, EDGE + 2, EDGE + 3))
        # Open, probability 55, 10 hours over 3 weekdays (Friday to Tuesday): 5.5/3 hours a weekday, not a terminating decimal.
        crm.execute(opp, (EDGE + 4, "thirds", "negotiation", "55.00", "1000.01", "security", "time_and_materials",
                          "10.00", monday + timedelta(days=20), None))
        crm.execute(line, (EDGE + 3, EDGE + 4, "analyst", "security", "10.00", "100.00", "60.00",
                           monday + timedelta(days=4), monday + timedelta(days=8)))
        # Open at 49.99: in the pipeline, no demand; and one without a close date.
        crm.execute(opp, (EDGE + 5, "unlikely", "proposal", "49.99", "777.77", "security", "fixed_fee", "5.00",
                          monday + timedelta(days=20), None))
        crm.execute(line, (EDGE + 4, EDGE + 5, "analyst", "security", "10.00", "100.00", "60.00", monday, monday))
        crm.execute(opp, (EDGE + 6, "undated", "prospecting", "90.00", "500.00", "security", "fixed_fee", "5.00", None, None))
        # Half-way points from non-terminating shares, before the firm's first week: 0.01/3 + 0.01/6 = 0.005
        # (stored 0.01), then 0.02/3 + 0.05/6 = 0.015 (stored 0.02).
        friday = week_start_of(start) - 2 * WEEK + timedelta(days=4)
        crm.execute(opp, (EDGE + 7, "halves", "closed_won", 100, "1.00", "erp_implementation", "time_and_materials",
                          "1.00", None, won_at))
        crm.execute(line, (EDGE + 5, EDGE + 7, "analyst", "sap", "0.01", "100.00", "60.00", friday, friday + timedelta(days=4)))
        crm.execute(line, (EDGE + 6, EDGE + 7, "analyst", "sap", "0.01", "100.00", "60.00", friday, friday + WEEK))
        # Ratios a numeric(7,4) cannot hold (|ratio| ≥ 1,000): planned margin 1 − 1,200/1, margin (1.00 − 1,680.70)/1.00,
        # hours burn 27.01/0.01; stored null, the rest of the row as ever.
        crm.execute(opp, (EDGE + 8, "overrun", "closed_won", 100, "1.00", "security", "time_and_materials", "0.01", None,
                          won_at))
        crm.execute(line, (EDGE + 7, EDGE + 8, "analyst", "security", "20.00", "100.00", "60.00", monday,
                           monday + timedelta(days=4)))
    with psycopg.connect(settings.pg_dsn(names["psa"])) as psa:
        resource = ("insert into resources (resource_id, name, email, role, primary_skill, region, employment_type,"
                    " cost_rate, bill_rate, weekly_capacity_hours, active, hired_on)"
                    " values (%s, %s, %s, 'analyst', %s, 'NA', 'employee', 70, 120, %s, %s, %s)")
        # Inactive: no capacity, utilization null.
        psa.execute(resource, (EDGE + 1, "gone", "gone@x", "gcp", "40.00", False, start))
        # Hired long before any activity: rows start at the hire week; approved time off beyond capacity clamps to 0.
        psa.execute(resource, (EDGE + 2, "early", "early@x", "security", "32.50", True, start - 3 * WEEK))
        # Hired after the run: supply but no resource_week rows before hire.
        psa.execute(resource, (EDGE + 3, "late", "late@x", "aws", "40.00", True, monday + 3 * WEEK))
        # No activity at all: no resource_week rows, still supply.
        psa.execute(resource, (EDGE + 4, "idle", "idle@x", "security", "40.00", True, start))
        # A capacity of 0.01 hours a week and 15.01 billable hours: utilization 1,501, stored null.
        psa.execute(resource, (EDGE + 5, "tiny", "tiny@x", "security", "0.01", True, start))
        psa.execute("insert into assignments (assignment_id, resource_id, project_code, opportunity_id, role, start_date,"
                    " end_date, hours_per_week, status) values"
                    " (%s, %s, %s, %s, 'analyst', %s, %s, 12.50, 'confirmed'),"
                    " (%s, %s, null, %s, 'analyst', %s, %s, 7.30, 'tentative'),"
                    " (%s, %s, null, %s, 'analyst', %s, %s, 40.00, 'cancelled')",
                    (EDGE + 1, EDGE + 1, f"PRJ-{EDGE + 3}", EDGE + 3, monday + timedelta(days=3), monday + timedelta(days=15),
                     EDGE + 2, EDGE + 3, EDGE + 4, monday + timedelta(days=1), monday + timedelta(days=9),
                     EDGE + 3, EDGE + 3, EDGE + 2, monday + 4 * WEEK, monday + 5 * WEEK))
        psa.execute("insert into time_off values (%s, %s, %s, %s, 9.00, 'approved'), (%s, %s, %s, %s, 8.00, 'requested')",
                    (EDGE + 1, EDGE + 2, monday - timedelta(days=2), monday + timedelta(days=4),
                     EDGE + 2, EDGE + 2, monday + WEEK, monday + WEEK))
    entry = ("insert into time_entries (entry_id, resource_id, project_code, role, work_date, hours, billable, bill_rate,"
             " cost_rate, status) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)")
    with psycopg.connect(settings.pg_dsn(names["timeexp"])) as te:
        te.execute(entry, (EDGE + 1, EDGE + 1, f"PRJ-{EDGE + 2}", "consultant", monday, "9.00", True, "150.00", "90.00", "approved"))
        te.execute(entry, (EDGE + 2, EDGE + 1, f"PRJ-{EDGE + 3}", "analyst", monday, "6.00", True, "150.00", "140.00", "approved"))
        te.execute(entry, (EDGE + 3, EDGE + 1, f"PRJ-{EDGE + 3}", "analyst", monday + timedelta(days=6), "2.00", False,
                           "149.99", "140.00", "approved"))
        te.execute(entry, (EDGE + 4, EDGE + 1, f"PRJ-{EDGE + 3}", "analyst", monday, "3.00", True, "150.00", "140.00", "submitted"))
        te.execute(entry, (EDGE + 5, EDGE + 1, f"PRJ-{EDGE + 3}", "analyst", monday, "5.00", True, "150.00", "140.00", "draft"))
        te.execute(entry, (EDGE + 6, EDGE + 5, f"PRJ-{EDGE + 8}", "analyst", monday, "0.01", True, "100.00", "70.00",
                           "approved"))
        te.execute(entry, (EDGE + 7, EDGE + 5, f"PRJ-{EDGE + 8}", "analyst", monday, "12.00", False, "100.00", "140.00",
                           "approved"))
        te.execute(entry, (EDGE + 8, EDGE + 5, f"PRJ-{EDGE + 8}", "analyst", monday + timedelta(days=1), "15.00", True,
                           "0.00", "0.00", "approved"))
        te.execute("insert into expenses (expense_id, resource_id, project_code, expense_date, category, amount, currency,"
                   " billable, status) values (%s, %s, %s, %s, 'travel', 100.01, 'USD', true, 'approved'),"
                   " (%s, %s, %s, %s, 'meals', 20.00, 'USD', false, 'approved'),"
                   " (%s, %s, %s, %s, 'travel', 500.00, 'USD', true, 'submitted')",
                   (EDGE + 1, EDGE + 1, f"PRJ-{EDGE + 3}", monday, EDGE + 2, EDGE + 1, f"PRJ-{EDGE + 3}", monday,
                    EDGE + 3, EDGE + 1, f"PRJ-{EDGE + 3}", monday))


# --- the same views from the pure formulas --------------------------------------

def fetch(settings: Settings, database: str, query: str) -> list[tuple]:
    with psycopg.connect(settings.pg_dsn(database)) as conn:
        return conn.execute(query).fetchall()


def weeks_between(first: date, last: date) -> list[date]:
    weeks, week = [], first
    while week <= last:
        weeks.append(week)
        week += WEEK
    return weeks


def covered_weeks(start: date, end: date) -> list[date]:
    return weeks_between(week_start_of(start), week_start_of(end))


def formula_views(settings: Settings, names: dict[str, str]) -> Views:
    """The six views from processors.formulas over the rows of the scratch sources."""
    crm, psa, te, erp = (names[s] for s in SOURCE_DATABASES)
    opp_rows = fetch(settings, crm, "select opportunity_id, stage, probability, amount, service_line, contract_type,"
                                    " estimated_hours, expected_close_date, closed_at, account_id, currency from opportunities")
    opportunities = {r[0]: f.Opportunity(*r[:9]) for r in opp_rows}
    extra = {r[0]: (r[9], r[10]) for r in opp_rows}
    lines = [f.OpportunityLine(*r) for r in fetch(settings, crm, "select line_id, opportunity_id, role, skill, hours, bill_rate,"
                                                                 " est_cost_rate, start_date, end_date from opportunity_lines")]
    change_orders = [f.ChangeOrder(*r) for r in fetch(settings, crm, "select change_order_id, opportunity_id, amount_delta,"
                                                                     " hours_delta, status from change_orders")]
    entries = [f.TimeEntry(*r) for r in fetch(settings, te, "select entry_id, resource_id, project_code, role, work_date, hours,"
                                                            " billable, bill_rate, cost_rate, status from time_entries")]
    expenses = [f.Expense(*r) for r in fetch(settings, te, "select expense_id, project_code, expense_date, amount, billable,"
                                                           " status from expenses")]
    milestones = [f.BillingMilestone(*r) for r in fetch(settings, erp, "select milestone_id, project_code, amount, status"
                                                                       " from billing_milestones")]
    events = [f.BillingEvent(*r) for r in fetch(settings, erp, "select billing_event_id, project_code, trigger_type, amount,"
                                                               " period_id, milestone_id from billing_events")]
    resources = [f.Resource(*r) for r in fetch(settings, psa, "select resource_id, primary_skill, weekly_capacity_hours,"
                                                              " active, hired_on from resources")]
    assignments = [f.Assignment(*r) for r in fetch(settings, psa, "select assignment_id, resource_id, start_date, end_date,"
                                                                  " hours_per_week, status from assignments")]
    time_off = [f.TimeOff(*r) for r in fetch(settings, psa, "select time_off_id, resource_id, start_date, end_date,"
                                                            " hours_per_day, status from time_off")]

    def by(rows, attr):
        grouped = defaultdict(list)
        for row in rows:
            grouped[getattr(row, attr)].append(row)
        return grouped

    lines_of, changes_of = by(lines, "opportunity_id"), by(change_orders, "opportunity_id")
    entries_of, expenses_of = by(entries, "project_code"), by(expenses, "project_code")
    milestones_of, events_of = by(milestones, "project_code"), by(events, "project_code")

    financials, risks = {}, {}
    for o in opportunities.values():
        if o.stage != "closed_won":
            continue
        code = f.project_code(o.opportunity_id)
        los, cos, ens, exs = lines_of[o.opportunity_id], changes_of[o.opportunity_id], entries_of[code], expenses_of[code]
        cv, ch = f.contract_value(o, cos), f.contract_hours(o, cos)
        revenue = f.earned_revenue(o.contract_type, ens, milestones_of[code])
        delivered = f.delivered_value(revenue, f.billable_expenses(exs))
        billed = f.billed(events_of[code])
        cost = f.cost(f.time_cost(ens), f.expense_cost(exs))
        account_id, currency = extra[o.opportunity_id]
        financials[(code,)] = {
            "opportunity_id": o.opportunity_id, "account_id": account_id, "service_line": o.service_line,
            "contract_type": o.contract_type, "currency": currency,
            "contract_value": f.store(cv, MONEY), "contract_hours": f.store(ch, HOURS),
            "earned_revenue": f.store(revenue, MONEY), "billable_expenses": f.store(f.billable_expenses(exs), MONEY),
            "delivered_value": f.store(delivered, MONEY),
            "billed": f.store(billed, MONEY),
            # wip from the stored delivered value and billed (docs/formulas.md)
            "wip": f.store(delivered, MONEY) - f.store(billed, MONEY),
            "backlog": f.store(f.backlog(cv, revenue), MONEY),
            "cost": f.store(cost, MONEY), "margin_pct": f.store_ratio(f.margin_pct(delivered, cost)),
            "planned_margin_pct": f.store_ratio(f.planned_margin_pct(o, los)),
            "hours_burn": f.store_ratio(f.hours_burn(ens, ch)),
        }
        for rule in raised_risks(o, los, cos, ens, exs, milestones_of[code]):
            risks[(code, rule)] = {}

    known = {r.resource_id for r in resources}
    activity: dict[int, set[date]] = defaultdict(set)
    for row in (*assignments, *time_off):
        activity[row.resource_id].update(covered_weeks(row.start_date, row.end_date))
    for e in entries:
        activity[e.resource_id].add(week_start_of(e.work_date))
    time_off_of, assignments_of, worked_of = by(time_off, "resource_id"), by(assignments, "resource_id"), by(entries, "resource_id")

    def week_figures(r: f.Resource, week: date) -> dict:
        rid = r.resource_id
        capacity = f.capacity_hours(r, week, time_off_of[rid])
        return {"capacity": capacity, "assigned": f.assigned_hours(rid, week, assignments_of[rid]),
                "tentative": f.tentative_hours(rid, week, assignments_of[rid])}

    resource_week = {}
    for r in resources:
        weeks = activity.get(r.resource_id)
        if not weeks:
            continue
        first = min(min(weeks), week_start_of(r.hired_on)) if r.hired_on else min(weeks)
        for week in weeks_between(first, max(weeks)):
            fig = week_figures(r, week)
            billable = f.billable_hours(r.resource_id, week, worked_of[r.resource_id])
            resource_week[(r.resource_id, week)] = {
                "capacity_hours": f.store(fig["capacity"], HOURS), "assigned_hours": f.store(fig["assigned"], HOURS),
                "tentative_hours": f.store(fig["tentative"], HOURS),
                "available_hours": f.store(f.available_hours(fig["capacity"], fig["assigned"]), HOURS),
                "billable_hours": f.store(billable, HOURS),
                "total_hours": f.store(f.total_hours(r.resource_id, week, worked_of[r.resource_id]), HOURS),
                "utilization": f.store_ratio(f.utilization(billable, fig["capacity"])),
            }
    assert {rid for rid, _ in resource_week} <= known

    spanned = {week for _, week in resource_week}
    for ln in lines:
        spanned.update(covered_weeks(ln.start_date, ln.end_date))
    lines_of_skill = by(lines, "skill")
    skill_week = {}
    for week in weeks_between(min(spanned), max(spanned)):
        for skill in SKILLS:
            demand = f.demand_hours(skill, week, opportunities, lines_of_skill[skill])
            supply = f.supply_hours(skill, week, resources, time_off)
            booked = f.booked_hours(skill, week, resources, assignments)
            skill_week[(skill, week)] = {
                "demand_hours": f.store(demand, HOURS), "supply_hours": f.store(supply, HOURS),
                "booked_hours": f.store(booked, HOURS), "gap_hours": f.store(f.gap_hours(demand, supply, booked), HOURS),
            }

    pipeline = {key: {"open_count": row.open_count, "open_amount": f.store(row.open_amount, MONEY),
                      "weighted_amount": f.store(row.weighted_amount, MONEY)}
                for key, row in f.pipeline_rows(opportunities.values()).items()}
    bookings = {key: {"won_count": row.won_count, "contract_value": f.store(row.contract_value, MONEY)}
                for key, row in f.bookings_rows(opportunities.values(), changes_of).items()}
    return {"project_financials": financials, "resource_week": resource_week, "skill_week": skill_week,
            "pipeline": pipeline, "bookings": bookings, "project_risks": risks}


# --- the test --------------------------------------------------------------------

def test_every_view_by_sql_equals_the_formulas_on_the_demo_firm(stack_settings):
    # The small firm, with more deals and people so that every rule and column sees real values.
    small = preset("small").model_copy(update={"opportunities": 40, "resources": 20, "accounts": 8})
    with scratch_databases(stack_settings) as (names, reconcile_db):
        written = run(stack_settings, small, SEED, weeks=WEEKS, open_loop=True, databases=names, fresh=True)
        assert written["timeexp.time_entries"] > 0
        stand_in_for_the_mesh(stack_settings, names)
        add_edge_cases(stack_settings, names, small.start_date)

        prepare_reconcile_database(stack_settings, names, reconcile_db)  # twice: preparing is idempotent
        by_sql = expected_views(stack_settings, names, reconcile_db)
        by_formulas = formula_views(stack_settings, names)

        assert compare(by_sql, by_formulas) == []

        financials = by_sql["project_financials"]
        assert sum(1 for row in financials.values() if row["earned_revenue"] > 0) >= 10
        assert any(row["billed"] > 0 and row["wip"] != 0 for row in financials.values())
        assert any(row["contract_type"] == "fixed_fee" and row["earned_revenue"] > 0 for row in financials.values())
        assert financials[(f"PRJ-{EDGE + 1}",)]["planned_margin_pct"] is None
        assert financials[(f"PRJ-{EDGE + 1}",)]["hours_burn"] is None
        overrun = financials[(f"PRJ-{EDGE + 8}",)]  # ratios out of numeric(7,4): null, the money exact
        assert (overrun["margin_pct"], overrun["planned_margin_pct"], overrun["hours_burn"]) == (None, None, None)
        assert (overrun["delivered_value"], overrun["cost"]) == (Decimal("1.00"), Decimal("1680.70"))
        assert all(isinstance(v, (Decimal, type(None))) for row in financials.values()
                   for k, v in row.items() if k not in ("opportunity_id", "account_id", "service_line",
                                                        "contract_type", "currency"))

        weeks = by_sql["resource_week"]
        assert sum(1 for row in weeks.values() if row["utilization"]) >= 50
        assert any(row["utilization"] is None for row in weeks.values())
        assert not any(rid == EDGE + 4 for rid, _ in weeks)
        tiny = weeks[(EDGE + 5, week_start_of(small.start_date) + 2 * WEEK)]
        assert tiny["utilization"] is None and tiny["billable_hours"] == Decimal("15.01")
        assert min(w for rid, w in weeks if rid == EDGE + 2) == week_start_of(small.start_date - 3 * WEEK)

        skills = by_sql["skill_week"]
        assert {skill for skill, _ in skills} == set(SKILLS)
        assert any(row["demand_hours"] > 0 and row["supply_hours"] > 0 for row in skills.values())
        halves = week_start_of(small.start_date) - 2 * WEEK
        assert skills[("sap", halves)]["demand_hours"] == Decimal("0.01")
        assert skills[("sap", halves + WEEK)]["demand_hours"] == Decimal("0.02")
        assert by_sql["pipeline"] and by_sql["bookings"]
        assert {rule for _, rule in by_sql["project_risks"]} == {"burn", "margin", "non_billable", "rate_leakage"}
