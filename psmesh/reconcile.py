"""The reconciliation of DOMAIN.md section 5: every view as one SQL query over the sources.

When the sources are quiet and the mesh has caught up, each table of the
reporting store must equal what one SQL query over crm, psa, timeexp and erp
computes, to the cent and to the hundredth of an hour. The four sources are
separate databases of one cluster, so the queries run in a database of their
own (``psmesh_reconcile``) that sees them through postgres_fdw, one foreign
schema per source (``crm.opportunities``, ``psa.resources``, ...).

The SQL is written from DOMAIN.md section 2 independently of
``processors.formulas``; the integration test checks that the two agree on
the demo firm's data. Values are rounded as the store rounds them, once, half
away from zero (PostgreSQL's ``round(numeric)``): money and hours to 2
places, ratios to 4. A ratio with a zero denominator is null.

Exactness: sums of ``numeric`` are exact. A quotient is computed with at least
40 decimal places (``_div``), and a sum of quotients (demand spread over
weekdays, a margin difference) is rounded to 30 places before its final
rounding, so that a value lying exactly on a half-way point, or a threshold,
is not pushed off it by the digits PostgreSQL drops. This is the SQL twin of
``processors.formulas.rounding``: a rational with a small denominator that is
not on a half-way point cannot lie within 10**-30 of one.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from datetime import date
from typing import Any

import click
import psycopg
from psycopg import errors, sql
from psycopg.rows import dict_row

from psmesh.config import SOURCE_DATABASES, Settings

logger = logging.getLogger(__name__)

#: The database holding the foreign schemas the reconciliation queries run in.
RECONCILE_DATABASE = "psmesh_reconcile"

#: Keys of the reporting tables (DOMAIN.md section 4), in key order.
VIEW_KEYS: dict[str, tuple[str, ...]] = {
    "project_financials": ("project_code",),
    "resource_week": ("resource_id", "week_start"),
    "skill_week": ("skill", "week_start"),
    "pipeline": ("service_line", "close_month"),
    "bookings": ("service_line", "won_month"),
    "project_risks": ("project_code", "rule"),
}

#: Reporting columns compared per view (updated_at never; project_risks by key only).
VIEW_COLUMNS: dict[str, tuple[str, ...]] = {
    "project_financials": (
        "opportunity_id", "account_id", "service_line", "contract_type", "currency", "contract_value",
        "contract_hours", "earned_revenue", "billable_expenses", "delivered_value", "billed", "wip", "backlog",
        "cost", "margin_pct", "planned_margin_pct", "hours_burn",
    ),
    "resource_week": (
        "capacity_hours", "assigned_hours", "tentative_hours", "available_hours", "billable_hours",
        "total_hours", "utilization",
    ),
    "skill_week": ("demand_hours", "supply_hours", "booked_hours", "gap_hours"),
    "pipeline": ("open_count", "open_amount", "weighted_amount"),
    "bookings": ("won_count", "contract_value"),
    "project_risks": (),
}

SKILLS = ("aws", "azure", "gcp", "sap", "salesforce", "data_engineering", "security")
OPEN_STAGES = ("prospecting", "qualification", "proposal", "negotiation")

Views = dict[str, dict[tuple, dict[str, Any]]]


class ReconcileError(Exception):
    """The reconciliation database could not be prepared or queried."""


# --- SQL building blocks ------------------------------------------------------

#: Multiplying by this literal gives a dividend 40 decimal places, hence a
#: quotient of at least 40 places (PostgreSQL's select_div_scale keeps the
#: dividend's scale), enough for the exactness argument of the module docstring.
_WIDE = "1." + "0" * 40


def _div(numerator: str, denominator: str) -> str:
    """numerator / denominator to at least 40 places; null when the denominator is zero."""
    return f"(({numerator}) * {_WIDE} / NULLIF(({denominator}), 0))"


def _store(expr: str, scale: int) -> str:
    """Round once to the column's scale, from a value first settled at 30 places."""
    return f"ROUND(ROUND(({expr}), 30), {scale})"


