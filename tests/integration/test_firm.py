"""The demo firm against a real PostgreSQL: same seed, same rows; the firm keeps its rules.

Each test writes into scratch databases of its own (other tests use the real
crm/psa/timeexp/erp concurrently) and drops them at the end.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import psycopg
import pytest

from psmesh.config import SOURCE_DATABASES
from psmesh.firm.exceptions import SourcesNotEmpty
from psmesh.firm.measure import measure
from psmesh.firm.params import preset
from psmesh.firm.simulator import run
from psmesh.sources import source_sql

pytestmark = pytest.mark.integration

ALL_TABLES = {
    "crm": ("accounts", "opportunities", "opportunity_lines", "opportunity_milestones", "change_orders"),
    "psa": ("resources", "assignments", "time_off"),
    "timeexp": ("time_entries", "expenses"),
    "erp": ("projects", "billing_milestones", "billing_periods", "billing_events", "invoices"),
}
STATUSES = {
    ("crm", "opportunities", "stage"): {"prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost"},
    ("crm", "change_orders", "status"): {"draft", "approved", "rejected"},
    ("psa", "assignments", "status"): {"tentative", "confirmed", "cancelled"},
    ("psa", "time_off", "status"): {"requested", "approved", "cancelled"},
    ("timeexp", "time_entries", "status"): {"draft", "submitted", "approved", "rejected"},
    ("timeexp", "expenses", "status"): {"submitted", "approved", "rejected"},
    ("erp", "billing_periods", "status"): {"open", "closed"},
    ("erp", "invoices", "status"): {"draft", "issued", "paid", "void"},
}
MONEY = {
    ("crm", "opportunities"): ("amount", "estimated_hours"),
    ("crm", "opportunity_lines"): ("hours", "bill_rate", "est_cost_rate"),
    ("crm", "opportunity_milestones"): ("amount",),
    ("crm", "change_orders"): ("amount_delta", "hours_delta"),
    ("psa", "resources"): ("cost_rate", "bill_rate", "weekly_capacity_hours"),
    ("timeexp", "time_entries"): ("hours", "bill_rate", "cost_rate"),
    ("timeexp", "expenses"): ("amount",),
}


@contextmanager
def scratch_sources(settings):
    """A fresh set of the four source databases; yields the source → database mapping."""
    tag = uuid.uuid4().hex[:8]
    names = {source: f"firm_{tag}_{source}" for source in SOURCE_DATABASES}
    with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'create database "{name}"')
    try:
        for source, name in names.items():
            with psycopg.connect(settings.pg_dsn(name), autocommit=True) as conn:
                conn.execute(source_sql(source))
        yield names
    finally:
        with psycopg.connect(settings.pg_dsn("postgres"), autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'drop database if exists "{name}" with (force)')


def dump(settings, names):
    """Every row of every source table, ordered by primary key."""
    rows = {}
    for source, tables in ALL_TABLES.items():
        with psycopg.connect(settings.pg_dsn(names[source])) as conn:
            for table in tables:
                rows[(source, table)] = conn.execute(f"select * from {table} order by 1").fetchall()
    return rows


def columns(settings, names, source, table, *cols):
    with psycopg.connect(settings.pg_dsn(names[source])) as conn:
        return conn.execute(f"select {', '.join(cols)} from {table}").fetchall()


def test_same_seed_writes_identical_rows_and_the_firm_keeps_its_rules(stack_settings):
    small = preset("small")
    with scratch_sources(stack_settings) as one, scratch_sources(stack_settings) as two:
        written = run(stack_settings, small, seed=2026, open_loop=True, databases=one)
        again = run(stack_settings, small, seed=2026, open_loop=True, databases=two)
        assert written == again and written["timeexp.time_entries"] > 0
        first, second = dump(stack_settings, one), dump(stack_settings, two)
        assert first == second
        assert {k: len(v) for k, v in first.items() if v} and first[("timeexp", "time_entries")]

        for (source, table, column), allowed in STATUSES.items():
            assert {v for (v,) in columns(stack_settings, one, source, table, column)} <= allowed, (table, column)
        for (source, table), cols in MONEY.items():
            for row in columns(stack_settings, one, source, table, *cols):
                for value in row:
                    assert isinstance(value, Decimal) and value.as_tuple().exponent == -2, (table, value)
        assert all(h >= 0 for (h,) in columns(stack_settings, one, "timeexp", "time_entries", "hours"))

        stages = dict(columns(stack_settings, one, "crm", "opportunities", "opportunity_id", "stage"))
        won = {f"PRJ-{oid}" for oid, stage in stages.items() if stage == "closed_won"}
        assert {code for (code,) in columns(stack_settings, one, "timeexp", "time_entries", "project_code")} <= won
        # A closed deal was never touched again: its last change is the close.
        for oid, closed_at, updated_at in columns(stack_settings, one, "crm", "opportunities", "opportunity_id", "closed_at", "updated_at"):
            assert (closed_at is not None) == (stages[oid] in ("closed_won", "closed_lost"))
            assert closed_at is None or closed_at == updated_at
        for table in ("projects", "billing_milestones", "billing_events"):
            assert first[("erp", table)] == [], table


def test_closed_loop_books_time_bills_and_completes_only_what_the_mesh_wrote(stack_settings):
    small = preset("small")
    with scratch_sources(stack_settings) as names:
        # Stand in for the mesh: projects for the first ten opportunity ids, one
        # milestone due at once and one billing event to invoice.
        with psycopg.connect(stack_settings.pg_dsn(names["erp"]), autocommit=True) as conn:
            for oid in range(1, 11):
                conn.execute(
                    "insert into projects (project_code, opportunity_id, account_id, name, service_line, contract_type, currency,"
                    " budget_amount, budget_hours, billing_frequency, revenue_method, cost_center, status)"
                    " values (%s, %s, 1, 'p', 'security', 'fixed_fee', 'USD', 1000, 10, 'milestone', 'milestone', 'CC', 'active')",
                    (f"PRJ-{oid}", oid),
                )
            conn.execute("insert into billing_milestones values (900, 'PRJ-1', 'M', 500.00, %s, 'planned', null)", (date(2026, 1, 1),))
            conn.execute("insert into billing_events values ('PRJ-1-M900', 'PRJ-1', 'milestone_completed', null, 900, 500.00, 'USD', now())")
        written = run(stack_settings, small, seed=9, databases=names, mesh_timeout=0)
        assert written["erp.billing_milestones"] == 1 and written["erp.invoices"] >= 2  # the insert, then its issue
        codes = {code for (code,) in columns(stack_settings, names, "timeexp", "time_entries", "project_code")}
        assert codes <= {f"PRJ-{oid}" for oid in range(1, 11)}
        assert columns(stack_settings, names, "erp", "billing_milestones", "milestone_id", "status") == [(900, "completed")]
        invoices = columns(stack_settings, names, "erp", "invoices", "billing_event_id", "amount")
        assert invoices == [("PRJ-1-M900", Decimal("500.00"))]
        assert len(columns(stack_settings, names, "erp", "projects", "project_code")) == 10
        assert len(columns(stack_settings, names, "erp", "billing_events", "billing_event_id")) == 1

        with pytest.raises(SourcesNotEmpty):
            run(stack_settings, small, seed=9, weeks=1, databases=names, mesh_timeout=0)
        again = run(stack_settings, small, seed=9, weeks=1, databases=names, fresh=True, mesh_timeout=0)
        assert sum(again.values()) > 0 and len(columns(stack_settings, names, "erp", "projects", "project_code")) == 10


#: The small firm's measured figures must land in the ranges issue 4 asks for. Where a
#: 12-person firm over 7 measured weeks cannot be exact (a handful of fixed-fee
#: milestones and of bookings), the range is wider, as docs/firm.md records.
TARGETS = {
    "utilization": (Decimal("0.66"), Decimal("0.75")),
    "realization": (Decimal("0.85"), Decimal("0.95")),
    "margin": (Decimal("0.30"), Decimal("0.40")),
    "pipeline_coverage": (Decimal("1.1"), Decimal("1.9")),
    "overrun_share": (Decimal("0.05"), Decimal("0.50")),
    "late_time_share": (Decimal("0.03"), Decimal("0.25")),
}
MEASURED_SEED = 15


def test_the_small_firm_measures_like_a_services_firm_after_warm_up(stack_settings):
    with scratch_sources(stack_settings) as names:
        run(stack_settings, preset("small"), seed=MEASURED_SEED, open_loop=True, databases=names)
        figures = measure(stack_settings, warmup_weeks=2, databases=names)
    assert figures.weeks == preset("small").weeks - 3
    out_of_range = {name: getattr(figures, name) for name, (low, high) in TARGETS.items()
                    if getattr(figures, name) is None or not low <= getattr(figures, name) <= high}
    assert out_of_range == {}, figures
    assert figures.projects_overrun >= 1 and figures.projects_ended > figures.projects_overrun
