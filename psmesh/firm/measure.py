"""The firm's business figures, measured with SQL on the source databases.

Each figure is computed in the database that holds its rows (crm, psa,
timeexp, erp are separate databases, so nothing joins across them in SQL);
the per-database sums are combined here with exact Decimal arithmetic. The
definitions follow DOMAIN.md section 2 where it has one (capacity, billable
hours, earned time, cost); docs/firm.md states the rest.

The window: the weeks of the billing periods finance opened (one per ISO
week, the run's calendar), after ``warmup_weeks`` and without the last week,
whose late timesheets are not in yet. Nothing here needs the mesh: in an
open-loop run (no ERP projects, no ERP milestones) a fixed-fee project earns
its crm milestones when they fall due, as its project managers complete them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Mapping

import psycopg

from psmesh.config import SOURCE_DATABASES, Settings

WEEKS_PER_QUARTER = 13

_CAPACITY = """
WITH weeks AS (
    SELECT generate_series(%(first)s::date, %(last)s::date, interval '7 days')::date AS week_start
), off AS (
    SELECT resource_id, date_trunc('week', d)::date AS week_start, sum(hours_per_day) AS hours
    FROM time_off, generate_series(start_date::timestamp, end_date::timestamp, interval '1 day') AS d
    WHERE status = 'approved' AND extract(isodow FROM d) <= 5
    GROUP BY 1, 2
)
SELECT coalesce(sum(greatest(r.weekly_capacity_hours - coalesce(o.hours, 0), 0)), 0)
FROM weeks w
JOIN resources r ON r.active AND r.hired_on <= w.week_start + 6
LEFT JOIN off o ON o.resource_id = r.resource_id AND o.week_start = w.week_start
"""
_RATE_CARD = "SELECT role, max(bill_rate) FROM resources GROUP BY role"

_BILLABLE_HOURS = """
SELECT coalesce(sum(hours), 0) FROM time_entries
WHERE billable AND status IN ('submitted', 'approved') AND work_date BETWEEN %(first)s AND %(end)s
"""
#: Approved time of the window per project and role: earned (billable hours × bill rate),
#: cost (all hours × cost rate), billable hours (for realization).
_TIME = """
SELECT project_code, role,
       coalesce(sum(hours * bill_rate) FILTER (WHERE billable), 0),
       coalesce(sum(hours * cost_rate), 0),
       coalesce(sum(hours) FILTER (WHERE billable), 0)
FROM time_entries
WHERE status = 'approved' AND work_date BETWEEN %(first)s AND %(end)s
GROUP BY 1, 2
"""
_EXPENSES = """
SELECT coalesce(sum(amount) FILTER (WHERE billable), 0), coalesce(sum(amount), 0)
FROM expenses WHERE status = 'approved' AND expense_date BETWEEN %(first)s AND %(end)s
"""
_APPROVED_HOURS = "SELECT project_code, sum(hours) FROM time_entries WHERE status = 'approved' GROUP BY 1"
#: Approved hours of the window approved after the billing period of their work date had closed.
_LATE = """
WITH periods AS (
    SELECT * FROM unnest(%(starts)s::date[], %(ends)s::date[], %(closed)s::timestamptz[]) AS p(start_date, end_date, closed_at)
)
SELECT coalesce(sum(e.hours) FILTER (WHERE e.approved_at > p.closed_at), 0), coalesce(sum(e.hours), 0)
FROM time_entries e LEFT JOIN periods p ON e.work_date BETWEEN p.start_date AND p.end_date
WHERE e.status = 'approved' AND e.work_date BETWEEN %(first)s AND %(end)s
"""
_PERIODS = "SELECT start_date, end_date, closed_at FROM billing_periods ORDER BY start_date"

_WON = """
SELECT o.opportunity_id, o.contract_type, o.amount + coalesce(c.amount, 0), o.estimated_hours + coalesce(c.hours, 0),
       o.closed_at::date, o.target_end_date
FROM opportunities o
LEFT JOIN (SELECT opportunity_id, sum(amount_delta) AS amount, sum(hours_delta) AS hours
           FROM change_orders WHERE status = 'approved' GROUP BY 1) c USING (opportunity_id)