def _ratio(expr: str) -> str:
    """A ratio as its numeric(7,4) column stores it: null when it does not fit (processors' ``store_ratio``)."""
    stored = _store(expr, 4)
    return f"(CASE WHEN ABS({stored}) < 1000 THEN {stored} END)"


def _week_of(day: str) -> str:
    """The Monday of the ISO week of a date expression (date - integer is a date)."""
    return f"(({day}) - (EXTRACT(ISODOW FROM ({day}))::int - 1))"


def _weeks_covering(start: str, end: str) -> str:
    """A LATERAL series ``cw(week_start)`` of the Mondays from the week of start to the week of end.

    Empty when end is before start.
    """
    return (
        f"CROSS JOIN LATERAL (SELECT {_week_of(start)} + 7 * n AS week_start "
        f"FROM generate_series(0, ({_week_of(end)} - {_week_of(start)}) / 7) AS n) AS cw"
    )


def _weekdays_in_week(start: str, end: str, week: str) -> str:
    """Weekdays of [start, end] inside the week starting Monday ``week``: [week, week + 4] clipped."""
    return f"GREATEST(0, LEAST(({end}), ({week}) + 4) - GREATEST(({start}), ({week})) + 1)"


#: Per-resource week figures of DOMAIN.md section 2, over the weeks of a CTE
#: ``grid(resource_id, week_start)`` supplied by the query that uses them.
_RESOURCE_WEEK_CTES = f"""
time_off_week AS (
    SELECT t.resource_id, cw.week_start,
           SUM(t.hours_per_day * {_weekdays_in_week('t.start_date', 't.end_date', 'cw.week_start')}) AS hours
    FROM psa.time_off t {_weeks_covering('t.start_date', 't.end_date')}
    WHERE t.status = 'approved'
    GROUP BY t.resource_id, cw.week_start
),
assignment_week AS (
    SELECT a.resource_id, cw.week_start,
           SUM(a.hours_per_week * {_weekdays_in_week('a.start_date', 'a.end_date', 'cw.week_start')} / 5)
               FILTER (WHERE a.status = 'confirmed') AS assigned,
           SUM(a.hours_per_week * {_weekdays_in_week('a.start_date', 'a.end_date', 'cw.week_start')} / 5)
               FILTER (WHERE a.status = 'tentative') AS tentative
    FROM psa.assignments a {_weeks_covering('a.start_date', 'a.end_date')}
    WHERE a.status IN ('confirmed', 'tentative')
    GROUP BY a.resource_id, cw.week_start
),
entry_week AS (
    SELECT e.resource_id, {_week_of('e.work_date')} AS week_start,
           SUM(e.hours) FILTER (WHERE e.billable) AS billable,
           SUM(e.hours) AS total
    FROM timeexp.time_entries e
    WHERE e.status IN ('submitted', 'approved')
    GROUP BY e.resource_id, {_week_of('e.work_date')}
),
figures AS (
    SELECT g.resource_id, g.week_start, r.primary_skill,
           CASE WHEN r.active AND (r.hired_on IS NULL OR r.hired_on <= g.week_start + 6)
                THEN GREATEST(r.weekly_capacity_hours - COALESCE(t.hours, 0), 0)
                ELSE 0 END AS capacity_hours,
           COALESCE(a.assigned, 0) AS assigned_hours,
           COALESCE(a.tentative, 0) AS tentative_hours,
           COALESCE(e.billable, 0) AS billable_hours,
           COALESCE(e.total, 0) AS total_hours
    FROM grid g
    JOIN psa.resources r ON r.resource_id = g.resource_id
    LEFT JOIN time_off_week t ON t.resource_id = g.resource_id AND t.week_start = g.week_start
    LEFT JOIN assignment_week a ON a.resource_id = g.resource_id AND a.week_start = g.week_start
    LEFT JOIN entry_week e ON e.resource_id = g.resource_id AND e.week_start = g.week_start
)"""

