"""Reporting sink: the materialized views as tables of the ``reporting`` database.

One table per view topic (DOMAIN.md section 4): exact table and column names,
the view key as primary key, money numeric(14,2), hours numeric(10,2),
ratios numeric(7,4), updated_at timestamptz (when the view computed the row).
A view record upserts its row by key (latest wins, in partition order); a
tombstone deletes it (a cleared risk alert, a key that no longer exists).

The sink also mirrors a few source tables (:mod:`sinks.mirror`, schema
``source``) and keeps the executive measures as SQL views over both
(:mod:`sinks.measures`). Tables are created from metadata when absent and
never altered at run time.

After a committed batch that wrote rows, the sink appends the executive
figures of ``exec_kpis`` to ``kpi_snapshots`` (one row per snapshot, keyed
by the database's transaction time), at most once every ``snapshot_every``
seconds; a change that arrives sooner is snapshotted once that interval has
passed, even if nothing else arrives. Snapshots are history, not state: a
replayed batch adds a snapshot of the same figures, never a wrong one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    CHAR, BigInteger, Column, Connection, Date, DateTime, Engine, MetaData, Numeric, Table, Text, text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import CreateSchema

from sinks.base import Action, Sink, Write
from sinks.exceptions import RecordRejected
from sinks.measures import SNAPSHOT_SQL, create_views
from sinks.mirror import MIRROR_SCHEMA, MIRRORED, Mirror, mirror_table
from sinks.records import Contract, SinkRecord
from sinks.statements import TableSpec, apply_writes

logger = logging.getLogger(__name__)

metadata = MetaData()


def _money(name: str) -> Column:
    return Column(name, Numeric(14, 2, asdecimal=True), nullable=False)


def _hours(name: str) -> Column:
    return Column(name, Numeric(10, 2, asdecimal=True), nullable=False)


def _ratio(name: str) -> Column:
    return Column(name, Numeric(7, 4, asdecimal=True), nullable=True)


def _updated_at() -> Column:
    return Column("updated_at", DateTime(timezone=True), nullable=False)


project_financials = Table(
    "project_financials", metadata,
    Column("project_code", Text, primary_key=True),
    Column("opportunity_id", BigInteger, nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("service_line", Text, nullable=False),
    Column("contract_type", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    _money("contract_value"), _hours("contract_hours"), _money("earned_revenue"), _money("billable_expenses"),
    _money("delivered_value"), _money("billed"), _money("wip"), _money("backlog"), _money("cost"),
    _ratio("margin_pct"), _ratio("planned_margin_pct"), _ratio("hours_burn"),
    _updated_at(),
)
resource_week = Table(
    "resource_week", metadata,
    Column("resource_id", BigInteger, primary_key=True),
    Column("week_start", Date, primary_key=True),
    _hours("capacity_hours"), _hours("assigned_hours"), _hours("tentative_hours"), _hours("available_hours"),
    _hours("billable_hours"), _hours("total_hours"), _ratio("utilization"),
    _updated_at(),
)
skill_week = Table(
    "skill_week", metadata,
    Column("skill", Text, primary_key=True),
    Column("week_start", Date, primary_key=True),
    _hours("demand_hours"), _hours("supply_hours"), _hours("booked_hours"), _hours("gap_hours"),
    _updated_at(),
)
pipeline = Table(
    "pipeline", metadata,
    Column("service_line", Text, primary_key=True),
    Column("close_month", Date, primary_key=True),
    Column("open_count", BigInteger, nullable=False),
    _money("open_amount"), _money("weighted_amount"),
    _updated_at(),
)
bookings = Table(
    "bookings", metadata,
    Column("service_line", Text, primary_key=True),
    Column("won_month", Date, primary_key=True),
    Column("won_count", BigInteger, nullable=False),
    _money("contract_value"),
    _updated_at(),
)
project_risks = Table(
    "project_risks", metadata,
    Column("project_code", Text, primary_key=True),
    Column("rule", Text, primary_key=True),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("detail", Text, nullable=False),
    _updated_at(),
)

#: History of the executive figures (docs/reporting.md): one row per snapshot, appended by the sink.
kpi_snapshots = Table(
    "kpi_snapshots", metadata,
    Column("taken_at", DateTime(timezone=True), primary_key=True),
    #: the currency of the money columns; null when the store holds none or several (money is then null).
    Column("currency", CHAR(3), nullable=True),
    Column("bookings", Numeric(14, 2, asdecimal=True)),
    Column("backlog", Numeric(14, 2, asdecimal=True)),
    Column("wip", Numeric(14, 2, asdecimal=True)),
    Column("billed", Numeric(14, 2, asdecimal=True)),
    Column("margin_pct", Numeric(7, 4, asdecimal=True)),
    Column("utilization", Numeric(7, 4, asdecimal=True)),
    Column("dso_days", Numeric(10, 2, asdecimal=True)),
    Column("staffing_gap_hours", Numeric(10, 2, asdecimal=True)),
)

VIEW_TABLES: tuple[Table, ...] = (project_financials, resource_week, skill_week, pipeline, bookings, project_risks)

MIRRORS: dict[str, Mirror] = {
    f"{db}.public.{table}": Mirror(f"{db}.public.{table}", mirror_table(metadata, db, table)) for db, table in MIRRORED
}

SPECS: dict[str, TableSpec] = {
    **{t.name: TableSpec(t) for t in VIEW_TABLES},
    **{m.name: TableSpec(m.table) for m in MIRRORS.values()},
}

#: Serialises the DDL of concurrent sink processes starting together.
_SETUP_LOCK = 0x70736D657368  # "psmesh"


def view_writes(table: Table, record: SinkRecord) -> list[Write]:
    """Upsert of a view record, or delete for a tombstone."""
    keys = [c.name for c in table.primary_key.columns]
    if record.value is None:
        if record.key is None:
            raise RecordRejected("tombstone without a key")
        missing = [k for k in keys if record.key.get(k) is None]
        if missing:
            raise RecordRejected(f"tombstone key lacks {', '.join(missing)}")
        return [Write(record, table.name, Action.DELETE, tuple(record.key[k] for k in keys))]
    missing = [c.name for c in table.columns if c.name not in record.value]
    if missing:
        raise RecordRejected(f"{table.name} record lacks field(s) {', '.join(missing)}")
    row: dict[str, Any] = {c.name: record.value[c.name] for c in table.columns}
    return [Write(record, table.name, Action.UPSERT, tuple(row[k] for k in keys), row)]


class ReportingSink(Sink):
    """The six view tables, the source mirrors and the measure views of the reporting store.

    ``topics`` renames inputs (tests use topics of their own): a map from
    the topology's topic name (``views.bookings``, ``erp.public.invoices``)
    to the one to consume. ``mirrors=False`` leaves the mirrors out.
    ``snapshot_every`` (seconds) spaces the KPI snapshots; ``None`` takes none.
    """

    name = "reporting_sink"

    def __init__(self, topics: dict[str, str] | None = None, mirrors: bool = True,
                 snapshot_every: float | None = 10.0) -> None:
        rename = topics or {}
        self.snapshot_every = snapshot_every
        self._unsnapshotted = False
        self._snapshot_at = float("-inf")
        self._tables: dict[str, Table] = {}
        self._mirrors: dict[str, Mirror] = {}
        self._contracts: dict[str, Contract] = {}
        for table in VIEW_TABLES:
            topic = rename.get(f"views.{table.name}", f"views.{table.name}")
            self._tables[topic] = table
            self._contracts[topic] = Contract.from_files(f"views/{table.name}-key.avsc", f"views/{table.name}-value.avsc")
        if mirrors:
            for name, mirror in MIRRORS.items():
                topic = rename.get(name, name)
                self._mirrors[topic] = mirror
                self._contracts[topic] = mirror.contract(name.split(".", 1)[0])

    def contracts(self) -> dict[str, Contract]:
        return self._contracts

    def setup(self, engine: Engine) -> None:
        with engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SETUP_LOCK})
            conn.execute(CreateSchema(MIRROR_SCHEMA, if_not_exists=True))
            metadata.create_all(conn, checkfirst=True)
            create_views(conn)

    def prepare(self, record: SinkRecord) -> list[Write]:
        table = self._tables.get(record.topic)
        if table is not None:
            return view_writes(table, record)
        return self._mirrors[record.topic].writes(record)

    def write(self, conn: Connection, writes: Sequence[Write]) -> Counter[str]:
        return apply_writes(conn, SPECS, writes)

    def after_batch(self, engine: Engine, changed: bool) -> None:
        if self.snapshot_every is None:
            return
        self._unsnapshotted |= changed
        if not self._unsnapshotted or time.monotonic() - self._snapshot_at < self.snapshot_every:
            return
        try:
            self.snapshot(engine)
        except sa_exc.SQLAlchemyError as exc:
            # A missed snapshot is a gap in history, not lost data: try again after the interval.
            logger.warning("kpi snapshot not taken: %s", type(exc).__name__)
        self._snapshot_at = time.monotonic()

    def snapshot(self, engine: Engine) -> None:
        """Append the current executive figures to ``kpi_snapshots`` (one transaction)."""
        with engine.begin() as conn:
            conn.execute(text(SNAPSHOT_SQL))
        self._unsnapshotted = False
