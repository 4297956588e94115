"""The executive page's figures: one consistent read of the reporting store.

Every figure comes from the ``exec_*`` measure views of the reporting
database (docs/reporting.md) and from ``kpi_snapshots``, the history the
reporting sink appends. All queries run in one read-only REPEATABLE READ
transaction, so the tiles, the charts and the tables of one answer agree.

Money, hours, ratios and days travel as strings of exact decimals (the
stored numeric values, never floats); the page formats them. Dates are ISO
dates, times ISO timestamps with their offset.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text

from psmesh import db

#: Most snapshots the page charts (the latest ones).
SNAPSHOT_LIMIT = 500

#: name → SELECT; each result is a list of rows (dicts of column → value).
QUERIES: dict[str, str] = {
    "kpis": """
        SELECT current_week, won_count, bookings, currency, backlog, wip, billed, margin_pct,
               utilization, dso_as_of, dso_days, staffing_gap_hours
        FROM exec_kpis""",
    "portfolio": """
        SELECT currency, projects, contract_value, backlog, wip, billed, delivered_value, cost, margin_pct
        FROM exec_portfolio ORDER BY currency""",
    "bookings": """
        SELECT won_month, won_count, contract_value FROM exec_bookings ORDER BY won_month""",
    # Weeks after the firm's current week have capacity but no time yet: they are not utilization.
    "utilization": """
        SELECT week_start, resources, capacity_hours, billable_hours, utilization
        FROM exec_utilization WHERE week_start <= (SELECT current_week FROM exec_kpis) ORDER BY week_start""",
    "dso": """
        SELECT as_of, receivables, issued_90d, dso_days FROM exec_dso_by_period ORDER BY as_of, period_id""",
    "staffing_gap": """
        SELECT week_start, demand_hours, supply_hours, booked_hours, staffing_gap_hours
        FROM exec_staffing_gap ORDER BY week_start""",
    "billed": """
        SELECT week_start, currency, events, billed FROM exec_billed_weekly ORDER BY week_start, currency""",
    "snapshots": f"""
        SELECT * FROM (
            SELECT taken_at, currency, bookings, backlog, wip, billed, margin_pct, utilization, dso_days,
                   staffing_gap_hours
            FROM kpi_snapshots ORDER BY taken_at DESC LIMIT {SNAPSHOT_LIMIT}
        ) latest ORDER BY taken_at""",
}


def jsonable(value: Any) -> Any:
    """A stored value as JSON: Decimal → exact decimal string (never exponent notation), dates → ISO."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def build_summary(results: dict[str, list[dict[str, Any]]], as_of: dt.datetime) -> dict[str, Any]:
    """The JSON document of ``/api/summary`` from the rows of :data:`QUERIES` (pure).

    ``kpis`` is the single row of ``exec_kpis`` (all nulls when the store is
    empty); every other key is a list of rows, oldest first.
    """
    rows = {name: [{k: jsonable(v) for k, v in row.items()} for row in results.get(name, [])] for name in QUERIES}
    kpis = rows.pop("kpis")
    return {
        "as_of": jsonable(as_of),
        "kpis": kpis[0] if kpis else {},
        "portfolio": rows.pop("portfolio"),
        "series": rows,
    }


def make_engine(dsn: str) -> Engine:
    """The page's engine: it only reads, a few requests at a time."""
    return db.make_engine(dsn, "psmesh-page", pool_size=2, max_overflow=2)


class SummaryStore:
    """Reads :func:`build_summary`'s rows from the reporting store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self) -> dict[str, Any]:
        """The summary as of now; raises SQLAlchemyError when the store cannot be read."""
        with self.engine.connect().execution_options(isolation_level="REPEATABLE READ",
                                                     postgresql_readonly=True) as conn:
            as_of = conn.execute(text("SELECT now()")).scalar_one()
            results = {name: _rows(conn, sql) for name, sql in QUERIES.items()}
            conn.rollback()
        return build_summary(results, as_of)

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM exec_kpis"))

    def close(self) -> None:
        self.engine.dispose()


def _rows(conn: Connection, sql: str) -> list[dict[str, Any]]:
    return [dict(row) for row in conn.execute(text(sql)).mappings()]