#: Each resource's weeks with activity (assignments and time off of any status
#: cover every week they span; a time entry of any status its own week), and
#: the span of resource_week rows: the earlier of the hire week and the first
#: activity week, through the last activity week. Resources unknown to psa
#: have no row.
_RESOURCE_SPAN_CTES = f"""
activity AS (
    SELECT a.resource_id, cw.week_start FROM psa.assignments a {_weeks_covering('a.start_date', 'a.end_date')}
    UNION
    SELECT t.resource_id, cw.week_start FROM psa.time_off t {_weeks_covering('t.start_date', 't.end_date')}
    UNION
    SELECT e.resource_id, {_week_of('e.work_date')} FROM timeexp.time_entries e
),
span AS (
    SELECT r.resource_id,
           LEAST(MIN(a.week_start), {_week_of('r.hired_on')}) AS first_week,
           MAX(a.week_start) AS last_week
    FROM activity a JOIN psa.resources r ON r.resource_id = a.resource_id
    GROUP BY r.resource_id, r.hired_on
)"""

RESOURCE_WEEK_SQL = f"""
WITH {_RESOURCE_SPAN_CTES.strip()},
grid AS (
    SELECT s.resource_id, s.first_week + 7 * n AS week_start
    FROM span s CROSS JOIN LATERAL generate_series(0, (s.last_week - s.first_week) / 7) AS n
),
{_RESOURCE_WEEK_CTES.strip()}
SELECT resource_id, week_start,
       {_store('capacity_hours', 2)} AS capacity_hours,
       {_store('assigned_hours', 2)} AS assigned_hours,
       {_store('tentative_hours', 2)} AS tentative_hours,
       {_store('capacity_hours - assigned_hours', 2)} AS available_hours,
       {_store('billable_hours', 2)} AS billable_hours,
       {_store('total_hours', 2)} AS total_hours,
       {_ratio(_div('billable_hours', 'capacity_hours'))} AS utilization
FROM figures
"""

_SKILLS_VALUES = ", ".join(f"('{s}')" for s in SKILLS)
_OPEN_STAGES_LIST = ", ".join(f"'{s}'" for s in OPEN_STAGES)

SKILL_WEEK_SQL = f"""
WITH {_RESOURCE_SPAN_CTES.strip()},
line_span AS (
    SELECT MIN({_week_of('l.start_date')}) AS first_week, MAX({_week_of('l.end_date')}) AS last_week
    FROM crm.opportunity_lines l
    WHERE l.end_date >= l.start_date
),
bounds AS (
    SELECT LEAST((SELECT MIN(first_week) FROM span), (SELECT first_week FROM line_span)) AS first_week,
           GREATEST((SELECT MAX(last_week) FROM span), (SELECT last_week FROM line_span)) AS last_week
),
weeks AS (
    SELECT b.first_week + 7 * n AS week_start
    FROM bounds b CROSS JOIN LATERAL generate_series(0, (b.last_week - b.first_week) / 7) AS n
),
grid AS (
    SELECT r.resource_id, w.week_start FROM psa.resources r CROSS JOIN weeks w
),
{_RESOURCE_WEEK_CTES.strip()},
supply AS (
    SELECT primary_skill AS skill, week_start,
           SUM(capacity_hours) AS supply_hours,
           SUM(assigned_hours + tentative_hours) AS booked_hours
    FROM figures
    GROUP BY primary_skill, week_start
),
weighted_line AS (
    SELECT l.line_id, l.skill, l.hours, l.start_date, l.end_date,
           CASE WHEN o.stage = 'closed_won' THEN 1 ELSE o.probability / 100 END AS weight
    FROM crm.opportunity_lines l
    JOIN crm.opportunities o ON o.opportunity_id = l.opportunity_id
    WHERE o.stage = 'closed_won' OR (o.stage IN ({_OPEN_STAGES_LIST}) AND o.probability >= 50)
),
line_week AS (
    SELECT wl.line_id, wl.skill, wl.weight, wl.hours, cw.week_start,
           {_weekdays_in_week('wl.start_date', 'wl.end_date', 'cw.week_start')} AS days_in
    FROM weighted_line wl {_weeks_covering('wl.start_date', 'wl.end_date')}
),
line_share AS (
    SELECT lw.*, SUM(lw.days_in) OVER (PARTITION BY lw.line_id) AS days_whole FROM line_week lw
),
demand AS (
    SELECT skill, week_start, SUM({_div('weight * hours * days_in', 'days_whole')}) AS demand_hours
    FROM line_share
    WHERE days_whole > 0
    GROUP BY skill, week_start
),
cells AS (
    SELECT k.skill, w.week_start,
           COALESCE(d.demand_hours, 0) AS demand_hours,
           COALESCE(s.supply_hours, 0) AS supply_hours,
           COALESCE(s.booked_hours, 0) AS booked_hours
    FROM (VALUES {_SKILLS_VALUES}) AS k(skill)
    CROSS JOIN weeks w
    LEFT JOIN demand d ON d.skill = k.skill AND d.week_start = w.week_start
    LEFT JOIN supply s ON s.skill = k.skill AND s.week_start = w.week_start
)
SELECT skill, week_start,
       {_store('demand_hours', 2)} AS demand_hours,
       {_store('supply_hours', 2)} AS supply_hours,
       {_store('booked_hours', 2)} AS booked_hours,
       {_store('demand_hours - (supply_hours - booked_hours)', 2)} AS gap_hours
FROM cells
"""