WHERE o.stage = 'closed_won'
"""
_OPEN_PIPELINE = "SELECT coalesce(sum(amount), 0) FROM opportunities WHERE stage NOT IN ('closed_won', 'closed_lost')"
_MILESTONES_DUE = """
SELECT coalesce(sum(m.amount), 0) FROM opportunity_milestones m JOIN opportunities o USING (opportunity_id)
WHERE o.stage = 'closed_won' AND o.contract_type = 'fixed_fee' AND m.planned_date BETWEEN %(first)s AND %(end)s
"""


class NothingToMeasure(Exception):
    """The sources hold no billing periods after the warm-up: the firm has not run long enough."""


@dataclass(frozen=True)
class FirmFigures:
    """The measured figures and the sums behind them (ratios None when their denominator is 0)."""

    first_week: date
    last_day: date
    weeks: int
    utilization: Decimal | None  # billable hours / capacity hours
    margin: Decimal | None  # (delivered − cost) / delivered
    realization: Decimal | None  # earned time / billable hours at the rate card
    pipeline_coverage: Decimal | None  # open pipeline / a quarter's bookings
    overrun_share: Decimal | None  # projects ended in the window whose approved hours exceed contract hours
    late_time_share: Decimal | None  # approved hours approved after their billing period closed
    billable_hours: Decimal
    capacity_hours: Decimal
    delivered: Decimal
    cost: Decimal
    open_pipeline: Decimal
    quarter_bookings: Decimal
    projects_ended: int
    projects_overrun: int

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _ratio(num: Decimal, den: Decimal) -> Decimal | None:
    return None if not den else (num / den).quantize(Decimal("0.0001"))


def measure(settings: Settings, warmup_weeks: int = 2, databases: Mapping[str, str] | None = None) -> FirmFigures:
    """Measure the firm in the sources over the weeks after ``warmup_weeks`` (the last one left out)."""
    names = {s: (databases or {}).get(s, s) for s in SOURCE_DATABASES}
    conns = {s: psycopg.connect(settings.pg_dsn(db)) for s, db in names.items()}
    try:
        periods = conns["erp"].execute(_PERIODS).fetchall()
        if not periods:
            raise NothingToMeasure("no billing periods in erp: run the firm first")
        first = periods[0][0] + timedelta(days=7 * warmup_weeks)
        end = periods[-1][1] - timedelta(days=7)  # the last week's late timesheets are not in yet
        if end < first:
            raise NothingToMeasure(f"the firm ran {len(periods)} week(s): nothing is left after a {warmup_weeks}-week warm-up")
        weeks = (end - first).days // 7 + 1
        window = {"first": first, "end": end, "last": end - timedelta(days=6)}

        capacity = conns["psa"].execute(_CAPACITY, window).fetchone()[0]
        card = dict(conns["psa"].execute(_RATE_CARD).fetchall())
        tx = conns["timeexp"]
        billable_hours = tx.execute(_BILLABLE_HOURS, window).fetchone()[0]
        time_rows = tx.execute(_TIME, window).fetchall()
        billable_expenses, expense_cost = tx.execute(_EXPENSES, window).fetchone()
        approved_hours = dict(tx.execute(_APPROVED_HOURS).fetchall())
        late, approved = tx.execute(_LATE, {
            **window, "starts": [p[0] for p in periods], "ends": [p[1] for p in periods], "closed": [p[2] for p in periods],
        }).fetchone()
        won = conns["crm"].execute(_WON).fetchall()
        open_pipeline = conns["crm"].execute(_OPEN_PIPELINE).fetchone()[0]
        milestones_due = conns["crm"].execute(_MILESTONES_DUE, window).fetchone()[0]
    finally:
        for conn in conns.values():
            conn.close()

    contract = {f"PRJ-{oid}": ctype for oid, ctype, *_ in won}
    earned_tm = sum((earned for code, _, earned, _, _ in time_rows if contract.get(code) == "time_and_materials"), Decimal(0))
    time_cost = sum((cost for *_, cost, _ in time_rows), Decimal(0))
    earned = sum((e for _, _, e, _, _ in time_rows), Decimal(0))
    at_card = sum((hours * card.get(role, Decimal(0)) for _, role, _, _, hours in time_rows), Decimal(0))
    delivered = earned_tm + milestones_due + billable_expenses
    cost = time_cost + expense_cost

    bookings = sum((value for _, _, value, _, closed, _ in won if first <= closed <= end), Decimal(0))
    quarter = bookings * WEEKS_PER_QUARTER / weeks
    ended = [(oid, hours) for oid, _, _, hours, _, target_end in won if first <= target_end <= end]
    overrun = sum(1 for oid, hours in ended if approved_hours.get(f"PRJ-{oid}", Decimal(0)) > hours)

    return FirmFigures(
        first_week=first, last_day=end, weeks=weeks,
        utilization=_ratio(billable_hours, capacity),
        margin=_ratio(delivered - cost, delivered),
        realization=_ratio(earned, at_card),
        pipeline_coverage=_ratio(open_pipeline, quarter),
        overrun_share=_ratio(Decimal(overrun), Decimal(len(ended))),
        late_time_share=_ratio(late, approved),
        billable_hours=billable_hours, capacity_hours=capacity, delivered=delivered, cost=cost,
        open_pipeline=open_pipeline, quarter_bookings=quarter.quantize(Decimal("0.01")),
        projects_ended=len(ended), projects_overrun=overrun,
    )
