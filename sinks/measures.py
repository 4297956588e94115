"""The executive measures: SQL views of the reporting database over the view tables and the mirrors.

Each view is documented for analysts in docs/reporting.md (meaning, unit,
formula). Ratios are rounded half away from zero to 4 places and days or
hours to 2, when the view is read; sums are exact over the stored values.
``CREATE OR REPLACE VIEW`` makes :func:`create_views` harmless to repeat.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

#: (view name, SELECT) in dependency order.
VIEWS: tuple[tuple[str, str], ...] = (
    ("exec_bookings", """
        SELECT won_month, sum(won_count)::bigint AS won_count, sum(contract_value) AS contract_value
        FROM bookings GROUP BY won_month"""),
    ("exec_portfolio", """
        SELECT currency, count(*)::bigint AS projects,
               sum(contract_value) AS contract_value, sum(earned_revenue) AS earned_revenue,
               sum(delivered_value) AS delivered_value, sum(billed) AS billed, sum(wip) AS wip,
               sum(backlog) AS backlog, sum(cost) AS cost,
               round((sum(delivered_value) - sum(cost)) / nullif(sum(delivered_value), 0), 4) AS margin_pct
        FROM project_financials GROUP BY currency"""),
    ("exec_utilization", """
        SELECT week_start, (count(*) FILTER (WHERE capacity_hours > 0))::bigint AS resources,
               sum(capacity_hours) AS capacity_hours, sum(billable_hours) AS billable_hours,
               sum(total_hours) AS total_hours,
               round(sum(billable_hours) / nullif(sum(capacity_hours), 0), 4) AS utilization
        FROM resource_week GROUP BY week_start"""),
    ("exec_dso_by_period", """
        WITH closed AS (
            SELECT period_id, end_date AS as_of FROM source.billing_periods WHERE status = 'closed'
        ), sums AS (
            SELECT c.period_id, c.as_of,
                   coalesce(sum(i.amount - coalesce(i.written_off, 0))
                            FILTER (WHERE i.paid_on IS NULL OR i.paid_on > c.as_of), 0) AS receivables,
                   coalesce(sum(i.amount) FILTER (WHERE i.issued_on >= c.as_of - 89), 0) AS issued_90d
            FROM closed c
            LEFT JOIN source.invoices i
              ON i.status <> 'void' AND i.issued_on IS NOT NULL AND i.issued_on <= c.as_of
            GROUP BY c.period_id, c.as_of
        )
        SELECT period_id, as_of, receivables, issued_90d,
               round(receivables * 90 / nullif(issued_90d, 0), 2) AS dso_days
        FROM sums"""),
    ("exec_dso", """
        SELECT as_of, receivables, issued_90d, dso_days
        FROM exec_dso_by_period ORDER BY as_of DESC, period_id DESC LIMIT 1"""),
    ("exec_project_setup", """
        SELECT project_code, opportunity_id, won_at, created_at AS ready_at,
               round((extract(epoch FROM created_at - won_at) / 3600)::numeric, 2) AS hours_to_ready
        FROM source.projects WHERE won_at IS NOT NULL AND created_at IS NOT NULL"""),
    ("exec_won_to_ready", """
        SELECT date_trunc('month', won_at AT TIME ZONE 'UTC')::date AS won_month,
               count(*)::bigint AS projects,
               round(avg(hours_to_ready), 2) AS avg_hours,
               round((percentile_cont(0.5) WITHIN GROUP (ORDER BY hours_to_ready))::numeric, 2) AS median_hours,
               max(hours_to_ready) AS max_hours
        FROM exec_project_setup GROUP BY 1"""),
    ("exec_invoice_cycle", """
        SELECT i.invoice_id, i.project_code, i.billing_event_id,
               (e.created_at AT TIME ZONE 'UTC')::date AS billed_on, i.issued_on,
               i.issued_on - (e.created_at AT TIME ZONE 'UTC')::date AS cycle_days
        FROM source.invoices i
        JOIN source.billing_events e ON e.billing_event_id = i.billing_event_id
        WHERE i.status <> 'void' AND i.issued_on IS NOT NULL AND e.created_at IS NOT NULL"""),
    ("exec_invoice_cycle_monthly", """
        SELECT date_trunc('month', issued_on)::date AS issue_month, count(*)::bigint AS invoices,
               round(avg(cycle_days), 2) AS avg_cycle_days, max(cycle_days) AS max_cycle_days
        FROM exec_invoice_cycle GROUP BY 1"""),
    ("exec_timesheet_timeliness", """
        WITH entries AS (
            SELECT work_date - (extract(isodow FROM work_date)::int - 1) AS week_start, hours, submitted_at
            FROM source.time_entries
            WHERE billable AND submitted_at IS NOT NULL AND hours IS NOT NULL
        )
        SELECT week_start, sum(hours) AS submitted_hours,
               coalesce(sum(hours) FILTER (WHERE submitted_at < ((week_start + 7)::timestamp AT TIME ZONE 'UTC')), 0)
                   AS on_time_hours,
               round(coalesce(sum(hours) FILTER (WHERE submitted_at < ((week_start + 7)::timestamp AT TIME ZONE 'UTC')), 0)
                     / nullif(sum(hours), 0), 4) AS on_time_share
        FROM entries GROUP BY week_start"""),
    ("exec_margin_variance", """
        SELECT project_code, service_line, currency, delivered_value, margin_pct, planned_margin_pct,
               margin_pct - planned_margin_pct AS margin_variance
        FROM project_financials"""),
    ("exec_margin_variance_by_service_line", """
        SELECT service_line, currency, count(margin_variance)::bigint AS projects,
               sum(delivered_value) FILTER (WHERE margin_variance IS NOT NULL) AS delivered_value,
               round(sum(margin_variance * delivered_value) FILTER (WHERE margin_variance IS NOT NULL)
                     / nullif(sum(delivered_value) FILTER (WHERE margin_variance IS NOT NULL), 0), 4)
                   AS margin_variance
        FROM exec_margin_variance GROUP BY service_line, currency"""),
    ("exec_staffing_gap", """
        SELECT week_start, sum(demand_hours) AS demand_hours, sum(supply_hours) AS supply_hours,
               sum(booked_hours) AS booked_hours, sum(greatest(gap_hours, 0)) AS staffing_gap_hours
        FROM skill_week GROUP BY week_start"""),
    ("exec_billed_weekly", """
        WITH billed AS (
            SELECT e.currency, e.amount,
                   coalesce(p.end_date, i.issued_on, (e.created_at AT TIME ZONE 'UTC')::date) AS billed_on
            FROM source.billing_events e
            LEFT JOIN source.billing_periods p ON p.period_id = e.period_id
            LEFT JOIN LATERAL (
                SELECT min(issued_on) AS issued_on FROM source.invoices
                WHERE billing_event_id = e.billing_event_id AND status <> 'void'
            ) i ON true
        )
        SELECT billed_on - (extract(isodow FROM billed_on)::int - 1) AS week_start, currency,
               count(*)::bigint AS events, sum(amount) AS billed
        FROM billed GROUP BY 1, currency"""),
    ("exec_kpis", """
        WITH worked AS (
            SELECT max(week_start) AS week_start FROM exec_utilization WHERE total_hours > 0
        ), now_week AS (
            SELECT coalesce((SELECT week_start FROM worked),
                            current_date - (extract(isodow FROM current_date)::int - 1)) AS week_start
        ), portfolio AS (
            SELECT count(*) AS currencies, min(currency) AS currency,
                   coalesce(sum(backlog), 0) AS backlog, coalesce(sum(wip), 0) AS wip,
                   coalesce(sum(billed), 0) AS billed,
                   sum(delivered_value) AS delivered_value, sum(cost) AS cost
            FROM exec_portfolio
        )
        SELECT (SELECT week_start FROM now_week) AS current_week,
               (SELECT coalesce(sum(won_count), 0)::bigint FROM exec_bookings) AS won_count,
               CASE WHEN p.currencies <= 1
                    THEN (SELECT coalesce(sum(contract_value), 0) FROM exec_bookings) END AS bookings,
               CASE WHEN p.currencies = 1 THEN p.currency END AS currency,
               CASE WHEN p.currencies <= 1 THEN p.backlog END AS backlog,
               CASE WHEN p.currencies <= 1 THEN p.wip END AS wip,
               CASE WHEN p.currencies <= 1 THEN p.billed END AS billed,
               CASE WHEN p.currencies = 1
                    THEN round((p.delivered_value - p.cost) / nullif(p.delivered_value, 0), 4) END AS margin_pct,
               (SELECT round(sum(u.billable_hours) / nullif(sum(u.capacity_hours), 0), 4)
                FROM exec_utilization u, worked w WHERE u.week_start <= w.week_start) AS utilization,
               (SELECT as_of FROM exec_dso) AS dso_as_of,
               (SELECT dso_days FROM exec_dso) AS dso_days,
               (SELECT coalesce(sum(g.staffing_gap_hours), 0) FROM exec_staffing_gap g, now_week n
                WHERE g.week_start >= n.week_start AND g.week_start < n.week_start + 28) AS staffing_gap_hours
        FROM portfolio p"""),
)

#: The snapshot the reporting sink appends to ``kpi_snapshots`` (see :mod:`sinks.reporting`).
SNAPSHOT_SQL = """
    INSERT INTO kpi_snapshots (taken_at, currency, bookings, backlog, wip, billed, margin_pct,
                               utilization, dso_days, staffing_gap_hours)
    SELECT now(), currency, bookings, backlog, wip, billed, margin_pct, utilization, dso_days, staffing_gap_hours
    FROM exec_kpis
    ON CONFLICT (taken_at) DO NOTHING"""


def create_views(conn: Connection) -> None:
    """Create or replace every measure view (after the tables exist)."""
    for name, select in VIEWS:
        conn.execute(text(f"CREATE OR REPLACE VIEW {name} AS {select}"))