#: Per won opportunity: the exact figures of DOMAIN.md section 2 its
#: project_financials row and its risk rules are made of.
_PROJECT_CTES = """
won AS (
    SELECT o.*, 'PRJ-' || o.opportunity_id AS project_code
    FROM crm.opportunities o
    WHERE o.stage = 'closed_won'
),
approved_change AS (
    SELECT opportunity_id, SUM(amount_delta) AS amount_delta, SUM(hours_delta) AS hours_delta
    FROM crm.change_orders
    WHERE status = 'approved'
    GROUP BY opportunity_id
),
plan AS (
    SELECT opportunity_id, SUM(hours * est_cost_rate) AS planned_cost
    FROM crm.opportunity_lines
    GROUP BY opportunity_id
),
approved_time AS (
    SELECT project_code,
           SUM(hours * bill_rate) FILTER (WHERE billable) AS earned_time,
           SUM(hours * cost_rate) AS time_cost,
           SUM(hours) AS hours,
           SUM(hours) FILTER (WHERE NOT billable) AS non_billable_hours
    FROM timeexp.time_entries
    WHERE status = 'approved'
    GROUP BY project_code
),
approved_expense AS (
    SELECT project_code, SUM(amount) FILTER (WHERE billable) AS billable, SUM(amount) AS cost
    FROM timeexp.expenses
    WHERE status = 'approved'
    GROUP BY project_code
),
done_milestone AS (
    SELECT project_code, SUM(amount) AS amount
    FROM erp.billing_milestones
    WHERE status IN ('completed', 'invoiced')
    GROUP BY project_code
),
billing AS (
    SELECT project_code, SUM(amount) AS amount FROM erp.billing_events GROUP BY project_code
),
base AS (
    SELECT w.project_code, w.opportunity_id, w.account_id, w.service_line, w.contract_type, w.currency,
           w.amount,
           w.amount + COALESCE(c.amount_delta, 0) AS contract_value,
           w.estimated_hours + COALESCE(c.hours_delta, 0) AS contract_hours,
           CASE w.contract_type
                WHEN 'time_and_materials' THEN COALESCE(t.earned_time, 0)
                WHEN 'fixed_fee' THEN COALESCE(m.amount, 0)
           END AS earned_revenue,
           COALESCE(x.billable, 0) AS billable_expenses,
           COALESCE(t.time_cost, 0) + COALESCE(x.cost, 0) AS cost,
           COALESCE(b.amount, 0) AS billed,
           COALESCE(t.hours, 0) AS approved_hours,
           COALESCE(t.non_billable_hours, 0) AS non_billable_hours,
           COALESCE(p.planned_cost, 0) AS planned_cost
    FROM won w
    LEFT JOIN approved_change c ON c.opportunity_id = w.opportunity_id
    LEFT JOIN plan p ON p.opportunity_id = w.opportunity_id
    LEFT JOIN approved_time t ON t.project_code = w.project_code
    LEFT JOIN approved_expense x ON x.project_code = w.project_code
    LEFT JOIN done_milestone m ON m.project_code = w.project_code
    LEFT JOIN billing b ON b.project_code = w.project_code
),
project AS (
    SELECT base.*,
           earned_revenue + billable_expenses AS delivered_value,
           {margin} AS margin,
           1 - {planned_cost_share} AS planned_margin,
           {hours_burn} AS hours_burn
    FROM base
)""".format(
    margin=_div("earned_revenue + billable_expenses - cost", "earned_revenue + billable_expenses"),
    planned_cost_share=_div("planned_cost", "amount"),
    hours_burn=_div("approved_hours", "contract_hours"),
)

