"""ERP sink: project requests and billing triggers into the ``erp`` database.

What it writes (DOMAIN.md sections 1 and 3; tables of schemas/sources/erp.sql):

* ``derived.project_requests`` (request or update) → upsert ``projects`` by
  project_code. A new project is inserted ``active`` with created_at =
  updated_at = now(); an existing one gets the event's budget, dates and
  descriptive columns and updated_at = now() — only when one of them
  differs, so a replay leaves the row (and its updated_at) untouched — and
  keeps its created_at and its status (people put projects on hold and close
  them). Each milestone of the event is inserted into ``billing_milestones``
  as ``planned`` ON CONFLICT DO NOTHING: project managers complete them later
  and the sink never overwrites that.
* ``derived.billing_triggers`` → insert ``billing_events`` ON CONFLICT
  (billing_event_id) DO NOTHING with created_at = now(): the id is
  deterministic, so a replayed trigger never makes a second billing event.

Tombstones on these compacted topics are ignored: the mesh never deletes
from the ERP. The ERP's tables belong to the ERP; the sink checks that they
exist and never creates or alters them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger, CHAR, Column, Connection, Date, DateTime, Engine, MetaData, Numeric, Table, Text, func, inspect,
)

from sinks.base import Action, Sink, Write
from sinks.exceptions import RecordRejected, SinkError
from sinks.records import Contract, SinkRecord
from sinks.statements import TableSpec, apply_writes

PROJECT_REQUESTS = "derived.project_requests"
BILLING_TRIGGERS = "derived.billing_triggers"

metadata = MetaData()

projects = Table(
    "projects", metadata,
    Column("project_code", Text, primary_key=True),
    Column("opportunity_id", BigInteger, nullable=False, unique=True),
    Column("account_id", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("service_line", Text, nullable=False),
    Column("contract_type", Text, nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("budget_amount", Numeric(14, 2, asdecimal=True), nullable=False),
    Column("budget_hours", Numeric(10, 2, asdecimal=True), nullable=False),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("billing_frequency", Text, nullable=False),
    Column("revenue_method", Text, nullable=False),
    Column("cost_center", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("won_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

billing_milestones = Table(
    "billing_milestones", metadata,
    Column("milestone_id", BigInteger, primary_key=True),
    Column("project_code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("amount", Numeric(14, 2, asdecimal=True), nullable=False),
    Column("planned_date", Date, nullable=False),
    Column("status", Text, nullable=False),
    Column("completed_at", DateTime(timezone=True)),
)

billing_events = Table(
    "billing_events", metadata,
    Column("billing_event_id", Text, primary_key=True),
    Column("project_code", Text, nullable=False),
    Column("trigger_type", Text, nullable=False),
    Column("period_id", BigInteger),
    Column("milestone_id", BigInteger),
    Column("amount", Numeric(14, 2, asdecimal=True), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

SPECS = {
    "projects": TableSpec(projects, insert_only=("status",), now_on_insert=("created_at",), now_on_change=("updated_at",)),
    "billing_milestones": TableSpec(billing_milestones),
    "billing_events": TableSpec(billing_events, now_on_insert=("created_at",)),
}

#: Columns of ``projects`` an update event sets: budget, dates and descriptions; never status or created_at.
PROJECT_COLUMNS = (
    "project_code", "opportunity_id", "account_id", "name", "service_line", "contract_type", "currency",
    "budget_amount", "budget_hours", "start_date", "end_date", "billing_frequency", "revenue_method",
    "cost_center", "won_at",
)
MILESTONE_COLUMNS = ("milestone_id", "name", "amount", "planned_date")
TRIGGER_COLUMNS = ("billing_event_id", "project_code", "trigger_type", "period_id", "milestone_id", "amount", "currency")
EVENT_TYPES = frozenset({"request", "update"})


def _fields(value: dict[str, Any], names: Sequence[str], what: str) -> dict[str, Any]:
    missing = [n for n in names if n not in value]
    if missing:
        raise RecordRejected(f"{what} lacks field(s) {', '.join(missing)}")
    return {n: value[n] for n in names}


def project_writes(record: SinkRecord) -> list[Write]:
    """The project upsert and the milestone inserts of one project request or update."""
    value = record.value
    assert value is not None
    if value.get("event_type") not in EVENT_TYPES:
        raise RecordRejected(f"project request: event_type is not one of {', '.join(sorted(EVENT_TYPES))}")
    row = _fields(value, PROJECT_COLUMNS, "project request")
    # New rows start active; status is not in the update set, so a project
    # someone put on hold or closed stays so.
    writes = [Write(record, "projects", Action.UPSERT_IF_CHANGED, (row["project_code"],), {**row, "status": "active"})]
    for milestone in value.get("milestones") or ():
        m = _fields(milestone, MILESTONE_COLUMNS, "project request milestone")
        writes.append(Write(
            record, "billing_milestones", Action.INSERT_ONCE, (m["milestone_id"],),
            {**m, "project_code": row["project_code"], "status": "planned", "completed_at": None},
        ))
    return writes


def trigger_writes(record: SinkRecord) -> list[Write]:
    """The billing event of one billing trigger, written once per billing_event_id."""
    assert record.value is not None
    row = _fields(record.value, TRIGGER_COLUMNS, "billing trigger")
    return [Write(record, "billing_events", Action.INSERT_ONCE, (row["billing_event_id"],), row)]


class ErpSink(Sink):
    """Projects, billing milestones (creation only) and billing events of the ERP."""

    name = "erp_sink"

    def __init__(self, project_requests: str = PROJECT_REQUESTS, billing_triggers: str = BILLING_TRIGGERS) -> None:
        self.topics = {project_requests: project_writes, billing_triggers: trigger_writes}
        self._contracts = {
            project_requests: Contract.from_files("derived/project_requests-key.avsc", "derived/project_requests-value.avsc"),
            billing_triggers: Contract.from_files("derived/billing_triggers-key.avsc", "derived/billing_triggers-value.avsc"),
        }

    def contracts(self) -> dict[str, Contract]:
        return self._contracts

    def setup(self, engine: Engine) -> None:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
        missing = [t for t in SPECS if t not in present]
        if missing:
            raise SinkError(
                f"erp sink: table(s) {', '.join(missing)} missing in database {engine.url.database or '(from dsn)'}; "
                "the ERP owns them (schemas/sources/erp.sql) and the sink does not create them"
            )

    def prepare(self, record: SinkRecord) -> list[Write]:
        if record.value is None:
            return []
        return self.topics[record.topic](record)

    def write(self, conn: Connection, writes: Sequence[Write]) -> Counter[str]:
        return apply_writes(conn, SPECS, writes)