PROJECT_FINANCIALS_SQL = f"""
WITH {_PROJECT_CTES.strip()}
SELECT project_code, opportunity_id, account_id, service_line, contract_type, currency,
       {_store('contract_value', 2)} AS contract_value,
       {_store('contract_hours', 2)} AS contract_hours,
       {_store('earned_revenue', 2)} AS earned_revenue,
       {_store('billable_expenses', 2)} AS billable_expenses,
       {_store('earned_revenue + billable_expenses', 2)} AS delivered_value,
       {_store('billed', 2)} AS billed,
       -- wip from the stored delivered value and billed: 0 after the final close (docs/formulas.md)
       {_store('earned_revenue + billable_expenses', 2)} - {_store('billed', 2)} AS wip,
       {_store('contract_value - earned_revenue', 2)} AS backlog,
       {_store('cost', 2)} AS cost,
       {_ratio('margin')} AS margin_pct,
       {_ratio('planned_margin')} AS planned_margin_pct,
       {_ratio('hours_burn')} AS hours_burn
FROM project
"""

PROJECT_RISKS_SQL = f"""
WITH {_PROJECT_CTES.strip()},
sold_rate AS (
    SELECT opportunity_id, role, MIN(bill_rate) AS lowest
    FROM crm.opportunity_lines
    GROUP BY opportunity_id, role
),
leaking AS (
    SELECT DISTINCT w.project_code
    FROM won w
    JOIN timeexp.time_entries e ON e.project_code = w.project_code
    JOIN sold_rate s ON s.opportunity_id = w.opportunity_id AND s.role = e.role
    WHERE e.status = 'approved' AND e.bill_rate < s.lowest
)
SELECT p.project_code, r.rule
FROM project p
CROSS JOIN LATERAL (VALUES
    ('burn', p.hours_burn >= 0.8 AND {_div('p.earned_revenue', 'p.contract_value')} < 0.6),
    ('margin', p.delivered_value >= 0.1 * p.contract_value
               AND ROUND(p.planned_margin - p.margin, 30) >= 0.10),
    ('non_billable', {_div('p.non_billable_hours', 'p.approved_hours')} >= 0.2),
    ('rate_leakage', p.project_code IN (SELECT project_code FROM leaking))
) AS r(rule, raised)
WHERE r.raised
"""

PIPELINE_SQL = f"""
SELECT service_line, date_trunc('month', expected_close_date)::date AS close_month,
       COUNT(*) AS open_count,
       {_store('SUM(amount)', 2)} AS open_amount,
       {_store('SUM(amount * probability / 100)', 2)} AS weighted_amount
FROM crm.opportunities
WHERE stage IN ({_OPEN_STAGES_LIST}) AND expected_close_date IS NOT NULL
GROUP BY 1, 2
"""

BOOKINGS_SQL = f"""
WITH approved_change AS (
    SELECT opportunity_id, SUM(amount_delta) AS amount_delta
    FROM crm.change_orders
    WHERE status = 'approved'
    GROUP BY opportunity_id
)
SELECT o.service_line, date_trunc('month', o.closed_at AT TIME ZONE 'UTC')::date AS won_month,
       COUNT(*) AS won_count,
       {_store('SUM(o.amount + COALESCE(c.amount_delta, 0))', 2)} AS contract_value
FROM crm.opportunities o
LEFT JOIN approved_change c ON c.opportunity_id = o.opportunity_id
WHERE o.stage = 'closed_won' AND o.closed_at IS NOT NULL
GROUP BY 1, 2
"""

#: One query per reporting view.
VIEW_SQL: dict[str, str] = {
    "project_financials": PROJECT_FINANCIALS_SQL,
    "resource_week": RESOURCE_WEEK_SQL,
    "skill_week": SKILL_WEEK_SQL,
    "pipeline": PIPELINE_SQL,
    "bookings": BOOKINGS_SQL,
    "project_risks": PROJECT_RISKS_SQL,
}


# --- the reconciliation database ----------------------------------------------

#: Advisory lock key: preparers take it exclusively, queries shared.
_PREPARE_LOCK = 0x7073_6D65_7368  # "psmesh"


def _server_options(settings: Settings, dbname: str, own_port: str) -> dict[str, str]:
    """Where the reconciliation database's server reaches a source database: itself. ``own_port`` is the port it
    listens on, which is not the one psmesh reaches it on when a port is mapped (docker-compose.yml: 5433 on the
    host, 5432 in its container, where 127.0.0.1:5433 is nothing); an external server (PSMESH_PG_HOST) is reached
    by its name and port, as psmesh reaches it."""
    if settings.pg_host:
        host, port = settings.pg_host, str(settings.pg_port)
    else:
        host, port = settings.bind_host, own_port
    options = {"host": host, "port": port, "dbname": dbname, "fetch_size": "10000"}
    sslmode = settings.pg_sslmode_option()
    if sslmode:
        options["sslmode"] = sslmode
    return options


def prepare_reconcile_database(
    settings: Settings,
    databases: Mapping[str, str] | None = None,
    database: str = RECONCILE_DATABASE,
) -> None:
    """Create ``database`` with a foreign schema per source; idempotent, and safe to run concurrently.

    ``databases`` maps a source (crm, psa, timeexp, erp) to the database that
    holds it (default: its own name). The foreign schemas are re-imported on
    every call, so they follow the source tables and the mapping.
    """
    databases = {s: (databases or {}).get(s, s) for s in SOURCE_DATABASES}
    try:
        with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
            if not exists:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
                    logger.info("created the reconciliation database")
                except errors.DuplicateDatabase:
                    pass  # created by a concurrent caller
        with psycopg.connect(settings.pg_dsn(database)) as conn, conn.transaction():
            # One preparer at a time: CREATE ... IF NOT EXISTS still races on the catalogs.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PREPARE_LOCK,))
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgres_fdw")
            own_port = conn.execute("SHOW port").fetchone()[0]
            for source, dbname in databases.items():
                server = sql.Identifier(f"{source}_source")
                options = _server_options(settings, dbname, own_port)
                conn.execute(sql.SQL("CREATE SERVER IF NOT EXISTS {} FOREIGN DATA WRAPPER postgres_fdw").format(server))
                current = _current_options(conn, f"{source}_source")
                changes = sql.SQL(", ").join(
                    sql.SQL("{} {} {}").format(sql.SQL("SET" if key in current else "ADD"), sql.Identifier(key),
                                               sql.Literal(value))
                    for key, value in options.items()
                )
                conn.execute(sql.SQL("ALTER SERVER {} OPTIONS ({})").format(server, changes))
                mapping = {"user": settings.pg_user}
                if settings.pg_password:
                    mapping["password"] = settings.pg_password.get_secret_value()
                conn.execute(sql.SQL("DROP USER MAPPING IF EXISTS FOR CURRENT_USER SERVER {}").format(server))
                conn.execute(sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS ({})").format(
                    server, sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(k), sql.Literal(v))
                                               for k, v in mapping.items())))
                schema = sql.Identifier(source)
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
                conn.execute(sql.SQL("IMPORT FOREIGN SCHEMA public FROM SERVER {} INTO {}").format(server, schema))
    except psycopg.Error as exc:
        raise ReconcileError(f"could not prepare the reconciliation database {database}: {exc}") from exc


def _current_options(conn: psycopg.Connection, server: str) -> set[str]:
    """Names of the options a foreign server has now (ALTER SERVER must SET those, ADD the others)."""
    options = conn.execute("SELECT srvoptions FROM pg_foreign_server WHERE srvname = %s", (server,)).fetchone()
    return {opt.split("=", 1)[0] for opt in (options[0] or [])} if options else set()


# --- the views ----------------------------------------------------------------

def _rows_by_key(view: str, rows: list[dict[str, Any]]) -> dict[tuple, dict[str, Any]]:
    keys, columns = VIEW_KEYS[view], VIEW_COLUMNS[view]
    return {tuple(row[k] for k in keys): {c: row[c] for c in columns} for row in rows}


def expected_views(
    settings: Settings,
    databases: Mapping[str, str] | None = None,
    database: str = RECONCILE_DATABASE,
) -> Views:
    """Every reporting view as the sources say it must be: view name → key tuple → reporting columns.

    One SQL query per view, all in one repeatable-read transaction of the
    reconciliation database (each foreign server is read in a snapshot of its
    own, so the sources should be quiet). Values are ``Decimal`` (money, hours,
    ratios), ``int`` (counts, ids), ``str`` and ``date``; ratios with a zero
    denominator are None. project_risks rows carry no columns: only the
    (project_code, rule) keys are compared.
    """
    prepare_reconcile_database(settings, databases, database)
    views: Views = {}
    try:
        with psycopg.connect(settings.pg_dsn(database), row_factory=dict_row) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # Shared with other readers, exclusive of a concurrent prepare re-importing the schemas.
            conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_PREPARE_LOCK,))
            for view, query in VIEW_SQL.items():
                views[view] = _rows_by_key(view, conn.execute(query).fetchall())
    except psycopg.Error as exc:
        raise ReconcileError(f"reconciliation query failed: {exc}") from exc
    return views


def reporting_views(settings: Settings, database: str = "reporting") -> Views:
    """The views as the reporting store holds them, by the column names of DOMAIN.md section 4."""
    views: Views = {}
    try:
        with psycopg.connect(settings.pg_dsn(database), row_factory=dict_row) as conn:
            for view, keys in VIEW_KEYS.items():
                columns = (*keys, *VIEW_COLUMNS[view])
                query = sql.SQL("SELECT {} FROM {}").format(
                    sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(view))
                views[view] = _rows_by_key(view, conn.execute(query).fetchall())
    except psycopg.Error as exc:
        raise ReconcileError(f"could not read the reporting store: {exc}") from exc
    return views


def topic_views(settings: Settings, timeout: float = 30.0) -> Views:
    """The views as the view topics hold them (latest record per key; a tombstone removes it).

    Reads each ``views.<name>`` topic from the beginning to its end offsets at
    the time of the call, with confluent-kafka's AvroDeserializer and nothing
    of psmesh's: what any subscriber of the topics sees.
    """
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    registry = SchemaRegistryClient({"url": settings.schema_registry_url})
    deserialize = AvroDeserializer(registry)
    consumer = Consumer({**settings.kafka_client_config(), "group.id": "psmesh-reconcile",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    views: Views = {}
    try:
        for view, keys in VIEW_KEYS.items():
            topic = f"views.{view}"
            metadata = consumer.list_topics(topic, timeout=timeout).topics[topic]
            if metadata.error is not None:
                raise ReconcileError(f"cannot read topic {topic}: {metadata.error}")
            ends = {}
            for p in metadata.partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                if high > low:
                    ends[p] = high
            rows: dict[tuple, dict[str, Any]] = {}
            if ends:
                consumer.assign([TopicPartition(topic, p, 0) for p in ends])
                done: set[int] = set()
                while len(done) < len(ends):
                    msg = consumer.poll(timeout)
                    if msg is None:
                        raise ReconcileError(f"{topic}: no record within {timeout}s before the end offsets")
                    if msg.error():
                        raise ReconcileError(f"{topic}: {msg.error()}")
                    key = deserialize(msg.key(), SerializationContext(topic, MessageField.KEY))
                    value = msg.value()
                    key_tuple = tuple(key[k] for k in keys)
                    if value is None:
                        rows.pop(key_tuple, None)
                    else:
                        record = deserialize(value, SerializationContext(topic, MessageField.VALUE))
                        rows[key_tuple] = {c: record[c] for c in VIEW_COLUMNS[view]}
                    if msg.offset() + 1 >= ends[msg.partition()]:
                        done.add(msg.partition())
                consumer.unassign()
            views[view] = rows
    finally:
        consumer.close()
    return views


def _same(expected: Any, actual: Any) -> bool:
    """Equal values: Decimal('1.50') equals Decimal('1.5') and 1; None equals only None."""
    if expected is None or actual is None:
        return expected is None and actual is None
    return expected == actual


def compare(expected: Mapping[str, Mapping[tuple, Mapping[str, Any]]],
            actual: Mapping[str, Mapping[tuple, Mapping[str, Any]]]) -> list[str]:
    """Human-readable differences between two sets of views; empty when they are equal.

    A view present on one side only is one difference; within a view, a key
    missing from ``actual``, an extra key in ``actual``, and each column whose
    values differ (a column absent on one side counts as a difference).
    """
    differences: list[str] = []
    for view in sorted(set(expected) | set(actual)):
        if view not in actual:
            differences.append(f"{view}: view missing ({len(expected[view])} rows expected)")
            continue
        if view not in expected:
            differences.append(f"{view}: unexpected view ({len(actual[view])} rows)")
            continue
        want, got = expected[view], actual[view]
        for key in sorted(set(want) | set(got), key=_sort_key):
            if key not in got:
                differences.append(f"{view} {_show_key(key)}: missing")
            elif key not in want:
                differences.append(f"{view} {_show_key(key)}: extra row")
            else:
                for column in sorted(set(want[key]) | set(got[key])):
                    w, g = want[key].get(column, _ABSENT), got[key].get(column, _ABSENT)
                    if w is _ABSENT or g is _ABSENT or not _same(w, g):
                        differences.append(f"{view} {_show_key(key)}: {column} expected {w!r}, got {g!r}")
    return differences


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()


def _sort_key(key: tuple) -> tuple:
    return tuple((str(type(part)), str(part)) for part in key)


def _show_key(key: tuple) -> str:
    return "(" + ", ".join(part.isoformat() if isinstance(part, date) else str(part) for part in key) + ")"


# --- command line -------------------------------------------------------------

@click.command("reconcile")
@click.option("--reporting-db", default="reporting", show_default=True, help="Database of the reporting store.")
@click.option("--limit", type=int, default=50, show_default=True, help="Differences shown at most.")
def reconcile_command(reporting_db: str, limit: int) -> None:
    """Check every reporting view against one SQL query over the sources (DOMAIN.md section 5)."""
    from psmesh.config import load_settings

    settings = load_settings()
    try:
        expected = expected_views(settings)
        actual = reporting_views(settings, reporting_db)
    except ReconcileError as exc:
        raise click.ClickException(str(exc)) from exc
    for view in VIEW_SQL:
        click.echo(f"{view:20} expected {len(expected[view]):6} rows, store holds {len(actual[view]):6}")
    differences = compare(expected, actual)
    for line in differences[:limit]:
        click.echo(line)
    if differences:
        click.echo(f"{len(differences)} differences", err=True)
        sys.exit(1)
    click.echo("every view reconciles")
